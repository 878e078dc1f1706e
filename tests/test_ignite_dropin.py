"""Behaviour tests of the drop-in: fastignite.ignite.Engine among ignite's own code.

The drop-in keeps ignite's Events, State, filters and handlers and swaps only
the loop.  These tests check it from the outside, the way ignite's handlers and
metrics use an engine, and compare every observable result (values, firing
counts, files, learning rates...) with ignite's own Engine running the same
deterministic work.  Tests whose result depends on the loop take the
``backend`` fixture (tests/conftest.py) and so run once per backend twin.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import re
import time

import pytest

pytest.importorskip("ignite", reason="needs pytorch-ignite 0.5.5")
torch = pytest.importorskip("torch", reason="needs torch")

import ignite.engine  # noqa: E402
import ignite.engine.deterministic  # noqa: E402
import ignite.engine.engine  # noqa: E402
import ignite.engine.events  # noqa: E402
from ignite.engine import Events as IgniteEvents  # noqa: E402
from ignite.engine.events import CallableEventWithFilter as IgniteCEWF  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import fastignite  # noqa: E402
import fastignite.engine  # noqa: E402
import fastignite.ignite as fi  # noqa: E402
from fastignite.filters import (  # noqa: E402
    EventFilter,
    Once,
)

TWIN_MODULES = {"pure": "fastignite._dispatch_py", "compiled": "fastignite._dispatch_c"}


def _ignite_class(module_name: str, name: str, cls: type) -> type:
    """ignite's own class, found in the drop-in's MRO: right whatever install() did."""
    (found,) = [c for c in cls.__mro__ if c.__module__ == module_name and c.__name__ == name]
    return found


IgniteEngine = _ignite_class("ignite.engine.engine", "Engine", fi.Engine)
IgniteDeterministicEngine = _ignite_class("ignite.engine.deterministic", "DeterministicEngine", fi.DeterministicEngine)

# Where install() may put the drop-in's classes.
PATCH_POINTS = (
    (ignite.engine, "Engine", IgniteEngine),
    (ignite.engine, "DeterministicEngine", IgniteDeterministicEngine),
    (ignite.engine.engine, "Engine", IgniteEngine),
    (ignite.engine.deterministic, "DeterministicEngine", IgniteDeterministicEngine),
)


def _assert_ignite_restored() -> None:
    for module, name, original in PATCH_POINTS:
        assert getattr(module, name) is original, f"{module.__name__}.{name} is {getattr(module, name)!r}"


@pytest.fixture(autouse=True)
def _uninstall_after_test():
    """Whatever a test does (and however it ends), ignite's classes are back afterwards."""
    yield
    fi.uninstall()
    assert not fi.installed()
    _assert_ignite_restored()


@pytest.fixture
def dropin_installed():
    fi.install()
    try:
        yield
    finally:
        fi.uninstall()


@contextlib.contextmanager
def engines_of(dropin: bool):
    """With dropin, ignite code run inside builds the drop-in's engines."""
    if not dropin:
        yield
        return
    fi.install()
    try:
        yield
    finally:
        fi.uninstall()


def _assert_engine_kind(engine: object, dropin: bool) -> None:
    if dropin:
        assert isinstance(engine, fi.Engine)
    else:
        assert type(engine) in (IgniteEngine, IgniteDeterministicEngine)


# -- small deterministic work ---------------------------------------------------------


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(4, 3)


def make_data(n_batches: int = 4, batch_size: int = 5, seed: int = 1) -> list:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch_size, 4, generator=g), torch.randint(0, 3, (batch_size,), generator=g))
        for _ in range(n_batches)
    ]


