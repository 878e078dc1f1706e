"""Timer: measure (average) time between events (ignite's handler)."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from ..events import Events

__all__ = ["Timer"]


class Timer:
    """A stopwatch: ``reset`` starts it from zero, ``pause``/``resume`` stop and
    restart it, ``value()`` is the time measured while running (seconds).

    With ``average=True``, ``value()`` divides by the number of ``step()`` calls
    (at least 1), e.g. the mean time of one iteration::

        Timer(average=True).attach(trainer, start=Events.STARTED, resume=Events.ITERATION_STARTED,
                                   pause=Events.ITERATION_COMPLETED, step=Events.ITERATION_COMPLETED)

    Attributes ``total`` (seconds measured up to the last pause), ``step_count``
    and ``running`` are ignite's.
    """

    def __init__(self, average: bool = False) -> None:
        self._average = average
        self.reset()

    def attach(
        self,
        engine: Any,
        start: Any = Events.STARTED,
        pause: Any = Events.COMPLETED,
        resume: Any | None = None,
        step: Any | None = None,
    ) -> Timer:
        """Reset on ``start``, pause on ``pause``, and optionally resume on
        ``resume`` and step on ``step``.  Returns this timer."""
        engine.add_event_handler(start, self.reset)
        engine.add_event_handler(pause, self.pause)
        if resume is not None:
            engine.add_event_handler(resume, self.resume)
        if step is not None:
            engine.add_event_handler(step, self.step)
        return self

    # The methods take and ignore *args so that they can be handlers of any event
    # (called with or without the engine).
    def reset(self, *args: Any) -> Timer:
        """Start again from zero, running, with no steps."""
        self._t0 = perf_counter()
        self.total = 0.0
        self.step_count = 0.0
        self.running = True
        return self

    def pause(self, *args: Any) -> None:
        """Stop measuring (a no-op when paused)."""
        if self.running:
            self.total += perf_counter() - self._t0
            self.running = False

    def resume(self, *args: Any) -> None:
        """Measure again (a no-op when running)."""
        if not self.running:
            self.running = True
            self._t0 = perf_counter()

    def value(self) -> float:
        """Time measured so far, divided by the steps in average mode."""
        total = self.total
        if self.running:
            total += perf_counter() - self._t0
        return total / max(self.step_count, 1.0) if self._average else total

    def step(self, *args: Any) -> None:
        """Count one step (the divisor in average mode)."""
        self.step_count += 1.0
