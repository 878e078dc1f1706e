"""The compiled filters against filters.py, their specification (issue 12, items 3 and 10).

The compiled twin re-implements the library's filters in C (``CFilter``, made by
``compile_filter``): Every, Once, Window, ``&`` (AllOf), ``|`` (AnyOf), Throttle and Timeout.
What it does not compile it calls as Python (K_CALL): a user's callable, a user's EventFilter,
any subclass (its ``__call__`` may differ), and values outside the int64 range it computes in
(a period, count or bound at or beyond +-2**62), a zero period and a zero ``every`` (``% 0``
must raise ZeroDivisionError, as in Python).

Through the compiled twin's test hooks (``_evaluate(f, engine, count)``, ``_schedule(f, count)``),
random filters are evaluated and scheduled by C and by filters.py on the same counts.  The two
must agree exactly on:

* the answer: ``CFilter.passes`` against the truth of ``f(engine, count)`` (the dispatch tables
  act on its truth, in both twins);
* the schedule: ``next_due_of`` / ``gate_due_of`` against ``filters._next_due_of`` /
  ``_gate_due_of``, which are what the pure twin's tables put on their heap (an int within
  +-2**62, or +-inf: ``filters.as_due``);
* the side effects: every call of user code (filters, their ``next_due`` / ``gate_due``), in
  order and with its arguments, and the running state of the time filters (``Throttle._last``,
  ``Timeout._fired``), after each step;
* errors: the same exception type and message.

Time: Throttle and Timeout read their own ``clock`` attribute (filters.py calls
``self.clock()``, CFilter calls ``f.clock()``).  Each time filter here gets a fake clock, set
before each step to the same time on both sides, so the time filters are as deterministic
as the count filters and are compared in full.

Counts: the hooks take what the C schedule takes, ints strictly within +-2**62.  Any other count
(a float, nan, +-2**62 and beyond) never reaches CFilter: the tables call the Python filter for
it (the Engine tests at the end, on both twins, and tests/test_twins.py's scenarios store such
counts).
"""

from __future__ import annotations

import functools
import importlib
import math
import operator
from fractions import Fraction

import pytest

pytest.importorskip("hypothesis")

from conftest import REQUIRE_COMPILED, examples
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_filters import _DUES, FixedDue

from fastignite import EventEnum, Events, State, every_filter, once_filter, throttle_filter, timeout_filter
from fastignite.filters import (
    NEVER,
    SCHEDULED,
    AllOf,
    AnyOf,
    EventFilter,
    Every,
    Once,
    Throttle,
    Timeout,
    Window,
    _gate_due_of,
    _next_due_of,
)

# The module holding the compiled twin's filter hooks: the one place this file names it.
COMPILED_FILTER_HOOKS = "fastignite._cfilters"


@pytest.fixture(scope="module")
def compiled():
    """The compiled twin's filter hooks; the test skips without them (a pure-only
    interpreter, such as PyPy), unless FASTIGNITE_REQUIRE_COMPILED=1 makes that an error."""
    try:
        return importlib.import_module(COMPILED_FILTER_HOOKS)
    except ImportError as exc:
        if REQUIRE_COMPILED:
            raise
        pytest.skip(f"the compiled twin is not built ({exc}): there is no CFilter to compare with filters.py")


ENGINE = object()  # what the filters are given as the engine; user code logs whether it got it

# The compiled schedule's stand-ins for filters.py's +-inf: the hook gives None for
# "never" (INT64_MAX in C), and C's "before all" (INT64_MIN) as it is.
_C_NEVER = None
_C_BEFORE_ALL = -(2**63)


def _from_c(due):
    return NEVER if due is _C_NEVER else -NEVER if due == _C_BEFORE_ALL else due


# -- filters: recipes, built once per side -----------------------------------------------------


class Env:
    """One side's fake clock and log of calls to user code."""

    def __init__(self) -> None:
        self.now = 0.0
        self.log: list = []
        self.tags = 0

    def clock(self) -> float:
        return self.now

    def tag(self) -> int:
        self.tags += 1
        return self.tags


