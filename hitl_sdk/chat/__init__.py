"""Chat channels where people answer in the message itself: Slack (``slack``: the message and
its controls; ``posts``: the waiting task posts and updates them). The reviewer app's side is
``hitl_lambda.slack``."""

from .posts import messages_of, update
from .slack import (
    ANSWER,
    APPROVE,
    CHOOSE,
    DEFAULT_API_URL,
    MESSAGES_NOTICE,
    MODAL,
    REJECT,
    SlackSettings,
    message,
    modal,
)

__all__ = [
    "ANSWER",
    "APPROVE",
    "CHOOSE",
    "DEFAULT_API_URL",
    "MESSAGES_NOTICE",
    "MODAL",
    "REJECT",
    "SlackSettings",
    "message",
    "messages_of",
    "modal",
    "update",
]
