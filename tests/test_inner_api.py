"""The house's rooms keep their doors: the inner API the app and the CLI use is what we mean,
the reviewer app imports only it (and public names), integrations depend on the core and never
the reverse, and no module imports in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import hitl_sdk
from hitl_sdk import answers, storage

ROOT = Path(__file__).resolve().parent.parent

ANSWERS = {
    "WELL_KNOWN", "AppKeys", "KeySource", "Keyring", "LocalKeys", "PublicKey", "Refusal",
    "Seal", "Signer", "Trust", "app_in_process", "check_decision", "check_vote", "counted_votes",
    "machine_key_path", "machine_signer", "shown", "standing", "trust_in_process",
    "write_decision",
    "BOOL_WORDS", "CODECS", "INBOX_VARIABLE", "DEFAULT_PROMPT", "MAX_COMMENT_CHARS",
    "PROMPT_FORMATS",
    "STATUS_FOR", "UNSET", "Approval", "Codec", "Details", "EventState", "FormFields",
    "IndexEntry", "PromptFormat", "QuorumSpec", "RequireReason", "Submission", "Tally",
    "TypeSpec", "answer_codec", "answer_json", "answer_text", "authorize", "cancel",
    "check_details", "check_text", "closed_message", "curl_line", "decided_text",
    "decision_json", "details_html", "details_text", "error_for_status", "field_kind",
    "gate_json", "gate_states", "heading", "inbox_setting", "index_text", "listing", "load",
    "make_rule",
    "mark_closed", "mark_open", "marked_by_closer", "outcome", "outcome_parts", "outcome_text",
    "person_audiences", "prompt_html", "quorum_json", "read_votes", "result_text",
    "reviewer_for", "scalar_codec", "status_for", "status_json", "status_of",
    "submit", "tally", "timeout_record", "type_spec", "value_json", "verdict", "via_text",
    "vote_text", "voter", "voters", "votes_json", "when",
}  # fmt: skip
STORAGE = {
    "LINK_HOLDER", "DecisionRecord", "EventKeys", "EventRecord", "GrantRecord", "NoticeRecord",
    "QuorumRule",
    "Status", "Store", "Via", "VoteRecord", "deadline", "find_person", "identity", "new_token",
    "normalize_store_url", "parse_store_url", "redact_tokens", "same_person", "token_digest",
    "utcnow",
}  # fmt: skip


def test_the_inner_apis_export_what_we_mean() -> None:
    assert set(answers.__all__) == ANSWERS
    assert set(storage.__all__) == STORAGE
    for module, names in ((answers, ANSWERS), (storage, STORAGE)):
        for name in names:
            assert getattr(module, name) is not None, name
        assert "not public" in (module.__doc__ or "")


def modules(package: str) -> dict[str, Path]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        if "templates_compiled" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (every import: top level, in functions, typing)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    files = {**modules("hitl_sdk"), **modules("hitl_lambda")}
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def test_the_app_imports_only_the_inner_api_and_public_names() -> None:
    # hitl_sdk.chat: the Slack message, rendered alike by the task and the app
    allowed = {"hitl_sdk", "hitl_sdk.answers", "hitl_sdk.storage", "hitl_sdk.chat"}
    for name, targets in graph().items():
        if name.startswith("hitl_lambda"):
            sdk = {t for t in targets if t.startswith("hitl_sdk")}
            assert sdk <= allowed, f"{name} imports {sorted(sdk - allowed)}"


def test_integrations_depend_on_the_core_never_the_reverse() -> None:
    for name, targets in graph().items():
        core = name.startswith("hitl_sdk") and not name.startswith(("hitl_sdk.flyte",))
        if core and name not in ("hitl_sdk", "hitl_sdk._wiring"):  # the composition roots
            assert not any(t.startswith("hitl_sdk.flyte") for t in targets), name
        if name.startswith(("hitl_sdk.storage", "hitl_sdk.answers")):
            rooms = ("hitl_sdk._", "hitl_sdk.cli", "hitl_lambda")
            assert not any(t.startswith(rooms) for t in targets if t != "hitl_sdk._errors"), (
                name,
                sorted(targets),
            )


def test_no_module_imports_in_a_circle() -> None:
    edges = graph()
    seen: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for target in edges.get(node, ()):
            if seen.get(target) == 1:
                raise AssertionError(" -> ".join([*path, node, target]))
            if target not in seen:
                visit(target, [*path, node])
        seen[node] = 2

    for node in sorted(edges):
        if node not in seen:
            visit(node, [])


def test_no_product_module_is_over_500_lines() -> None:
    for path in [*modules("hitl_sdk").values(), *modules("hitl_lambda").values()]:
        assert len(path.read_text().splitlines()) <= 500, path


def test_the_public_face_is_unchanged() -> None:
    assert {"new_event", "approve", "Event", "wait_all", "as_completed", "configure"} <= set(
        hitl_sdk.__all__
    )