class UserFilter(EventFilter):
    """A user's EventFilter (so K_CALL): answers ``count % mod == rem`` in one of several shapes,
    returns due counts of several kinds (any value a user might return), logs every call."""

    def __init__(self, env, mod, rem, answer, next_kind, gate_kind, opaque) -> None:
        self.log, self.tag = env.log, env.tag()
        self.mod, self.rem, self.answer = mod, rem, answer
        self.next_kind, self.gate_kind = next_kind, gate_kind
        self.opaque = opaque

    def __call__(self, engine, count):
        self.log.append((self.tag, "call", engine is ENGINE, repr(count)))
        hit = count % self.mod == self.rem
        if self.answer == "bool":
            return hit
        if self.answer == "int":
            return int(hit)
        return True if hit else None  # "none": a falsy answer that is not False

    def next_due(self, count):
        self.log.append((self.tag, "next_due", repr(count)))
        return _DUE[self.next_kind](count, self.mod)

    def gate_due(self, count):
        if self.gate_kind == "default":
            return super().gate_due(count)  # EventFilter's: next_due
        self.log.append((self.tag, "gate_due", repr(count)))
        return _DUE[self.gate_kind](count, self.mod)


class EverySub(Every):
    """A user's subclass of Every: same schedule, its own __call__ (so K_CALL)."""

    __slots__ = ("log",)

    def __init__(self, periods, log) -> None:
        super().__init__(periods)
        self.log = log

    def __call__(self, engine, count):
        self.log.append(("every_sub", repr(count)))
        return super().__call__(engine, count)


try:
    import numpy
except ImportError:  # the other due kinds still run
    numpy = None


_DUE = {
    "next": lambda c, m: c + 1,
    "skip": lambda c, m: c + m,
    "past": lambda c, m: c - m,
    "const": lambda c, m: m,
    "half": lambda c, m: c + 0.5,
    "fraction": lambda c, m: Fraction(2 * c + 1, 2),
    "limit": lambda c, m: SCHEDULED,
    "huge": lambda c, m: 2**70,
    "-huge": lambda c, m: -(2**70),
    "inf": lambda c, m: math.inf,
    "-inf": lambda c, m: -math.inf,
    "nan": lambda c, m: math.nan,
    "none": lambda c, m: None,  # the rest are not counts: the same TypeError on both twins
    "str": lambda c, m: "7",
    "bool": lambda c, m: True,
}
if numpy is not None:
    _DUE["numpy"] = lambda c, m: numpy.float64(c) + 0.25


def _event(f):
    return Events.ITERATION_COMPLETED(event_filter=f)


def build(recipe, env):
    """A fresh filter from ``recipe`` (see ``recipes``), its time filters on ``env``'s clock."""
    kind = recipe[0]
    if kind == "every":
        _, periods, factory = recipe
        if factory and all(p > 0 for p in periods):
            return every_filter(periods[0] if len(periods) == 1 else list(periods))
        return Every(periods)
    if kind == "every_sub":
        return EverySub(recipe[1], env.log)
    if kind == "once":
        _, counts, factory = recipe
        if factory and counts and all(c > 0 for c in counts):
            return once_filter(counts[0] if len(counts) == 1 else list(counts))
        return Once(counts)
    if kind == "window":
        _, before, after, every, factory = recipe
        if (
            factory
            and (before is not None or after is not None)
            and all(v is None or v >= 0 for v in (before, after))
            and (every is None or every > 0)
        ):
            return Events.ITERATION_COMPLETED(before=before, after=after, every=every).filter
        return Window(before, after, every)
    if kind == "throttle":
        _, seconds, first, last_fire = recipe
        return throttle_filter(seconds, first, last_fire=last_fire, clock=env.clock)
    if kind == "timeout":
        _, seconds, start_time, once = recipe
        return timeout_filter(seconds, start_time, once=once, clock=env.clock)
    if kind == "user":
        return UserFilter(env, *recipe[1:])
    if kind == "callable":
        _, mod, rem = recipe
        tag = env.tag()

        def user_callable(engine, count):
            env.log.append((tag, "callable", engine is ENGINE, repr(count)))
            return count % mod == rem

        return user_callable
    parts = [build(p, env) for p in recipe[1]]
    if kind == "all":
        if recipe[2] == "&" and isinstance(parts[0], EventFilter):
            return functools.reduce(operator.and_, parts)  # EventFilter.__and__
        return functools.reduce(operator.and_, map(_event, parts)).filter  # & of events
    if kind == "any":
        # ``|`` of events inside ``&`` (an EventsList & an event) makes the disjunction
        return (functools.reduce(operator.or_, map(_event, parts)) & Events.ITERATION_COMPLETED).filter
    raise AssertionError(recipe)


