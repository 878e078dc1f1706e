"""Events as values: equality, filters, ``|`` and ``&``."""

from __future__ import annotations

import pytest

from fastignite import CallableEventWithFilter, EventEnum, Events, EventsList, every_filter, throttle_filter
from fastignite.filters import AllOf, AnyOf, Every, Once, Window


def test_thirteen_events_in_ignites_order():
    assert [e.name for e in Events] == [
        "EPOCH_STARTED", "EPOCH_COMPLETED", "STARTED", "COMPLETED", "ITERATION_STARTED", "ITERATION_COMPLETED",
        "EXCEPTION_RAISED", "GET_BATCH_STARTED", "GET_BATCH_COMPLETED", "DATALOADER_STOP_ITERATION", "TERMINATE",
        "TERMINATE_SINGLE_EPOCH", "INTERRUPT",
    ]  # fmt: skip
    assert Events.ITERATION_COMPLETED.value == "iteration_completed"


def test_filtered_event_equals_its_event():
    e = Events.ITERATION_COMPLETED(every=5)
    assert e == Events.ITERATION_COMPLETED and hash(e) == hash(Events.ITERATION_COMPLETED)
    assert e != Events.EPOCH_COMPLETED
    assert Events.EPOCH_COMPLETED == "EPOCH_COMPLETED" and Events.EPOCH_COMPLETED != "abc"
    assert "ITERATION_COMPLETED" in repr(e) and "every" in repr(e)


@pytest.mark.parametrize(
    "kwargs, spec",
    [
        ({"every": 3}, Every((3,))),
        ({"every": [2, 3]}, Every((2, 3))),
        ({"once": 4}, Once((4,))),
        ({"once": [4, 9]}, Once((4, 9))),
        ({"before": 10}, Window(10, None)),
        ({"after": 3}, Window(None, 3)),
        ({"every": 2, "before": 10, "after": 3}, Window(10, 3, 2)),
    ],
)
def test_filter_arguments_build_count_filters(kwargs, spec):
    assert Events.ITERATION_STARTED(**kwargs).filter.key == spec.key


def test_every_one_is_no_filter():
    assert Events.ITERATION_STARTED(every=1).filter is None


def test_every_list_with_window_is_rejected():
    with pytest.raises(ValueError, match=r"every should be a single integer when combined with before or after"):
        Events.ITERATION_STARTED(every=[2, 3], before=10)


def test_or_gives_an_events_list():
    el = Events.STARTED | Events.COMPLETED(every=2) | Events.EPOCH_STARTED
    assert isinstance(el, EventsList) and [e.name for e in el] == ["STARTED", "COMPLETED", "EPOCH_STARTED"]
    with pytest.raises(TypeError, match=r"Argument event should be Events or CallableEventWithFilter"):
        EventsList() | "abc"


def test_and_of_one_event_is_one_filtered_event():
    throttle = throttle_filter(30.0)
    both = Events.EPOCH_COMPLETED(every=3) & Events.EPOCH_COMPLETED(event_filter=throttle)
    assert isinstance(both, CallableEventWithFilter) and both == Events.EPOCH_COMPLETED
    assert isinstance(both.filter, AllOf) and both.filter.parts[1] is throttle
    # an unfiltered side is "always": it adds no condition
    assert (Events.EPOCH_COMPLETED & Events.EPOCH_COMPLETED(every=3)).filter.key == every_filter(3).key
    assert (Events.EPOCH_COMPLETED & Events.EPOCH_COMPLETED).filter is None


def test_and_and_or_compose():
    e = Events.ITERATION_COMPLETED
    either = e(once=5) | e(once=7)
    combined = e(every=2) & either
    assert isinstance(combined.filter, AllOf) and isinstance(combined.filter.parts[1], AnyOf)
    hits = [c for c in range(1, 20) if combined.filter(None, c)]
    assert hits == []  # 5 and 7 are odd
    combined = e(after=4) & (e(once=5) | e(once=7))
    assert [c for c in range(1, 20) if combined.filter(None, c)] == [5, 7]
    mixed = (e(every=2) & e(before=9)) | Events.COMPLETED
    assert isinstance(mixed, EventsList) and len(mixed) == 2


def test_and_of_different_events_is_an_error():
    with pytest.raises(ValueError, match=r"Events.EPOCH_COMPLETED & Events.ITERATION_COMPLETED can never fire"):
        Events.EPOCH_COMPLETED(every=2) & Events.ITERATION_COMPLETED
    with pytest.raises(ValueError, match=r"must all be the same event"):
        (Events.STARTED | Events.COMPLETED) & Events.STARTED
    with pytest.raises(TypeError, match=r"Operands of & should be events"):
        Events.STARTED & 3


def test_custom_event_enum_is_callable_plain_enum_is_not():
    class Custom(EventEnum):
        TICK = "tick"

    assert Custom.TICK(every=10).filter.key == every_filter(10).key
    from enum import Enum

    class Plain(Enum):
        TICK = "tick"

    with pytest.raises(TypeError, match=r"object is not callable"):
        Plain.TICK(every=10)


def test_custom_filter_signature_is_checked_when_built():
    with pytest.raises(ValueError, match=r"'event_filter': takes parameters .+ but will be called with"):
        Events.ITERATION_STARTED(event_filter=lambda count: True)
    with pytest.raises(TypeError, match=r"Argument event_filter should be a callable"):
        Events.ITERATION_STARTED(event_filter="every other")
