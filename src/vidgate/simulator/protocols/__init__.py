"""The upstream protocols the simulator speaks besides OpenAI's ``/v1/videos``.

Each is one module with ``install(app, state)``: it mounts the vendor's routes under
``state.config.prefix`` (the path of the vendor's base URL), checks the vendor's
credentials, answers in the vendor's envelopes, and reuses the simulator's jobs (the
clock-driven ``jobs.Job``), fault injection (``deps.api_guard``), media and ``/_sim/stats``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = {
    "gemini-veo": "vidgate.simulator.protocols.veo",
    "seedance": "vidgate.simulator.protocols.seedance",
    "kling": "vidgate.simulator.protocols.kling",
    "runway": "vidgate.simulator.protocols.runway",
    "minimax": "vidgate.simulator.protocols.minimax",
}


def load(protocol: str) -> ModuleType:
    return importlib.import_module(MODULES[protocol])