def _ints_of(recipe):
    """The counts, periods and bounds in ``recipe``: the boundaries its filters turn on."""
    for value in recipe:
        if isinstance(value, tuple):
            yield from _ints_of(value)
        elif type(value) is int:
            yield value


def running_state(f):
    """The time filters' running state, in the order of the filter's parts."""
    if isinstance(f, Throttle):
        return [("throttle", repr(f._last))]
    if isinstance(f, Timeout):
        return [("timeout", f._fired)]
    if isinstance(f, (AllOf, AnyOf)):
        return [s for p in f.parts for s in running_state(p)]
    return []


# -- strategies ------------------------------------------------------------------------------

LIMIT = SCHEDULED  # counts the compiled schedule holds: -LIMIT < count < LIMIT
_BIG = [2**61 + 1, LIMIT - 2, LIMIT - 1, LIMIT, LIMIT + 1, 2**63 - 1, 2**63, 2**64]
magnitudes = st.one_of(st.integers(1, 12), st.integers(13, 10**6), st.sampled_from(_BIG), st.integers(1, 2**64))
signed = st.builds(lambda m, negative: -m if negative else m, magnitudes, st.booleans())
small = st.integers(-5, 60)
periods = st.lists(st.one_of(st.integers(1, 12), magnitudes, signed, st.just(0)), min_size=1, max_size=3).map(tuple)
seconds = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.5, 10.0]), st.floats(0, 1e6))
times = st.one_of(st.floats(-10, 200), st.sampled_from([-math.inf, math.inf, math.nan]))
instants = st.one_of(st.none(), st.floats(-10, 200), st.just(-math.inf))

leaves = st.one_of(
    st.tuples(st.just("every"), periods, st.booleans()),
    st.tuples(st.just("every_sub"), periods.filter(lambda ps: 0 not in ps)),
    st.tuples(st.just("once"), st.lists(st.one_of(small, signed), max_size=4).map(tuple), st.booleans()),
    st.tuples(
        st.just("window"),
        st.one_of(st.none(), small, signed),  # before (None: no bound, +inf)
        st.one_of(st.none(), small, signed),  # after
        st.one_of(st.none(), st.integers(1, 7), signed, st.just(0)),  # every (None: every count)
        st.booleans(),
    ),
    st.builds(
        lambda s, first, last: ("throttle", s, True if last is not None else first, last),
        seconds,
        st.booleans(),
        instants,
    ),
    st.tuples(st.just("timeout"), seconds, instants, st.booleans()),
    st.tuples(
        st.just("user"),
        st.integers(1, 7),
        st.integers(0, 6),
        st.sampled_from(["bool", "int", "none"]),
        st.sampled_from(sorted(_DUE)),
        st.sampled_from(["default", *sorted(_DUE)]),
        st.booleans(),
    ),
    st.tuples(st.just("callable"), st.integers(1, 7), st.integers(0, 6)),
)
recipes = st.recursive(
    leaves,
    lambda children: st.one_of(
        # "&": EventFilter.__and__ of the parts; "events": & of events given them as event_filter
        st.tuples(
            st.just("all"), st.lists(children, min_size=2, max_size=3).map(tuple), st.sampled_from(["&", "events"])
        ),
        st.tuples(st.just("any"), st.lists(children, min_size=2, max_size=3).map(tuple)),  # | of events
    ),
    max_leaves=6,
)
EDGES = [0, 1, -1, 2, LIMIT - 1, -(LIMIT - 1), LIMIT - 2, -(LIMIT - 2), 2**61, -(2**61), 2**61 + 1]