def make_trainer(dropin: bool, momentum: float = 0.0, lr: float = 0.1, seed: int = 0):
    model = make_model(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    with engines_of(dropin):
        trainer = ignite.engine.create_supervised_trainer(model, optimizer, nn.CrossEntropyLoss())
    _assert_engine_kind(trainer, dropin)
    return trainer, model, optimizer


def both(observe, *args, **kwargs):
    """observe(dropin, ...) for plain ignite and for the drop-in; asserts they agree."""
    expected = observe(False, *args, **kwargs)
    actual = observe(True, *args, **kwargs)
    assert actual == expected
    return actual


def params_of(model: nn.Module) -> list:
    return [p.detach().clone().tolist() for p in model.parameters()]


# -- 1. types and re-exports ----------------------------------------------------------


def test_engine_is_an_ignite_engine():
    engine = fi.Engine(lambda e, b: b)
    assert isinstance(engine, ignite.engine.Engine)
    assert isinstance(engine, IgniteEngine)
    assert isinstance(engine, fastignite.Engine)
    assert isinstance(engine.state, ignite.engine.State)
    assert isinstance(engine.state, ignite.engine.events.State)


def test_deterministic_engine_is_ignites():
    engine = fi.DeterministicEngine(lambda e, b: b)
    assert isinstance(engine, ignite.engine.DeterministicEngine)
    assert isinstance(engine, IgniteDeterministicEngine)
    assert isinstance(engine, fi.Engine)
    assert isinstance(engine, ignite.engine.Engine)
    assert isinstance(engine.state, ignite.engine.State)


def test_module_reexports_ignites_own_objects():
    from ignite.engine import events as ig_events

    assert fi.Events is ig_events.Events
    assert fi.EventEnum is ig_events.EventEnum
    assert fi.CallableEventWithFilter is ig_events.CallableEventWithFilter
    assert fi.EventsList is ig_events.EventsList
    assert fi.RemovableEventHandle is ig_events.RemovableEventHandle
    assert fi.Events.ITERATION_COMPLETED is ig_events.Events.ITERATION_COMPLETED
    # not fastignite's own
    assert fi.Events is not fastignite.Events
    assert issubclass(fi.State, ig_events.State)


def test_state_after_run_is_ignites_state_with_ignites_values(backend):
    twin = importlib.import_module(TWIN_MODULES[backend])
    assert fi.DeterministicEngine(lambda e, b: b)._twin is twin
    engine = fi.Engine(lambda e, b: b * 2)
    assert engine._twin is twin  # the fixture's twin runs the drop-in too
    state = engine.run([1, 2, 3], max_epochs=2)
    assert isinstance(state, ignite.engine.State)
    assert (state.iteration, state.epoch, state.output, state.epoch_length, state.max_epochs) == (6, 2, 6, 3, 2)
    assert state.get_event_attrib_value(fi.Events.ITERATION_COMPLETED) == 6
    assert state.get_event_attrib_value(fi.Events.EPOCH_COMPLETED) == 2


# -- 2. install / uninstall / installed ---------------------------------------------


def test_not_installed_by_default():
    assert not fi.installed()
    _assert_ignite_restored()


def test_install_swaps_engine_classes(dropin_installed):
    assert fi.installed()
    assert ignite.engine.Engine is fi.Engine
    assert ignite.engine.DeterministicEngine is fi.DeterministicEngine
    assert ignite.engine.engine.Engine is fi.Engine
    assert ignite.engine.deterministic.DeterministicEngine is fi.DeterministicEngine


def test_create_supervised_build_fast_engines(dropin_installed):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = ignite.engine.create_supervised_trainer(model, opt, nn.CrossEntropyLoss())
    evaluator = ignite.engine.create_supervised_evaluator(model)
    det = ignite.engine.create_supervised_trainer(model, opt, nn.CrossEntropyLoss(), deterministic=True)
    assert type(trainer) is fi.Engine
    assert type(evaluator) is fi.Engine
    assert type(det) is fi.DeterministicEngine
    # and they work
    state = trainer.run(make_data(), max_epochs=1)
    assert state.iteration == 4 and isinstance(state.output, float)


def test_uninstall_restores_create_supervised():
    fi.install()
    fi.uninstall()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert type(ignite.engine.create_supervised_trainer(model, opt, nn.CrossEntropyLoss())) is IgniteEngine
    assert type(ignite.engine.create_supervised_evaluator(model)) is IgniteEngine
    det = ignite.engine.create_supervised_trainer(model, opt, nn.CrossEntropyLoss(), deterministic=True)
    assert type(det) is IgniteDeterministicEngine


def test_install_twice_is_idempotent_and_uninstall_restores():
    fi.install()
    fi.install()
    assert fi.installed()
    assert ignite.engine.Engine is fi.Engine
    assert ignite.engine.DeterministicEngine is fi.DeterministicEngine
    fi.uninstall()
    assert not fi.installed()
    _assert_ignite_restored()
    # a second uninstall changes nothing
    fi.uninstall()
    assert not fi.installed()
    _assert_ignite_restored()


def test_install_uninstall_cycles():
    for _ in range(3):
        fi.install()
        assert ignite.engine.Engine is fi.Engine
        fi.uninstall()
        _assert_ignite_restored()


# -- 3. filter translation -------------------------------------------------------------


def _filter_cases():
    cases = []
    for every in [2, 3, 4, 5, 6, 7, 10, 13, 64, 100, 1000]:
        cases.append({"every": every})
    for once in [1, 3, 7, 50, 200, 250, [1], [2, 5, 9], [9, 5, 2], [3, 3, 7], (4, 8), range(1, 30, 7)]:
        cases.append({"once": once})
    for before in [0, 1, 2, 5, 50]:
        cases.append({"before": before})
    for after in [0, 1, 5, 50]:
        cases.append({"after": after})
    for before, after in [(10, 2), (3, 5), (0, 0), (6, 5), (7, 5), (200, 0), (1, 0)]:
        cases.append({"before": before, "after": after})
    for every, before, after in [
        (2, None, 3), (3, 20, None), (4, 30, 5), (1, None, 2), (1, 10, None), (5, 0, None),
        (7, None, 0), (3, 0, 0), (1000, None, 10), (2, 9, 1), (6, 100, 7), (3, 4, 5),
    ]:  # fmt: skip
        cases.append({k: v for k, v in (("every", every), ("before", before), ("after", after)) if v is not None})
    np = pytest.importorskip("numpy", reason="needs numpy")
    cases.append({"every": np.int64(3)})
    cases.append({"every": np.int64(4), "before": np.int64(40), "after": np.int64(4)})
    cases.append({"before": np.int32(9), "after": np.int16(2)})
    cases.append({"every": True, "after": 3})
    cases.append({"before": 12, "after": False})
    return cases


FILTER_CASES = _filter_cases()
COUNTS = list(range(-3, 201)) + [499, 500, 1000, 1001, 10**6, 2**40, 2**40 + 1]


def _unshared(kwargs):
    """kwargs with each list copied: the parameter list holds its own lists,
    and a once= list that someone else holds keeps ignite's closure."""
    return {k: list(v) if isinstance(v, list) else v for k, v in kwargs.items()}


@pytest.mark.parametrize("kwargs", FILTER_CASES, ids=repr)
def test_native_filter_decides_as_ignites(kwargs):
    ignite_filter = IgniteEvents.ITERATION_COMPLETED(**_unshared(kwargs)).filter
    assert callable(ignite_filter)
    native = fi.native_filter(ignite_filter)
    assert native is not ignite_filter
    assert isinstance(native, EventFilter), f"{kwargs}: {native!r} is not a fastignite filter"
    engine = fi.Engine(lambda e, b: None)
    decisions_ignite = [bool(ignite_filter(engine, n)) for n in COUNTS]
    decisions_native = [bool(native(engine, n)) for n in COUNTS]
    diffs = [(n, a, b) for n, a, b in zip(COUNTS, decisions_ignite, decisions_native) if a != b]
    assert not diffs, f"{kwargs}: (count, ignite, native) {diffs[:10]}"


@pytest.mark.parametrize("kwargs", FILTER_CASES, ids=repr)
def test_native_filter_next_due_is_consistent(kwargs):
    """The scheduling bound never skips a count at which ignite's filter passes."""
    ignite_filter = IgniteEvents.ITERATION_COMPLETED(**_unshared(kwargs)).filter
    native = fi.native_filter(ignite_filter)
    passing = [n for n in range(201) if ignite_filter(None, n)]
    for count in range(200):
        due = native.next_due(count)
        later = [n for n in passing if n > count]
        if later:
            assert due <= later[0], (kwargs, count, due, later[0])
        assert due > count


def test_native_filter_of_direct_factories():
    """Factories called directly (as ignite code may do) are translated too."""
    engine = fi.Engine(lambda e, b: None)
    made = [
        IgniteCEWF.every_event_filter(3),
        IgniteCEWF.once_event_filter([4, 11]),
        IgniteCEWF.before_and_after_event_filter(None, None),
        IgniteCEWF.before_and_after_event_filter(9, None),
        IgniteCEWF.before_and_after_event_filter(None, 9),
        IgniteCEWF.every_before_and_after_event_filter(4, None, None),
        IgniteCEWF.every_before_and_after_event_filter(2, 15, 3),
    ]
    for f in made:
        native = fi.native_filter(f)
        assert isinstance(native, EventFilter), f
        assert [native(engine, n) for n in COUNTS] == [f(engine, n) for n in COUNTS], f


def test_every_one_has_no_filter():
    event = IgniteEvents.ITERATION_COMPLETED(every=1)
    assert event.filter is None
    assert fi.native_filter(None) is None


def test_user_filters_are_returned_unchanged():
    def my_filter(engine, event):
        return event % 3 == 1

    def wrapper(engine, event):  # same name as ignite's closures, different code
        return True

    lam = lambda engine, event: event > 2  # noqa: E731
    custom = fastignite.every_filter(4)
    for f in (my_filter, wrapper, lam, custom):
        assert fi.native_filter(f) is f
        assert fi.native_filter(IgniteEvents.ITERATION_COMPLETED(event_filter=f).filter) is f
    # objects without __code__
    thing = object()
    assert fi.native_filter(thing) is thing


def test_once_list_mutated_before_registration_is_read_at_registration():
    once = [3]
    event = IgniteEvents.ITERATION_COMPLETED(once=once)
    once.append(8)
    native = fi.native_filter(event.filter)
    assert [n for n in range(20) if native(None, n)] == [3, 8] == [n for n in range(20) if event.filter(None, n)]


def _registered_filter(engine, event):
    (entry,) = engine._event_handlers[event]
    return getattr(entry[0], "filter", None)


@pytest.mark.parametrize(
    "kwargs",
    [{"every": 3}, {"once": [2, 9]}, {"before": 5}, {"after": 4}, {"every": 2, "before": 11, "after": 1}],
    ids=repr,
)
def test_engine_schedules_translated_filter(kwargs):
    engine = fi.Engine(lambda e, b: None)
    event = IgniteEvents.ITERATION_COMPLETED(**_unshared(kwargs))
    engine.add_event_handler(event, lambda e: None)
    assert isinstance(_registered_filter(engine, event), EventFilter)


def test_engine_keeps_user_filter():
    def my_filter(engine, event):
        return event in (2, 3)

    engine = fi.Engine(lambda e, b: None)
    event = IgniteEvents.ITERATION_COMPLETED(event_filter=my_filter)
    fired = []
    engine.add_event_handler(event, lambda e: fired.append(e.state.iteration))
    assert _registered_filter(engine, event) is my_filter
    engine.run(range(5))
    assert fired == [2, 3]


FIRING_CASES = [(IgniteEvents.ITERATION_COMPLETED, {"every": k}) for k in (1, 2, 3, 4, 5, 6, 7, 13, 52, 100)] + [
    (IgniteEvents.ITERATION_COMPLETED, {"once": 7}),
    (IgniteEvents.ITERATION_COMPLETED, {"once": [1, 13, 14, 52, 60]}),
    (IgniteEvents.ITERATION_STARTED, {"before": 6}),
    (IgniteEvents.ITERATION_STARTED, {"after": 47}),
    (IgniteEvents.ITERATION_COMPLETED, {"every": 5, "after": 3, "before": 40}),
    (IgniteEvents.ITERATION_COMPLETED, {"before": 0}),
    (IgniteEvents.EPOCH_COMPLETED, {"every": 2}),
    (IgniteEvents.EPOCH_STARTED, {"once": [1, 3]}),
    (IgniteEvents.EPOCH_COMPLETED, {"after": 1, "before": 4}),
    (IgniteEvents.GET_BATCH_COMPLETED, {"every": 9}),
]


def _firings(engine_cls, event, kwargs):
    engine = engine_cls(lambda e, b: b)
    fired = []
    engine.add_event_handler(event(**kwargs), lambda e: fired.append((e.state.epoch, e.state.iteration)))
    engine.run(range(13), max_epochs=4)
    return fired


@pytest.mark.parametrize("event,kwargs", FIRING_CASES, ids=lambda x: repr(x))
def test_filtered_handler_fires_as_on_ignites_engine(backend, event, kwargs):
    expected = _firings(IgniteEngine, event, kwargs)
    assert _firings(fi.Engine, event, kwargs) == expected


def test_every_k_fires_at_multiples_of_k(backend):
    for k in (1, 2, 3, 7, 13):
        fired = [it for _, it in _firings(fi.Engine, IgniteEvents.ITERATION_COMPLETED, {"every": k})]
        assert fired == list(range(k, 53, k))


def test_ored_and_many_filtered_handlers_fire_as_on_ignite(backend):
    def observe(engine_cls):
        engine = engine_cls(lambda e, b: b)
        log = []
        for k in (2, 3, 5):
            engine.add_event_handler(
                IgniteEvents.ITERATION_COMPLETED(every=k) | IgniteEvents.EPOCH_COMPLETED,
                lambda e, k=k: log.append((k, e.last_event_name.name, e.state.iteration)),
            )
        engine.add_event_handler(IgniteEvents.COMPLETED(once=1), lambda e: log.append(("done", e.state.epoch)))
        engine.run(range(7), max_epochs=3)
        return log

    assert observe(fi.Engine) == observe(IgniteEngine)


class _CustomEvents(fi.EventEnum):
    BACKWARD_DONE = "backward_done"


def test_custom_event_with_attr_filters_as_on_ignite(backend):
    def observe(engine_cls):
        def step(engine, batch):
            for _ in range(batch):
                engine.state.backwards += 1
                engine.fire_event(_CustomEvents.BACKWARD_DONE)

        engine = engine_cls(step)
        engine.register_events(*_CustomEvents, event_to_attr={_CustomEvents.BACKWARD_DONE: "backwards"})
        engine.state.backwards = 0
        fired = []
        engine.add_event_handler(_CustomEvents.BACKWARD_DONE(every=3), lambda e: fired.append(e.state.backwards))
        engine.add_event_handler(_CustomEvents.BACKWARD_DONE(once=[2, 5]), lambda e: fired.append(-e.state.backwards))
        engine.run([1, 2, 3, 1, 4], max_epochs=2)
        return fired

    expected = observe(IgniteEngine)
    assert expected  # not vacuous
    assert observe(fi.Engine) == expected


def test_remove_filtered_handler(backend):
    def observe(engine_cls):
        engine = engine_cls(lambda e, b: b)
        fired = []

        def handler(e):
            fired.append(e.state.iteration)
            if e.state.iteration >= 6:
                e.remove_event_handler(handler, IgniteEvents.ITERATION_COMPLETED)

        handle = engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(every=2), handler)
        assert engine.has_event_handler(handler)
        assert engine.has_event_handler(handler, IgniteEvents.ITERATION_COMPLETED)
        engine.run(range(10))
        after_run = engine.has_event_handler(handler)
        handle.remove()
        return fired, after_run

    assert observe(fi.Engine) == observe(IgniteEngine) == ([2, 4, 6], False)


