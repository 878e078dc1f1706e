"""Filters: their answers, and the soundness of what lets the tables skip them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastignite import Events, every_filter, once_filter, throttle_filter, timeout_filter
from fastignite.filters import AllOf, AnyOf, EventFilter, Every, Once, Window


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_every_filter_single_and_list():
    f = every_filter(3)
    assert [c for c in range(1, 13) if f(None, c)] == [3, 6, 9, 12]
    g = every_filter([2, 5])
    assert [c for c in range(1, 13) if g(None, c)] == [2, 4, 5, 6, 8, 10, 12]


def test_once_filter_single_and_list():
    assert [c for c in range(1, 10) if once_filter(4)(None, c)] == [4]
    assert [c for c in range(1, 10) if once_filter([2, 7])(None, c)] == [2, 7]


@pytest.mark.parametrize("bad", [0, -3, 2.5, "3", [], [1, 0], [2, "a"], None, True, False, [True], [2, True]])
def test_every_filter_rejects(bad):
    with pytest.raises(ValueError, match=r"Argument every should be integer and greater than zero"):
        every_filter(bad)


@pytest.mark.parametrize("bad", [0, -1, [], [1, 10.0, "pytorch"], "12", 1.5, True, False, [True], [True, 3]])
def test_once_filter_rejects(bad):
    with pytest.raises(ValueError, match=r"Argument once should either be a positive integer or a list"):
        once_filter(bad)


# fastignite's own factories (Ignite.jl's names; its every_filter and once_filter take an Int,
# not a Bool) refuse True and False, which Python would take as 1 and 0: every_filter(True)
# would silently mean every count.  ignite's own API, Events.X(every=..., once=..., before=...,
# after=...), keeps ignite 0.5.5's behaviour (below).
@pytest.mark.parametrize(
    "make, shown",
    [
        (
            lambda: every_filter(True),
            (
                r"Argument every should be integer and greater than zero, or a non-empty list of such "
                r"integers, got True \(bool\): True and False are not counts"
            ),
        ),
        (lambda: every_filter(False), r"Argument every should .*, got False \(bool\): True and False are not counts"),
        (
            lambda: every_filter([3, True]),
            r"Argument every should .*, got \[3, True\] \(list\): True and False are not",
        ),
        (
            lambda: once_filter(True),
            (
                r"Argument once should either be a positive integer or a list of positive integers, "
                r"got True \(bool\): True and False are not counts"
            ),
        ),
        (lambda: once_filter([True, 3]), r"Argument once should .*, got \[True, 3\] \(list\): True and False are not"),
        (
            lambda: Events.ITERATION_COMPLETED(every=[2, False]),
            r"Argument every should .*: True and False are not counts",
        ),
    ],
    ids=["every=True", "every=False", "every=[3,True]", "once=True", "once=[True,3]", "Events every=[2,False]"],
)
def test_count_factories_refuse_booleans_alike_on_both_twins(Engine, make, shown):
    engine = Engine(lambda e, b: None)
    with pytest.raises(ValueError, match=shown):
        engine.add_event_handler(make(), lambda: None)
    engine.run(range(2))  # the engine is left as it was


# What ignite 0.5.5 does with a bool for its counts (measured), and which iterations of
# range(6) a handler then runs at.
_IGNITE_BOOLS = [
    ({"every": True}, [1, 2, 3, 4, 5, 6]),  # every == 1: no filter at all
    ({"every": False}, r"Argument every should be integer and greater than zero"),
    ({"once": True}, [1]),
    ({"once": [True, 3]}, [1, 3]),
    ({"before": True}, []),  # before 1
    ({"after": True}, [2, 3, 4, 5, 6]),
    ({"after": False}, [1, 2, 3, 4, 5, 6]),
    ({"every": True, "after": 2}, [3, 4, 5, 6]),
    ({"every": 2, "before": True}, []),
]


def _iterations_run(engine_class, event):
    engine = engine_class(lambda e, b: None)
    seen = []
    engine.add_event_handler(event, lambda e: seen.append(e.state.iteration))
    engine.run(range(6))
    return seen


@pytest.mark.parametrize("kwargs, expected", _IGNITE_BOOLS, ids=[repr(k) for k, _ in _IGNITE_BOOLS])
def test_events_take_booleans_for_counts_as_ignite_does(Engine, kwargs, expected):
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            Events.ITERATION_COMPLETED(**kwargs)
        return
    assert _iterations_run(Engine, Events.ITERATION_COMPLETED(**kwargs)) == expected


@pytest.mark.parametrize("kwargs, expected", _IGNITE_BOOLS, ids=[repr(k) for k, _ in _IGNITE_BOOLS])
def test_ignite_takes_booleans_for_counts_as_the_table_above_says(kwargs, expected):
    ignite_engine = pytest.importorskip("ignite.engine", reason="needs pytorch-ignite 0.5.5")
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            ignite_engine.Events.ITERATION_COMPLETED(**kwargs)
        return
    assert _iterations_run(ignite_engine.Engine, ignite_engine.Events.ITERATION_COMPLETED(**kwargs)) == expected


def test_throttle_passes_at_most_once_per_window():
    clock = FakeClock()
    f = throttle_filter(10.0, clock=clock)
    seen = []
    for step in range(30):
        clock.now = 100.0 + step  # one second per firing
        if f(None, step):
            seen.append(step)
    assert seen == [0, 10, 20]


def test_throttle_first_false_waits_a_window():
    clock = FakeClock()
    f = throttle_filter(5.0, first=False, clock=clock)
    assert not f(None, 1)
    clock.now += 5.0
    assert f(None, 2)


def test_timeout_passes_at_every_firing_after_its_delay_as_in_ignite_jl():
    clock = FakeClock()
    f = timeout_filter(3.0, clock=clock)
    answers = []
    for _ in range(6):
        answers.append(f(None, 0))
        clock.now += 1.0
    assert answers == [False, False, False, True, True, True]


def test_timeout_once_passes_at_the_first_firing_after_its_delay_only():
    clock = FakeClock()
    f = timeout_filter(3.0, once=True, clock=clock)
    answers = []
    for _ in range(6):
        answers.append(f(None, 0))
        clock.now += 1.0
    assert answers == [False, False, False, True, False, False]


def test_timeout_start_time_is_explicit_as_in_ignite_jl():
    clock = FakeClock(100.0)
    assert timeout_filter(3.0, 90.0, clock=clock)(None, 0)  # started 10 s ago
    late = timeout_filter(3.0, start_time=99.0, clock=clock)
    assert not late(None, 0)
    clock.now = 102.0
    assert late(None, 0) and late(None, 1)
    assert timeout_filter(0.0, float("-inf"), clock=clock)(None, 0)


def test_throttle_last_fire_is_explicit_as_in_ignite_jl():
    clock = FakeClock(100.0)
    f = throttle_filter(5.0, last_fire=97.0, clock=clock)
    assert not f(None, 1)  # 3 s after its last firing
    clock.now = 102.0
    assert f(None, 2) and not f(None, 3)
    assert throttle_filter(5.0, last_fire=float("-inf"), clock=clock)(None, 0)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: throttle_filter(5.0, 97.0),
            r"Argument first should be True or False, got 97.0 \(float\); .*last_fire=",
        ),
        (lambda: throttle_filter(5.0, 0), r"Argument first should be True or False, got 0 \(int\)"),
        (lambda: throttle_filter(5.0, False, last_fire=1.0), r"Arguments first=False and last_fire are exclusive"),
        (lambda: throttle_filter(5.0, last_fire="1"), r"Argument last_fire should be a time on the filter's clock"),
        (lambda: throttle_filter(5.0, last_fire=float("nan")), r"Argument last_fire should be a time"),
        (lambda: throttle_filter(5.0, last_fire=float("inf")), r"Argument last_fire should be a time"),
        (lambda: throttle_filter(5.0, last_fire=True), r"Argument last_fire should be a time"),
        (lambda: timeout_filter(5.0, "now"), r"Argument start_time should be a time on the filter's clock"),
        (lambda: timeout_filter(5.0, float("nan")), r"Argument start_time should be a time"),
        (lambda: timeout_filter(5.0, once=1), r"Argument once should be True or False, got 1 \(int\)"),
    ],
)
def test_time_filter_arguments_are_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("maker", [throttle_filter, timeout_filter])
@pytest.mark.parametrize("bad", [-1, "5", None, float("nan"), True])
def test_time_filters_reject_bad_seconds(maker, bad):
    with pytest.raises(ValueError, match=r"Argument seconds should be a non-negative number of seconds"):
        maker(bad)


# -- soundness of skipping ------------------------------------------------------------------
# The tables skip a filter between a count c and next_due(c) / gate_due(c); that is only right
# if the filter cannot pass (or, for gate_due, do anything) at any count in between.

count_filters = st.deferred(
    lambda: st.one_of(
        st.builds(lambda p: Every((p,)), st.integers(1, 12)),
        st.builds(Every, st.lists(st.integers(1, 12), min_size=1, max_size=3)),
        st.builds(Once, st.lists(st.integers(1, 60), min_size=1, max_size=4)),
        st.builds(
            Window,
            st.one_of(st.none(), st.integers(0, 60)),
            st.one_of(st.none(), st.integers(0, 60)),
            st.one_of(st.none(), st.integers(2, 7)),
        ),
        st.builds(lambda a, b: AllOf(a, b), count_filters, count_filters),
        st.builds(lambda a, b: AnyOf(a, b), count_filters, count_filters),
    )
)


@given(count_filters, st.integers(0, 60))
def test_next_due_is_the_first_count_that_can_pass(f, count):
    due = f.next_due(count)
    assert due > count
    for c in range(count + 1, int(min(due, 200))):
        assert not f(None, c), (f, count, c, due)
    if due != float("inf"):
        # Every, Once and Window are exact; for & and | next_due is a lower bound.
        if isinstance(f, (Every, Once, Window)):
            assert f(None, due)


class RecordingFilter:
    """An opaque filter that records when it is consulted."""

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, engine, count):
        self.calls.append(count)
        return True


@given(count_filters, st.integers(0, 40))
def test_gate_of_a_conjunction_covers_every_consultation_of_its_opaque_part(f, count):
    spy = RecordingFilter()
    gated = AllOf(f, spy)
    assert gated.gated
    due = gated.gate_due(count)
    for c in range(count + 1, int(min(due, 120))):
        gated(None, c)
    assert spy.calls == []


def test_opaque_first_part_is_never_gated():
    spy = RecordingFilter()
    assert not AllOf(spy, Every((3,))).gated
    assert not AllOf(throttle_filter(1.0), Every((3,))).gated
    assert AllOf(Every((3,)), throttle_filter(1.0)).gated


def test_equal_count_filters_share_a_key():
    assert Events.ITERATION_COMPLETED(every=10).filter.key == every_filter(10).key
    assert Events.ITERATION_COMPLETED(once=[3, 4]).filter.key == once_filter([4, 3]).key
    assert every_filter(10).key != once_filter(10).key
    assert AllOf(Every((2,)), RecordingFilter()).key is None


# -- library filters are snapshots (issue 11, item 11) ----------------------------------------
# Their defining values are fixed when they are made; a registered handler keeps them, on both
# twins and at every later firing.

_FIXED = [
    (lambda: every_filter(3), "periods", (5,)),
    (lambda: every_filter([2, 3]), "periods", (7,)),
    (lambda: once_filter([2, 5]), "counts", frozenset({3})),
    (lambda: once_filter([2, 5]), "_sorted", (3,)),
    (lambda: Window(10, 2), "before", 4),
    (lambda: Window(10, 2), "after", 0),
    (lambda: Window(10, 2, 3), "every", 1),
    (lambda: AllOf(Every((2,)), Every((3,))), "parts", (Every((1,)),)),
    (lambda: AnyOf(Every((2,)), Once((3,))), "parts", (Every((1,)),)),
    (lambda: throttle_filter(5.0), "seconds", 0.0),
    (lambda: throttle_filter(5.0), "clock", lambda: 0.0),
    (lambda: timeout_filter(5.0), "seconds", 0.0),
    (lambda: timeout_filter(5.0), "clock", lambda: 0.0),
    (lambda: timeout_filter(5.0), "_start", 0.0),
    (lambda: timeout_filter(5.0), "once", True),
]


@pytest.mark.parametrize("make, name, value", _FIXED, ids=[f"{i}-{n}" for i, (_, n, _v) in enumerate(_FIXED)])
def test_library_filters_refuse_changes_to_what_defines_them(make, name, value):
    f = make()
    before = getattr(f, name)
    with pytest.raises(AttributeError, match=rf"{type(f).__name__}\.{name} cannot be changed: a filter is fixed"):
        setattr(f, name, value)
    with pytest.raises(AttributeError, match=rf"{type(f).__name__}\.{name} cannot be changed"):
        delattr(f, name)
    assert getattr(f, name) is before
    # Nothing mutable inside either: a value's contents cannot be edited in place.
    assert isinstance(before, (tuple, frozenset, int, float, bool, type(None))) or callable(before)


@pytest.mark.parametrize("make, args", [(Every, ((5,),)), (Once, ((5,),)), (Window, (5, 1)), (AllOf, (Every((2,)),))])
def test_library_filters_cannot_be_reinitialised(make, args):
    f = make(*args)
    with pytest.raises(AttributeError, match=r"cannot be changed"):
        f.__init__(*args)


def test_subclasses_keep_their_own_attributes_writable():
    class Tagged(Every):
        __slots__ = ("tag",)

    f = Tagged((2,))
    f.tag = "x"
    f.tag = "y"
    assert f.tag == "y"
    with pytest.raises(AttributeError, match=r"Tagged\.periods cannot be changed"):
        f.periods = (3,)


def _run_with_attempted_mutation(Engine, make_event, mutate):
    """Registers make_event()'s filter, attempts ``mutate(filter)`` after the first firings
    (and between runs), and returns the iterations its handler ran at."""
    event = make_event()
    f = event.filter
    engine = Engine(lambda e, b: None)
    calls = []
    engine.add_event_handler(event, lambda e: calls.append(e.state.iteration))
    refused = []

    def attempt(_):
        try:
            mutate(f)
        except AttributeError as exc:
            refused.append(str(exc))

    engine.add_event_handler(Events.ITERATION_COMPLETED(once=3), attempt)
    engine.run(range(12))
    attempt(None)
    engine.add_event_handler(Events.STARTED, lambda: None)  # a rebuilt table reads the filter again
    engine.run(range(12))
    return calls, refused


@pytest.mark.parametrize(
    "make_event, mutate, expected",
    [
        (lambda: Events.ITERATION_COMPLETED(every=4), lambda f: setattr(f, "periods", (1,)), [4, 8, 12]),
        (lambda: Events.ITERATION_COMPLETED(once=[2, 9]), lambda f: setattr(f, "_sorted", (4, 5)), [2, 9]),
        (lambda: Events.ITERATION_COMPLETED(before=6, after=1), lambda f: setattr(f, "before", 100), [2, 3, 4, 5]),
        (
            lambda: Events.ITERATION_COMPLETED(every=3) & Events.ITERATION_COMPLETED(before=8),
            lambda f: setattr(f, "parts", ()),
            [3, 6],
        ),
        (
            lambda: Events.ITERATION_COMPLETED(event_filter=AnyOf(Once((2,)), Every((5,)))),
            lambda f: setattr(f.parts[1], "periods", (1,)),
            [2, 5, 10],
        ),
    ],
)
def test_registered_filters_keep_their_registration_values_on_both_twins(Engine, make_event, mutate, expected):
    calls, refused = _run_with_attempted_mutation(Engine, make_event, mutate)
    assert len(refused) == 3 and all("cannot be changed" in r for r in refused)
    assert calls == expected + expected  # both runs: the values at registration


# -- what a user filter's next_due / gate_due may return (issue 11, item 11) -------------------


class FixedDue(EventFilter):
    """A user's filter: passes whenever evaluated; says it is next due at ``due`` (any value)."""

    __slots__ = ("due", "method")

    def __init__(self, due, method="gate_due") -> None:
        self.due = due
        self.method = method

    def __call__(self, engine, count) -> bool:
        return True

    def next_due(self, count):
        return self.due if self.method == "next_due" else count + 1

    def gate_due(self, count):
        return self.due if self.method == "gate_due" else self.next_due(count)


