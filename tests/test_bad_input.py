"""Every bad input gets a clear error naming the argument, and leaves the engine usable.

Each case starts from an engine that has finished a 2-epoch run over ``range(3)``,
makes one bad call, and then checks that the state is as it was and that the
same engine resumes to 4 epochs normally.
"""

from __future__ import annotations

import pytest

from fastignite import EventEnum, Events, EventsList, throttle_filter, timeout_filter


class Custom(EventEnum):
    PING = "ping"


def handler(engine):
    pass


def two_args(a, b):
    pass


BAD_CALLS = [
    # (id, call(engine), exception, message)
    ("every=0", lambda e: Events.ITERATION_COMPLETED(every=0), ValueError, r"Argument every should be integer and greater than zero, got 0"),
    ("every<0", lambda e: Events.ITERATION_COMPLETED(every=-2), ValueError, r"Argument every should be integer and greater than zero"),
    ("every=float", lambda e: Events.ITERATION_COMPLETED(every=2.5), ValueError, r"Argument every should be integer"),
    ("every=[]", lambda e: Events.ITERATION_COMPLETED(every=[]), ValueError, r"Argument every should be integer"),
    ("once=[]", lambda e: Events.ITERATION_COMPLETED(once=[]), ValueError, r"Argument once should either be a positive integer or a list of positive integers, got \[\]"),
    ("once=0", lambda e: Events.ITERATION_COMPLETED(once=0), ValueError, r"Argument once should either be a positive integer"),
    ("once=[1,'a']", lambda e: Events.ITERATION_COMPLETED(once=[1, "a"]), ValueError, r"Argument once should"),
    ("before<0", lambda e: Events.ITERATION_COMPLETED(before=-1), ValueError, r"Argument before should be integer and greater or equal to zero"),
    ("after<0", lambda e: Events.ITERATION_COMPLETED(after=-1), ValueError, r"Argument after should be integer and greater or equal to zero"),
    ("two filters", lambda e: Events.ITERATION_COMPLETED(every=2, once=3), ValueError, r"Only one of the input arguments should be specified"),
    ("no filter", lambda e: Events.ITERATION_COMPLETED(), ValueError, r"Only one of the input arguments should be specified"),
    ("event_filter not callable", lambda e: Events.ITERATION_COMPLETED(event_filter=3), TypeError, r"Argument event_filter should be a callable, got 3"),
    ("event_filter signature", lambda e: Events.ITERATION_COMPLETED(event_filter=lambda: True), ValueError, r"'event_filter': takes parameters \[\] but will be called with \['engine', 'event'\]"),
    ("& of two events", lambda e: Events.STARTED & Events.COMPLETED, ValueError, r"Events.STARTED & Events.COMPLETED can never fire"),
    ("throttle seconds", lambda e: throttle_filter(-1), ValueError, r"Argument seconds should be a non-negative number of seconds, got -1"),
    ("timeout seconds", lambda e: timeout_filter("10"), ValueError, r"Argument seconds should be a non-negative number"),
    ("handler not callable", lambda e: e.add_event_handler(Events.STARTED, "print"), TypeError, r"Argument handler should be callable, got 'print'"),
    ("handler signature", lambda e: e.add_event_handler(Events.STARTED, two_args), ValueError, r"Error adding .+ 'handler': takes parameters \['a', 'b'\] but will be called with"),
    ("handler missing bound arg", lambda e: e.add_event_handler(Events.STARTED, lambda engine, a: None), ValueError, r"takes parameters \['engine', 'a'\]"),
    ("unregistered event", lambda e: e.add_event_handler(Custom.PING, handler), ValueError, r"Event Custom.PING is not a valid event for this Engine"),
    ("unregistered string event", lambda e: e.add_event_handler("ping", handler), ValueError, r"Event ping is not a valid event for this Engine"),
    ("unregistered event in a list", lambda e: e.add_event_handler(Events.STARTED | Custom.PING, handler), ValueError, r"is not a valid event"),
    ("register None", lambda e: e.register_events("ok", None), TypeError, r"Value at 1 of event_names should be a str or EventEnum, but given None"),
    ("register int", lambda e: e.register_events(1), TypeError, r"Value at 0 of event_names should be a str or EventEnum"),
    ("event_to_attr not dict", lambda e: e.register_events(*Custom, event_to_attr="a"), ValueError, r"Expected event_to_attr to be dictionary"),
    ("remove from unknown event", lambda e: e.remove_event_handler(handler, "nope"), ValueError, r"Input event name 'nope' does not exist"),
    ("remove unknown handler", lambda e: e.remove_event_handler(two_args, Events.STARTED), ValueError, r"Input handler '.+' is not found"),
    ("fire unregistered", lambda e: e.fire_event(Custom.PING), ValueError, r"is not a valid event"),
    ("EventsList of non-event", lambda e: EventsList() | 3, TypeError, r"Argument event should be Events or CallableEventWithFilter"),
    ("data not iterable", lambda e: e.run(42), TypeError, r"Argument data should be iterable, got int"),
    ("max_epochs=0", lambda e: e.run(range(3), max_epochs=0), ValueError, r"Argument max_epochs should be a positive integer or None, got 0"),
    ("max_epochs<0", lambda e: e.run(range(3), max_epochs=-1), ValueError, r"Argument max_epochs should be a positive integer"),
    ("max_epochs str", lambda e: e.run(range(3), max_epochs="4"), ValueError, r"Argument max_epochs should be a positive integer or None, got '4'"),
    ("max_iters=0", lambda e: e.run(range(3), max_iters=0), ValueError, r"Argument max_iters should be a positive integer"),
    ("epoch_length<0", lambda e: e.run(range(3), epoch_length=-5), ValueError, r"Argument epoch_length should be a positive integer or None, got -5"),
    ("both limits", lambda e: e.run(range(3), max_epochs=4, max_iters=5), ValueError, r"Arguments max_iters and max_epochs are mutually exclusive"),
    ("max_epochs below current epoch", lambda e: e.run(range(3), max_epochs=1), ValueError, r"Argument max_epochs should be greater than or equal to the start epoch defined in the state: 1 vs 2"),
    ("switch to max_iters", lambda e: e.run(range(3), max_iters=50), ValueError, r"To switch from max_epochs to max_iters mode during resume"),
    ("epoch_length mismatch", lambda e: e.run(range(3), max_epochs=4, epoch_length=7), ValueError, r"Argument epoch_length should be same as in the state, but given 7 vs 3"),
    ("state_dict not a dict", lambda e: e.load_state_dict([1]), TypeError, r"Argument state_dict should be a dictionary"),
    ("state_dict missing key", lambda e: e.load_state_dict({"max_epochs": 3}), ValueError, r"Required state attribute 'epoch_length' is absent"),
    ("state_dict no epoch_length", lambda e: e.load_state_dict({"iteration": 3}), ValueError, r"epoch_length must be a positive integer to calculate missing 'iteration' or 'epoch' key"),
    ("state_dict both progress keys", lambda e: e.load_state_dict({"iteration": 3, "epoch": 1, "epoch_length": 3, "max_epochs": 2}), ValueError, r"only one of 'iteration' or 'epoch'"),
    ("state_dict both limits", lambda e: e.load_state_dict({"iteration": 3, "epoch_length": 3, "max_epochs": 2, "max_iters": 9}), ValueError, r"exactly one of"),
    ("state_dict max below progress", lambda e: e.load_state_dict({"epoch": 5, "epoch_length": 3, "max_epochs": 2}), ValueError, r"Argument max_epochs should be greater than or equal to the start epoch"),
    ("state_dict max_epochs=0", lambda e: e.load_state_dict({"iteration": 0, "epoch_length": 3, "max_epochs": 0}), ValueError, r"Argument max_epochs is invalid"),
    ("state_dict iteration str", lambda e: e.load_state_dict({"iteration": "3", "epoch_length": 3, "max_epochs": 2}), ValueError, r"state_dict's iteration should be a non-negative integer, got '3'"),
    ("state_dict epoch<0", lambda e: e.load_state_dict({"epoch": -1, "epoch_length": 3, "max_epochs": 2}), ValueError, r"state_dict's epoch should be a non-negative integer, got -1"),
    ("state_dict max_epochs float", lambda e: e.load_state_dict({"iteration": 3, "epoch_length": 3, "max_epochs": 2.5}), ValueError, r"state_dict's max_epochs should be an integer or None, got 2.5"),
    ("state_dict epoch_length str", lambda e: e.load_state_dict({"iteration": 3, "epoch_length": "3", "max_epochs": 2}), ValueError, r"state_dict's epoch_length should be an integer or None, got '3'"),
    ("state_dict epoch_length=0", lambda e: e.load_state_dict({"iteration": 4, "epoch_length": 0, "max_epochs": 9}), ValueError, r"epoch_length must be a positive integer"),
]  # fmt: skip


