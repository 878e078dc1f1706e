"""What handlers may do to the engine while it fires them.

Each scenario states ignite's behaviour explicitly and runs on every fastignite twin
and, when it is installed, on pytorch-ignite 0.5.5 itself: the expectations here are
the oracle's, checked against it.
"""

from __future__ import annotations

import importlib

import pytest
from conftest import BACKENDS, TWIN_MODULES, cpython_only

import fastignite.engine
from fastignite._backend import use_twin


def _impls() -> list:
    names: list = [f"fastignite-{b}" for b in BACKENDS]
    try:
        importlib.import_module("ignite.engine")
    except ImportError:
        names.append(pytest.param("ignite", marks=pytest.mark.skip(reason="needs pytorch-ignite 0.5.5 (the oracle)")))
    else:
        names.append("ignite")
    return names


@pytest.fixture(params=_impls())
def api(request):
    """A namespace with Engine and Events of the implementation under test."""
    if request.param == "ignite":
        yield importlib.import_module("ignite.engine")
        return
    twin = request.param.split("-", 1)[1]
    with use_twin(importlib.import_module(TWIN_MODULES[twin])):
        yield fastignite


def test_handler_removing_itself_runs_once(api):
    engine = api.Engine(lambda e, b: None)
    calls = []

    def once_only(e):
        calls.append(e.state.iteration)
        e.remove_event_handler(once_only, api.Events.ITERATION_COMPLETED)

    engine.add_event_handler(api.Events.ITERATION_COMPLETED, once_only)
    engine.add_event_handler(api.Events.ITERATION_COMPLETED, lambda e: calls.append(-e.state.iteration))
    engine.run(range(3))
    assert calls == [1, -1, -2, -3]


def test_removed_later_handler_still_runs_in_the_current_firing(api):
    # ignite replaces the handler list on removal; the firing in progress walks the old one.
    engine = api.Engine(lambda e, b: None)
    calls = []

    def later(e):
        calls.append(("later", e.state.iteration))

    def remover(e):
        calls.append(("remover", e.state.iteration))
        if engine.has_event_handler(later, api.Events.ITERATION_COMPLETED):
            engine.remove_event_handler(later, api.Events.ITERATION_COMPLETED)

    engine.add_event_handler(api.Events.ITERATION_COMPLETED, remover)
    engine.add_event_handler(api.Events.ITERATION_COMPLETED, later)
    engine.run(range(2))
    assert calls == [("remover", 1), ("later", 1), ("remover", 2)]


def test_handler_added_to_the_firing_event_runs_in_the_same_firing(api):
    # ignite appends to the list being walked, so the new handler is reached, filter included.
    engine = api.Engine(lambda e, b: None)
    calls = []
    added = []

    def adder(e):
        calls.append(("adder", e.state.iteration))
        if not added:
            added.append(True)
            e.add_event_handler(api.Events.ITERATION_COMPLETED, lambda e: calls.append(("new", e.state.iteration)))
            e.add_event_handler(
                api.Events.ITERATION_COMPLETED(every=2), lambda e: calls.append(("even", e.state.iteration))
            )

    engine.add_event_handler(api.Events.ITERATION_COMPLETED, adder)
    engine.run(range(3))
    assert calls == [("adder", 1), ("new", 1), ("adder", 2), ("new", 2), ("even", 2), ("adder", 3), ("new", 3)]


def test_removal_then_addition_in_one_firing(api):
    engine = api.Engine(lambda e, b: None)
    calls = []

    def first(e):
        calls.append("first")
        if e.state.iteration == 1:
            e.remove_event_handler(first, api.Events.ITERATION_STARTED)
            e.add_event_handler(api.Events.ITERATION_STARTED, lambda: calls.append("fresh"))

    engine.add_event_handler(api.Events.ITERATION_STARTED, first)
    engine.add_event_handler(api.Events.ITERATION_STARTED, lambda: calls.append("second"))
    engine.run(range(2))
    # in firing 1 the walk goes on over the old list (no "fresh"); firing 2 sees the new one
    assert calls == ["first", "second", "second", "fresh"]


def test_handler_moving_the_count_is_seen_by_later_filters(api):
    # ignite's filters read state.iteration when evaluated, after earlier handlers ran.
    engine = api.Engine(lambda e, b: None)
    calls = []

    def jump(e):
        if e.state.iteration == 3:
            e.state.iteration = 10

    engine.add_event_handler(api.Events.ITERATION_COMPLETED, jump)
    engine.add_event_handler(api.Events.ITERATION_COMPLETED(every=5), lambda e: calls.append(e.state.iteration))
    engine.run(None, max_iters=14, epoch_length=20)
    # 10 passes every=5 right after the jump; the run then stops at max_iters=14
    assert calls == [10]


