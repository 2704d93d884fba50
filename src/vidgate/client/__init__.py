"""Client commands of the ``vidgate`` CLI: ``submit``, ``status`` and ``list``.

They speak only the public contract (REST under ``/api/video`` and the ``/ws`` WebSocket), so
they work against any vidgate deployment. With authentication on, they send the API key or
JWT from ``--token`` / ``VIDGATE_TOKEN`` as ``Authorization: Bearer`` (on the WebSocket too,
never in its URL). Exit codes: 0 done (task COMPLETED when waiting),
1 the task ended FAILED or CANCELLED, 2 the command could not do its job (bad usage, the server
refused the request, or it could not be reached). Errors are one line on stderr, no traceback.
"""

from vidgate.client.commands import DEFAULT_SERVER, list_tasks, status, submit
from vidgate.client.errors import EXIT_ERROR, EXIT_TASK_ENDED_BADLY, ClientError

__all__ = [
    "DEFAULT_SERVER",
    "EXIT_ERROR",
    "EXIT_TASK_ENDED_BADLY",
    "ClientError",
    "list_tasks",
    "status",
    "submit",
]