def _np():
    return pytest.importorskip("numpy")


# value -> the count from which a group with that due is evaluated again (None: never)
_DUES = [
    ("nan", lambda: float("nan"), None),
    ("inf", lambda: float("inf"), None),
    ("-inf", lambda: float("-inf"), 2),
    ("huge", lambda: 2**70, None),
    ("huge-negative", lambda: -(2**70), 2),
    ("2**62", lambda: 2**62, None),
    ("fraction-float", lambda: 3.5, 4),
    ("Fraction", lambda: __import__("fractions").Fraction(9, 2), 5),
    ("numpy-int", lambda: _np().int64(4), 4),
    ("numpy-float", lambda: _np().float64(2.25), 3),
    ("numpy-nan", lambda: _np().float64("nan"), None),
    ("numpy-huge", lambda: _np().uint64(2**63), None),
]


def _expected(start):
    # Evaluated at the first firing (every group is due then), then from ``start`` on.
    return [1] + ([] if start is None else [c for c in range(2, 13) if c >= start])


@pytest.mark.parametrize("method", ["gate_due", "next_due"])
@pytest.mark.parametrize("name, make_due, start", _DUES, ids=[d[0] for d in _DUES])
@pytest.mark.parametrize("wrap", ["alone", "in-and"])
def test_odd_due_counts_are_taken_alike_and_leave_other_handlers_alone(Engine, name, make_due, start, method, wrap):
    f = FixedDue(make_due(), method)
    if wrap == "in-and":
        f = AllOf(Every((1,)), f)  # the conjunction's schedule reads the part's next_due / gate_due
    engine = Engine(lambda e, b: None)
    calls = {"odd": [], "every3": [], "once": [], "window": []}
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=3), lambda e: calls["every3"].append(e.state.iteration))
    engine.add_event_handler(
        Events.ITERATION_COMPLETED(event_filter=f), lambda e: calls["odd"].append(e.state.iteration)
    )
    engine.add_event_handler(
        Events.ITERATION_COMPLETED(once=[5, 11]), lambda e: calls["once"].append(e.state.iteration)
    )
    engine.add_event_handler(
        Events.ITERATION_COMPLETED(before=9, after=6), lambda e: calls["window"].append(e.state.iteration)
    )
    engine.run(range(12))
    assert calls["every3"] == [3, 6, 9, 12] and calls["once"] == [5, 11] and calls["window"] == [7, 8]
    if method == "gate_due" and wrap == "in-and":
        start = 2  # a conjunction schedules a part that is not opaque by its next_due (count + 1 here)
    assert calls["odd"] == _expected(start)


