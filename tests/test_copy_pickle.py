"""copy.deepcopy and pickle of engines and their states, compared with ignite.

ignite copies an engine attribute by attribute: the copy's handler entries
share the handlers and the weak references they were registered with (so a
copied handler that takes the engine is given the original), its state is its
own, and a copy made while a run is suspended fails (a generator cannot be
copied).  Its state deep-copies and pickles before, during and after a run.
Each scenario runs on ignite, on both twins and on the drop-in over both
twins, and the traces must be ignite's.
"""

from __future__ import annotations

import copy
import importlib
import pickle

import pytest
from conftest import BACKENDS, TWIN_MODULES

import fastignite
import fastignite.engine
from fastignite._backend import use_twin

try:
    import ignite.engine as ignite_engine
except ImportError:  # pragma: no cover
    ignite_engine = None

needs_ignite = pytest.mark.skipif(ignite_engine is None, reason="needs pytorch-ignite 0.5.5 (the oracle)")


class FastTick(fastignite.EventEnum):  # module level, so that pickle finds it
    TICK = "tick"


if ignite_engine is not None:

    class IgniteTick(ignite_engine.EventEnum):
        TICK = "tick"


# The drop-in needs ignite; without it only fastignite's own engine is checked.
IMPLS = [f"{kind}-{b}" for kind in ("fastignite", "dropin")[: 1 + (ignite_engine is not None)] for b in BACKENDS]


def _api(name: str, request) -> object:
    if name == "ignite":
        return ignite_engine
    kind, twin = name.split("-")
    chosen = use_twin(importlib.import_module(TWIN_MODULES[twin]))
    chosen.__enter__()
    request.addfinalizer(lambda: chosen.__exit__(None, None, None))
    if kind == "dropin":
        return importlib.import_module("fastignite.ignite")
    return fastignite


def _outcome(f) -> object:
    try:
        f()
    except Exception as e:  # the class of failure is compared, not its wording
        return type(e).__name__
    return "ok"


def _state_values(state) -> dict:
    keys = ("iteration", "epoch", "epoch_length", "max_epochs", "max_iters", "output", "batch", "metrics",
            "dataloader", "seed", "extra")  # fmt: skip
    return {k: getattr(state, k, "<absent>") for k in keys}


def copy_scenario(api) -> list:
    """The observable results of copying and pickling, as a trace."""
    trace: list = []
    engine = api.Engine(lambda e, b: b * 10)
    names = {}  # id -> label, so that traces of different processes compare

    def who(e):
        return names.get(id(e), "other")

    names[id(engine)] = "original"
    engine.state.extra = [1, 2]
    engine.add_event_handler(api.Events.ITERATION_COMPLETED, lambda e: trace.append(("h", who(e), e.state.iteration)))
    engine.add_event_handler(api.Events.ITERATION_COMPLETED(every=2), lambda e: trace.append(("every2", who(e))))
    engine.add_event_handler(api.Events.EPOCH_COMPLETED, lambda: trace.append("no-engine"))

    def during(e):
        state = copy.deepcopy(e.state)
        trace.append(("during deepcopy(state)", _state_values(state)["iteration"], state.output, state.batch))
        loaded = pickle.loads(pickle.dumps(e.state))
        trace.append(("during pickle(state)", _state_values(loaded)["iteration"], loaded.extra))
        trace.append(("during deepcopy(engine)", _outcome(lambda: copy.deepcopy(e))))

    engine.add_event_handler(api.Events.ITERATION_COMPLETED(once=2), during)

    trace.append(("before deepcopy(state)", _state_values(copy.deepcopy(engine.state))))
    trace.append(("before pickle(state)", _state_values(pickle.loads(pickle.dumps(engine.state)))))
    early = copy.deepcopy(engine)
    names[id(early)] = "early copy"
    engine.run([1, 2, 3], max_epochs=2)
    after = copy.deepcopy(engine.state)
    trace.append(("after deepcopy(state)", _state_values(after), after.times == engine.state.times))
    trace.append(("copy shares", after.extra is engine.state.extra, after.metrics is engine.state.metrics))
    loaded = pickle.loads(pickle.dumps(engine.state))
    trace.append(("after pickle(state)", _state_values(loaded), type(loaded) is type(engine.state)))

    late = copy.deepcopy(engine)
    names[id(late)] = "late copy"
    trace.append(("late copy state", _state_values(late.state), late.state is engine.state,
                  late.state.extra is engine.state.extra))  # fmt: skip
    trace.append(("late has handlers", late.has_event_handler(during, api.Events.ITERATION_COMPLETED)))
    # The copy runs on its own: a new run on other data, the original untouched.
    trace.append("--- late copy runs")
    late.state.max_epochs = None
    late.run([7, 8], max_epochs=1)
    trace.append(("late after run", late.state.iteration, late.state.output, engine.state.iteration,
                  engine.state.output))  # fmt: skip
    # A handler added to the copy is the copy's alone.
    late.add_event_handler(api.Events.COMPLETED, lambda e: trace.append(("late only", who(e))))
    trace.append("--- original runs")
    engine.state.max_epochs = None
    engine.run([4], max_epochs=1)
    trace.append("--- early copy runs")
    early.run([5, 6], max_epochs=1)
    trace.append(("early after run", early.state.iteration, early.state.output, early.state.extra))
    return trace


