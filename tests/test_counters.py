"""``state.counters`` (Ignite.jl's semantics, plus checkpointing of the custom events' counters).

* There before the first run; emptied when a run starts over; set by ``load_state_dict`` (so a
  used engine and a fresh one make the same decisions from the same state_dict).
* The loop events' counters are ``state.iteration`` / ``state.epoch``, resumes included.
* ``state_dict()`` saves the custom events' counters under ``counters`` (names -> ints) when
  there are custom events, and only then: ignite's keys are unchanged otherwise.

Every test runs on both twins (the ``Engine`` fixture); the drop-in is tested where ignite is
installed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

import fastignite
from fastignite import EventEnum, Events

E = Events

LOOP_EVENTS = {
    E.EPOCH_STARTED: "epoch",
    E.EPOCH_COMPLETED: "epoch",
    E.ITERATION_STARTED: "iteration",
    E.ITERATION_COMPLETED: "iteration",
    E.GET_BATCH_STARTED: "iteration",
    E.GET_BATCH_COMPLETED: "iteration",
}


class Ping(EventEnum):
    PING = "counters_ping"
    PONG = "counters_pong"


def firing_engine(Engine, fires=lambda engine, batch: batch):
    """An engine whose process function fires PING ``fires(engine, batch)`` times."""

    def step(engine, batch):
        for _ in range(fires(engine, batch)):
            engine.fire_event(Ping.PING)

    engine = Engine(step)
    engine.register_events(*Ping)
    return engine


def record_pings(engine, **filter_kwargs):
    calls = []
    engine.add_event_handler(
        Ping.PING(**filter_kwargs), lambda e: calls.append((e.state.iteration, e.state.counters[Ping.PING]))
    )
    return calls


# -- there before the first run -------------------------------------------------------------


def test_counters_exist_before_the_first_run(Engine):
    engine = Engine(lambda e, b: None)
    counters = engine.state.counters
    assert isinstance(counters, Mapping)
    assert set(counters) == set(Events) and all(v == 0 for v in counters.values())
    engine.register_events(*Ping)
    assert counters[Ping.PING] == 0 and Ping.PONG in counters
    engine.run(range(3))
    assert engine.state.counters is counters


# -- emptied when a run starts --------------------------------------------------------------


def test_counters_are_emptied_when_a_run_starts_over(Engine):
    engine = firing_engine(Engine)
    seen_at_start = []
    engine.add_event_handler(E.STARTED, lambda e: seen_at_start.append(dict(e.state.counters)))
    engine.run([2, 3], max_epochs=2)
    assert engine.state.counters[Ping.PING] == 10 and engine.state.counters[E.DATALOADER_STOP_ITERATION] == 1
    engine.run([1], max_epochs=2)  # finished: starts over
    assert engine.state.counters[Ping.PING] == 2 and engine.state.counters[E.DATALOADER_STOP_ITERATION] == 1
    # At STARTED only STARTED itself has fired: every other counter (loop ones: epoch 0) is 0.
    for seen in seen_at_start:
        assert {e for e, v in seen.items() if v} == {E.STARTED}, seen


def _interrupted_state_dict(Engine, at_iteration, data=(1, 2, 3, 1), max_epochs=3, fires=None, **filter_kwargs):
    engine = firing_engine(Engine) if fires is None else firing_engine(Engine, fires)
    engine.add_event_handler(E.ITERATION_COMPLETED(once=at_iteration), lambda e: e.interrupt())
    calls = record_pings(engine, **filter_kwargs)
    engine.run(list(data), max_epochs=max_epochs)
    assert engine.state.iteration == at_iteration
    return engine, engine.state_dict(), calls


@pytest.mark.parametrize("filter_kwargs", [{"every": 3}, {"once": [2, 5, 9, 14]}, {"before": 16, "after": 9}])
def test_a_used_engine_and_a_fresh_one_decide_alike_from_one_state_dict(Engine, filter_kwargs):
    """The same state_dict must give the same custom-event filter decisions whatever the
    engine ran before: load_state_dict sets every counter."""
    _, sd, _ = _interrupted_state_dict(Engine, 5, **filter_kwargs)

    fresh = firing_engine(Engine)
    fresh_calls = record_pings(fresh, **filter_kwargs)
    fresh.load_state_dict(sd)
    fresh.run([1, 2, 3, 1])

    used = firing_engine(Engine)
    used_calls = record_pings(used, **filter_kwargs)
    used.run([3, 3, 3], max_epochs=2)  # 18 PINGs and 6 DATALOADER_STOP_ITERATION... of its own
    used_calls.clear()
    used.load_state_dict(sd)
    assert used.state.counters[Ping.PING] == sd["counters"]["PING"] == 1 + 2 + 3 + 1 + 1
    assert used.state.counters[E.DATALOADER_STOP_ITERATION] == 0 and used.state.counters[E.STARTED] == 0
    used.run([1, 2, 3, 1])
    assert used_calls == fresh_calls and fresh_calls


def test_a_state_dict_without_counters_empties_them(Engine):
    """ignite's state_dict (its keys only) is a run with no custom firings yet."""
    engine = firing_engine(Engine)
    calls = record_pings(engine, every=2)
    engine.run([3, 3])
    calls.clear()
    engine.load_state_dict({"iteration": 2, "epoch_length": 2, "max_epochs": 3})
    assert engine.state.counters[Ping.PING] == 0
    engine.run([1, 2])
    assert calls == [(4, 2), (5, 4), (6, 6)]  # from 0 at iteration 3


