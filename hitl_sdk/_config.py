"""Settings: read from the environment once, at first use; ``configure()`` overrides in code.

- ``HITL_STORE_URL``: where events live (``s3://bucket/prefix``, ``file:///path``, an
  absolute folder path, ``memory://name``). Default: a ``store`` folder under the user's
  data dir.
- ``HITL_APP_URL``: the reviewer app's base URL. Default ``http://127.0.0.1:8787``.
- ``HITL_RUN_ID``: the run that ``scope="run"`` means outside Flyte. Default: each process is
  its own run.
- ``HITL_INBOX``: ``on`` or ``off``: whether gates write the inbox index (a marker per audience
  when they open and close). Default: what the deployment says (an app with sign-in in this
  process, or the app at ``HITL_APP_URL`` telling so with its keys), else off.
- ``HITL_VERIFY_KEYS``: the public keys whose signatures make a person's answer (``ed25519:...``,
  separated by spaces or commas). Default: the keys the app publishes at
  ``<HITL_APP_URL>/.well-known/hitl-keys`` (see ``answers.keysource``).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import ConfigError
from .answers.index import inbox_setting
from .answers.keysource import Trust
from .answers.seal import Keyring
from .storage.store import Store, normalize_store_url

if TYPE_CHECKING:
    import fsspec

DEFAULT_APP_URL = "http://127.0.0.1:8787"
_PROCESS_RUN_ID = f"local-{uuid.uuid4().hex[:12]}"


def default_store_url() -> str:
    import platformdirs  # only the local default needs it

    return Path(platformdirs.user_data_dir("hitl"), "store").as_uri()


def _check_app_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise ConfigError(
            f"app URL {url!r} is not an http(s) URL: set HITL_APP_URL or configure(app_url=...) "
            "to the reviewer app's base URL, e.g. https://abc.execute-api.eu-west-1.amazonaws.com"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class Settings:
    store_url: str
    app_url: str
    run_id: str | None
    notify: str | None = None  # HITL_NOTIFY: apprise URLs every gate notifies by default
    verify_keys: str | None = None  # HITL_VERIFY_KEYS: pinned public keys (else fetched)
    inbox: bool | None = None  # HITL_INBOX: write the inbox index (None: as the deployment says)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            store_url=os.environ.get("HITL_STORE_URL") or default_store_url(),
            app_url=_check_app_url(os.environ.get("HITL_APP_URL") or DEFAULT_APP_URL),
            run_id=os.environ.get("HITL_RUN_ID") or None,
            notify=os.environ.get("HITL_NOTIFY") or None,
            verify_keys=_check_keys(os.environ.get("HITL_VERIFY_KEYS") or None),
            inbox=inbox_setting(os.environ.get("HITL_INBOX")),
        )


def _check_keys(text: str | None) -> str | None:
    if text is not None:
        Keyring.parse(text)  # ConfigError naming the malformed key, at first use
    return text


_lock = threading.Lock()
_settings: Settings | None = None
_trust: Trust | None = None
_store: Store | None = None
_fs: fsspec.AbstractFileSystem | None = None


def settings() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings.from_env()
        return _settings


def get_store() -> Store:
    """The store the SDK uses, built once from the settings (or the filesystem configured)."""
    global _store
    current = settings()
    with _lock:
        if _store is None or _store.url != normalize_store_url(current.store_url):
            _store = Store(current.store_url, fs=_fs)
        return _store


# Where a run's id comes from besides the settings: an integration that knows the run (Flyte's
# run name inside a Flyte task) registers a source; the first that answers wins.
_run_sources: list[Callable[[], str | None]] = []


def add_run_source(source: Callable[[], str | None]) -> None:
    """Let ``source`` name the run a gate belongs to (``None``: it does not know)."""
    if source not in _run_sources:
        _run_sources.append(source)


def trust() -> Trust:
    """The keys this process trusts (pinned, or the app's published ones), built once."""
    global _trust
    current = settings()
    with _lock:
        if _trust is None or (_trust.app_url, _trust.pinned_text) != (
            current.app_url,
            current.verify_keys,
        ):
            _trust = Trust(current.app_url, current.verify_keys)
        return _trust


def inbox() -> bool:
    """Whether gates write the inbox index: ``HITL_INBOX`` (or ``configure(inbox=...)``), else
    what the deployment says, else off (the index costs nothing where no inbox is deployed)."""
    chosen = settings().inbox
    if chosen is not None:
        return chosen
    return bool(trust().inbox())


def run_id() -> str:
    """The run ``scope="run"`` means: an integration's (a Flyte run), else ``HITL_RUN_ID``,
    else this process."""
    for source in _run_sources:
        found = source()
        if found:
            return found
    return settings().run_id or _PROCESS_RUN_ID


def operator_name() -> str:
    """Who acts from code or the command line without a link: the OS login name."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name in this environment (some containers)
        return "operator"


def configure(
    store_url: str | None = None,
    app_url: str | None = None,
    *,
    run_id: str | None = None,
    fs: fsspec.AbstractFileSystem | None = None,
    verify_keys: str | Sequence[str] | None = None,
    inbox: bool | None = None,
) -> None:
    """Override settings in code; arguments left as None keep their current value.

    Example::

        hitl.configure(store_url="s3://my-hitl-bucket/events",
                       app_url="https://abc123.execute-api.eu-west-1.amazonaws.com")

    ``verify_keys``: the public keys whose signatures make a person's answer
    (``ed25519:...``), instead of those the app publishes. ``inbox``: whether gates write the
    inbox index (instead of what the deployment says).

    Raises ``ConfigError`` for a malformed URL or key. ``fs`` injects an fsspec filesystem
    (tests).
    """
    global _settings, _store, _fs
    current = settings()
    if store_url is not None:
        store_url = normalize_store_url(store_url)
    updated = replace(
        current,
        store_url=store_url if store_url is not None else current.store_url,
        app_url=_check_app_url(app_url) if app_url is not None else current.app_url,
        run_id=run_id if run_id is not None else current.run_id,
        verify_keys=(
            _check_keys(verify_keys if isinstance(verify_keys, str) else " ".join(verify_keys))
            if verify_keys is not None
            else current.verify_keys
        ),
        inbox=inbox if inbox is not None else current.inbox,
    )
    with _lock:
        _settings = updated
        _store = None
        if fs is not None or store_url is not None:
            _fs = fs


def reset() -> None:
    """Forget configured settings; the environment is read again at next use (tests)."""
    global _settings, _store, _fs, _trust
    with _lock:
        _settings = _store = _fs = _trust = None
