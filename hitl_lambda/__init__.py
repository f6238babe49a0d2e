"""hitl's reviewer app: the signed-link form, the JSON API and the inbox, on Lambda or uvicorn.

``hitl_lambda.app.create_app(store)`` builds the FastAPI app; ``hitl_lambda.handler.handler``
is the Lambda entry point (Mangum). Every answer goes through ``hitl_sdk.answers.submit``, the
answer path's inner API; the app imports only ``hitl_sdk`` (public), ``hitl_sdk.answers`` and
``hitl_sdk.storage``.

    app.py           create_app: middleware, error handlers, and the routers installed
    forms.py         GET /form/{id}, POST /submit (the signed link's pages)
    api.py           POST /submit/json, GET /status/{id}, GET /health
    signin.py        /login, /auth/callback, /logout (OpenID Connect; auth.py holds the protocol)
    inbox.py         /inbox, /inbox.json, /inbox/gate/{id}
    views.py         what the routers share: off-loop store calls, form posts, a gate's pages
    pages.py         the Jinja2 environment and render(); templates/ the pages
    http_errors.py   hitl's errors as HTTP statuses, as JSON or the error page
    middleware.py    security headers, catch-all 500, storage deadline, body limit, stages
    handler.py       the Lambda entry point
"""
