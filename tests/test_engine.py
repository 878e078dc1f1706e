"""Engine behaviour, on each backend twin (the ``Engine`` fixture)."""

from __future__ import annotations

import gc
import weakref

import pytest
from conftest import cpython_only, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastignite
from fastignite import EventEnum, Events, State, every_filter, once_filter, throttle_filter

E = Events


class Trace:
    """Records (name, event, epoch, iteration) of every handler call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def handler(self, name: str):
        def record(engine):
            self.calls.append((name, engine.last_event_name.name, engine.state.epoch, engine.state.iteration))

        record.__name__ = name
        return record

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def record_all_events(engine, trace):
    for event in Events:
        if event in (E.EXCEPTION_RAISED, E.TERMINATE_SINGLE_EPOCH):
            continue
        engine.add_event_handler(event, trace.handler(event.name))


def test_event_order_of_a_two_epoch_run(Engine):
    engine = Engine(lambda e, b: b)
    trace = Trace()
    record_all_events(engine, trace)
    engine.run(["a", "b"], max_epochs=2)
    one_iteration = ["GET_BATCH_STARTED", "GET_BATCH_COMPLETED", "ITERATION_STARTED", "ITERATION_COMPLETED"]
    assert (
        trace.names()
        == (
            ["STARTED", "EPOCH_STARTED", *one_iteration, *one_iteration, "EPOCH_COMPLETED"]
            # the second epoch first finds the data exhausted and restarts it
            + ["EPOCH_STARTED", "GET_BATCH_STARTED", "DATALOADER_STOP_ITERATION", *one_iteration[1:], *one_iteration]
            + ["EPOCH_COMPLETED", "COMPLETED"]
        )
    )
    assert engine.state.output == "b" and engine.last_event_name is E.COMPLETED


def test_no_data_fires_no_batch_events(Engine):
    engine = Engine(lambda e, b: b)
    trace = Trace()
    record_all_events(engine, trace)
    state = engine.run(None, max_epochs=2, epoch_length=3)
    assert state.iteration == 6 and state.batch is None
    assert not {"GET_BATCH_STARTED", "GET_BATCH_COMPLETED", "DATALOADER_STOP_ITERATION"} & set(trace.names())


def test_unsized_iterator_finds_its_epoch_length(Engine):
    engine = Engine(lambda e, b: b)
    stops = []
    engine.add_event_handler(E.DATALOADER_STOP_ITERATION, lambda e: stops.append(e.state.iteration))
    state = engine.run(iter(range(7)))
    assert (state.epoch_length, state.iteration, state.epoch, stops) == (7, 7, 1, [])


def test_handlers_with_and_without_engine_and_bound_arguments(Engine):
    engine = Engine(lambda e, b: None)
    got = []
    engine.add_event_handler(E.STARTED, lambda: got.append("none"))
    engine.add_event_handler(E.STARTED, lambda eng: got.append(eng is engine))
    engine.add_event_handler(E.STARTED, lambda eng, a, b=0: got.append((a, b)), 1, b=2)
    engine.add_event_handler(E.STARTED, lambda a, *, b: got.append((a, b)), "x", b="y")
    engine.run([0])
    assert got == ["none", True, (1, 2), ("x", "y")]


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.lists(
        st.one_of(
            st.fixed_dictionaries({"every": st.integers(1, 9)}),
            st.fixed_dictionaries({"every": st.lists(st.integers(2, 9), min_size=1, max_size=3)}),
            st.fixed_dictionaries({"once": st.lists(st.integers(1, 40), min_size=1, max_size=3)}),
            st.fixed_dictionaries(
                {"every": st.integers(1, 5), "before": st.integers(0, 40), "after": st.integers(0, 30)}
            ),
            st.just({}),
        ),
        min_size=1,
        max_size=25,
    ),
    runs=st.integers(1, 2),
)
def test_tables_call_exactly_the_due_handlers(Engine, specs, runs):
    """Many filtered handlers on one event: each is called at exactly the counts its
    filter passes, in registration order, also when a second run restarts the count."""
    engine = Engine(lambda e, b: None)
    calls = []
    for i, spec in enumerate(specs):
        engine.add_event_handler(E.ITERATION_COMPLETED(**spec) if spec else E.ITERATION_COMPLETED, calls.append, i)
    expected = []
    for _ in range(runs):
        engine.run(None, max_epochs=2, epoch_length=17)
        for count in range(1, 35):
            for i, spec in enumerate(specs):
                if (
                    not spec
                    or E.ITERATION_COMPLETED(**spec).filter in (None,)
                    or E.ITERATION_COMPLETED(**spec).filter(engine, count)
                ):
                    expected.append(i)
    assert calls == expected


def test_thousand_handlers_share_one_filter_evaluation(Engine):
    engine = Engine(lambda e, b: None)
    hits = [0]
    evaluations = [0]

    class Counting(fastignite.filters.Every):
        __slots__ = ()

        def __call__(self, engine, count):
            evaluations[0] += 1
            return super().__call__(engine, count)

    shared = Counting((100,))
    for _ in range(1000):
        engine.add_event_handler(E.ITERATION_COMPLETED(event_filter=shared), lambda: hits.__setitem__(0, hits[0] + 1))
    engine.run(None, max_epochs=1, epoch_length=1000)
    assert hits[0] == 1000 * 10
    # evaluated once at the first firing (where every group is looked at) and then once
    # per due firing (counts 100..1000): not per handler, not per firing
    assert evaluations[0] == 1 + 10


# -- Ignite.jl's extras ---------------------------------------------------------------------


class Tick(EventEnum):
    TICK = "tick"


def test_filters_on_custom_events_count_firings_without_event_to_attr(Engine):
    def step(engine, batch):
        for _ in range(batch):
            engine.fire_event(Tick.TICK)

    engine = Engine(step)
    engine.register_events(*Tick)
    seen = []
    engine.add_event_handler(Tick.TICK(every=3), lambda e: seen.append(e.state.counters[Tick.TICK]))
    engine.add_event_handler(Tick.TICK(once=[1, 8]), lambda e: seen.append(-e.state.counters[Tick.TICK]))
    state = engine.run([2, 1, 4, 3], max_epochs=1)
    assert seen == [-1, 3, 6, -8, 9]
    assert state.counters[Tick.TICK] == 10
    assert state.counters[E.ITERATION_COMPLETED] == 4 and state.counters[E.STARTED] == 1


def test_event_to_attr_is_shared_by_engines_as_in_ignite(Engine):
    class Shared(EventEnum):
        STEP = "shared_step"

    def step(engine, batch):
        engine.fire_event(Shared.STEP)

    counting = Engine(step)
    counting.register_events(*Shared)
    calls = []
    counting.add_event_handler(Shared.STEP(every=2), lambda e: calls.append(e.state.iteration))
    counting.run(range(4))
    assert calls == [2, 4]  # no mapping: the engine's own firing counter

    mapping = Engine(step)
    mapping.register_events(*Shared, event_to_attr={Shared.STEP: "shared_step_attr"})
    try:
        # State.event_to_attr is class-level: the first engine's filter now reads the attribute
        counting.add_event_handler(Events.ITERATION_STARTED, lambda e: setattr(e.state, "shared_step_attr", 3))
        calls.clear()
        counting.run(range(4))
        assert calls == []  # 3 is odd at every firing
    finally:
        del State.event_to_attr[Shared.STEP]


def test_string_events_count_too(Engine):
    engine = Engine(lambda e, b: e.fire_event("saved"))
    engine.register_events("saved")
    calls = []
    engine.add_event_handler(Events.STARTED, lambda: None)
    engine.add_event_handler("saved", lambda e: calls.append(e.state.iteration))
    engine.run(range(5))
    assert calls == [1, 2, 3, 4, 5] and engine.state.counters["saved"] == 5


def test_counters_reset_on_a_new_run_and_survive_resume(Engine):
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(E.ITERATION_COMPLETED(once=3), lambda e: e.interrupt())
    engine.run(range(4), max_epochs=2)
    assert engine.state.counters[E.ITERATION_COMPLETED] == 3 and engine.state.counters[E.INTERRUPT] == 1
    engine.run(range(4), max_epochs=2)  # resumes
    assert engine.state.counters[E.ITERATION_COMPLETED] == 8 and engine.state.counters[E.STARTED] == 1
    assert engine.state.counters[E.EPOCH_COMPLETED] == 2
    engine.run(range(4), max_epochs=2)  # finished before: starts over (and is interrupted again)
    assert engine.state.counters[E.ITERATION_COMPLETED] == 3 and engine.state.counters[E.INTERRUPT] == 1
    # A loop event's counter is the state's count (here epoch 1, not yet completed).
    assert engine.state.counters[E.EPOCH_COMPLETED] == engine.state.epoch == 1


def test_and_calls_once_iff_both_sides_pass_on_the_same_firing(Engine):
    now = [0.0]
    throttle = throttle_filter(25.0, clock=lambda: now[0])
    engine = Engine(lambda e, b: None)
    calls = []
    engine.add_event_handler(
        E.EPOCH_COMPLETED(every=3) & E.EPOCH_COMPLETED(event_filter=throttle), lambda e: calls.append(e.state.epoch)
    )

    @engine.on(E.EPOCH_COMPLETED)
    def ten_seconds_per_epoch():
        now[0] += 10.0

    engine.run([0], max_epochs=20)
    # multiples of 3 where >= 25 s passed since the last call; the throttle is only
    # consulted (and only consumes its window) on multiples of 3
    assert calls == [3, 6, 9, 12, 15, 18] or calls  # sanity: the next line is the real check
    expected, last = [], None
    for epoch in range(1, 21):
        t = 10.0 * (epoch - 1)
        if epoch % 3 == 0 and (last is None or t - last >= 25.0):
            expected.append(epoch)
            last = t
    assert calls == expected


def test_and_of_or_in_the_engine(Engine):
    engine = Engine(lambda e, b: None)
    calls = []
    ic = E.ITERATION_COMPLETED
    engine.add_event_handler((ic(every=2) & ic(before=7)) | E.COMPLETED, lambda e: calls.append(e.state.iteration))
    engine.add_event_handler(ic(after=4) & (ic(once=5) | ic(once=9)), lambda e: calls.append(-e.state.iteration))
    engine.run(range(10))
    assert calls == [2, 4, -5, 6, -9, 10]


@pytest.mark.parametrize("once, expected", [(False, [5, 6, 7, 8, 9, 10]), (True, [5])])
def test_timeout_filter_in_the_engine(Engine, once, expected):
    now = [0.0]
    engine = Engine(lambda e, b: now.__setitem__(0, now[0] + 1.0))
    calls = []
    engine.add_event_handler(
        E.ITERATION_COMPLETED(event_filter=fastignite.timeout_filter(4.5, once=once, clock=lambda: now[0])),
        lambda e: calls.append(e.state.iteration),
    )
    engine.run(range(10))
    assert calls == expected


def test_every_accepts_a_list_of_periods(Engine):
    engine = Engine(lambda e, b: None)
    calls = []
    engine.add_event_handler(E.ITERATION_STARTED(every=[3, 5]), lambda e: calls.append(e.state.iteration))
    engine.run(range(15))
    assert calls == [3, 5, 6, 9, 10, 12, 15]


def test_filter_helpers_are_plain_event_filters(Engine):
    engine = Engine(lambda e, b: None)
    calls = []
    engine.add_event_handler(
        E.ITERATION_STARTED(event_filter=every_filter(4)), lambda e: calls.append(e.state.iteration)
    )
    engine.add_event_handler(
        E.ITERATION_STARTED(event_filter=once_filter(6)), lambda e: calls.append(-e.state.iteration)
    )
    engine.run(range(8))
    assert calls == [4, -6, 8]


# -- control, errors, resume ----------------------------------------------------------------


@pytest.mark.parametrize("exc_type", [ValueError, KeyboardInterrupt])
def test_exceptions_fire_exception_raised(Engine, exc_type):
    def step(engine, batch):
        if engine.state.iteration == 3:
            raise exc_type("stop here")

    engine = Engine(step)
    caught = []
    engine.add_event_handler(E.EXCEPTION_RAISED, lambda e, exc: caught.append((type(exc), e.state.iteration)))
    engine.run(range(5))
    assert caught == [(exc_type, 3)]

    bare = Engine(step)
    with pytest.raises(exc_type, match="stop here"):
        bare.run(range(5))


def test_engine_is_usable_after_an_unhandled_exception(Engine):
    boom = [True]

    def step(engine, batch):
        if boom[0] and engine.state.iteration == 3:
            raise RuntimeError("once")

    engine = Engine(step)
    with pytest.raises(RuntimeError, match="once"):
        engine.run(range(4), max_epochs=2)
    boom[0] = False
    # ignite 0.5.5 returns None here without running; fastignite resumes the run
    state = engine.run(range(4), max_epochs=2)
    assert state is engine.state and state.epoch == 2


def test_interrupt_then_resume_gives_the_uninterrupted_trace(Engine):
    def build():
        engine = Engine(lambda e, b: b * 10)
        trace = Trace()
        record_all_events(engine, trace)
        return engine, trace

    reference, ref_trace = build()
    reference.run(range(5), max_epochs=3)

    engine, trace = build()
    engine.add_event_handler(E.ITERATION_COMPLETED(every=4), lambda e: e.interrupt())
    runs = 0
    while True:
        state = engine.run(range(5), max_epochs=3)
        runs += 1
        if engine._internal_run_generator is None:
            break
    assert runs == 4
    assert [c for c in trace.calls if c[0] != "INTERRUPT"] == ref_trace.calls
    assert state.iteration == 15 and state.output == 40


def test_resume_from_state_dict_in_a_new_engine(Engine):
    first = Engine(lambda e, b: b)
    first.state_dict_user_keys.append("alpha")
    first.add_event_handler(E.STARTED, lambda e: setattr(e.state, "alpha", 0.5))
    first.add_event_handler(E.ITERATION_COMPLETED(once=7), lambda e: e.terminate())
    first.run(range(5), max_epochs=3)
    sd = first.state_dict()
    assert dict(sd) == {"epoch_length": 5, "iteration": 7, "max_epochs": 3, "alpha": 0.5}

    second = Engine(lambda e, b: b)
    second.state_dict_user_keys.append("alpha")
    second.load_state_dict(sd)
    seen = []
    second.add_event_handler(
        E.ITERATION_STARTED, lambda e: seen.append((e.state.epoch, e.state.iteration, e.state.batch))
    )
    state = second.run(range(5))
    # As in ignite: the iteration count resumes (8 = 7 + 1) but the data restarts from
    # its first batch; restoring the data position is DeterministicEngine's job.
    assert seen[0] == (2, 8, 0) and state.iteration == 15 and state.alpha == 0.5


def test_terminate_epoch_and_skip_flags(Engine):
    engine = Engine(lambda e, b: None)
    trace = Trace()
    engine.add_event_handler(E.ITERATION_COMPLETED(once=2), lambda e: e.terminate_epoch(skip_epoch_completed=True))
    engine.add_event_handler(
        E.TERMINATE_SINGLE_EPOCH, lambda e, iter_counter: trace.calls.append(("TSE", iter_counter))
    )
    engine.add_event_handler(E.EPOCH_COMPLETED, trace.handler("EC"))
    state = engine.run(range(4), max_epochs=2)
    assert trace.calls == [("TSE", 2), ("EC", "EPOCH_COMPLETED", 2, 6)]
    assert state.iteration == 6


def test_state_and_last_event_name_basics(Engine):
    engine = Engine(lambda e, b: b + 1)
    assert engine.last_event_name is None and isinstance(engine.state, State)
    state = engine.run([1, 2, 3], max_epochs=2)
    assert (state.iteration, state.epoch, state.epoch_length, state.max_epochs, state.max_iters) == (6, 2, 3, 2, None)
    assert (state.batch, state.output, state.metrics, state.dataloader) == (3, 4, {}, [1, 2, 3])
    assert set(state.times) == {"EPOCH_COMPLETED", "COMPLETED"}
    assert engine.logger.name == "fastignite.engine.Engine"


def test_max_iters_across_epochs(Engine):
    engine = Engine(lambda e, b: None)
    state = engine.run(range(4), max_iters=10)
    assert (state.iteration, state.epoch, state.max_iters, state.max_epochs) == (10, 3, 10, None)


def test_torch_dataloader_is_accepted(Engine):
    torch = pytest.importorskip("torch", reason="needs torch")
    from torch.utils.data import DataLoader

    loader = DataLoader(torch.arange(12.0), batch_size=4)
    engine = Engine(lambda e, b: float(b.sum()))
    state = engine.run(loader, max_epochs=2)
    assert state.iteration == 6 and state.output == 8.0 + 9 + 10 + 11


# -- memory -----------------------------------------------------------------------------------


@cpython_only("reference counting: the engine is freed by `del` with the collector off")
def test_engine_is_freed_by_reference_counting(Engine):
    """No reference cycle through handlers, filters, tables or state (ignite's
    own memory-leak test asks this for an unfiltered handler; here all kinds)."""
    gc.disable()
    try:
        engine = Engine(lambda e, b: None)
        engine.register_events(*Tick)
        engine.add_event_handler(E.EPOCH_STARTED, lambda e: None)
        engine.add_event_handler(E.ITERATION_COMPLETED(every=2), lambda e: None)
        engine.add_event_handler(
            E.ITERATION_COMPLETED(every=3) & E.ITERATION_COMPLETED(event_filter=throttle_filter(1)), lambda: None
        )
        engine.add_event_handler(E.STARTED | E.COMPLETED(once=1), lambda e: None)
        engine.add_event_handler(Tick.TICK(every=2), lambda e: None)
        engine.run(range(5), max_epochs=3)
        ref = weakref.ref(engine)
        del engine
        assert ref() is None
    finally:
        gc.enable()


@cpython_only("tracemalloc, which counts CPython's allocations")
def test_memory_stays_flat_over_many_iterations(Engine):
    import tracemalloc

    engine = Engine(lambda e, b: b)
    engine.add_event_handler(E.ITERATION_COMPLETED, lambda e: None)
    engine.add_event_handler(E.ITERATION_COMPLETED(every=1000), lambda e: None)
    engine.run(None, max_epochs=1, epoch_length=1000)  # warm: tables built
    tracemalloc.start()
    try:
        engine.run(None, max_epochs=1, epoch_length=20_000)
        small, _ = tracemalloc.get_traced_memory()
        engine.run(None, max_epochs=1, epoch_length=200_000)
        large, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert large - small < 16 * 1024, (small, large)
