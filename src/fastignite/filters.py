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

The library's filters are snapshots: what defines them (Every's periods, Once's
counts, Window's bounds, the parts of ``&`` and ``|``, a time filter's seconds,
clock and options) is fixed when they are made, and assigning it afterwards
raises AttributeError.  A registered handler therefore keeps the filter it was
registered with, on both backend twins (the compiled twin copies the values
into C when it builds a table; the pure twin reads them at every firing), and
a change of mind is a new filter and a new registration.  Only a time filter's
own running state (when a throttle last passed, whether a once-only timeout
fired) changes, and it is shared by every handler given that filter object.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, SupportsInt, cast

if TYPE_CHECKING:  # typing.TypeGuard is 3.10's
    from typing import TypeGuard

__all__ = [
    "EventFilter",
    "every_filter",
    "once_filter",
    "throttle_filter",
    "timeout_filter",
]

NEVER = math.inf  # next_due of a filter that can no longer pass
# The due-count schedule orders int counts within +-SCHEDULED (the compiled
# twin's int64 arithmetic stays exact there); any other count is evaluated
# against every filter, and a due count beyond it is never (or already) due.
SCHEDULED = 2**62

# An event filter as the engine calls it, ``filter(engine, count)``: any callable
# taking those two; only the truth of its answer counts.
FilterCallable = Callable[[Any, int], object]


def _is_positive_int(value: object) -> TypeGuard[numbers.Integral]:
    # typeshed's numbers.Real declares < and <= only, not >.
    return isinstance(value, numbers.Integral) and value > 0  # type: ignore[operator]


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def as_due(value: object, f: object, method: str) -> int | float:
    """A due count returned by ``f.<method>`` (``next_due`` or ``gate_due``), as
    both twins' schedules order it: an int within +-SCHEDULED, NEVER or -NEVER.

    A user's filter may return anything; every twin must take it the same way,
    and a heap must never hold a value that does not order (nan compares false
    both ways, None and strings raise mid-heap).  Any real number is taken:
    nan and +inf are never due, -inf is due at once, a fraction is due at the
    next whole count, and counts beyond the schedule's range are never (or at
    once) due.  Anything else is a TypeError naming the filter and the method.
    """
    if type(value) is int:
        if -SCHEDULED < value < SCHEDULED:
            return value
        return NEVER if value > 0 else -NEVER
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{type(f).__name__}.{method} should return a count (a real number; inf or nan for never), "
            f"got {_describe(value)}"
        )
    if isinstance(value, numbers.Integral):
        due = int(value)  # numpy ints: exact, where math.ceil may go through a float
    else:
        if value != value or value == math.inf:  # nan never compares true: never due
            return NEVER
        if value == -math.inf:
            return -NEVER
        # count >= d exactly when count >= ceil(d).  Real.__ceil__ gives an
        # Integral: an int for float, Fraction, Decimal and numpy's floats.
        due = cast(int, math.ceil(value))
    if due >= SCHEDULED:
        return NEVER
    if due <= -SCHEDULED:
        return -NEVER
    return due


_set = object.__setattr__


class _Snapshot:
    """Mixin of the library's filters: the attributes named in ``_fixed`` are set
    once, by the constructor, and are read-only afterwards (see the module
    docstring: a registered filter must mean the same on both twins and at
    every later firing)."""

    __slots__ = ()
    _fixed: frozenset[str] = frozenset()

    def _fix(self, name: str, value: object) -> None:
        if hasattr(self, name):  # __init__ called again on a live filter
            self._refuse(name)
        object.__setattr__(self, name, value)

    def _refuse(self, name: str) -> None:
        raise AttributeError(
            f"{type(self).__name__}.{name} cannot be changed: a filter is fixed when it is made "
            "(handlers keep the filter they were registered with); make a new filter and register it"
        )

    def __setattr__(self, name: str, value: object) -> None:
        if name in self._fixed:
            self._refuse(name)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._fixed:
            self._refuse(name)
        object.__delattr__(self, name)

    def __setstate__(self, state: object) -> None:
        # copy, deepcopy and pickle rebuild a filter from a blank instance and
        # set its state attribute by attribute: that is making it, not a change.
        dict_state, slot_state = state if isinstance(state, tuple) else (state, None)
        for mapping in (dict_state, slot_state):
            for name, value in (mapping or {}).items():
                object.__setattr__(self, name, value)


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

    def __and__(self, other: FilterCallable) -> AllOf:
        return AllOf(self, other)


class Every(_Snapshot, EventFilter):
    """Passes when the count is a multiple of any of ``periods``."""

    __slots__ = ("periods",)
    _fixed = frozenset(__slots__)
    periods: tuple[int, ...]

    def __init__(self, periods: Iterable[SupportsInt]) -> None:
        self._fix("periods", tuple(int(p) for p in periods))

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


