"""Filters: their answers, and the soundness of what lets the tables skip them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastignite import Events, every_filter, once_filter, throttle_filter, timeout_filter
from fastignite.filters import AllOf, AnyOf, Every, Once, Window


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


@pytest.mark.parametrize("bad", [0, -3, 2.5, "3", [], [1, 0], [2, "a"], None, True and 0])
def test_every_filter_rejects(bad):
    with pytest.raises(ValueError, match=r"Argument every should be integer and greater than zero"):
        every_filter(bad)


@pytest.mark.parametrize("bad", [0, -1, [], [1, 10.0, "pytorch"], "12", 1.5])
def test_once_filter_rejects(bad):
    with pytest.raises(ValueError, match=r"Argument once should either be a positive integer or a list"):
        once_filter(bad)


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


def test_timeout_passes_once_after_its_delay():
    clock = FakeClock()
    f = timeout_filter(3.0, clock=clock)
    answers = []
    for _ in range(6):
        answers.append(f(None, 0))
        clock.now += 1.0
    assert answers == [False, False, False, True, False, False]


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
