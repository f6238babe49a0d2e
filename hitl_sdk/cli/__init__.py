"""The ``hitl`` command (``hitl_sdk.cli:main``; ``python -m hitl_sdk.cli``).

entry.py     the parser and ``main``
common.py    exit codes, printing, opening the store
gates.py     hitl list, show, respond, cancel
local.py     hitl serve, hitl demo (and the HTTP client the demo answers with)
server.py    the reviewer app under uvicorn, in the foreground or on a thread
table.py     tables, durations, timestamps; progress.py the waiting spinner
"""

from .entry import main

__all__ = ["main"]