def test_once_list_mutated_after_registration(backend):
    def observe(engine_cls):
        engine = engine_cls(lambda e, b: b)
        once = [2]
        fired = []
        engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(once=once), lambda e: fired.append(e.state.iteration))
        once.append(5)
        engine.run(range(8))
        return fired

    assert observe(IgniteEngine) == [2, 5]
    assert observe(fi.Engine) == [2, 5]


def test_once_list_only_the_filter_holds_is_scheduled():
    # ignite reads its once= list at every firing; the drop-in schedules a
    # fastignite Once only when nobody else can change that list.
    # Not inside the assert: pytest's rewriting would hold the literal list.
    from_int = fi.native_filter(IgniteEvents.ITERATION_COMPLETED(once=3).filter)
    from_literal = fi.native_filter(IgniteEvents.ITERATION_COMPLETED(once=[3, 4]).filter)
    from_tuple = fi.native_filter(IgniteEvents.ITERATION_COMPLETED(once=(3, 4)).filter)
    assert isinstance(from_int, Once) and isinstance(from_literal, Once) and isinstance(from_tuple, Once)
    held = [3, 4]
    kept = IgniteEvents.ITERATION_COMPLETED(once=held).filter
    assert fi.native_filter(kept) is kept


def _moving_state_scenarios():
    def iteration_reset(engine_cls):
        engine = engine_cls(lambda e, b: b)
        fired = []
        engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(every=3), lambda e: fired.append(e.state.iteration))
        engine.add_event_handler(
            IgniteEvents.ITERATION_COMPLETED(once=[2, 4]), lambda e: fired.append(-e.state.iteration)
        )
        engine.add_event_handler(
            IgniteEvents.ITERATION_COMPLETED(after=2, before=5), lambda e: fired.append(100 + e.state.iteration)
        )
        engine.add_event_handler(
            IgniteEvents.EPOCH_COMPLETED, lambda e: setattr(e.state, "iteration", 0) if e.state.epoch == 1 else None
        )
        engine.run(range(5), max_epochs=3)
        return fired

    def load_state_dict_between_runs(engine_cls):
        engine = engine_cls(lambda e, b: b)
        fired = []
        engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(every=4), lambda e: fired.append(e.state.iteration))
        engine.add_event_handler(
            IgniteEvents.EPOCH_COMPLETED(every=2), lambda e: fired.append(("epoch", e.state.epoch))
        )
        engine.run(range(5), max_epochs=3)
        engine.load_state_dict({"iteration": 3, "epoch_length": 5, "max_epochs": 4})
        engine.run(range(5))
        engine.state.max_epochs = None
        engine.run(range(5), max_epochs=2)
        return fired

    def custom_count_going_back(engine_cls):
        def step(engine, batch):
            for _ in range(3):
                engine.state.backwards += 1
                engine.fire_event(_CustomEvents.BACKWARD_DONE)

        engine = engine_cls(step)
        engine.register_events(*_CustomEvents, event_to_attr={_CustomEvents.BACKWARD_DONE: "backwards"})
        engine.state.backwards = 0
        fired = []
        engine.add_event_handler(IgniteEvents.EPOCH_STARTED, lambda e: setattr(e.state, "backwards", 0))
        engine.add_event_handler(_CustomEvents.BACKWARD_DONE(every=4), lambda e: fired.append(e.state.backwards))
        engine.add_event_handler(_CustomEvents.BACKWARD_DONE(once=[2, 5]), lambda e: fired.append(-e.state.backwards))
        engine.run(range(3), max_epochs=3)
        return fired

    def handler_added_during_run(engine_cls):
        engine = engine_cls(lambda e, b: b)
        fired = []

        def adder(e):
            e.add_event_handler(
                IgniteEvents.ITERATION_COMPLETED(every=2), lambda e: fired.append(("new", e.state.iteration))
            )

        engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(once=3), adder)
        engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(every=5), lambda e: fired.append(e.state.iteration))
        engine.run(range(12))
        return fired

    return [iteration_reset, load_state_dict_between_runs, custom_count_going_back, handler_added_during_run]


