"""EarlyStopping: stop training when a score stops improving (ignite 0.5.5's handler)."""

from __future__ import annotations

import numbers
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Literal

from .. import distributed
from ..events import Events
from ._handler_logging import handler_logger, is_engine

__all__ = ["EarlyStopping"]


def _is_number(value: object) -> bool:
    # A helper, not an inline isinstance: typeshed does not make int or float
    # numbers.Real, and mypy would take the rest of a check on them as unreachable.
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def _deprecated(old: str, new: str) -> None:
    # stacklevel 3: the warning points at the user's line, past this helper and its caller.
    warnings.warn(
        f"'{old}' is deprecated and will be removed in a future version. Please use '{new}' instead.",
        DeprecationWarning,
        stacklevel=3,
    )


class EarlyStopping:
    """Terminate ``trainer`` after ``patience`` calls without improvement of
    ``score_function(engine)``.

    An improvement is a score above ``best + threshold`` (``mode="max"``) or below
    ``best - threshold`` (``mode="min"``); with ``threshold_mode="rel"`` the bound
    is ``best * (1 +/- threshold)``.  With ``cumulative`` the best score moves only
    on an improvement, so ``threshold`` counts from the last counter reset.
    ``min_delta``, ``min_delta_mode`` and ``cumulative_delta`` are the pre-0.5.5
    names, still accepted with a DeprecationWarning.

    Typically called on an evaluator's COMPLETED::

        evaluator.add_event_handler(Events.COMPLETED, EarlyStopping(3, score, trainer))
    """

    _state_dict_all_req_keys = ("counter", "best_score", "threshold_mode")
    _state_dict_one_of_opt_keys: tuple[tuple[str, ...], ...] = ()

    def __init__(
        self,
        patience: int,
        score_function: Callable[[Any], Any],
        trainer: Any,
        threshold: float = 0.0,
        cumulative: bool = False,
        threshold_mode: Literal["abs", "rel"] = "abs",
        mode: Literal["min", "max"] = "max",
        min_delta: float | None = None,
        min_delta_mode: Literal["abs", "rel"] | None = None,
        cumulative_delta: bool | None = None,
    ) -> None:
        if not callable(score_function):
            raise TypeError("Argument score_function should be a function.")
        # ignite compares patience < 1 directly, so a non-number fails with a bare
        # "'<' not supported"; here the error names the argument.
        if not _is_number(patience):
            raise TypeError(f"Argument patience should be positive integer, got {patience!r}.")
        if patience < 1:
            raise ValueError("Argument patience should be positive integer.")
        if not is_engine(trainer):
            raise TypeError("Argument trainer should be an instance of Engine.")
        if min_delta is not None:
            _deprecated("min_delta", "threshold")
            threshold = min_delta
        if min_delta_mode is not None:
            _deprecated("min_delta_mode", "threshold_mode")
            threshold_mode = min_delta_mode
        if cumulative_delta is not None:
            _deprecated("cumulative_delta", "cumulative")
            cumulative = cumulative_delta
        if not _is_number(threshold):
            raise TypeError(f"Argument threshold should be a number, got {threshold!r}.")
        if threshold < 0.0:
            raise ValueError("Argument threshold should not be a negative number.")
        if threshold_mode not in ("abs", "rel"):
            raise ValueError("Argument threshold_mode should be either 'abs' or 'rel'.")
        if mode not in ("min", "max"):
            raise ValueError("Argument mode should be either 'min' or 'max'.")
        self.score_function = score_function
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode: str = threshold_mode  # "abs" or "rel"
        self.cumulative = cumulative
        self.trainer = trainer
        self.mode = mode
        self.counter = 0
        self.best_score: float | None = None
        self.logger = handler_logger(__name__ + "." + self.__class__.__name__)

    # The pre-0.5.5 attribute names, kept readable and writable as in ignite.
    @property
    def min_delta(self) -> float:
        _deprecated("min_delta", "threshold")
        return self.threshold

    @min_delta.setter
    def min_delta(self, value: float) -> None:
        _deprecated("min_delta", "threshold")
        self.threshold = value

    @property
    def min_delta_mode(self) -> str:
        _deprecated("min_delta_mode", "threshold_mode")
        return self.threshold_mode

    @min_delta_mode.setter
    def min_delta_mode(self, value: str) -> None:
        _deprecated("min_delta_mode", "threshold_mode")
        self.threshold_mode = value

    @property
    def cumulative_delta(self) -> bool:
        _deprecated("cumulative_delta", "cumulative")
        return self.cumulative

    @cumulative_delta.setter
    def cumulative_delta(self, value: bool) -> None:
        _deprecated("cumulative_delta", "cumulative")
        self.cumulative = value

    def __call__(self, engine: Any) -> None:
        # Under torch.distributed every rank decides on the same, reduced score,
        # so that all stop together and keep the same state; a score function
        # failing on one rank makes every rank raise instead of waiting.
        score = distributed._reduced_score_of(lambda: self.score_function(engine))
        best = self.best_score
        if best is None:
            self.best_score = score
            return
        maximize = self.mode == "max"
        delta = self.threshold if maximize else -self.threshold
        bound = best + delta if self.threshold_mode == "abs" else best * (1 + delta)
        improved = score > bound if maximize else score < bound
        if improved:
            self.best_score = score
            self.counter = 0
            return
        if not self.cumulative:
            # A score that did not clear the threshold still raises (lowers) the
            # bar the next one must clear.
            self.best_score = max(score, best) if maximize else min(score, best)
        self.counter += 1
        # ignite's message: %i truncates a float patience, a format spec would raise.
        self.logger.debug("EarlyStopping: %i / %i" % (self.counter, self.patience))  # noqa: UP031
        if self.counter >= self.patience:
            self.logger.info("EarlyStopping: Stop training")
            self.trainer.terminate()

    def reset(self) -> None:
        """Forget the counter and the best score (a new training run)."""
        self.counter = 0
        self.best_score = None

    def attach(
        self,
        engine: Any,
        event: Any = Events.COMPLETED,
        reset_engine: Any | None = None,
        reset_event: Any = Events.STARTED,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Check the score on ``engine``'s ``event`` and reset on
        ``reset_engine``'s (default: ``engine``) ``reset_event``."""
        engine.add_event_handler(event, self)
        (reset_engine or engine).add_event_handler(reset_event, self.reset)

    def state_dict(self) -> OrderedDict[str, Any]:
        """``counter``, ``best_score`` and ``threshold_mode``: what resuming needs."""
        return OrderedDict(
            [("counter", self.counter), ("best_score", self.best_score), ("threshold_mode", self.threshold_mode)]
        )

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from ``state_dict()``; every key it returns is required, as in ignite."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Argument state_dict should be a dictionary, but given {type(state_dict)}")
        for key in self._state_dict_all_req_keys:
            if key not in state_dict:
                raise ValueError(
                    f"Required state attribute '{key}' is absent in provided state_dict '{state_dict.keys()}'"
                )
        self.counter = state_dict["counter"]
        self.best_score = state_dict["best_score"]
        self.threshold_mode = state_dict.get("threshold_mode", self.threshold_mode)
