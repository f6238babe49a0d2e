"""Every error hitl raises, in one tree.

Errors that callers catch subclass the builtin they mean, so ``except TimeoutError`` keeps
working for code written against ``flyteplugins-hitl``::

    HitlError
    ├── ConfigError(ValueError)           a malformed store URL, app URL or event option
    │   └── QuestionChanged               a gate re-opened with another prompt or details
    ├── InvalidValue(ValueError)          a value that is not of the event's type
    ├── EventNotFound(LookupError)        no event with that id
    ├── InvalidToken(PermissionError)     missing, wrong or another event's token
    │   └── MissingToken                  no token at all (the app answers 401, not 403)
    ├── NotAllowed(PermissionError)       a known person who may not give this answer (not a
    │                                     reviewer of the gate; the requester approving)
    ├── AlreadyAnswered                   the event has its terminal record already
    │   └── AlreadyVoted                  this reviewer voted on the quorum gate already
    ├── EventExpired                      an answer arrived after the deadline
    ├── EventCancelled                    the gate was cancelled (wait() and answers)
    ├── EventTimeout(TimeoutError)        wait() passed the deadline with no answer
    └── StorageError(OSError)             anything the store could not do
        ├── StoreNotFound                 the bucket or folder does not exist
        ├── StoreAccessDenied             credentials do not allow the operation
        ├── KeyExists(FileExistsError)    exclusive create refused: the object exists
        ├── CorruptRecord                 an object holds no valid record (truncated, foreign)
        │   └── UnverifiedRecord          a person's answer no trusted key signed (a forgery,
        │                                 an early timeout, votes that do not add up)
        └── TransientStorageError         throttling, a dropped connection: try again

Backend errors (botocore, OS) are translated at the storage boundary with ``raise ... from``;
nothing above the store sees them.
"""

from __future__ import annotations


class HitlError(Exception):
    """Base class of every error hitl raises."""


class ConfigError(HitlError, ValueError):
    """A setting or option is malformed; the message names it and the fix."""


class QuestionChanged(ConfigError):
    """A gate was opened again (same name, same run) with another question: its answer
    belongs to the question its reviewer saw, so it is not returned for this one."""


class InvalidValue(HitlError, ValueError):
    """A submitted value is not of the event's type."""


class EventNotFound(HitlError, LookupError):
    """No event exists with the given request id."""


class InvalidToken(HitlError, PermissionError):
    """The capability token is missing, wrong, or belongs to another event."""


class MissingToken(InvalidToken):
    """No token came with the request at all (an HTTP API answers 401 rather than 403)."""


class AlreadyAnswered(HitlError):
    """The event already has its terminal record; the first answer stands."""


class AlreadyVoted(AlreadyAnswered):
    """This reviewer has voted on the quorum gate already; each person votes once."""


class NotAllowed(HitlError, PermissionError):
    """The person is known but may not give this answer: not a reviewer of a gate that names
    its reviewers, or the requester approving their own request."""


class EventExpired(HitlError):
    """The event's deadline has passed; it no longer takes answers."""


class EventCancelled(HitlError):
    """The gate was cancelled (``event.cancel()``, ``hitl cancel``): ``wait()`` raises this,
    and an answer to it is refused."""


class EventTimeout(HitlError, TimeoutError):
    """``wait()`` reached the event's deadline with no answer."""


class Rejected(HitlError):
    """A call gated by ``hitl.require_approval`` (or ``hitl.approve_call``) was not approved:
    a reviewer rejected it, or nobody decided by the deadline and ``on_timeout="reject"``
    applied. Its body never ran. ``reason`` and ``by`` say why and who; ``approval`` is the
    whole ``hitl.Approval``; ``call`` names the function."""

    def __init__(self, call: str, approval: object) -> None:
        self.call = call
        self.approval = approval
        self.reason: str | None = getattr(approval, "reason", None)
        self.by: str = str(getattr(approval, "by", ""))
        why = f": {self.reason}" if self.reason else ""
        who = f" by {self.by}" if self.by else ""
        super().__init__(f"the call {call}() was rejected{who}{why}; it did not run")


class StorageError(HitlError, OSError):
    """The store could not complete an operation."""


class StoreNotFound(StorageError):
    """The bucket (or local folder) behind the store URL does not exist."""


class StoreAccessDenied(StorageError):
    """The credentials in use may not perform the operation."""


class KeyExists(StorageError, FileExistsError):
    """Exclusive create refused because the object already exists; ``existing`` is the
    record found there when the store read it back (None if it could not)."""

    existing: object = None


class CorruptRecord(StorageError):
    """An object where a record belongs holds no valid record (truncated, or not ours).

    Records are written once, so it will not heal: listings pass over it and name its key;
    a wait or an answer on that very gate stops with this error.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class TransientStorageError(StorageError):
    """A passing failure (throttling, network); the same call may succeed later."""


class UnverifiedRecord(CorruptRecord):
    """A record where a person's decision belongs that does not count: no trusted key signed
    it, its signature is for another gate or question, its votes do not make it, or it is a
    timeout before the deadline. Never returned as an answer; the gate stays open for its
    reviewers (``answers.trust``)."""