@pytest.mark.parametrize("scenario", _moving_state_scenarios(), ids=lambda f: f.__name__)
def test_filters_follow_state_changes_as_on_ignite(backend, scenario):
    expected = scenario(IgniteEngine)
    assert expected
    assert scenario(fi.Engine) == expected


CONTROL_ACTIONS = {
    "terminate": lambda e: e.terminate(),
    "terminate_skip_completed": lambda e: e.terminate(skip_completed=True),
    "terminate_epoch": lambda e: e.terminate_epoch(),
    "terminate_epoch_skip": lambda e: e.terminate_epoch(skip_epoch_completed=True),
    "interrupt": lambda e: e.interrupt(),
}


@pytest.mark.parametrize("at", [4, 6])
@pytest.mark.parametrize("action", sorted(CONTROL_ACTIONS))
def test_control_flow_event_log_as_on_ignite(backend, action, at):
    """Every event, with its arguments, in the order ignite fires it, when a handler
    stops the run (what EarlyStopping, TerminateOnNan, TimeLimit... do)."""

    def observe(engine_cls):
        engine = engine_cls(lambda e, b: b)
        log = []
        for event in IgniteEvents:
            if event is not IgniteEvents.EXCEPTION_RAISED:
                engine.add_event_handler(
                    event,
                    lambda e, *a, event=event, **k: log.append((event.name, e.state.epoch, e.state.iteration, a, k)),
                )
        engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(once=at), CONTROL_ACTIONS[action])
        state = engine.run(range(4), max_epochs=3)
        log.append(("returned", state.epoch, state.iteration, engine.should_terminate))
        state = engine.run(range(4), max_epochs=3)
        log.append(("returned", state.epoch, state.iteration))
        return log

    expected = observe(IgniteEngine)
    assert observe(fi.Engine) == expected


# -- 4. ignite's handlers and metrics on the drop-in --------------------------------------


def test_metrics_attach_detach_and_values(backend):
    from ignite.metrics import Accuracy, Loss

    eval_data = make_data(n_batches=6, seed=7)

    def observe(dropin):
        model = make_model()
        with engines_of(dropin):
            evaluator = ignite.engine.create_supervised_evaluator(
                model, metrics={"acc": Accuracy(), "loss": Loss(nn.CrossEntropyLoss())}
            )
        _assert_engine_kind(evaluator, dropin)
        first = dict(evaluator.run(eval_data).metrics)

        extra = Accuracy()
        assert not extra.is_attached(evaluator)
        extra.attach(evaluator, "acc2")
        assert extra.is_attached(evaluator)
        second = dict(evaluator.run(eval_data[:3]).metrics)
        extra.detach(evaluator)
        assert not extra.is_attached(evaluator)
        evaluator.state.metrics.clear()
        third = dict(evaluator.run(eval_data[3:]).metrics)
        return first, second, third

    first, second, third = both(observe)
    assert set(first) == {"acc", "loss"}
    assert set(second) == {"acc", "loss", "acc2"}
    assert second["acc"] == second["acc2"]
    assert set(third) == {"acc", "loss"}
    assert 0.0 <= first["acc"] <= 1.0 and first["loss"] > 0


