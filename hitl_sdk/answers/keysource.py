"""Where keys come from: the reviewer app's signing key, and the public keys a reader trusts.

The app signs with, in this order: ``HITL_SIGNING_KEY`` (a secret of 32+ characters; the key is
derived from it), ``HITL_SIGNING_SECRET_ARN`` (a Secrets Manager secret ``{"seed": ...,
"previous": ["ed25519:...", ...]}``, read on first use; the template creates it), else this
machine's key (``hitl serve``, ``hitl demo``: a file under the user's data dir, made on first
use, readable by this user only). ``HITL_OPERATOR_KEYS`` lists operators' public keys the app
publishes as trusted too (``hitl respond`` signs with its machine's key).

A reader (``wait()``, ``hitl audit``) trusts, in this order: the keys pinned in
``HITL_VERIFY_KEYS`` (or ``hitl.configure(verify_keys=...)``), and nothing else when they are
set; else the keys the app publishes at ``<HITL_APP_URL>/.well-known/hitl-keys`` (HTTPS, or
HTTP on loopback; fetched once, again when a record names a key not seen yet, at most once a
minute), plus this machine's key when the app runs on this machine (local mode: the app, the CLI
and the task share it), plus the key of an app running in this very process. Never the bucket.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConfigError
from .seal import Keyring, PublicKey, Signer
from .trust import KeySource

WELL_KNOWN = "/.well-known/hitl-keys"
REFETCH_SECONDS = 60.0
FETCH_TIMEOUT = 5.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")

_lock = threading.Lock()
_machine: Signer | None = None
_in_process = Keyring()
_in_process_inbox: bool | None = None  # whether an app built in this process has an inbox


def machine_key_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("hitl")) / "signing-key.json"


def machine_signer(use: str = "app") -> Signer:
    """This machine's key: made on first use (readable by this user only), then the same one."""
    global _machine
    with _lock:
        if _machine is None:
            path = machine_key_path()
            if not path.exists():
                _write_new_key(path)
            try:
                seed = json.loads(path.read_text())["seed"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"this machine's signing key at {path} cannot be read ({exc}); move it "
                    "aside to make a new one (answers signed by it will no longer verify)"
                ) from exc
            _machine = Signer.from_seed(seed, use)
        return _machine


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _, seed = Signer.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it first: that one is the key
    with os.fdopen(fd, "w") as handle:
        json.dump({"seed": seed, "what": "hitl's signing key for this machine"}, handle)


def machine_public() -> PublicKey | None:
    """This machine's public key, if it has made one."""
    if _machine is None and not machine_key_path().exists():
        return None
    return machine_signer().public


def trust_in_process(keys: Keyring) -> None:
    """An app runs in this process: its keys are trusted here (it could sign anything anyway)."""
    global _in_process
    with _lock:
        _in_process = _in_process | keys


def app_in_process(*, inbox: bool) -> None:
    """An app was built in this process: whether it has an inbox is what the deployment says."""
    global _in_process_inbox
    with _lock:
        _in_process_inbox = bool(_in_process_inbox) or inbox


class LocalKeys:
    """Trust for code that writes answers on this machine (``hitl respond``, tests): this
    machine's key and the key of an app running in this process."""

    def keyring(self, *wanted: str | None) -> Keyring:
        mine = machine_public()
        return _in_process | Keyring([mine] if mine is not None else [])

    def why_untrusted(self) -> str:
        return "it is neither this machine's key nor an app's in this process"


class Seal:
    """What a writer of answers needs: the key it signs with, and the keys it trusts when it
    judges a record already there (``signer`` is called on first use)."""

    def __init__(self, signer: Callable[[], Signer], keys: KeySource) -> None:
        self._signer = signer
        self.keys = keys

    def signer(self) -> Signer:
        return self._signer()

    @classmethod
    def local(cls, keys: KeySource | None = None) -> Seal:
        """This machine's key (``hitl serve``, ``hitl demo``, ``hitl respond``)."""
        return cls(machine_signer, keys or LocalKeys())