@pytest.mark.parametrize("method", ["gate_due", "next_due"])
@pytest.mark.parametrize(
    "value, shown",
    [(None, "None (NoneType)"), ("7", "'7' (str)"), (True, "True (bool)"), (1j, "1j (complex)"), ([3], "[3] (list)")],
)
@pytest.mark.parametrize("wrap", ["alone", "in-and"])
def test_non_numbers_for_due_counts_are_the_same_clear_error(Engine, method, value, shown, wrap):
    f = FixedDue(value, method)
    if wrap == "in-and":
        if method == "gate_due":
            pytest.skip("a conjunction schedules its count parts by next_due")
        f = AllOf(Every((2,)), f)
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.ITERATION_COMPLETED(event_filter=f), lambda: None)
    # Alone, the schedule calls gate_due (FixedDue's forwards next_due's value); in a
    # conjunction, next_due: the error names the method the schedule called.
    called = "gate_due" if wrap == "alone" else "next_due"
    message = (
        rf"FixedDue\.{called} should return a count \(a real number; inf or nan for never\), got {re.escape(shown)}"
    )
    with pytest.raises(TypeError, match=message):
        engine.run(range(4))


@pytest.mark.parametrize("name, make_due, start", _DUES, ids=[d[0] for d in _DUES])
def test_as_due_gives_the_schedule_an_int_within_its_range_or_inf(name, make_due, start):
    # The compiled schedule against as_due: tests/test_filter_twins.py.
    from fastignite.filters import NEVER, SCHEDULED, as_due

    due = as_due(make_due(), None, "gate_due")
    assert due in (NEVER, -NEVER) or (type(due) is int and -SCHEDULED < due < SCHEDULED)


