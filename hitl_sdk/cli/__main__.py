"""``python -m hitl_sdk.cli``: the ``hitl`` command."""

import sys

from .entry import main

sys.exit(main())
