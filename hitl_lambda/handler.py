"""The Lambda entry point: ``hitl_lambda.handler.handler``.

The app is built once per cold start (reading ``HITL_STORE_URL`` and checking the store, so
a misconfigured function fails at once with one clear error) and reused by warm invocations.

With SnapStart (template parameter ``SnapStart=on``) that cold start runs once, when a version
is published, and each new instance resumes the snapshot. The S3 client made then holds
pooled connections and the credentials of that moment, neither of which survives a restore:
an after-restore hook (``snapshot_restore_py``, part of Lambda's Python runtimes) makes a
fresh client before the first request.
"""

from __future__ import annotations

from mangum import Mangum

from .app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")


def renew_store_client() -> None:
    """After a SnapStart restore: a new S3 client (fresh connections and credentials)."""
    app.state.store.renew()


try:
    from snapshot_restore_py import register_after_restore
except ImportError:  # not on Lambda's Python runtime (or an older one): nothing to restore
    pass
else:
    register_after_restore(renew_store_client)