# -- time filters in the engine (issue 11, item 15) --------------------------------------------


def test_throttle_last_fire_and_timeout_start_time_in_the_engine(Engine):
    now = [100.0]
    engine = Engine(lambda e, b: now.__setitem__(0, now[0] + 1.0))
    calls = {"throttle": [], "timeout": [], "timeout_once": []}
    clock = lambda: now[0]  # noqa: E731
    engine.add_event_handler(
        Events.ITERATION_COMPLETED(event_filter=throttle_filter(4.0, last_fire=99.0, clock=clock)),
        lambda e: calls["throttle"].append(e.state.iteration),
    )
    engine.add_event_handler(
        Events.ITERATION_COMPLETED(event_filter=timeout_filter(5.0, 102.0, clock=clock)),
        lambda e: calls["timeout"].append(e.state.iteration),
    )
    engine.add_event_handler(
        Events.ITERATION_COMPLETED(event_filter=timeout_filter(5.0, 102.0, once=True, clock=clock)),
        lambda e: calls["timeout_once"].append(e.state.iteration),
    )
    engine.run(range(10))
    # the clock reads 100 + iteration at ITERATION_COMPLETED
    assert calls == {"throttle": [3, 7], "timeout": [7, 8, 9, 10], "timeout_once": [7]}


