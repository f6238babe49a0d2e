"""Storage: the byte backends, the one store seam, the key layout and the records (not public).

The rest of hitl (the answer path, the task's side, the reviewer app) uses what ``__all__``
lists; nothing else talks to storage. The rooms inside: ``objects`` (S3 through botocore, any
fsspec filesystem), ``store`` (records over a root URL, exclusive create, listings, deadlines),
``keys`` (the key layout, ids, link tokens), ``records`` (the pydantic records) and ``people``
(one identity per person).
"""

from .keys import EventKeys, new_token, redact_tokens, token_digest
from .people import find_person, identity, same_person
from .records import (
    LINK_HOLDER,
    DecisionRecord,
    EventRecord,
    GrantRecord,
    NoticeRecord,
    QuorumRule,
    Status,
    Via,
    VoteRecord,
    utcnow,
)
from .store import Store, deadline, normalize_store_url, parse_store_url

__all__ = [
    "LINK_HOLDER",
    "DecisionRecord",
    "EventKeys",
    "EventRecord",
    "GrantRecord",
    "NoticeRecord",
    "QuorumRule",
    "Status",
    "Store",
    "Via",
    "VoteRecord",
    "deadline",
    "find_person",
    "identity",
    "new_token",
    "normalize_store_url",
    "parse_store_url",
    "redact_tokens",
    "same_person",
    "token_digest",
    "utcnow",
]
