"""hitl's reviewer app: the signed-link form and the JSON API, on Lambda or under uvicorn.

``hitl_lambda.app.create_app(store)`` builds the FastAPI app; ``hitl_lambda.handler.handler``
is the Lambda entry point (Mangum). Every answer goes through ``hitl_sdk._answers.submit``.
"""