def test_metric_with_batch_wise_usage(backend):
    """A metric attached with ignite's batch-wise usage updates and completes each iteration."""
    from ignite.metrics import Accuracy
    from ignite.metrics.metric import BatchWise

    def observe(dropin):
        model = make_model()
        with engines_of(dropin):
            evaluator = ignite.engine.create_supervised_evaluator(model)
        Accuracy().attach(evaluator, "acc", usage=BatchWise())
        seen = []
        evaluator.add_event_handler(IgniteEvents.ITERATION_COMPLETED, lambda e: seen.append(e.state.metrics["acc"]))
        evaluator.run(make_data(n_batches=5, seed=3))
        return seen

    seen = both(observe)
    assert len(seen) == 5


def test_running_average_on_trainer_output(backend):
    from ignite.metrics import RunningAverage

    def observe(dropin):
        trainer, model, _ = make_trainer(dropin)
        RunningAverage(output_transform=lambda x: x, alpha=0.9).attach(trainer, "avg_loss")
        averages = []
        trainer.add_event_handler(
            IgniteEvents.ITERATION_COMPLETED, lambda e: averages.append(e.state.metrics["avg_loss"])
        )
        trainer.run(make_data(), max_epochs=3)
        return averages, params_of(model)

    averages, _ = both(observe)
    assert len(averages) == 12


def test_model_checkpoint_and_checkpoint_with_disk_saver(backend, tmp_path):
    from ignite.handlers import Checkpoint, DiskSaver, ModelCheckpoint, global_step_from_engine

    data = make_data()

    def observe(dropin):
        root = tmp_path / ("dropin" if dropin else "ignite")
        trainer, model, optimizer = make_trainer(dropin, momentum=0.9)
        model_ckpt = ModelCheckpoint(
            str(root / "models"), "net", n_saved=2, global_step_transform=global_step_from_engine(trainer)
        )
        trainer.add_event_handler(IgniteEvents.EPOCH_COMPLETED(every=2), model_ckpt, {"model": model})
        to_save = {"trainer": trainer, "model": model, "optimizer": optimizer}
        full_ckpt = Checkpoint(to_save, DiskSaver(str(root / "full"), require_empty=False), n_saved=None)
        trainer.add_event_handler(IgniteEvents.ITERATION_COMPLETED(every=4), full_ckpt)
        at_epoch_4 = {}
        trainer.add_event_handler(
            IgniteEvents.EPOCH_COMPLETED(once=4),
            lambda: at_epoch_4.update({k: v.clone() for k, v in model.state_dict().items()}),
        )
        trainer.run(data, max_epochs=5)
        final = params_of(model)
        files = (sorted(os.listdir(root / "models")), sorted(os.listdir(root / "full")))
        saved_model = torch.load(model_ckpt.last_checkpoint, weights_only=True)
        assert os.path.basename(model_ckpt.last_checkpoint) == "net_model_4.pt"
        assert saved_model.keys() == at_epoch_4.keys()
        assert all(torch.equal(saved_model[k], v) for k, v in at_epoch_4.items())

        # load_objects round trip: resume from the end of epoch 2 and finish the run
        ckpt_path = root / "full" / "checkpoint_8.pt"
        trainer2, model2, optimizer2 = make_trainer(dropin, momentum=0.9, seed=123)
        checkpoint = torch.load(ckpt_path, weights_only=False)
        Checkpoint.load_objects({"trainer": trainer2, "model": model2, "optimizer": optimizer2}, checkpoint)
        resumed_at = (trainer2.state.epoch, trainer2.state.iteration)
        trainer2.run(data, max_epochs=5)
        return files, final, resumed_at, params_of(model2), (trainer2.state.epoch, trainer2.state.iteration)

    files, final, resumed_at, resumed_final, end = both(observe)
    assert files == (
        ["net_model_2.pt", "net_model_4.pt"],
        sorted(f"checkpoint_{i}.pt" for i in (4, 8, 12, 16, 20)),
    )
    assert resumed_at == (2, 8)
    assert end == (5, 20)
    assert resumed_final == final  # momentum state restored: the resumed run ends where the straight one did


def test_checkpoint_with_score_function(backend, tmp_path):
    from ignite.handlers import Checkpoint, DiskSaver

    scores = [0.5, 0.9, 0.2, 0.95, 0.7, 0.1]

    def observe(dropin):
        trainer, model, _ = make_trainer(dropin)
        root = tmp_path / ("dropin" if dropin else "ignite")
        ckpt = Checkpoint(
            {"model": model},
            DiskSaver(str(root), require_empty=False),
            score_function=lambda e: scores[e.state.epoch - 1],
            score_name="val",
            n_saved=2,
        )
        trainer.add_event_handler(IgniteEvents.EPOCH_COMPLETED, ckpt)
        trainer.run(make_data(n_batches=2), max_epochs=6)
        return sorted(os.listdir(root)), [item.filename for item in ckpt._saved]

    files, _ = both(observe)
    assert files == ["model_val=0.9000.pt", "model_val=0.9500.pt"]


def test_early_stopping_terminates_at_same_epoch(backend):
    from ignite.handlers import EarlyStopping

    scores = [1.0, 2.0, 3.0, 2.5, 2.9, 2.0, 5.0, 6.0]

    def observe(dropin):
        cls = fi.Engine if dropin else IgniteEngine
        trainer = cls(lambda e, b: b)
        evaluator = cls(lambda e, b: b)
        stopper = EarlyStopping(patience=2, score_function=lambda e: scores[trainer.state.epoch - 1], trainer=trainer)
        evaluator.add_event_handler(IgniteEvents.COMPLETED, stopper)
        trainer.add_event_handler(IgniteEvents.EPOCH_COMPLETED, lambda: evaluator.run([0, 1]))
        epochs = []
        trainer.add_event_handler(IgniteEvents.EPOCH_COMPLETED, lambda e: epochs.append(e.state.epoch))
        state = trainer.run(range(3), max_epochs=len(scores))
        return state.epoch, state.iteration, epochs, stopper.counter

    assert both(observe) == (5, 15, [1, 2, 3, 4, 5], 2)


def test_progress_bar_runs_and_closes(backend):
    from ignite.handlers import ProgressBar

    def observe(dropin):
        trainer, _, _ = make_trainer(dropin)
        stream = io.StringIO()
        pbar = ProgressBar(persist=True, file=stream, ncols=80)
        pbar.attach(trainer, output_transform=lambda loss: {"loss": loss})
        epoch_bar_stream = io.StringIO()
        epoch_bar = ProgressBar(persist=False, file=epoch_bar_stream)
        epoch_bar.attach(trainer, event_name=IgniteEvents.EPOCH_COMPLETED, closing_event_name=IgniteEvents.COMPLETED)
        trainer.add_event_handler(IgniteEvents.EPOCH_COMPLETED(once=2), lambda: pbar.log_message("halfway"))
        trainer.run(make_data(), max_epochs=3)
        text = stream.getvalue()
        return pbar.pbar is None, epoch_bar.pbar is None, "halfway" in text, "Epoch [3/3]" in text, "4/4" in text

    assert both(observe) == (True, True, True, True, True)