def test_handlers_firing_events_and_running_other_engines(api):
    class Custom(api.EventEnum):
        PING = "ping"

    inner_runs = []
    inner = api.Engine(lambda e, b: b)
    inner.add_event_handler(api.Events.COMPLETED, lambda e: inner_runs.append(e.state.iteration))

    engine = api.Engine(lambda e, b: None)
    engine.register_events(*Custom)
    pings = []
    engine.add_event_handler(Custom.PING, lambda e: pings.append(e.state.iteration))
    engine.add_event_handler(api.Events.ITERATION_COMPLETED, lambda e: e.fire_event(Custom.PING))
    engine.add_event_handler(api.Events.EPOCH_COMPLETED, lambda e: inner.run(range(3)))
    # a handler firing its own event again, to a bounded depth
    depth = []

    def reenter(e):
        depth.append(len(depth))
        if len(depth) < 4:
            e.fire_event(api.Events.EPOCH_STARTED)

    engine.add_event_handler(api.Events.EPOCH_STARTED, reenter)
    engine.run(range(2), max_epochs=2)
    assert pings == [1, 2, 3, 4] and inner_runs == [3, 3] and depth == [0, 1, 2, 3, 4]
    assert engine.last_event_name == api.Events.COMPLETED


def test_running_the_same_engine_from_its_handler_fails_cleanly(api):
    engine = api.Engine(lambda e, b: None)
    errors = []

    def rerun(e):
        try:
            e.run(range(2))
        except Exception as exc:  # ignite: ValueError, generator already executing
            errors.append(type(exc))

    engine.add_event_handler(api.Events.ITERATION_COMPLETED(once=2), rerun)
    state = engine.run(range(3))
    assert errors and state.iteration == 3


def test_a_failed_nested_run_leaves_the_outer_run_resumable(api):
    engine = api.Engine(lambda e, b: None)
    started = []
    engine.add_event_handler(api.Events.STARTED, lambda e: started.append(e.state.iteration))

    def rerun(e):
        with pytest.raises(ValueError):  # generator already executing
            e.run(range(4))

    engine.add_event_handler(api.Events.ITERATION_COMPLETED(once=2), rerun)
    engine.add_event_handler(api.Events.ITERATION_COMPLETED(once=3), lambda e: e.interrupt())
    assert engine.run(range(4), max_epochs=2).iteration == 3
    state = engine.run(range(4), max_epochs=2)  # resumes the interrupted run
    assert state.iteration == 8 and started == [0]


def test_raising_handler_is_routed_and_the_run_goes_on(api):
    engine = api.Engine(lambda e, b: None)
    seen = []

    @engine.on(api.Events.ITERATION_COMPLETED(once=2))
    def fail(e):
        raise ArithmeticError("bad handler")

    engine.add_event_handler(api.Events.EXCEPTION_RAISED, lambda e, exc: seen.append((type(exc), e.state.iteration)))
    state = engine.run(range(4), max_epochs=2)
    # the exception ends its epoch; the next epoch runs
    assert seen == [(ArithmeticError, 2)] and state.epoch == 2


def test_editing_event_handlers_in_place_like_ignite_profilers_do(api):
    engine = api.Engine(lambda e, b: None)
    calls = []
    engine.add_event_handler(api.Events.EPOCH_STARTED, lambda e: calls.append("registered"))
    engine.run(range(2))
    # BasicTimeProfiler inserts a first handler; HandlersTimeProfiler replaces entries
    engine._event_handlers[api.Events.EPOCH_STARTED].insert(0, (lambda: calls.append("inserted"), (), {}))
    handler, args, kwargs = engine._event_handlers[api.Events.EPOCH_STARTED][1]
    engine._event_handlers[api.Events.EPOCH_STARTED][1] = (lambda *a: calls.append("wrapped"), args, kwargs)
    calls.clear()
    engine.run(range(2))
    assert calls == ["inserted", "wrapped"]


class _Finalized:
    """A batch whose finalizer replaces the engine's state: Python code that
    runs when the loop drops its last reference, between two reads of the data."""

    def __init__(self, engine, log):
        self.engine, self.log = engine, log

    def __del__(self):
        self.log.append(("finalized", self.engine.state.iteration))
        fresh = type(self.engine.state)()  # a new state; the loop must follow it
        for name in ("iteration", "epoch", "epoch_length", "max_epochs", "max_iters", "dataloader", "times"):
            setattr(fresh, name, getattr(self.engine.state, name))
        self.engine.state = fresh


