"""Strict parsing: each type takes what it means and refuses what it does not."""

from __future__ import annotations

import math

import pytest

from hitl_sdk import ConfigError, InvalidValue
from hitl_sdk.answers.codecs import CODECS, scalar_codec

GOOD = [
    ("bool", True, True),
    ("bool", False, False),
    ("bool", "true", True),
    ("bool", " TRUE ", True),
    ("bool", "yes", True),
    ("bool", "1", True),
    ("bool", "false", False),
    ("bool", "No", False),
    ("bool", "0", False),
    ("int", 42, 42),
    ("int", "42", 42),
    ("int", " -7 ", -7),
    ("int", "+3", 3),
    ("int", "12345678901234567890", 12345678901234567890),
    ("float", 0.75, 0.75),
    ("float", 3, 3.0),
    ("float", "0.75", 0.75),
    ("float", "-2", -2.0),
    ("float", "1e3", 1000.0),
    ("str", "line one\r\nline two\rthree", "line one\nline two\nthree"),
    ("str", "  spaced  ", "  spaced  "),
    ("str", "<script>alert(1)</script>", "<script>alert(1)</script>"),
]

BAD = [
    ("bool", "ture"),
    ("bool", ""),
    ("bool", "maybe"),
    ("bool", 1),
    ("bool", None),
    ("bool", [True]),
    ("int", "1.5"),
    ("int", 1.5),
    ("int", 2.0),
    ("int", True),
    ("int", ""),
    ("int", "1e3"),
    ("int", "0x10"),
    ("int", "1_000"),
    ("int", "4" * 500),
    ("int", None),
    ("float", "nan"),
    ("float", "inf"),
    ("float", float("nan")),
    ("float", float("inf")),
    ("float", "1_0"),
    ("float", "abc"),
    ("float", ""),
    ("float", True),
    ("float", None),
    ("str", 5),
    ("str", None),
    ("str", True),
    ("str", ""),
    ("str", " \r\n\t "),
]


@pytest.mark.parametrize(("name", "raw", "expected"), GOOD)
def test_good_values_parse_to_their_type(name: str, raw: object, expected: object) -> None:
    codec = scalar_codec(name)
    value = codec.parse(raw)
    assert value == expected
    assert type(value) is codec.python_type
    assert codec.from_json(codec.to_json(value)) == value


@pytest.mark.parametrize(("name", "raw"), BAD)
def test_bad_values_are_refused_with_the_expected_type(name: str, raw: object) -> None:
    with pytest.raises(InvalidValue, match=f"expected {name}"):
        scalar_codec(name).parse(raw)


def test_codec_by_type_and_by_name_agree() -> None:
    for name, codec in CODECS.items():
        assert scalar_codec(codec.python_type) is codec
        assert scalar_codec(name) is codec
        assert codec.hint


@pytest.mark.parametrize("data_type", [list, dict, "list", bytes, None, complex])
def test_unsupported_data_type_is_a_config_error(data_type: object) -> None:
    with pytest.raises(ConfigError, match="use one of int, float, str, bool"):
        scalar_codec(data_type)


def test_float_keeps_precision() -> None:
    assert math.isclose(scalar_codec(float).parse("0.1"), 0.1)