def _snapshot(engine):
    s = engine.state
    return (s.iteration, s.epoch, s.epoch_length, s.max_epochs, s.max_iters, s.batch, s.output)


@pytest.mark.parametrize("name, call, exc, message", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_rejected_and_the_engine_stays_usable(Engine, name, call, exc, message):
    engine = Engine(lambda e, b: b)
    calls = []
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=2), lambda e: calls.append(e.state.iteration))
    engine.run(range(3), max_epochs=2)
    before = _snapshot(engine)
    handlers_before = {k: list(v) for k, v in engine._event_handlers.items()}

    with pytest.raises(exc, match=message):
        call(engine)

    assert _snapshot(engine) == before
    assert {k: list(v) for k, v in engine._event_handlers.items() if v} == {
        k: v for k, v in handlers_before.items() if v
    }
    state = engine.run(range(3), max_epochs=4)
    assert (state.iteration, state.epoch) == (12, 4)
    assert calls == [2, 4, 6, 8, 10, 12]


def test_state_dict_with_an_unset_user_key(Engine):
    engine = Engine(lambda e, b: b)
    engine.state_dict_user_keys.append("alpha")
    with pytest.raises(AttributeError, match=r"state_dict_user_keys names \['alpha'\], which the state does not have"):
        engine.state_dict()
    engine.state.alpha = 1
    assert engine.state_dict()["alpha"] == 1


