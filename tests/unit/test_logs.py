"""Every task line names both IDs: short on the console, full as JSON fields."""

from __future__ import annotations

import json
import logging

from vidgate.logs import ConsoleFormatter, JsonFormatter, ref

VIDEO = "video_e7a620c7-2829-40d8-bbfb-77891f4621cc"
EXTERNAL = "video_4df24bdc-4f66-4e02-a608-6ce4a12f154a"


def record() -> logging.LogRecord:
    task = ref(VIDEO, EXTERNAL)
    return logging.getLogger("vidgate.api.hub").makeRecord(
        "vidgate.api.hub",
        logging.INFO,
        __file__,
        1,
        "[WS] broadcast: %s -> %d client(s)",
        (task, 1),
        None,
        extra=task.extra,
    )


def test_console_shortens_both_ids_as_the_seed_shows() -> None:
    line = ConsoleFormatter().format(record())
    assert line.endswith(
        "[WS] broadcast: video_e7a620c7-... (external: video_4df24bdc-...) -> 1 client(s)"
    )


def test_json_carries_full_ids_as_fields() -> None:
    entry = json.loads(JsonFormatter().format(record()))
    assert entry["videoId"] == VIDEO
    assert entry["externalVideoId"] == EXTERNAL
    assert entry["level"] == "info"
    assert entry["logger"] == "vidgate.api.hub"
    assert "video_e7a620c7-..." in entry["message"]


def test_missing_external_id_is_shown_as_a_dash() -> None:
    assert str(ref(VIDEO, None)) == "video_e7a620c7-... (external: -)"
