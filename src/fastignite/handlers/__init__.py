"""What a training run needs around the engine, with ignite's names and signatures::

    from fastignite.handlers import Checkpoint, DiskSaver, EarlyStopping, ProgressBar

Each name loads its module on first use, so ``import fastignite.handlers`` pulls
in neither torch nor tqdm; a handler that needs one imports it when it is built.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule of fastignite.handlers that defines it
_WHERE = {
    "BaseSaveHandler": "checkpoint",
    "Checkpoint": "checkpoint",
    "CheckpointEvents": "checkpoint",
    "DiskSaver": "checkpoint",
    "ModelCheckpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "global_step_from_engine": "checkpoint",
    "EarlyStopping": "early_stopping",
    "TerminateOnNan": "terminate_on_nan",
    "Timer": "timing",
    "ProgressBar": "tqdm_logger",
    "HandlersTimeProfiler": "profiler",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'fastignite.handlers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