@st.composite
def cases(draw):
    """A recipe, and the steps to run it through: (count, time on the clock)."""
    recipe = draw(recipes)
    marks = set(_ints_of(recipe))
    near = sorted({c for v in marks for c in (v - 1, v, v + 1, 2 * v, -v) if -LIMIT < c < LIMIT})
    counts = st.one_of(
        st.integers(-30, 60),
        st.integers(-(LIMIT - 1), LIMIT - 1),
        st.sampled_from(EDGES),
        *([st.sampled_from(near)] if near else []),
    )
    steps = draw(st.lists(st.tuples(counts, times), min_size=1, max_size=5))
    return recipe, steps


# -- the property ------------------------------------------------------------------------------


def _outcome(thunk):
    try:
        return ("returned", repr(thunk()))
    except Exception as exc:  # the same error on both sides, or a difference
        return ("raised", type(exc).__name__, str(exc))


def trace(recipe, steps, evaluate, schedule):
    """What one side does with ``recipe`` over ``steps``: each answer, schedule and running
    state, then every call it made to user code."""
    env = Env()
    f = build(recipe, env)
    out = []
    for count, now in steps:
        env.now = now
        out.append((count, "evaluate", _outcome(lambda count=count: evaluate(f, count))))
        out.append((count, "schedule", _outcome(lambda count=count: schedule(f, count))))
        out.append((count, "running state", running_state(f)))
    return out, env.log


def _pure_evaluate(f, count):
    return bool(f(ENGINE, count))


def _pure_schedule(f, count):
    return (_next_due_of(f, count), _gate_due_of(f, count))


@settings(max_examples=examples(400), deadline=None)
@given(case=cases())
# Found by this test: C's int64 arithmetic gave due counts past +-2**62 (here -(2**62 + 2)) where
# filters.py's as_due gives -inf (or +inf); CFilter now hands the schedule what as_due does.
@example(case=(("any", (("every", (0,), False), ("every", (-(2**61 + 1),), False))), [(-(2**61 + 2), 0.0)]))
@example(case=(("every", (2**61 + 1,), True), [(2**61 + 1, 0.0)]))  # next multiple 2**62 + 2: never
@example(case=(("window", None, LIMIT - 1, None, False), [(0, 0.0)]))  # after + 1 == 2**62: never
@example(case=(("all", (("every", (3,), True), ("throttle", 1.0, True, None)), "&"), [(LIMIT - 1, 0.0)]))
def test_compiled_filters_agree_with_filters_py(compiled, case):
    recipe, steps = case

    def compiled_schedule(f, count):
        return tuple(_from_c(d) for d in compiled._schedule(f, count))

    pure = trace(recipe, steps, _pure_evaluate, _pure_schedule)
    compiled_trace = trace(recipe, steps, lambda f, count: compiled._evaluate(f, ENGINE, count), compiled_schedule)
    assert compiled_trace[0] == pure[0]
    assert compiled_trace[1] == pure[1]  # the calls to user code


@pytest.mark.parametrize("method", ["gate_due", "next_due"])
@pytest.mark.parametrize("name, make_due, start", _DUES, ids=[d[0] for d in _DUES])
@pytest.mark.parametrize("wrap", ["alone", "in-and"])
def test_odd_due_counts_of_a_user_filter_are_scheduled_alike(compiled, name, make_due, start, method, wrap):
    # test_filters.py's FixedDue and its due values (nan, +-inf, beyond 2**62, fractions, numpy
    # numbers), returned from gate_due or from next_due, alone or in a conjunction.
    f = FixedDue(make_due(), method)
    if wrap == "in-and":
        f = AllOf(Every((1,)), f)
    for count in (1, 5, LIMIT - 1, -(LIMIT - 1)):
        pure = (_next_due_of(f, count), _gate_due_of(f, count))
        assert tuple(_from_c(d) for d in compiled._schedule(f, count)) == pure


