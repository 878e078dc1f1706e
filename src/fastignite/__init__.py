"""fastignite: pytorch-ignite's event-driven training loop, with Ignite.jl's extras,
on a hot path built to cost what a hand-written loop costs.

    from fastignite import Engine, Events

``fastignite.BACKEND`` names the backend running the hot path: "compiled" or
"pure" (``FASTIGNITE_PURE=1`` forces the pure one).
"""

from ._backend import BACKEND
from .engine import Engine, FiringCounters
from .events import CallableEventWithFilter, EventEnum, Events, EventsList, RemovableEventHandle, State
from .filters import every_filter, once_filter, throttle_filter, timeout_filter

__version__ = "0.1.0"

__all__ = [
    "BACKEND",
    "CallableEventWithFilter",
    "Engine",
    "EventEnum",
    "Events",
    "EventsList",
    "FiringCounters",
    "RemovableEventHandle",
    "State",
    "every_filter",
    "once_filter",
    "throttle_filter",
    "timeout_filter",
]
