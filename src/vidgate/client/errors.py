"""The client's error and exit codes, shared by the REST, WebSocket and command modules."""

from typing import Any

EXIT_TASK_ENDED_BADLY = 1
EXIT_ERROR = 2


class ClientError(Exception):
    """The command cannot do its job; the message is the one line shown to the user."""


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return "-"
    return f"{error.get('code') or 'ERROR'}: {error.get('message') or ''}".strip()