def test_timer(backend):
    from ignite.handlers import Timer

    def observe(dropin):
        cls = fi.Engine if dropin else IgniteEngine
        engine = cls(lambda e, b: time.sleep(0.001))
        per_iter = Timer(average=True)
        per_iter.attach(
            engine,
            start=IgniteEvents.EPOCH_STARTED,
            resume=IgniteEvents.ITERATION_STARTED,
            pause=IgniteEvents.ITERATION_COMPLETED,
            step=IgniteEvents.ITERATION_COMPLETED,
        )
        total = Timer()
        total.attach(engine, start=IgniteEvents.STARTED, pause=IgniteEvents.COMPLETED)
        engine.run(range(5), max_epochs=2)
        assert per_iter.value() >= 0.001
        assert total.value() >= 0.01
        assert per_iter.value() < total.value()
        return per_iter.step_count, total.running

    assert both(observe) == (5, False)


def _profiled_engine(cls, fired):
    engine = cls(lambda e, b: sum(range(200)))

    def log_iteration(engine):
        fired.append(("it", engine.state.iteration))

    def log_every_three(engine):
        fired.append(("3", engine.state.iteration))

    def log_epoch(engine):
        fired.append(("ep", engine.state.epoch))

    engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED, log_iteration)
    engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(every=3), log_every_three)
    engine.add_event_handler(IgniteEvents.EPOCH_COMPLETED, log_epoch)
    return engine


def test_basic_time_profiler(backend):
    from ignite.handlers import BasicTimeProfiler

    def observe(dropin):
        fired = []
        engine = _profiled_engine(fi.Engine if dropin else IgniteEngine, fired)
        profiler = BasicTimeProfiler()
        profiler.attach(engine)
        engine.run(range(6), max_epochs=2)
        results = profiler.get_results()
        printed = BasicTimeProfiler.print_results(results)
        assert isinstance(printed, str) and "Processing function" in printed
        # Every iteration's first and last handlers ran: each slot was timed.
        assert bool((profiler.processing_times > 0).all())
        assert bool((profiler.dataflow_times > 0).all())
        assert bool((profiler.event_handlers_times[IgniteEvents.ITERATION_COMPLETED] > 0).all())
        assert bool((profiler.event_handlers_times[IgniteEvents.EPOCH_COMPLETED] > 0).all())
        # its own start-up handlers are gone again
        leftovers = [
            h for e in engine._event_handlers for h, _, _ in engine._event_handlers[e] if "BasicTimeProfiler" in repr(h)
        ]
        return (
            fired,
            results["event_handlers_names"],
            list(results["event_handlers_stats"]),
            len(profiler.processing_times),
            len(leftovers),
        )

    fired, names, stats_keys, n, leftovers = both(observe)
    assert n == 12
    assert names["ITERATION_COMPLETED_names"] == [
        "_profiled_engine.<locals>.log_iteration",
        "_profiled_engine.<locals>.log_every_three",
    ]
    assert fired.count(("ep", 2)) == 1 and [x for x in fired if x[0] == "3"] == [("3", i) for i in (3, 6, 9, 12)]


def test_handlers_time_profiler(backend, capsys):
    from ignite.handlers import HandlersTimeProfiler

    def observe(dropin):
        fired = []
        engine = _profiled_engine(fi.Engine if dropin else IgniteEngine, fired)
        profiler = HandlersTimeProfiler()
        profiler.attach(engine)
        engine.run(range(6), max_epochs=2)
        results = profiler.get_results()
        capsys.readouterr()
        HandlersTimeProfiler.print_results(results)
        printed = capsys.readouterr().out
        rows = [(row[0], row[1]) for row in results if row[0] not in ("Total", "Processing", "Dataflow")]
        counts = {
            (getattr(e, "name", e), h): len(times)
            for e, per_handler in profiler.event_handlers_times.items()
            for h, times in per_handler.items()
            if "every_three" not in h  # filtered: timed only above a threshold
        }
        wrapped_left = [
            h
            for e in engine._event_handlers
            for h, _, _ in engine._event_handlers[e]
            if hasattr(h, "_profiler_original")
        ]
        first_run = list(fired)
        # the handlers were put back as they were: a second run fires them as the first did
        fired.clear()
        engine.run(range(6), max_epochs=2)
        assert "log_every_three" in printed and "Processing" in printed
        return rows, counts, first_run, fired, len(wrapped_left)

    rows, counts, first_run, second_run, wrapped_left = both(observe)
    assert ("_profiled_engine.<locals>.log_every_three", "ITERATION_COMPLETED") in rows
    assert ("_profiled_engine.<locals>.log_epoch", "EPOCH_COMPLETED") in rows
    assert counts[("ITERATION_COMPLETED", "_profiled_engine.<locals>.log_iteration")] == 12
    assert counts[("EPOCH_COMPLETED", "_profiled_engine.<locals>.log_epoch")] == 2
    assert [x for x in first_run if x[0] == "3"] == [("3", i) for i in (3, 6, 9, 12)]
    assert second_run == first_run
    assert wrapped_left == 0


def test_param_schedulers_give_ignites_lr_sequence(backend):
    from ignite.handlers import LinearCyclicalScheduler, LRScheduler, PiecewiseLinear

    def observe(dropin, kind):
        trainer, model, optimizer = make_trainer(dropin, lr=0.1)
        if kind == "cyclical":
            sched = LinearCyclicalScheduler(optimizer, "lr", start_value=0.05, end_value=0.5, cycle_size=6)
            trainer.add_event_handler(IgniteEvents.ITERATION_STARTED, sched)
        elif kind == "piecewise":
            sched = PiecewiseLinear(optimizer, "lr", milestones_values=[(0, 0.0), (5, 0.4), (12, 0.1)])
            trainer.add_event_handler(IgniteEvents.ITERATION_STARTED, sched)
        else:
            sched = LRScheduler(torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5))
            trainer.add_event_handler(IgniteEvents.ITERATION_COMPLETED, sched)
        lrs = []
        trainer.add_event_handler(IgniteEvents.ITERATION_COMPLETED, lambda: lrs.append(optimizer.param_groups[0]["lr"]))
        trainer.run(make_data(), max_epochs=4)
        return lrs, params_of(model)

    for kind in ("cyclical", "piecewise", "lrscheduler"):
        lrs, _ = both(observe, kind)
        assert len(lrs) == 16 and len(set(lrs)) > 2, (kind, lrs)


