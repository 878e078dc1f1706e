"""fastignite: pytorch-ignite's event-driven training loop, with Ignite.jl's extras,
on a hot path built to cost what a hand-written loop costs::

    from fastignite import Engine, Events

``fastignite.BACKEND`` names the backend running the hot path: "compiled" or
"pure" (``FASTIGNITE_PURE=1`` forces the pure one).
"""

from typing import Any

from ._backend import BACKEND
from .engine import Engine, FiringCounters
from .events import CallableEventWithFilter, EventEnum, Events, EventsList, RemovableEventHandle, State
from .filters import every_filter, once_filter, throttle_filter, timeout_filter

# The one place the version is written: pyproject.toml reads it from here.
__version__ = "0.1.0"

# Loaded on first use: these pull in torch when they need it, and
# ``import fastignite`` must not.
_LAZY = {
    "DeterministicEngine": "deterministic",
    "ReproducibleBatchSampler": "deterministic",
    "keep_random_state": "deterministic",
    "update_dataloader": "deterministic",
    "create_supervised_trainer": "supervised",
    "create_supervised_evaluator": "supervised",
    "supervised_training_step": "supervised",
    "supervised_training_step_amp": "supervised",
    "supervised_training_step_apex": "supervised",
    "supervised_training_step_tpu": "supervised",
    "supervised_evaluation_step": "supervised",
    "supervised_evaluation_step_amp": "supervised",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastignite' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BACKEND",
    "CallableEventWithFilter",
    "DeterministicEngine",
    "ReproducibleBatchSampler",
    "Engine",
    "EventEnum",
    "Events",
    "EventsList",
    "FiringCounters",
    "RemovableEventHandle",
    "State",
    "create_supervised_evaluator",
    "create_supervised_trainer",
    "every_filter",
    "keep_random_state",
    "once_filter",
    "throttle_filter",
    "supervised_evaluation_step",
    "supervised_evaluation_step_amp",
    "supervised_training_step",
    "supervised_training_step_amp",
    "supervised_training_step_apex",
    "supervised_training_step_tpu",
    "timeout_filter",
    "update_dataloader",
]