@cpython_only("reference counting: the batch's finalizer runs the moment the loop drops it")
def test_a_batch_finalizer_replacing_the_state_is_followed(api):
    # A handler swaps state.batch for an object only the loop then holds; the
    # loop drops it while reading the next batch from a list (an iterator that
    # runs no Python code), so the finalizer is the only code that runs there.
    log = []
    engine = api.Engine(lambda e, b: log.append(("process", e.state.iteration, b if type(b) is int else "swapped")))

    @engine.on(api.Events.ITERATION_STARTED(once=2))
    def swap(e):
        e.state.batch = _Finalized(e, log)

    engine.run([10, 20, 30, 40], max_epochs=1)
    assert log == [
        ("process", 1, 10),
        ("process", 2, "swapped"),
        ("finalized", 2),
        ("process", 3, 30),
        ("process", 4, 40),
    ]
    assert engine.state.iteration == 4


# -- what ignite code does that replaces or escapes the engine's machinery ------------

_EVENT_NAMES = (
    "STARTED", "EPOCH_STARTED", "GET_BATCH_STARTED", "GET_BATCH_COMPLETED", "ITERATION_STARTED",
    "ITERATION_COMPLETED", "EPOCH_COMPLETED", "COMPLETED", "DATALOADER_STOP_ITERATION", "TERMINATE",
)  # fmt: skip
_BASE_EXCEPTIONS = (GeneratorExit, KeyboardInterrupt, SystemExit, StopIteration, ValueError)


def _raising_handler_trace(api, event: str, exc_type: type, routed: bool) -> tuple:
    """A handler of ``event`` raises ``exc_type`` at its first call: which events
    fire after it, whether EXCEPTION_RAISED gets it, and how run() ends."""
    trace: list = []
    E = api.Events
    engine = api.Engine(lambda e, b: trace.append(("process", e.state.iteration)))
    raised = []

    def bad(e):
        if not raised:
            raised.append(True)
            raise exc_type("from a handler")

    engine.add_event_handler(getattr(E, event), bad)
    if event == "TERMINATE":
        engine.add_event_handler(E.ITERATION_COMPLETED(once=2), lambda e: e.terminate())
    for name in _EVENT_NAMES:
        engine.add_event_handler(getattr(E, name), lambda e, n=name: trace.append((n, e.state.iteration)))
    if routed:
        engine.add_event_handler(
            E.EXCEPTION_RAISED,
            lambda e, x: trace.append(("EXCEPTION_RAISED", type(x).__name__, type(x.__cause__).__name__)),
        )
    try:
        engine.run([1, 2, 3], max_epochs=2, epoch_length=4 if event == "DATALOADER_STOP_ITERATION" else None)
        outcome: object = "returned"
    except BaseException as e:  # noqa: B036 - the class of what escapes is the point
        outcome = (type(e).__name__, type(e.__cause__).__name__)
    return trace, outcome


@pytest.mark.parametrize("exc_type", _BASE_EXCEPTIONS, ids=lambda t: t.__name__)
def test_base_exceptions_from_handlers_as_ignite(api, exc_type):
    # ignite's run catches BaseException: GeneratorExit, KeyboardInterrupt and
    # SystemExit from a handler go to EXCEPTION_RAISED (when it has handlers) like
    # any other; StopIteration from GET_BATCH_* handlers ends the data.
    results = {
        (event, routed): _raising_handler_trace(api, event, exc_type, routed)
        for event in _EVENT_NAMES
        for routed in (False, True)
    }
    if api.__name__ != "ignite.engine":
        ignite_engine = pytest.importorskip("ignite.engine", reason="needs pytorch-ignite 0.5.5 (the oracle)")
        for (event, routed), got in results.items():
            assert got == _raising_handler_trace(ignite_engine, event, exc_type, routed), (event, routed)
    if exc_type is not StopIteration:
        for event in _EVENT_NAMES:
            trace, outcome = results[(event, True)]
            assert ("EXCEPTION_RAISED", exc_type.__name__, "NoneType") in trace, event
            assert outcome == "returned"
            assert results[(event, False)][1] == (exc_type.__name__, "NoneType")


def test_closing_an_interrupted_run_fires_nothing(api):
    # Closing a run suspended by interrupt() is not a handler raising GeneratorExit
    # (fastignite's deliberate difference 7: ignite fires EXCEPTION_RAISED there).
    engine = api.Engine(lambda e, b: None)
    seen = []
    engine.add_event_handler(api.Events.ITERATION_COMPLETED(once=2), lambda e: e.interrupt())
    engine.add_event_handler(api.Events.EXCEPTION_RAISED, lambda e, x: seen.append(type(x).__name__))
    engine.run(range(5))
    engine._internal_run_generator.close()
    if api.__name__ == "ignite.engine":
        assert seen == ["GeneratorExit"]
    else:
        assert seen == []
        engine._internal_run_generator = None
        engine.state.max_epochs = None
        engine.run(range(2))  # usable afterwards
        assert seen == [] and engine.state.iteration == 2