# -- loop events: iteration / epoch ---------------------------------------------------------


def _assert_loop_counters(calls_log):
    def check(engine):
        counters = engine.state.counters
        for event, attr in LOOP_EVENTS.items():
            assert counters[event] == getattr(engine.state, attr), (event, dict(counters), engine.state)
        calls_log.append(engine.last_event_name)

    return check


@pytest.mark.parametrize("data", ["list", "none", "restarting"])
def test_loop_event_counters_are_iteration_and_epoch_resumes_included(Engine, data):
    log = []
    engine = Engine(lambda e, b: None)
    for event in [*LOOP_EVENTS, E.STARTED, E.COMPLETED, E.INTERRUPT, E.DATALOADER_STOP_ITERATION]:
        engine.add_event_handler(event, _assert_loop_counters(log))
    engine.add_event_handler(E.ITERATION_COMPLETED(once=5), lambda e: e.interrupt())
    engine.add_event_handler(E.ITERATION_COMPLETED(once=9), lambda e: e.terminate())
    run = {
        "list": dict(data=list(range(4)), max_epochs=4),
        # no data: no GET_BATCH_* firings at all
        "none": dict(data=None, epoch_length=4, max_epochs=4),
        # epoch_length < len: the iterator restarts mid-epoch, and ignite skips a GET_BATCH_STARTED
        "restarting": dict(data=[0, 1, 2], epoch_length=4, max_epochs=4),
    }[data]
    engine.run(**run)  # interrupted at 5
    engine.run(**run)  # terminated at 9
    sd = engine.state_dict()
    engine.run(**run)  # resumes the terminated run
    assert engine.state.epoch == 4
    fresh = Engine(lambda e, b: None)
    for event in LOOP_EVENTS:
        fresh.add_event_handler(event, _assert_loop_counters(log))
    fresh.load_state_dict(sd)
    for event, attr in LOOP_EVENTS.items():
        assert fresh.state.counters[event] == getattr(fresh.state, attr)
    fresh.run(run["data"])
    assert fresh.state.iteration == 16 and len(log) > 40


# -- state_dict / load_state_dict -----------------------------------------------------------


def test_state_dict_keeps_ignites_keys_without_custom_events(Engine):
    engine = Engine(lambda e, b: None)
    engine.run(range(4), max_epochs=2)
    assert list(engine.state_dict()) == ["epoch_length", "iteration", "max_epochs"]


def test_state_dict_saves_the_custom_events_counters_by_name(Engine):
    engine = firing_engine(Engine)
    engine.register_events("tock")
    engine.add_event_handler(E.ITERATION_COMPLETED(every=2), lambda e: e.fire_event("tock"))
    engine.run([1, 2, 3])
    sd = engine.state_dict()
    assert list(sd) == ["epoch_length", "iteration", "max_epochs", "counters"]
    assert sd["counters"] == {"PING": 6, "PONG": 0, "tock": 1}
    assert json.loads(json.dumps(sd)) == dict(sd)  # plain names and ints: loads without the event classes


@pytest.mark.parametrize("interrupt_at", [1, 3, 4, 6, 7])
def test_a_resumed_run_decides_as_an_uninterrupted_one(Engine, interrupt_at):
    # PINGs per iteration by its number: a resumed run reads its data from the start (as
    # ignite's does), so batches would not line up with the uninterrupted run's.
    data = [None] * 4

    def fires(engine, batch):
        return engine.state.iteration % 3 + (engine.state.iteration % 4 == 0)

    whole = firing_engine(Engine, fires)
    whole_calls = record_pings(whole, every=3)
    whole_once = record_pings(whole, once=[1, 4, 9])
    whole.run(data, max_epochs=2)

    _, sd, first_calls = _interrupted_state_dict(Engine, interrupt_at, data, 2, fires, every=3)
    assert first_calls == [c for c in whole_calls if c[0] <= interrupt_at]
    sd = json.loads(json.dumps(sd))  # as a checkpoint on disk holds it
    resumed = firing_engine(Engine, fires)
    resumed_calls = record_pings(resumed, every=3)
    resumed_once = record_pings(resumed, once=[1, 4, 9])
    resumed.load_state_dict(sd)
    resumed.run(list(data))
    assert [c for c in whole_calls if c[0] > interrupt_at] == resumed_calls
    assert [c for c in whole_once if c[0] > interrupt_at] == resumed_once
    assert len(whole_calls) >= 3 and len(whole_once) == 3