def test_empty_data(Engine):
    engine = Engine(lambda e, b: b)
    with pytest.raises(ValueError, match=r"Input data has zero size. Please provide non-empty data"):
        engine.run([])
    assert engine.run([1, 2]).iteration == 2


def test_no_data_without_epoch_length(Engine):
    engine = Engine(lambda e, b: b)
    with pytest.raises(ValueError, match=r"epoch_length should be provided if data is None"):
        engine.run(max_epochs=2)
    assert engine.run(max_epochs=2, epoch_length=2).iteration == 4


@pytest.mark.parametrize(
    "fn, exc, message",
    [
        (None, ValueError, r"Engine must be given a processing function"),
        (5, TypeError, r"Argument process_function should be a callable \(engine, batch\) -> output, got 5"),
        (lambda: None, ValueError, r"'process_function': takes parameters \[\] but will be called with"),
        (lambda engine, batch, extra: None, ValueError, r"takes parameters \['engine', 'batch', 'extra'\]"),
    ],
)
def test_bad_process_function(Engine, fn, exc, message):
    with pytest.raises(exc, match=message):
        Engine(fn)


@pytest.mark.parametrize("event", [Events.STARTED, Events.EPOCH_STARTED])
def test_terminate_epoch_where_it_cannot_apply(Engine, event):
    engine = Engine(lambda e, b: b)
    engine.add_event_handler(event(once=1) if event is Events.EPOCH_STARTED else event, lambda e: e.terminate_epoch())
    with pytest.raises(
        RuntimeError, match=r"terminate_epoch\(\) should not be called on Event.STARTED or Event.EPOCH_STARTED"
    ):
        engine.run(range(3))


def test_interrupt_when_disabled(Engine, monkeypatch):
    monkeypatch.setattr(Engine, "interrupt_resume_enabled", False)
    engine = Engine(lambda e, b: b)
    with pytest.raises(RuntimeError, match=r"Engine 'interrupt/resume' feature is disabled"):
        engine.interrupt()
    assert engine.run(range(3)).iteration == 3