def test_a_shared_once_timeout_passes_for_one_handler_only(Engine):
    now = [0.0]
    f = timeout_filter(2.5, once=True, clock=lambda: now[0])
    engine = Engine(lambda e, b: now.__setitem__(0, now[0] + 1.0))
    calls = []
    for tag in "ab":
        engine.add_event_handler(Events.ITERATION_COMPLETED(event_filter=f), lambda e, t=tag: calls.append(t))
    engine.run(range(6))
    assert calls == ["a"]


def test_time_filters_on_the_drop_in():
    ignite_engine = pytest.importorskip("ignite.engine", reason="needs pytorch-ignite 0.5.5")
    from fastignite import ignite as dropin

    now = [0.0]
    engine = dropin.Engine(lambda e, b: now.__setitem__(0, now[0] + 1.0))
    calls = {"timeout": [], "once": [], "throttle": []}
    clock = lambda: now[0]  # noqa: E731
    ev = ignite_engine.Events.ITERATION_COMPLETED
    engine.add_event_handler(
        ev(event_filter=timeout_filter(3.5, clock=clock)), lambda e: calls["timeout"].append(e.state.iteration)
    )
    engine.add_event_handler(
        ev(event_filter=timeout_filter(3.5, once=True, clock=clock)), lambda e: calls["once"].append(e.state.iteration)
    )
    engine.add_event_handler(
        ev(event_filter=throttle_filter(3.0, last_fire=0.0, clock=clock)),
        lambda e: calls["throttle"].append(e.state.iteration),
    )
    engine.run(range(8))
    assert calls == {"timeout": [4, 5, 6, 7, 8], "once": [4], "throttle": [3, 6]}


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
@pytest.mark.parametrize("make, name, value", _FIXED, ids=[f"{i}-{n}" for i, (_, n, _v) in enumerate(_FIXED)])
def test_copied_and_pickled_filters_are_equal_and_still_fixed(make, name, value, how):
    import copy
    import pickle

    f = make()
    if how == "pickle" and name == "clock":
        return  # a lambda clock does not pickle; the default one does (other rows)
    g = {"copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": lambda f: pickle.loads(pickle.dumps(f))}[how](f)
    assert type(g) is type(f) and repr(g) == repr(f) and g.key == f.key
    if isinstance(f, (Every, Once, Window, AllOf, AnyOf)):
        assert [c for c in range(30) if g(None, c)] == [c for c in range(30) if f(None, c)]
    with pytest.raises(AttributeError, match=rf"{type(f).__name__}\.{name} cannot be changed"):
        setattr(g, name, value)


def test_a_copied_throttle_carries_its_running_state():
    import copy

    clock = FakeClock(100.0)
    f = throttle_filter(10.0, clock=clock)
    assert f(None, 1)
    g = copy.deepcopy(f)
    clock.now = 105.0
    assert not g(None, 2)  # its last firing (100) came with it
