"""TerminateOnNan: stop the run when the output holds a NaN or an infinity (ignite's handler)."""

from __future__ import annotations

import cmath
import math
import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._handler_logging import handler_logger

__all__ = ["TerminateOnNan"]


class _NotFinite(Exception):
    """Ends the walk over the output at the first non-finite value."""


def _number_is_finite(x: numbers.Number) -> bool:
    if isinstance(x, numbers.Integral):
        return True  # ints (and bools) have no NaN or infinity
    if isinstance(x, numbers.Real):
        return math.isfinite(x)
    if isinstance(x, numbers.Complex):
        return cmath.isfinite(complex(x))
    is_finite = getattr(x, "is_finite", None)  # decimal.Decimal
    if callable(is_finite):
        return bool(is_finite())
    # A Number that is none of the ABCs above: complex() takes it or says why not.
    return cmath.isfinite(complex(x))  # type: ignore[call-overload]


def _check(x: Any, torch: Any) -> None:
    """Raise _NotFinite if ``x`` (a number, tensor, or a mapping/sequence of them,
    nested) holds a non-finite value; reject anything else as ignite does."""
    if isinstance(x, numbers.Number):
        if not _number_is_finite(x):
            raise _NotFinite()
        return
    if torch is not None and isinstance(x, torch.Tensor):
        if not bool(torch.isfinite(x).all()):
            raise _NotFinite()
        return
    if isinstance(x, (str, bytes)):
        return
    if isinstance(x, Mapping):
        for value in x.values():
            _check(value, torch)
        return
    if isinstance(x, Sequence):  # namedtuples included
        for value in x:
            _check(value, torch)
        return
    # ignite's traversal (apply_to_type) fails on anything else, None included.
    kinds = "(<class 'numbers.Number'>, <class 'torch.Tensor'>)"
    raise TypeError(f"x must contain {kinds}, dicts or lists; found {type(x)}")


class TerminateOnNan:
    """Call ``engine.terminate()`` when ``output_transform(engine.state.output)``
    contains a NaN or infinite number or tensor element; attach it to
    ITERATION_COMPLETED::

        trainer.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan())

    The output may be a number, a torch tensor, or mappings and sequences of them,
    nested.  torch is not imported for it: a tensor can only come from a process
    that already imported torch.
    """

    def __init__(self, output_transform: Callable[..., Any] = lambda x: x) -> None:
        if not callable(output_transform):
            raise TypeError(f"Argument output_transform should be callable, got {type(output_transform)}")
        self.logger = handler_logger(__name__ + "." + self.__class__.__name__)
        self._output_transform = output_transform

    def __call__(self, engine: Any) -> None:
        output = self._output_transform(engine.state.output)
        try:
            _check(output, sys.modules.get("torch"))
        except _NotFinite:
            self.logger.warning(f"{self.__class__.__name__}: Output '{output}' contains NaN or Inf. Stop training")
            engine.terminate()
