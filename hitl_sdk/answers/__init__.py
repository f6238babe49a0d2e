"""The answer path every channel shares: the deliberate inner API (not public).

The reviewer app, the CLI and every channel to come (chat buttons, an MCP server) answer gates
through these names and nothing else: a new channel is a small adapter that turns its input
into one call of ``submit`` (or ``cancel``) and the result back into its own reply, so
validation, write-once and quorum rules live here once::

    state = load(store, request_id)              # the event and its decision, side by side
    who = authorize(store, state, token)         # whose link this is
    done = submit(store, request_id, raw, via="api", token=token)

The rooms inside: ``answer_path`` (submit, cancel, load, outcome), ``types`` and ``codecs``
(what an answer may be), ``verdict`` (the app and wait() agree), ``evidence`` (what a reviewer
is shown), ``quorum`` (votes and the decision they make), ``index`` (the inbox index),
``words`` (a decision in words and as JSON) and ``statuses`` (errors over HTTP). Names not in
``__all__`` are private to those modules. ``tests/test_inner_api.py`` pins this list.
"""

from .answer_path import (
    MAX_COMMENT_CHARS,
    EventState,
    Submission,
    authorize,
    cancel,
    counted_votes,
    load,
    outcome,
    status_of,
    submit,
    timeout_record,
)
from .codecs import BOOL_WORDS, CODECS, Codec, check_text, scalar_codec
from .evidence import (
    DEFAULT_PROMPT,
    PROMPT_FORMATS,
    Details,
    PromptFormat,
    check_details,
    details_html,
    details_text,
    heading,
    prompt_html,
)
from .index import (
    IndexEntry,
    listing,
    mark_closed,
    mark_open,
    marked_by_closer,
    person_audiences,
    reviewer_for,
)
from .keysource import (
    WELL_KNOWN,
    AppKeys,
    LocalKeys,
    Seal,
    Trust,
    machine_key_path,
    machine_signer,
    trust_in_process,
)
from .quorum import QuorumSpec, Tally, make_rule, tally, voter, voters
from .quorum import read as read_votes
from .seal import Keyring, PublicKey, Signer
from .statuses import STATUS_FOR, error_for_status, status_for
from .trust import KeySource, Refusal, check_decision, check_vote, shown, standing, write_decision
from .types import (
    UNSET,
    Approval,
    FormFields,
    RequireReason,
    TypeSpec,
    answer_codec,
    field_kind,
    type_spec,
)
from .words import (
    answer_json,
    answer_text,
    closed_message,
    curl_line,
    decided_text,
    decision_json,
    gate_json,
    index_text,
    outcome_parts,
    outcome_text,
    quorum_json,
    result_text,
    status_json,
    value_json,
    verdict,
    via_text,
    vote_text,
    votes_json,
    when,
)

__all__ = [
    "BOOL_WORDS",
    "CODECS",
    "DEFAULT_PROMPT",
    "MAX_COMMENT_CHARS",
    "PROMPT_FORMATS",
    "STATUS_FOR",
    "UNSET",
    "WELL_KNOWN",
    "AppKeys",
    "Approval",
    "Codec",
    "Details",
    "EventState",
    "FormFields",
    "IndexEntry",
    "KeySource",
    "Keyring",
    "LocalKeys",
    "PromptFormat",
    "PublicKey",
    "QuorumSpec",
    "Refusal",
    "RequireReason",
    "Seal",
    "Signer",
    "Submission",
    "Tally",
    "Trust",
    "TypeSpec",
    "answer_codec",
    "answer_json",
    "answer_text",
    "authorize",
    "cancel",
    "check_decision",
    "check_details",
    "check_text",
    "check_vote",
    "closed_message",
    "counted_votes",
    "curl_line",
    "decided_text",
    "decision_json",
    "details_html",
    "details_text",
    "error_for_status",
    "field_kind",
    "gate_json",
    "heading",
    "index_text",
    "listing",
    "load",
    "machine_key_path",
    "machine_signer",
    "make_rule",
    "mark_closed",
    "mark_open",
    "marked_by_closer",
    "outcome",
    "outcome_parts",
    "outcome_text",
    "person_audiences",
    "prompt_html",
    "quorum_json",
    "read_votes",
    "result_text",
    "reviewer_for",
    "scalar_codec",
    "shown",
    "standing",
    "status_for",
    "status_json",
    "status_of",
    "submit",
    "tally",
    "timeout_record",
    "trust_in_process",
    "type_spec",
    "value_json",
    "verdict",
    "via_text",
    "vote_text",
    "voter",
    "voters",
    "votes_json",
    "when",
    "write_decision",
]