class AppKeys:
    """The reviewer app's keys, from its environment, loaded on first use (the cold start does
    not wait for Secrets Manager or import ``cryptography``)."""

    def __init__(self, env: Mapping[str, str] | None = None, *, local: bool = True) -> None:
        self._env = dict(os.environ if env is None else env)
        self._local = local
        self._signer: Signer | None = None
        self._keyring: Keyring | None = None
        self._lock = threading.Lock()
        if not local and not (self._seed_given or self._arn):
            raise ConfigError(
                "the reviewer app has no signing key: set HITL_SIGNING_SECRET_ARN (the "
                "template does) or HITL_SIGNING_KEY to a secret of 32+ characters"
            )

    @property
    def _seed_given(self) -> bool:
        return bool(self._env.get("HITL_SIGNING_KEY", "").strip())

    @property
    def _arn(self) -> str:
        return self._env.get("HITL_SIGNING_SECRET_ARN", "").strip()

    def _load(self) -> tuple[Signer, Keyring]:
        with self._lock:
            if self._signer is None or self._keyring is None:
                previous: list[str] = []
                if self._seed_given:
                    signer = Signer.from_seed(self._env["HITL_SIGNING_KEY"])
                elif self._arn:
                    stored = _secret(self._arn)
                    signer = Signer.from_seed(str(stored.get("seed", "")))
                    previous = [str(k) for k in stored.get("previous") or []]
                else:
                    signer = machine_signer()
                operators = self._env.get("HITL_OPERATOR_KEYS", "")
                keyring = (
                    Keyring([signer.public])
                    | Keyring.parse(previous)
                    | Keyring(
                        PublicKey.parse(k, "operator") for k in operators.replace(",", " ").split()
                    )
                )
                self._signer, self._keyring = signer, keyring
                trust_in_process(keyring)
            return self._signer, self._keyring

    def signer(self) -> Signer:
        return self._load()[0]

    def keyring(self, *wanted: str | None) -> Keyring:
        return self._load()[1]

    def why_untrusted(self) -> str:
        return (
            "the app knows only its signing key, the previous keys of HITL_SIGNING_SECRET_ARN "
            "and HITL_OPERATOR_KEYS"
        )

    def seal(self) -> Seal:
        return Seal(self.signer, self)


def _secret(arn: str) -> dict[str, Any]:
    import botocore.session

    client = botocore.session.get_session().create_client("secretsmanager")
    try:
        data = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    except Exception as exc:
        raise ConfigError(f"cannot read the signing key from {arn}: {exc}") from exc
    if not isinstance(data, dict) or not data.get("seed"):
        raise ConfigError(f"the secret {arn} must hold a JSON object with a 'seed'")
    return data


def fetch_keys(app_url: str) -> tuple[Keyring, bool | None]:
    """The keys the app at ``app_url`` publishes, and whether it has an inbox; ``ConfigError``
    if they cannot be had over a safe channel (HTTPS, or HTTP on loopback)."""
    import urllib.request

    parts = urlsplit(app_url)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
        raise ConfigError(
            f"the app's keys are fetched over HTTPS only (or HTTP on loopback), not {app_url}: "
            "pin them with HITL_VERIFY_KEYS instead"
        )
    url = app_url.rstrip("/") + WELL_KNOWN
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as reply:
            document = json.load(reply)
            inbox = document.get("inbox") if isinstance(document, dict) else None
            return Keyring.from_document(document), inbox if isinstance(inbox, bool) else None
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot fetch the app's keys from {url}: {exc}") from exc


class Trust:
    """The keys a reader trusts (see the module's docstring), resolved lazily and cached."""

    def __init__(self, app_url: str, pinned: Iterable[str] | str | None = None) -> None:
        self.app_url = app_url
        self.pinned_text = pinned if isinstance(pinned, str) or pinned is None else " ".join(pinned)
        self.pinned = Keyring.parse(pinned) if pinned else None
        self._fetched: Keyring | None = None
        self._inbox: bool | None = None
        self._fetched_at = -REFETCH_SECONDS
        self._error: str | None = None
        self._lock = threading.Lock()

    @property
    def local(self) -> bool:
        return urlsplit(self.app_url).hostname in LOOPBACK

    def keyring(self, *wanted: str | None) -> Keyring:
        """The trusted keys, fetched again (at most once a minute) when a key in ``wanted``
        is not among them: the app may have rotated."""
        if self.pinned is not None:
            return self.pinned
        keys = self._known()
        missing = [k for k in wanted if k and k not in keys]
        if missing or self._fetched is None:
            self._refetch()
            keys = self._known()
        return keys

    def _known(self) -> Keyring:
        keys = _in_process | (self._fetched or Keyring())
        if self.local:
            mine = machine_public()
            if mine is not None:
                keys = keys | Keyring([mine])
        return keys

    def _refetch(self) -> None:
        with self._lock:
            if time.monotonic() - self._fetched_at < REFETCH_SECONDS:
                return
            self._fetched_at = time.monotonic()
            try:
                self._fetched, self._inbox = fetch_keys(self.app_url)
                self._error = None
            except ConfigError as exc:
                self._error = str(exc)

    def inbox(self) -> bool | None:
        """Whether the deployment has an inbox, as an app in this process or the app at
        ``app_url`` says (fetched with the keys); None when neither can tell."""
        if _in_process_inbox is not None:
            return _in_process_inbox
        if self._fetched is None:
            self._refetch()
        return self._inbox

    def why_untrusted(self) -> str:
        """What to tell the reader when a key is not trusted."""
        if self.pinned is not None:
            return "it is not among the keys pinned in HITL_VERIFY_KEYS"
        if self._error:
            return f"{self._error}; pin the app's keys with HITL_VERIFY_KEYS"
        return f"the app at {self.app_url} does not publish it"
