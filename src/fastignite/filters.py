"""Event filters: plain-data predicates on an event's count.

A filter is called as ``filter(engine, count) -> bool``, exactly like an ignite
``event_filter``; ``count`` is the value the engine reads for the firing event
(``state.iteration`` for iteration events, ``state.epoch`` for epoch events, the
engine's own firing counter for custom events).

The classes here add one thing to a plain callable: ``next_due(count)``, the
smallest count *after* ``count`` at which the filter can pass.  The dispatch
tables use it to skip, in one comparison, every handler that cannot be due, so
that a thousand ``every=1000`` handlers cost what none cost.  A filter whose
answer depends on anything but the count (time, user code) is *opaque*; an
opaque filter can still be *gated* when its first test is a count test
(``every(100) & throttle(30)``): until that test can pass, evaluating the filter
is a side-effect-free False, so it too is skipped.

Count filters that are equal (same ``key``) are evaluated once per firing for
all the handlers that use them.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence

__all__ = [
    "EventFilter",
    "every_filter",
    "once_filter",
    "throttle_filter",
    "timeout_filter",
]

NEVER = math.inf  # next_due of a filter that can no longer pass


def _is_positive_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and value > 0


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


class EventFilter:
    """Base of the filters the engine understands natively.

    ``opaque`` filters (time-based ones) are evaluated at every firing; the
    others are pure functions of the count and may be skipped while
    ``count < next_due(last_count)``.
    """

    __slots__ = ()
    opaque = False  # depends on more than the count: evaluate it at every firing it is due
    gated = True  # until gate_due(count), evaluating it is a side-effect-free False

    def __call__(self, engine: object, count: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def next_due(self, count: int) -> float:
        """Smallest count greater than ``count`` at which this filter may pass."""
        return count + 1

    def gate_due(self, count: int) -> float:
        """Smallest count greater than ``count`` at which evaluating this filter
        may do anything but return False."""
        return self.next_due(count)

    @property
    def key(self) -> object:
        """Equal keys: equal answers at every count (None: not shareable)."""
        return None

    def __and__(self, other: Callable) -> "AllOf":
        return AllOf(self, other)


class Every(EventFilter):
    """Passes when the count is a multiple of any of ``periods``."""

    __slots__ = ("periods",)

    def __init__(self, periods: Sequence[int]) -> None:
        self.periods = tuple(int(p) for p in periods)

    def __call__(self, engine: object, count: int) -> bool:
        for p in self.periods:
            if count % p == 0:
                return True
        return False

    def next_due(self, count: int) -> float:
        if 0 in self.periods:
            return count + 1  # `count % 0` raises at every firing, as ignite's filter does
        return min([(count // p + 1) * p for p in self.periods])

    @property
    def key(self) -> object:
        return ("every", self.periods)

    def __repr__(self) -> str:
        every = self.periods[0] if len(self.periods) == 1 else list(self.periods)
        return f"every_filter({every!r})"


class Once(EventFilter):
    """Passes at each of the listed counts."""

    __slots__ = ("counts", "_sorted")

    def __init__(self, counts: Sequence[int]) -> None:
        self.counts = frozenset(int(c) for c in counts)
        self._sorted = sorted(self.counts)

    def __call__(self, engine: object, count: int) -> bool:
        return count in self.counts

    def next_due(self, count: int) -> float:
        for c in self._sorted:
            if c > count:
                return c
        return NEVER

    @property
    def key(self) -> object:
        return ("once", self.counts)

    def __repr__(self) -> str:
        once = self._sorted[0] if len(self._sorted) == 1 else self._sorted
        return f"once_filter({once!r})"


class Window(EventFilter):
    """``after < count < before``, optionally every ``every`` counts from ``after + 1``.

    This is ignite's ``before``/``after`` (and ``every`` with them) filter.
    """

    __slots__ = ("before", "after", "every")

    def __init__(self, before: int | None, after: int | None, every: int | None = None) -> None:
        self.before = NEVER if before is None else int(before)
        self.after = 0 if after is None else int(after)
        self.every = every

    def __call__(self, engine: object, count: int) -> bool:
        if not (self.after < count < self.before):
            return False
        return self.every is None or (count - self.after - 1) % self.every == 0

    def next_due(self, count: int) -> float:
        n = max(count + 1, self.after + 1)
        if self.every is not None and self.every != 0:  # 0: `% 0` raises at every count in the window
            n += (-(n - self.after - 1)) % self.every
        return n if n < self.before else NEVER

    @property
    def key(self) -> object:
        return ("window", self.before, self.after, self.every)

    def __repr__(self) -> str:
        parts = []
        if self.every is not None:
            parts.append(f"every={self.every}")
        if self.before != NEVER:
            parts.append(f"before={self.before}")
        if self.after:
            parts.append(f"after={self.after}")
        return f"Window({', '.join(parts)})"


class Throttle(EventFilter):
    """Passes when at least ``seconds`` have passed since it last passed."""

    __slots__ = ("seconds", "clock", "_last")
    opaque = True
    gated = False

    def __init__(self, seconds: float, first: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = float(seconds)
        self.clock = clock
        self._last = -math.inf if first else clock()

    def __call__(self, engine: object, count: int) -> bool:
        now = self.clock()
        if now - self._last >= self.seconds:
            self._last = now
            return True
        return False

    def __repr__(self) -> str:
        return f"throttle_filter({self.seconds!r})"


class Timeout(EventFilter):
    """Passes once: at the first firing ``seconds`` or more after its creation."""

    __slots__ = ("seconds", "clock", "_start", "_fired")
    opaque = True
    gated = False

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = float(seconds)
        self.clock = clock
        self._start = clock()
        self._fired = False

    def __call__(self, engine: object, count: int) -> bool:
        if self._fired or self.clock() - self._start < self.seconds:
            return False
        self._fired = True
        return True

    def __repr__(self) -> str:
        return f"timeout_filter({self.seconds!r})"


def _next_due_of(f: Callable, count: int) -> float:
    if isinstance(f, EventFilter):
        return f.next_due(count)
    return count + 1  # a user callable may pass at any count


# Classification of any event filter (ours or a user's callable), shared with the backends.


def is_opaque(f: Callable) -> bool:
    return not isinstance(f, EventFilter) or f.opaque


def is_gated(f: Callable) -> bool:
    return isinstance(f, EventFilter) and f.gated


def _gate_due_of(f: Callable, count: int) -> float:
    if isinstance(f, EventFilter):
        return f.gate_due(count)
    return count + 1


def key_of(f: Callable) -> object:
    return f.key if isinstance(f, EventFilter) else None


class AllOf(EventFilter):
    """Conjunction, evaluated left to right with short-circuit (``&`` of events).

    Short-circuit matters: in ``every(3) & throttle(30)`` the throttle is only
    consulted, and only consumes its window, on multiples of 3.
    """

    __slots__ = ("parts",)

    def __init__(self, *parts: Callable) -> None:
        flat: list[Callable] = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, AllOf) else (p,))
        self.parts = tuple(flat)

    @property
    def opaque(self) -> bool:  # type: ignore[override]
        return any(is_opaque(p) for p in self.parts)

    @property
    def gated(self) -> bool:  # type: ignore[override]
        # Only the first part is sure to be evaluated.
        return is_gated(self.parts[0])

    @property
    def key(self) -> object:
        keys = tuple(key_of(p) for p in self.parts)
        return None if None in keys else ("all", keys)

    def __call__(self, engine: object, count: int) -> bool:
        for p in self.parts:
            if not p(engine, count):
                return False
        return True

    def next_due(self, count: int) -> float:
        # All parts cannot pass before the latest of their own next counts;
        # opaque parts contribute count + 1, which never raises the bound.
        return max([_next_due_of(p, count) for p in self.parts])

    def gate_due(self, count: int) -> float:
        # Parts are tried in order: the leading count tests (side-effect free) must
        # all pass before the first opaque part is even consulted.
        due = count + 1
        for p in self.parts:
            if is_opaque(p):
                return max(due, _gate_due_of(p, count))
            due = max(due, _next_due_of(p, count))
        return due

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.parts))


class AnyOf(EventFilter):
    """Disjunction, evaluated left to right with short-circuit (``|`` inside ``&``)."""

    __slots__ = ("parts",)

    def __init__(self, *parts: Callable) -> None:
        self.parts = tuple(parts)

    @property
    def opaque(self) -> bool:  # type: ignore[override]
        return any(is_opaque(p) for p in self.parts)

    @property
    def gated(self) -> bool:  # type: ignore[override]
        return all(is_gated(p) for p in self.parts)

    @property
    def key(self) -> object:
        keys = tuple(key_of(p) for p in self.parts)
        return None if None in keys else ("any", keys)

    def __call__(self, engine: object, count: int) -> bool:
        for p in self.parts:
            if p(engine, count):
                return True
        return False

    def next_due(self, count: int) -> float:
        return min([_next_due_of(p, count) for p in self.parts])

    def gate_due(self, count: int) -> float:
        return min([_gate_due_of(p, count) for p in self.parts])

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self.parts)) + ")"


# ---------------------------------------------------------------------------
# Public constructors (Ignite.jl's names)


def every_filter(every: int | Sequence[int]) -> Every:
    """Filter passing when the count is a multiple of ``every`` (or of any of a list)."""
    if _is_positive_int(every):
        return Every((every,))
    if (
        isinstance(every, Sequence)
        and not isinstance(every, str)
        and len(every) > 0
        and all(_is_positive_int(e) for e in every)
    ):
        return Every(every)
    raise ValueError(
        "Argument every should be integer and greater than zero, or a non-empty list of such integers, "
        f"got {_describe(every)}"
    )


def once_filter(once: int | Sequence[int]) -> Once:
    """Filter passing at the given count, or at each count of a list."""
    if isinstance(once, int) and once > 0:
        return Once((once,))
    if (
        isinstance(once, Sequence)
        and not isinstance(once, str)
        and len(once) > 0
        and all(isinstance(e, int) and e > 0 for e in once)
    ):
        return Once(once)
    raise ValueError(f"Argument once should either be a positive integer or a list of positive integers, got {once}")


def _check_seconds(name: str, seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not seconds >= 0:
        raise ValueError(f"Argument {name} should be a non-negative number of seconds, got {_describe(seconds)}")
    return float(seconds)


def throttle_filter(seconds: float, first: bool = True, *, clock: Callable[[], float] = time.monotonic) -> Throttle:
    """Filter passing at most once every ``seconds`` of wall-clock time.

    With ``first=True`` the first firing passes; otherwise the window starts when
    the filter is created.  ``clock`` is for tests.
    """
    return Throttle(_check_seconds("seconds", seconds), bool(first), clock)


def timeout_filter(seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Timeout:
    """Filter passing once, at the first firing ``seconds`` or more after it was created."""
    return Timeout(_check_seconds("seconds", seconds), clock)
