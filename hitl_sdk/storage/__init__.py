"""Storage: the byte backends, the one store seam, the key layout and the records.

Not public: the rest of hitl (the answer path, the task's side, the reviewer app) uses what
``__all__`` lists; nothing else talks to storage.
"""

from .keys import EventKeys
from .records import DecisionRecord, EventRecord, GrantRecord, NoticeRecord, Status, VoteRecord
from .store import Store, deadline, normalize_store_url, parse_store_url

__all__ = [
    "DecisionRecord",
    "EventKeys",
    "EventRecord",
    "GrantRecord",
    "NoticeRecord",
    "Status",
    "Store",
    "VoteRecord",
    "deadline",
    "normalize_store_url",
    "parse_store_url",
]