@needs_ignite
@pytest.mark.parametrize("impl", IMPLS)
def test_copy_and_pickle_as_ignite(impl, request):
    expected = copy_scenario(ignite_engine)
    assert copy_scenario(_api(impl, request)) == expected


@pytest.mark.parametrize("impl", IMPLS)
def test_state_copy_and_pickle_keep_counters_as_values(impl, request):
    # state.counters is a view of the engine's backend tables (C data on the
    # compiled twin): a copy or a pickle keeps the counts, as a plain mapping.
    api = _api(impl, request)
    Custom = IgniteTick if impl.startswith("dropin") else FastTick
    engine = api.Engine(lambda e, b: e.fire_event(Custom.TICK))
    engine.register_events(*Custom)
    seen = []
    engine.add_event_handler(
        api.Events.COMPLETED, lambda e: seen.extend([copy.deepcopy(e.state), pickle.loads(pickle.dumps(e.state))])
    )
    engine.run([1, 2, 3], max_epochs=1)
    live = dict(engine.state.counters)
    for state in [*seen, copy.deepcopy(engine.state)]:
        assert state.counters[api.Events.ITERATION_COMPLETED] == 3
        assert state.counters[Custom.TICK] == 3
        assert dict(state.counters) == live
        assert state.counters is not engine.state.counters


@pytest.mark.parametrize("impl", IMPLS)
def test_copied_engine_has_its_own_tables_and_registry(impl, request):
    api = _api(impl, request)
    engine = api.Engine(lambda e, b: b)
    calls = []
    engine.add_event_handler(api.Events.ITERATION_COMPLETED(every=2), lambda: calls.append("every2"))
    engine.run([1, 2], max_epochs=1)
    twin = copy.deepcopy(engine)
    assert twin._tables is not engine._tables and twin._twin is engine._twin
    assert twin._event_handlers is not engine._event_handlers
    assert twin.state.counters is not engine.state.counters
    # Editing the copy's registry in place reaches the copy's tables, not the original's.
    twin._event_handlers[api.Events.ITERATION_COMPLETED].clear()
    calls.clear()
    twin.run([1, 2], max_epochs=1)
    assert calls == []
    engine.run([1, 2], max_epochs=1)
    assert calls == ["every2"]
    # The copy is freed by reference counting alone, as the original is (on
    # CPython; other interpreters free it at their next collection).
    import gc
    import platform
    import weakref

    ref = weakref.ref(twin)
    gc.disable()
    try:
        del twin
        if platform.python_implementation() != "CPython":
            gc.collect()
        assert ref() is None
    finally:
        gc.enable()