def test_counters_loaded_before_their_event_is_registered_wait_for_it(Engine):
    engine = Engine(lambda e, b: e.fire_event(Ping.PING))
    engine.load_state_dict({"iteration": 2, "epoch_length": 4, "max_epochs": 1, "counters": {"PING": 7}})
    assert engine.state_dict()["counters"] == {"PING": 7}  # kept for the next checkpoint
    engine.register_events(*Ping)
    assert engine.state.counters[Ping.PING] == 7
    calls = record_pings(engine, every=4)
    engine.run([0, 0, 0, 0])
    assert calls == [(3, 8)]


@pytest.mark.parametrize(
    "counters, message",
    [
        ([("PING", 1)], r"state_dict's counters should map event names to firing counts"),
        ({"PING": -1}, r"state_dict's counters\['PING'\] should be a non-negative integer below 2\*\*62, got -1"),
        ({"PING": 1.0}, r"counters\['PING'\] should be a non-negative integer below 2\*\*62, got 1.0"),
        ({"PING": True}, r"counters\['PING'\] should be a non-negative integer below 2\*\*62, got True"),
        ({"PING": 2**62}, r"counters\['PING'\] should be a non-negative integer below 2\*\*62"),
        ({"PING": None}, r"counters\['PING'\] should be a non-negative integer below 2\*\*62, got None"),
    ],
)
def test_bad_counters_are_refused_and_change_nothing(Engine, counters, message):
    engine = firing_engine(Engine)
    engine.run([1, 2], max_epochs=2)
    before = (dict(engine.state.counters), engine.state_dict())
    with pytest.raises(ValueError, match=message):
        engine.load_state_dict({"iteration": 1, "epoch_length": 2, "max_epochs": 3, "counters": counters})
    assert (dict(engine.state.counters), engine.state_dict()) == before


def test_numpy_counts_are_accepted(Engine):
    np = pytest.importorskip("numpy")
    engine = firing_engine(Engine)
    engine.load_state_dict({"iteration": 1, "epoch_length": 2, "max_epochs": 3, "counters": {"PING": np.int64(5)}})
    assert engine.state.counters[Ping.PING] == 5 and type(engine.state_dict()["counters"]["PING"]) is int


def test_a_user_key_named_counters_is_the_users(Engine):
    engine = firing_engine(Engine)
    engine.state_dict_user_keys.append("counters")
    engine.run([1])
    sd = engine.state_dict()
    assert sd["counters"] is engine.state.counters  # theirs: the attribute, as ignite saves it


# -- the drop-in ----------------------------------------------------------------------------


def test_drop_in_counters_and_state_dict():
    ignite_engine = pytest.importorskip("ignite.engine", reason="needs pytorch-ignite 0.5.5")
    from fastignite import ignite as dropin

    class Custom(ignite_engine.EventEnum):
        SAVED = "dropin_counters_saved"

    def step(engine, batch):
        engine.fire_event(Custom.SAVED)

    engine = dropin.Engine(step)
    assert isinstance(engine.state.counters, Mapping)  # before the first run
    engine.register_events(*Custom)
    calls = []
    engine.add_event_handler(Custom.SAVED(every=2), lambda e: calls.append(e.state.iteration))
    engine.add_event_handler(ignite_engine.Events.ITERATION_COMPLETED(once=3), lambda e: e.interrupt())
    engine.run(range(4), max_epochs=2)
    sd = engine.state_dict()
    assert sd["counters"] == {"SAVED": 3}
    assert engine.state.counters[ignite_engine.Events.ITERATION_COMPLETED] == 3

    # ignite's own engine loads it (the extra key is ignored), and the drop-in resumes from it.
    ignite_engine.Engine(step).load_state_dict(sd)
    resumed = dropin.Engine(step)
    resumed.register_events(*Custom)
    resumed.add_event_handler(Custom.SAVED(every=2), lambda e: calls.append(e.state.iteration))
    resumed.load_state_dict(sd)
    resumed.run(range(4))
    assert calls == [2, 4, 6, 8]

    # Without custom events, exactly ignite's keys.
    plain = dropin.Engine(lambda e, b: None)
    plain.run(range(3))
    theirs = ignite_engine.Engine(lambda e, b: None)
    theirs.run(range(3))
    assert list(plain.state_dict()) == list(theirs.state_dict())


def test_pure_counters_module_api_matches_compiled():
    """set_firings: the same checks on both twins' Tables."""
    from fastignite import _dispatch_py

    twins = [_dispatch_py]
    if fastignite.BACKEND == "compiled":
        from fastignite import _dispatch_c

        twins.append(_dispatch_c)
    for twin in twins:
        tables = twin.Tables()
        tables.add_event(E.STARTED)
        tables.set_firings(0, 5)
        assert tables.firings(0) == 5
        with pytest.raises(IndexError, match=r"slot should be within 0..0, got 1"):
            tables.set_firings(1, 5)
        with pytest.raises(IndexError, match=r"slot should be within 0..0, got -1"):
            tables.set_firings(-1, 5)
        with pytest.raises(ValueError, match=r"count should be an int from 0 to 2\*\*62 - 1, got -1"):
            tables.set_firings(0, -1)
        with pytest.raises(ValueError, match=r"count should be an int from 0 to 2\*\*62 - 1"):
            tables.set_firings(0, 2**62)