def test_terminate_on_nan(backend):
    from ignite.handlers import TerminateOnNan

    def observe(dropin):
        cls = fi.Engine if dropin else IgniteEngine

        def step(engine, batch):
            return float("nan") if engine.state.iteration == 6 else torch.tensor([1.0, float(batch)])

        engine = cls(step)
        events = []
        for ev in (IgniteEvents.TERMINATE, IgniteEvents.COMPLETED, IgniteEvents.EPOCH_COMPLETED):
            engine.add_event_handler(ev, lambda e, ev=ev: events.append((ev.name, e.state.iteration)))
        engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED, TerminateOnNan())
        state = engine.run(range(4), max_epochs=3)
        return state.iteration, state.epoch, events, engine.should_terminate

    iteration, epoch, events, _ = both(observe)
    assert (iteration, epoch) == (6, 2)
    assert ("TERMINATE", 6) in events and ("EPOCH_COMPLETED", 4) in events


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _without_times(message: str) -> str:
    message = re.sub(r"ETA: \S+", "ETA: _", message)
    message = re.sub(r"\d+:\d\d:\d\d(\.\d+)?", "_", message)
    return re.sub(r"\d+\.\d+ s", "_ s", message)


def test_fbresearch_logger(backend):
    from ignite.handlers.fbresearch_logger import FBResearchLogger

    def observe(dropin):
        trainer, _, optimizer = make_trainer(dropin)
        logger = logging.getLogger(f"fastignite-test-fbr-{int(dropin)}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        sink = _ListHandler()
        logger.addHandler(sink)
        try:
            FBResearchLogger(logger, show_output=True).attach(trainer, name="Train", every=3, optimizer=optimizer)
            trainer.run(make_data(n_batches=5), max_epochs=2)
        finally:
            logger.removeHandler(sink)
        return [_without_times(m) for m in sink.messages]

    messages = both(observe)
    iteration_lines = [m for m in messages if m.startswith("Epoch [")]
    assert [m.split(":")[0] for m in iteration_lines] == [
        "Epoch [1/2]  [3/5]", "Epoch [2/2]  [1/5]", "Epoch [2/2]  [4/5]"
    ]  # fmt: skip
    assert any("run completed" in m for m in messages)


def test_epoch_output_store(backend):
    from ignite.handlers import EpochOutputStore

    def observe(dropin):
        cls = fi.Engine if dropin else IgniteEngine
        engine = cls(lambda e, b: b * 10)
        store = EpochOutputStore()
        store.attach(engine, "outputs")
        per_epoch = []
        engine.add_event_handler(IgniteEvents.EPOCH_COMPLETED, lambda e: per_epoch.append(list(e.state.outputs)))
        engine.run([1, 2, 3], max_epochs=2)
        return per_epoch

    assert both(observe) == [[10, 20, 30], [10, 20, 30]]


def test_fastai_lr_finder(backend):
    from ignite.handlers import FastaiLRFinder

    def observe(dropin):
        trainer, model, optimizer = make_trainer(dropin, momentum=0.5)
        before = params_of(model)
        finder = FastaiLRFinder()
        with (
            warnings_ignored(),
            finder.attach(
                trainer, to_save={"model": model, "optimizer": optimizer}, num_iter=10, end_lr=10.0
            ) as finder_trainer,
        ):
            finder_trainer.run(make_data(n_batches=6), max_epochs=3)
        results = finder.get_results()
        restored = params_of(model) == before
        handlers_left = sum(len(entries) for entries in trainer._event_handlers.values())
        trainer.run(make_data(n_batches=6), max_epochs=1)
        return results["lr"], results["loss"], restored, handlers_left, params_of(model)

    lrs, losses, restored, handlers_left, _ = both(observe)
    assert len(lrs) == len(losses) == 11
    assert restored and handlers_left == 0


@contextlib.contextmanager
def warnings_ignored():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_ema_handler(backend):
    from ignite.handlers import EMAHandler

    def observe(dropin):
        trainer, model, _ = make_trainer(dropin)
        ema = EMAHandler(model, momentum=0.01)
        ema.attach(trainer, name="ema_momentum", event=IgniteEvents.ITERATION_COMPLETED(every=2))
        trainer.run(make_data(n_batches=5), max_epochs=2)
        return params_of(ema.ema_model), trainer.state.ema_momentum, params_of(model)

    ema_params, momentum, model_params = both(observe)
    assert momentum == 0.01 and ema_params != model_params


def test_setup_common_training_handlers(backend, tmp_path):
    from ignite.contrib.engines import common
    from ignite.handlers import LRScheduler

    def observe(dropin):
        trainer, model, optimizer = make_trainer(dropin, momentum=0.5)
        out = tmp_path / ("dropin" if dropin else "ignite")
        lrs = []
        trainer.add_event_handler(IgniteEvents.ITERATION_COMPLETED, lambda: lrs.append(optimizer.param_groups[0]["lr"]))
        common.setup_common_training_handlers(
            trainer,
            to_save={"model": model, "optimizer": optimizer},
            save_every_iters=4,
            output_path=str(out),
            lr_scheduler=LRScheduler(torch.optim.lr_scheduler.StepLR(optimizer, 2, 0.5)),
            output_names=["loss"],
            with_pbars=True,
            with_pbar_on_iters=True,
            log_every_iters=2,
            stop_on_nan=True,
            clear_cuda_cache=False,
        )
        trainer.run(make_data(n_batches=6), max_epochs=3)
        return sorted(os.listdir(out)), dict(trainer.state.metrics), lrs, params_of(model)

    files, metrics, lrs, _ = both(observe)
    assert files == ["training_checkpoint_16.pt"] and set(metrics) == {"loss"} and len(set(lrs)) > 2


# -- DeterministicEngine --------------------------------------------------------------


def _deterministic_batches(dropin, terminate_at=None, resume_from=None):
    cls = fi.DeterministicEngine if dropin else IgniteDeterministicEngine
    loader = DataLoader(TensorDataset(torch.arange(20)), batch_size=4, shuffle=True)
    seen = []

    def step(engine, batch):
        seen.append((engine.state.iteration, batch[0].tolist(), torch.rand(1).item()))

    engine = cls(step)
    if terminate_at is not None:
        engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(once=terminate_at), lambda e: e.terminate())
    if resume_from is not None:
        engine.load_state_dict(resume_from)
    torch.manual_seed(17)  # state.seed is drawn at STARTED, on a resumed run too
    engine.run(loader, max_epochs=3)
    return engine, seen


