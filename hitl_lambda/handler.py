"""The Lambda entry point: ``hitl_lambda.handler.handler``.

The app is built once per cold start (reading ``HITL_STORE_URL`` and checking the store, so
a misconfigured function fails at once with one clear error) and reused by warm invocations.
"""

from __future__ import annotations

from mangum import Mangum

from .app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