def test_event_handlers_assigned_wholesale_replace_the_handlers(api):
    from collections import defaultdict

    engine = api.Engine(lambda e, b: None)
    calls = []
    engine.add_event_handler(api.Events.ITERATION_COMPLETED, lambda e: calls.append(("old", e.state.iteration)))
    engine.add_event_handler(api.Events.ITERATION_COMPLETED(every=2), lambda: calls.append("old every 2"))
    engine.run(range(2))  # the tables are built
    engine._event_handlers = defaultdict(list)
    engine.add_event_handler(api.Events.ITERATION_COMPLETED, lambda e: calls.append(("new", e.state.iteration)))
    engine.run(range(2))
    # A prepared mapping in ignite's shape, assigned from a handler in the middle of a run.
    # (A defaultdict: ignite's firing of an event missing from a plain dict raises KeyError.)
    prepared = defaultdict(list, {api.Events.EPOCH_COMPLETED: [(lambda: calls.append("prepared"), (), {})]})
    engine.add_event_handler(api.Events.ITERATION_COMPLETED(once=1), lambda e: setattr(e, "_event_handlers", prepared))
    engine.run(range(2))
    engine._event_handlers[api.Events.COMPLETED].append((lambda: calls.append("appended"), (), {}))
    engine.run(range(1))
    assert calls == [
        ("old", 1), ("old", 2), "old every 2",
        ("new", 1), ("new", 2),
        ("new", 1), "prepared",
        "prepared", "appended",
    ]  # fmt: skip
    assert Events_in(engine._event_handlers, api) == ["EPOCH_COMPLETED", "COMPLETED"]


def test_allowed_events_edited_by_hand_decide_as_ignites_list(api):
    # ignite keeps _allowed_events as a plain list that registration and
    # fire_event consult; code may replace it or edit it in place.
    class Ev(api.EventEnum):
        A = "a"
        B = "b"

    engine = api.Engine(lambda e, b: None)
    engine.register_events(*Ev)
    calls = []
    engine.add_event_handler(Ev.A, lambda: calls.append("A"))
    engine._allowed_events = [api.Events.STARTED, api.Events.ITERATION_COMPLETED]
    with pytest.raises(ValueError, match="not a valid event"):
        engine.add_event_handler(Ev.B, lambda: None)
    with pytest.raises(ValueError, match="not a valid event"):
        engine.fire_event(Ev.A)  # left out of the list: refused, though registered
    assert not engine.has_registered_events(Ev.A)
    engine.add_event_handler(api.Events.ITERATION_COMPLETED(every=2), lambda: calls.append("every 2"))
    engine._allowed_events.append("custom")  # listed by hand, never registered
    engine.add_event_handler("custom", lambda: calls.append("custom"))
    engine.fire_event("custom")
    assert engine.run([0, 1, 2, 3]).iteration == 4  # the loop's own events still fire
    engine._allowed_events.remove("custom")
    with pytest.raises(ValueError, match="not a valid event"):
        engine.fire_event("custom")
    fresh = api.Engine(lambda e, b: None)
    fresh._allowed_events += ["x"]
    fresh.fire_event("x")
    assert fresh.last_event_name == "x"
    assert calls == ["custom", "every 2", "every 2"]
    engine.run([0, 1])  # usable after every refusal
    assert calls[-1] == "every 2"


def Events_in(handlers, api) -> list:
    return [e.name for e in handlers if handlers[e]]


def test_state_event_to_attr_assigned_wholesale(api):
    # ignite code may replace the shared mapping; engines built afterwards work,
    # and engines already built read the new one.
    State = api.State
    saved = dict(State.event_to_attr)
    try:
        built_before = api.Engine(lambda e, b: setattr(e.state, "doubled", 2 * e.state.iteration))
        State.event_to_attr = {**saved, api.Events.ITERATION_COMPLETED: "doubled"}
        built_after = api.Engine(lambda e, b: setattr(e.state, "doubled", 2 * e.state.iteration))
        calls = []
        for name, engine in (("before", built_before), ("after", built_after)):
            engine.add_event_handler(
                api.Events.ITERATION_COMPLETED(every=4), lambda e, n=name: calls.append((n, e.state.iteration))
            )
            engine.run(range(6))
        assert calls == [("before", 2), ("before", 4), ("before", 6), ("after", 2), ("after", 4), ("after", 6)]
        State.event_to_attr[api.Events.ITERATION_COMPLETED] = "iteration"  # edited in place afterwards
        calls.clear()
        built_before.run(range(6))
        assert calls == [("before", 4)]
    finally:
        State.event_to_attr = saved