class Once(_Snapshot, EventFilter):
    """Passes at each of the listed counts."""

    __slots__ = ("counts", "_sorted")
    _fixed = frozenset(__slots__)
    counts: frozenset[int]
    _sorted: tuple[int, ...]

    def __init__(self, counts: Iterable[SupportsInt]) -> None:
        self._fix("counts", frozenset(int(c) for c in counts))
        self._fix("_sorted", tuple(sorted(self.counts)))

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
        once = self._sorted[0] if len(self._sorted) == 1 else list(self._sorted)
        return f"once_filter({once!r})"


class Window(_Snapshot, EventFilter):
    """``after < count < before``, optionally every ``every`` counts from ``after + 1``.

    This is ignite's ``before``/``after`` (and ``every`` with them) filter.
    """

    __slots__ = ("before", "after", "every")
    _fixed = frozenset(__slots__)
    before: int | float  # NEVER: no bound
    after: int
    every: int | None

    def __init__(self, before: int | None, after: int | None, every: int | None = None) -> None:
        self._fix("before", NEVER if before is None else int(before))
        self._fix("after", 0 if after is None else int(after))
        self._fix("every", every)

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


class Throttle(_Snapshot, EventFilter):
    """Passes when at least ``seconds`` have passed since it last passed.

    ``_last`` (the clock's time it last passed, or the ``last_fire`` it was
    given) is its running state, shared by every handler given this object.
    """

    __slots__ = ("seconds", "clock", "_last")
    _fixed = frozenset(("seconds", "clock"))
    opaque = True
    gated = False
    seconds: float
    clock: Callable[[], float]
    _last: float

    def __init__(
        self,
        seconds: float,
        first: bool = True,
        clock: Callable[[], float] = time.monotonic,
        last_fire: float | None = None,
    ) -> None:
        self._fix("seconds", float(seconds))
        self._fix("clock", clock)
        if last_fire is not None:
            self._last = float(last_fire)
        else:
            self._last = -math.inf if first else clock()

    def __call__(self, engine: object, count: int) -> bool:
        now = self.clock()
        if now - self._last >= self.seconds:
            _set(self, "_last", now)  # running state: past the snapshot check, no Python frame
            return True
        return False

    def __repr__(self) -> str:
        return f"throttle_filter({self.seconds!r})"


class Timeout(_Snapshot, EventFilter):
    """Passes at every firing from ``seconds`` after its start (its creation, or
    the ``start_time`` it was given), as Ignite.jl's does; with ``once``, at the
    first of those firings only (``_fired``, shared by every handler given this
    object)."""

    __slots__ = ("seconds", "clock", "_start", "once", "_fired")
    _fixed = frozenset(("seconds", "clock", "_start", "once"))
    opaque = True
    gated = False
    seconds: float
    clock: Callable[[], float]
    _start: float
    once: bool
    _fired: bool

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        start_time: float | None = None,
        once: bool = False,
    ) -> None:
        self._fix("seconds", float(seconds))
        self._fix("clock", clock)
        self._fix("_start", clock() if start_time is None else float(start_time))
        self._fix("once", bool(once))
        self._fired = False

    def __call__(self, engine: object, count: int) -> bool:
        if self._fired or self.clock() - self._start < self.seconds:
            return False
        if self.once:
            _set(self, "_fired", True)
        return True

    def __repr__(self) -> str:
        return f"timeout_filter({self.seconds!r}{', once=True' if self.once else ''})"


def _next_due_of(f: FilterCallable, count: int) -> float:
    if isinstance(f, EventFilter):
        return as_due(f.next_due(count), f, "next_due")
    return count + 1  # a user callable may pass at any count


# Classification of any event filter (ours or a user's callable), shared with the backends.


def is_opaque(f: FilterCallable) -> bool:
    return not isinstance(f, EventFilter) or f.opaque


def is_gated(f: FilterCallable) -> bool:
    return isinstance(f, EventFilter) and f.gated


def _gate_due_of(f: FilterCallable, count: int) -> float:
    """``f.gate_due(count)`` as the schedule takes it (see as_due)."""
    if isinstance(f, EventFilter):
        return as_due(f.gate_due(count), f, "gate_due")
    return count + 1


def key_of(f: FilterCallable) -> object:
    return f.key if isinstance(f, EventFilter) else None


class AllOf(_Snapshot, EventFilter):
    """Conjunction, evaluated left to right with short-circuit (``&`` of events).

    Short-circuit matters: in ``every(3) & throttle(30)`` the throttle is only
    consulted, and only consumes its window, on multiples of 3.
    """

    __slots__ = ("parts",)
    _fixed = frozenset(__slots__)
    parts: tuple[FilterCallable, ...]

    def __init__(self, *parts: FilterCallable) -> None:
        flat: list[FilterCallable] = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, AllOf) else (p,))
        self._fix("parts", tuple(flat))

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
        due: float = count + 1
        for p in self.parts:
            if is_opaque(p):
                return max(due, _gate_due_of(p, count))
            due = max(due, _next_due_of(p, count))
        return due

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.parts))