def test_deterministic_engine_same_batches_as_ignite(backend):
    def observe(dropin):
        engine, seen = _deterministic_batches(dropin)
        assert type(engine) is (fi.DeterministicEngine if dropin else IgniteDeterministicEngine)
        return seen

    seen = both(observe)
    assert len(seen) == 15
    epochs = [sorted(sum((b for _, b, _ in seen[i : i + 5]), [])) for i in (0, 5, 10)]
    assert epochs == [list(range(20))] * 3
    assert [b for _, b, _ in seen[:5]] != [b for _, b, _ in seen[5:10]]  # reshuffled each epoch


@pytest.mark.parametrize("terminate_at", [7, 10])
def test_deterministic_engine_resume_from_state_dict(backend, terminate_at):
    def observe(dropin):
        engine, first = _deterministic_batches(dropin, terminate_at=terminate_at)
        assert engine.state.iteration == terminate_at
        sd = engine.state_dict()
        assert "rng_states" in sd
        _, rest = _deterministic_batches(dropin, resume_from=sd)
        return first, rest

    first, rest = both(observe)  # mid-epoch (7) too: the drop-in resumes exactly as ignite does
    assert [it for it, _, _ in first] == list(range(1, terminate_at + 1))
    assert [it for it, _, _ in rest] == list(range(terminate_at + 1, 16))
    if terminate_at % 5 == 0:
        # from an epoch boundary, ignite's resumed run sees the batches of the uninterrupted one
        _, straight = _deterministic_batches(True)
        assert [b for _, b, _ in first + rest] == [b for _, b, _ in straight]


def test_deterministic_trainer_from_create_supervised(backend):
    def observe(dropin):
        model = make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with engines_of(dropin):
            trainer = ignite.engine.create_supervised_trainer(model, opt, nn.CrossEntropyLoss(), deterministic=True)
        assert type(trainer) is (fi.DeterministicEngine if dropin else IgniteDeterministicEngine)
        dataset = TensorDataset(*[torch.cat(t) for t in zip(*make_data(n_batches=4, batch_size=5))])
        torch.manual_seed(5)
        trainer.run(DataLoader(dataset, batch_size=5, shuffle=True), max_epochs=2)
        return trainer.state.iteration, params_of(model)

    iteration, _ = both(observe)
    assert iteration == 8


# -- guard: a failing test still leaves ignite as it was --------------------------------


def test_install_left_by_a_test_is_undone_by_the_fixture(request):
    fi.install()
    assert ignite.engine.Engine is fi.Engine
    # No uninstall here: the autouse fixture must undo it (checked in its teardown)
    # and the next test sees ignite's classes (test_not_installed_after_guard).


def test_not_installed_after_guard():
    assert not fi.installed()
    _assert_ignite_restored()


# -- State.event_to_attr: every way ignite code maps an event to a state attribute -------


class StepEvents(ignite.engine.EventEnum):
    STEP = "step"


@pytest.fixture
def restore_event_to_attr():
    """The mapping is shared by every engine and by ignite: put it back as it was."""
    saved = dict(fastignite.State.event_to_attr)
    yield
    fastignite.State.event_to_attr = saved  # also re-shares it with ignite's State
    assert ignite.engine.events.State.event_to_attr is fastignite.State.event_to_attr


MAPPING_WAYS = (
    "direct-before-engine", "direct-after-engine", "direct-mid-run", "register_events",
    "wholesale-before-engine", "wholesale-after-engine", "dropin-state-wholesale-mid-run", "none",
)  # fmt: skip


def _step_trace(engine_cls, way: str) -> list:
    """Ev.STEP fires twice per iteration, moving state.step_count by 3 from 1;
    a filter on it reads step_count when the mapping is in place, else (ignite
    raises there) it is not installed at all."""
    ignite_state = ignite.engine.events.State

    def map_directly():
        ignite_state.event_to_attr[StepEvents.STEP] = "step_count"

    def map_wholesale(cls=ignite_state):
        cls.event_to_attr = {**cls.event_to_attr, StepEvents.STEP: "step_count"}

    # Each run starts from no mapping of STEP (the mapping is shared: the
    # previous run's is removed), or, for the mid-run ways, from one onto
    # another attribute, which the run then replaces.
    ignite_state.event_to_attr.pop(StepEvents.STEP, None)
    if way.endswith("mid-run"):
        ignite_state.event_to_attr[StepEvents.STEP] = "fires"
    if way == "direct-before-engine":
        map_directly()
    elif way == "wholesale-before-engine":
        map_wholesale()

    fired = [0]

    def step(engine, batch):
        for _ in range(2):
            fired[0] += 1
            # 1, 4, 7...: not a multiple of the firing count, which a filter
            # reading the firing counter instead of step_count would show.
            engine.state.step_count = 3 * fired[0] - 2
            engine.state.fires = fired[0]
            engine.fire_event(StepEvents.STEP)

    engine = engine_cls(step)
    if way == "register_events":
        engine.register_events(*StepEvents, event_to_attr={StepEvents.STEP: "step_count"})
    else:
        engine.register_events(*StepEvents)
    if way == "direct-after-engine":
        map_directly()
    elif way == "wholesale-after-engine":
        map_wholesale()
    elif way in ("direct-mid-run", "dropin-state-wholesale-mid-run"):
        mapper = map_directly if way == "direct-mid-run" else lambda: map_wholesale(fi.State)
        engine.add_event_handler(ignite.engine.Events.ITERATION_COMPLETED(once=3), mapper)
    calls: list = []
    engine.add_event_handler(StepEvents.STEP(every=5), lambda e: calls.append((e.state.iteration, e.state.step_count)))
    try:
        engine.run(range(10), max_epochs=1)
    except RuntimeError as err:  # ignite without a mapping: "Unknown event name"
        calls.append(("raised", str(err)))
    return calls


@pytest.mark.parametrize("way", MAPPING_WAYS)
def test_event_to_attr_mapping_as_ignite(backend, way, restore_event_to_attr):
    expected = _step_trace(IgniteEngine, way)
    got = _step_trace(fi.Engine, way)
    if way == "none":
        # Deliberate difference 3: without a mapping fastignite reads its own
        # firing counter where ignite raises.
        assert len(expected) == 1 and expected[0][1].startswith("Unknown event name")
        assert got == [(3, 13), (5, 28), (8, 43), (10, 58)]
    else:
        assert got == expected
        if way.endswith("mid-run"):  # "fires" until iteration 3, then step_count
            assert got == [(3, 13), (5, 25), (7, 40), (10, 55)]
        else:
            assert got == [(2, 10), (5, 25), (7, 40), (10, 55)]


def test_event_to_attr_is_ignites_own_dict():
    assert ignite.engine.events.State.event_to_attr is fastignite.State.event_to_attr
    assert ignite.engine.State.event_to_attr is fi.State.event_to_attr