@pytest.mark.parametrize("count", [LIMIT, -LIMIT, 2**70, 3.0, math.nan, True])
def test_the_hooks_refuse_counts_the_compiled_schedule_never_holds(compiled, count):
    # Both twins' tables evaluate the Python filter itself at such counts (no CFilter, no
    # schedule), so the property above draws none.
    with pytest.raises(ValueError, match=r"count should be an int within \+-2\*\*62"):
        compiled._evaluate(Every((2,)), ENGINE, count)
    with pytest.raises(ValueError, match=r"count should be an int within \+-2\*\*62"):
        compiled._schedule(Every((2,)), count)


# -- shared evaluation of keyed filters, on both twins (issue 12) ------------------------------
# ignite calls each handler's filter; the twins evaluate equal count filters (equal ``key``)
# once per firing for all the handlers given them (filters.py's module docstring), which is the
# same as long as the count they read does not move.  When a handler moves it, the firing
# finishes as ignite's loop does, each filter on the count read afresh.  Moving is judged as the
# compiled twin does (Table.count_moved): the same object is the same count, even nan.  The pure
# twin used to judge by ``!=`` alone, so a nan count "moved" at every handler and the filter was
# evaluated once per handler; it also evaluated a shared filter again after a None answer.


class Ping(EventEnum):
    PING = "filter_twins_ping"


class KeyedCount(EventFilter):
    """A user's count filter with a key; its calls go to ``log``."""

    def __init__(self, answer, log) -> None:
        self.answer = answer
        self.log = log

    def __call__(self, engine, count):
        self.log.append(repr(count))
        return self.answer

    @property
    def key(self):
        return ("keyed-count", repr(self.answer))


@pytest.fixture
def ping_engine(Engine):
    """An engine (on the twin under test) whose PING filters read ``state.ping_count``."""
    engine = Engine(lambda e, b: None)
    engine.register_events(*Ping, event_to_attr={Ping.PING: "ping_count"})
    yield engine
    del State.event_to_attr[Ping.PING]  # class-level, shared with every engine


def _two_handlers(engine, answer, sharing, first=None):
    log, calls = [], []
    one = KeyedCount(answer, log)
    for name in ("a", "b"):
        f = one if sharing == "one filter" else KeyedCount(answer, log)

        def handler(engine, name=name):
            calls.append(name)
            if first is not None and name == "a":
                first(engine)

        engine.add_event_handler(Ping.PING(event_filter=f), handler)
    return log, calls


NAN = float("nan")


@pytest.mark.parametrize("sharing", ["one filter", "equal keys"])
@pytest.mark.parametrize("answer", [True, 1, False, None, 0])
@pytest.mark.parametrize("count", [NAN, 3, 2**70, 2.5], ids=["nan", "int", "beyond-int64", "float"])
def test_a_keyed_filter_is_evaluated_once_per_firing_for_all_its_handlers(ping_engine, count, answer, sharing):
    log, calls = _two_handlers(ping_engine, answer, sharing)
    ping_engine.state.ping_count = count
    ping_engine.fire_event(Ping.PING)
    ping_engine.fire_event(Ping.PING)
    assert log == [repr(count)] * 2  # one evaluation per firing
    assert calls == (["a", "b"] * 2 if answer else [])


@pytest.mark.parametrize("sharing", ["one filter", "equal keys"])
@pytest.mark.parametrize(
    "count, rebound, moved",
    [
        (NAN, NAN, False),  # the same object put back: the same count
        (NAN, float("nan"), True),  # another nan: not equal to the count read, as for ignite's loop
        (2**70, int(str(2**70)), False),  # an equal number: the same count
        (3, 4, True),
    ],
    ids=["same-nan", "other-nan", "equal-int", "other-int"],
)
def test_a_handler_moving_the_count_has_the_next_filter_evaluated_afresh(ping_engine, count, rebound, moved, sharing):
    if moved and rebound is count:
        pytest.skip("this interpreter gives equal floats one identity (PyPy): there is no other nan to put back")
    log, calls = _two_handlers(ping_engine, True, sharing, first=lambda e: setattr(e.state, "ping_count", rebound))
    ping_engine.state.ping_count = count
    ping_engine.fire_event(Ping.PING)
    assert log == [repr(count)] + ([repr(rebound)] if moved else [])
    assert calls == ["a", "b"]