class AnyOf(_Snapshot, EventFilter):
    """Disjunction, evaluated left to right with short-circuit (``|`` inside ``&``)."""

    __slots__ = ("parts",)
    _fixed = frozenset(__slots__)
    parts: tuple[FilterCallable, ...]

    def __init__(self, *parts: FilterCallable) -> None:
        self._fix("parts", tuple(parts))

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


def _refuse_bools(name: str, value: object, accepted: str) -> None:
    """A bool is an int to Python (and to ignite, whose Events.X(every=True) is every 1), but
    to fastignite's own factories, as to Ignite.jl's (which take an Int, not a Bool), it is no
    count: ``every_filter(True)`` would silently mean every 1."""
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else (value,)
    if any(isinstance(v, bool) for v in items):
        raise ValueError(f"Argument {name} should {accepted}, got {_describe(value)}: True and False are not counts")


_EVERY_ACCEPTS = "be integer and greater than zero, or a non-empty list of such integers"
_ONCE_ACCEPTS = "either be a positive integer or a list of positive integers"


def every_filter(every: int | Sequence[int]) -> Every:
    """Filter passing when the count is a multiple of ``every`` (or of any of a list).

    ``every`` is a positive integer or a non-empty list of them; True and False are refused."""
    _refuse_bools("every", every, _EVERY_ACCEPTS)
    if _is_positive_int(every):
        return Every((every,))
    if (
        isinstance(every, Sequence)
        and not isinstance(every, str)
        and len(every) > 0
        and all(_is_positive_int(e) for e in every)
    ):
        return Every(every)
    raise ValueError(f"Argument every should {_EVERY_ACCEPTS}, got {_describe(every)}")


def once_filter(once: int | Sequence[int]) -> Once:
    """Filter passing at the given count, or at each count of a list.

    ``once`` is a positive integer or a non-empty list of them; True and False are refused."""
    _refuse_bools("once", once, _ONCE_ACCEPTS)
    return _ignite_once(once)


def _ignite_once(once: object) -> Once:
    """ignite's ``Events.X(once=...)``: its check (a bool passes, as the int it is to ignite) and
    its message, and the filter."""
    if isinstance(once, int) and once > 0:
        return Once((once,))
    if (
        isinstance(once, Sequence)
        and not isinstance(once, str)
        and len(once) > 0
        and all(isinstance(e, int) and e > 0 for e in once)
    ):
        return Once(once)
    raise ValueError(f"Argument once should {_ONCE_ACCEPTS}, got {once}")


def _check_seconds(name: str, seconds: object) -> float:
    # typeshed's numbers.Real declares < and <= only, not >=.
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not seconds >= 0:  # type: ignore[operator]
        raise ValueError(f"Argument {name} should be a non-negative number of seconds, got {_describe(seconds)}")
    return float(seconds)


def _check_time(name: str, value: object) -> float | None:
    """An explicit time on the filter's clock: a real number below +inf (-inf allowed)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value < math.inf:
        raise ValueError(
            f"Argument {name} should be a time on the filter's clock (a number of seconds, "
            f"time.monotonic() by default; -inf allowed), got {_describe(value)}"
        )
    return float(value)


def _check_flag(name: str, value: object, hint: str = "") -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"Argument {name} should be True or False, got {_describe(value)}{hint}")
    return value


def throttle_filter(
    seconds: float,
    first: bool = True,
    *,
    last_fire: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Throttle:
    """Filter passing at most once every ``seconds`` of ``clock`` time.

    It passes when ``seconds`` or more have passed since it last passed.  Before
    it first passes, that is measured from ``last_fire`` when given (Ignite.jl's
    ``throttle_filter(throttle, last_fire)``: a time on ``clock``, which is
    ``time.monotonic`` unless given); otherwise the first firing passes
    (``first=True``), or the window starts when the filter is made
    (``first=False``).  ``clock`` is for tests.
    """
    seconds = _check_seconds("seconds", seconds)
    first = _check_flag("first", first, "; the time it last fired, as Ignite.jl's second argument, is last_fire=<time>")
    last_fire = _check_time("last_fire", last_fire)
    if last_fire is not None and not first:
        raise ValueError("Arguments first=False and last_fire are exclusive: last_fire says when the window starts")
    return Throttle(seconds, first, clock, last_fire)


def timeout_filter(
    seconds: float,
    start_time: float | None = None,
    *,
    once: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> Timeout:
    """Filter passing at every firing once ``seconds`` have passed since
    ``start_time`` (a time on ``clock``, ``time.monotonic`` unless given; by
    default when the filter is made), as Ignite.jl's
    ``timeout_filter(timeout, start_time)``.  With ``once=True`` it passes at
    the first such firing only.  ``clock`` is for tests.
    """
    seconds = _check_seconds("seconds", seconds)
    start_time = _check_time("start_time", start_time)
    return Timeout(seconds, clock, start_time, _check_flag("once", once))
