"""The training handlers (EarlyStopping, TerminateOnNan, Timer, ProgressBar,
HandlersTimeProfiler) against ignite's own, run on ignite's Engine as the oracle.

Each fastignite scenario runs on every backend twin (the ``backend`` fixture).
Without pytorch-ignite (or torch, or tqdm) the tests that need it skip; the
others run.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import io
import logging
import subprocess
import sys
import time

import pytest

from fastignite import Engine, EventEnum, Events
from fastignite.handlers import EarlyStopping, HandlersTimeProfiler, ProgressBar, TerminateOnNan, Timer

try:
    import torch
except ImportError:
    torch = None
try:
    from ignite.engine import Engine as IEngine
    from ignite.engine import Events as IEvents
    from ignite.handlers import EarlyStopping as IEarlyStopping
    from ignite.handlers import HandlersTimeProfiler as IProfiler
    from ignite.handlers import ProgressBar as IProgressBar
    from ignite.handlers import TerminateOnNan as ITerminateOnNan
    from ignite.handlers import Timer as ITimer
except ImportError:
    IEngine = IEvents = IEarlyStopping = IProfiler = IProgressBar = ITerminateOnNan = ITimer = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
needs_ignite = pytest.mark.skipif(IEngine is None, reason="needs pytorch-ignite 0.5.5 (the oracle)")
needs_tqdm = pytest.mark.skipif(
    importlib.util.find_spec("tqdm") is None, reason="needs tqdm (ProgressBar draws with it)"
)

BOTH = [
    pytest.param((Engine, Events, EarlyStopping, TerminateOnNan, Timer, ProgressBar), id="fastignite"),
    pytest.param(
        (IEngine, IEvents, IEarlyStopping, ITerminateOnNan, ITimer, IProgressBar), id="ignite", marks=needs_ignite
    ),
]


class _Capture(logging.Handler):
    """The handlers' loggers do not propagate (as ignite's): listen on them directly."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelno, record.getMessage()))


def _capture(logger: logging.Logger) -> _Capture:
    cap = _Capture()
    logger.addHandler(cap)
    return cap


# -- EarlyStopping -----------------------------------------------------------------

SCORES = [0.5, 0.6, 0.6, 0.6, 0.61, 0.55, 0.7, 0.69, 0.695, 0.68, 0.66, 0.5, 0.4]
ES_CASES = [
    dict(patience=2),
    dict(patience=3),
    dict(patience=2, threshold=0.02),
    dict(patience=3, threshold=0.005, cumulative=True),
    dict(patience=2, mode="min"),
    dict(patience=2, threshold=0.05, threshold_mode="rel"),
    dict(patience=len(SCORES)),  # never stops
]


def _early_stopping_run(engine_cls, events, es_cls, kwargs):
    trainer = engine_cls(lambda e, b: None)
    handler = es_cls(score_function=lambda eng: SCORES[eng.state.epoch - 1], trainer=trainer, **kwargs)
    trainer.add_event_handler(events.EPOCH_COMPLETED, handler)
    cap = _capture(handler.logger)
    try:
        trainer.run([0, 1], max_epochs=len(SCORES))
    finally:
        handler.logger.removeHandler(cap)
    return trainer.state.epoch, dict(handler.state_dict()), cap.messages


@needs_ignite
@pytest.mark.parametrize("kwargs", ES_CASES, ids=[str(c) for c in ES_CASES])
def test_early_stopping_matches_ignite(backend, kwargs):
    mine = _early_stopping_run(Engine, Events, EarlyStopping, kwargs)
    oracle = _early_stopping_run(IEngine, IEvents, IEarlyStopping, kwargs)
    assert mine == oracle


def test_early_stopping_deprecated_names_and_positional_args(backend):
    trainer = Engine(lambda e, b: None)
    with pytest.warns(DeprecationWarning) as record:
        h = EarlyStopping(2, lambda e: 0.0, trainer, min_delta=0.1, cumulative_delta=True)
    assert ["'min_delta'" in str(w.message) for w in record] == [True, False]
    assert (h.threshold, h.cumulative) == (0.1, True)
    positional = EarlyStopping(2, lambda e: 0.0, trainer, 0.1, True)
    assert (positional.threshold, positional.cumulative) == (0.1, True)


@needs_ignite
def test_early_stopping_state_dict_round_trip(backend):
    trainer = Engine(lambda e, b: None)
    h = EarlyStopping(3, lambda e: 0.5, trainer)
    h.load_state_dict({"counter": 2, "best_score": 0.7, "threshold_mode": "rel"})
    assert dict(h.state_dict()) == {"counter": 2, "best_score": 0.7, "threshold_mode": "rel"}
    h(trainer)  # 0.5 is no improvement over 0.7: the third miss stops the trainer
    assert trainer.should_terminate
    h.reset()
    assert (h.counter, h.best_score) == (0, None)
    for bad, exc in [([1, 2], TypeError), ({"counter": 1, "threshold_mode": "abs"}, ValueError)]:
        ref = IEarlyStopping(3, lambda e: 1.0, IEngine(lambda e, b: None))
        with pytest.raises(exc) as mine:
            h.load_state_dict(bad)
        with pytest.raises(exc) as oracle:
            ref.load_state_dict(bad)
        assert str(mine.value) == str(oracle.value)


def test_early_stopping_attach_resets_on_started(backend):
    trainer = Engine(lambda e, b: None)
    h = EarlyStopping(5, lambda e: -e.state.epoch, trainer)
    h.attach(trainer, event=Events.EPOCH_COMPLETED)
    trainer.run([0], max_epochs=3)
    assert h.counter == 2
    trainer.run([0], max_epochs=3)  # a new run: reset at STARTED (else 4 misses)
    assert h.counter == 2 and h.best_score == -1


@needs_ignite
@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        (dict(patience=0), ValueError, "patience"),
        (dict(patience="3"), TypeError, "patience"),
        (dict(patience=2, score_function=3), TypeError, "score_function"),
        (dict(patience=2, trainer=object()), TypeError, "trainer"),
        (dict(patience=2, threshold=-0.1), ValueError, "threshold"),
        (dict(patience=2, threshold_mode="x"), ValueError, "threshold_mode"),
        (dict(patience=2, mode="best"), ValueError, "mode"),
    ],
)
def test_early_stopping_argument_errors(backend, kwargs, exc, word):
    args = dict(score_function=lambda e: 0.0, trainer=Engine(lambda e, b: None))
    args.update(kwargs)
    with pytest.raises(exc, match=rf"Argument {word}\b"):
        EarlyStopping(**args)
    if kwargs.get("patience") != "3":  # ignite fails on a str patience with a bare comparison error
        oracle_args = dict(args)
        if oracle_args["trainer"].__class__ is Engine:
            oracle_args["trainer"] = IEngine(lambda e, b: None)
        with pytest.raises(exc):
            IEarlyStopping(**oracle_args)


# -- TerminateOnNan ----------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
NAN_CASES = {
    "float": lambda i: NAN if i == 4 else 1.0 * i,
    "inf": lambda i: -INF if i == 3 else 0.5,
    "tensor": lambda i: torch.tensor([1.0, NAN if i == 5 else 2.0]),
    "list_of_tensors": lambda i: [torch.tensor(1.0), torch.tensor([INF]) if i == 2 else torch.tensor([0.0])],
    "nested_dict": lambda i: {"loss": 1.0, "parts": (2, [3.0, NAN if i == 6 else 4.0]), "name": "x"},
    "finite": lambda i: [i, float(i), torch.ones(2) * i],
}


def _nan_run(engine_cls, events, handler_cls, make_output, output_transform=None):
    engine = engine_cls(lambda e, b: make_output(e.state.iteration))
    handler = handler_cls() if output_transform is None else handler_cls(output_transform)
    engine.add_event_handler(events.ITERATION_COMPLETED, handler)
    cap = _capture(handler.logger)
    try:
        engine.run(range(4), max_epochs=3)
    finally:
        handler.logger.removeHandler(cap)
    return engine.state.iteration, engine.state.epoch, [m for lvl, m in cap.messages if lvl == logging.WARNING]


@needs_ignite
@pytest.mark.parametrize("case", sorted(NAN_CASES))
def test_terminate_on_nan_matches_ignite(backend, case):
    mine = _nan_run(Engine, Events, TerminateOnNan, NAN_CASES[case])
    oracle = _nan_run(IEngine, IEvents, ITerminateOnNan, NAN_CASES[case])
    # The logged message renders the output; tensors render the same, so compare all.
    assert mine == oracle
    assert (mine[0] == 12) == (case == "finite")


@needs_ignite
def test_terminate_on_nan_output_transform_and_bad_output(backend):
    make = lambda i: (NAN if i == 2 else 1.0, 0.0)  # noqa: E731
    assert _nan_run(Engine, Events, TerminateOnNan, make, lambda out: out[1])[0] == 12
    assert _nan_run(Engine, Events, TerminateOnNan, make, lambda out: out[0])[0] == 2
    for cls, eng in [(TerminateOnNan, Engine), (ITerminateOnNan, IEngine)]:  # None: a TypeError in both
        engine = eng(lambda e, b: None)
        engine.add_event_handler(Events.ITERATION_COMPLETED, cls())
        with pytest.raises(TypeError, match="x must contain"):
            engine.run([0])


@needs_tqdm  # ProgressBar() checks that tqdm is installed (without importing it)
def test_importing_handlers_imports_neither_torch_nor_tqdm():
    code = (
        "import sys, math\n"
        "import fastignite.handlers as h\n"
        "from fastignite import Engine, Events\n"
        "for n in h.__all__:\n"
        "    if n in ('EarlyStopping','TerminateOnNan','Timer','ProgressBar','HandlersTimeProfiler'): getattr(h, n)\n"
        "e = Engine(lambda e, b: [1.0, {'a': math.nan if e.state.iteration == 2 else 0.0}])\n"
        "e.add_event_handler(Events.ITERATION_COMPLETED, h.TerminateOnNan())\n"
        "t = h.Timer(average=True).attach(e, step=Events.ITERATION_COMPLETED)\n"
        "p = h.HandlersTimeProfiler(); p.attach(e)\n"
        "e.run(range(5))\n"
        "p.get_results()\n"
        "h.ProgressBar()\n"
        "assert e.state.iteration == 2, e.state.iteration\n"
        "print(sorted(m for m in ('torch', 'tqdm') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- Timer ---------------------------------------------------------------------------


def test_timer_value_monotonic_pause_resume():
    t = Timer()
    values = [t.value() for _ in range(50)]
    assert values == sorted(values) and values[0] >= 0
    t.pause()
    frozen = t.value()
    time.sleep(0.002)
    assert t.value() == frozen == t.total
    t.pause()  # a second pause changes nothing
    assert t.value() == frozen
    t.resume()
    time.sleep(0.002)
    assert t.value() > frozen
    assert t.reset() is t and t.total == 0.0 and t.step_count == 0.0 and t.running


@pytest.mark.parametrize("impl", BOTH)
def test_timer_attached_average_divides_by_steps(backend, impl):
    engine_cls, events, *_, timer_cls, _ = impl
    engine = engine_cls(lambda e, b: time.sleep(0.001))
    avg = timer_cls(average=True).attach(
        engine, start=events.STARTED, resume=events.ITERATION_STARTED, pause=events.ITERATION_COMPLETED,
        step=events.ITERATION_COMPLETED,
    )  # fmt: skip
    total = timer_cls().attach(engine)
    engine.run(range(7), max_epochs=2)
    assert avg.step_count == 14.0 and not avg.running and not total.running
    assert avg.value() == pytest.approx(avg.total / 14)
    assert 0.001 <= avg.value() < total.value()
    assert total.value() >= avg.total
    assert timer_cls(average=True).value() < 0.01  # no steps: divided by 1


# -- ProgressBar ---------------------------------------------------------------------


@needs_torch
@needs_tqdm
@pytest.mark.parametrize("impl", BOTH)
def test_progress_bar_runs_and_closes(backend, impl):
    engine_cls, events, *_, bar_cls = impl
    out = io.StringIO()
    engine = engine_cls(lambda e, b: {"loss": 0.25, "vec": torch.tensor([1.0, 2.0])})
    engine.state.alpha = 3
    bar = bar_cls(file=out, mininterval=0)
    bar.attach(engine, output_transform=lambda o: o, state_attributes=["alpha"])

    @engine.on(events.EPOCH_COMPLETED)
    def _(e):
        bar.log_message(f"done epoch {e.state.epoch}")

    engine.run(range(5), max_epochs=2)
    assert bar.pbar is None  # closed
    text = out.getvalue()
    for piece in ("Epoch [1/2]", "Epoch [2/2]", "[5/5]", "loss=0.25", "vec_0=1", "vec_1=2", "alpha=3", "done epoch 2"):
        assert piece in text, (piece, text)


@needs_ignite
@needs_tqdm
def test_progress_bar_matches_ignite_text(backend):
    """Same bar text, once the times tqdm prints are masked."""
    import re

    texts = []
    for impl in BOTH:
        engine_cls, events, *_, bar_cls = impl.values[0]
        out = io.StringIO()
        engine = engine_cls(lambda e, b: 0.5)
        bar_cls(persist=True, file=out, mininterval=0, desc="Train").attach(engine, output_transform=lambda o: o)
        bar_cls(file=out, mininterval=0).attach(
            engine, event_name=events.EPOCH_COMPLETED, closing_event_name=events.COMPLETED
        )
        engine.run(range(3), max_epochs=2)
        texts.append(re.sub(r"\d\d:\d\d|\?|[\d.]+it/s", "T", out.getvalue()))
    assert texts[0] == texts[1]


@needs_ignite
@needs_tqdm
def test_progress_bar_argument_errors(backend):
    def cases(events):
        return [
            dict(closing_event_name=events.EPOCH_COMPLETED(every=2)),
            dict(event_name=events.EPOCH_COMPLETED, closing_event_name=events.ITERATION_COMPLETED),
            dict(metric_names="loss"),
            dict(output_transform=3),
        ]

    for kwargs, ikwargs in zip(cases(Events), cases(IEvents)):
        with pytest.raises((ValueError, TypeError)) as mine:
            ProgressBar().attach(Engine(lambda e, b: None), **kwargs)
        with pytest.raises((ValueError, TypeError)) as oracle:
            IProgressBar().attach(IEngine(lambda e, b: None), **ikwargs)
        assert type(mine.value) is type(oracle.value) and str(mine.value) == str(oracle.value)


def test_progress_bar_clear_error_without_tqdm():
    code = (
        "import sys; sys.modules['tqdm'] = None\n"
        "from fastignite.handlers import ProgressBar\n"
        "try:\n    ProgressBar()\nexcept ModuleNotFoundError as e:\n    print('pip install tqdm' in str(e))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr


# -- HandlersTimeProfiler ----------------------------------------------------------------


class Custom(EventEnum):
    PING = "ping"


class CallableHandler:
    def __call__(self, engine):
        pass


def _snapshot(engine):
    return {e: list(entries) for e, entries in engine._event_handlers.items()}


def _profiled_engine():
    """An engine with plain, filtered, callable-object, args-taking and custom-event handlers."""
    engine = Engine(lambda e, b: e.fire_event(Custom.PING) if e.state.iteration % 2 else None)
    engine.register_events(*Custom)
    calls: dict[str, int] = {}

    def count(name):
        calls[name] = calls.get(name, 0) + 1

    def on_iteration(engine):
        count("on_iteration")

    def every_third(engine):
        count("every_third")

    def with_args(a, b=0):
        count("with_args")

    def on_ping(engine):
        count("on_ping")

    def on_started():
        count("on_started")

    engine.add_event_handler(Events.ITERATION_COMPLETED, on_iteration)
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=3), every_third)
    engine.add_event_handler(Events.EPOCH_COMPLETED, with_args, 1, b=2)
    engine.add_event_handler(Custom.PING, on_ping)
    engine.add_event_handler(Events.STARTED, on_started)
    engine.add_event_handler(Events.EPOCH_STARTED(once=2), CallableHandler())
    return engine, calls


def _times_by_name(profiler):
    return {
        (getattr(e, "name", e), name): times
        for e, by_name in profiler.event_handlers_times.items()
        for name, times in by_name.items()
    }


def test_profiler_counts_every_call(backend):
    engine, calls = _profiled_engine()
    profiler = HandlersTimeProfiler()
    profiler.attach(engine)
    engine.run(range(6), max_epochs=3)
    times = _times_by_name(profiler)
    expected = {
        ("ITERATION_COMPLETED", "_profiled_engine.<locals>.on_iteration"): calls["on_iteration"],
        ("ITERATION_COMPLETED", "_profiled_engine.<locals>.every_third"): calls["every_third"],
        ("EPOCH_COMPLETED", "_profiled_engine.<locals>.with_args"): calls["with_args"],
        ("PING", "_profiled_engine.<locals>.on_ping"): calls["on_ping"],
        ("STARTED", "_profiled_engine.<locals>.on_started"): calls["on_started"],
        ("EPOCH_STARTED", "Engine._handler_wrapper.<locals>.wrapper"): 1,
    }
    assert calls == {"on_iteration": 18, "every_third": 6, "with_args": 3, "on_ping": 9, "on_started": 1}
    assert {k: len(v) for k, v in times.items()} == expected
    assert all(t >= 0 for v in times.values() for t in v)
    assert len(profiler.processing_times) == 18 and len(profiler.dataflow_times) == 18
    # Every allowed event has its table, custom ones included.
    assert {getattr(e, "name", e) for e in profiler.event_handlers_times} == {e.name for e in Events} | {"PING"}

    results = profiler.get_results()
    rows = {(r[1], r[0]): r for r in results[:-3]}
    assert set(rows) == set(expected)
    for row in results[:-3]:
        assert len(row) == 7
        assert row[2] == "not triggered" or row[2] >= 0
    assert [r[0] for r in results[-3:]] == ["Total", "Processing", "Dataflow"]
    assert results[-3][2] == pytest.approx(sum(sum(v) for v in times.values()), abs=1e-4)
    assert results[-2][2] >= 0 and len(results[-2]) == 7


@needs_ignite
def test_profiler_report_shape_matches_ignite(backend, capsys, tmp_path):
    def build(engine_cls, events, profiler_cls):
        engine = engine_cls(lambda e, b: time.sleep(0.0002))
        profiler = profiler_cls()
        profiler.attach(engine)

        def slow(engine):
            time.sleep(0.0002)  # above ignite's threshold, so ignite counts it too

        def at_epoch(engine):
            pass

        def never(engine):
            pass

        engine.add_event_handler(events.ITERATION_COMPLETED, slow)
        engine.add_event_handler(events.EPOCH_COMPLETED, at_epoch)
        engine.add_event_handler(events.TERMINATE, never)
        engine.run(range(4), max_epochs=2)
        return profiler

    mine, oracle = build(Engine, Events, HandlersTimeProfiler), build(IEngine, IEvents, IProfiler)
    rm, ro = mine.get_results(), oracle.get_results()
    assert [(r[0], r[1]) for r in rm] == [(r[0], r[1]) for r in ro]
    for a, b in zip(rm, ro):
        assert len(a) == len(b)
        assert [type(x) for x in a[2:]] == [type(x) for x in b[2:]] or a[2] == "not triggered"
    assert ("not triggered" in rm[2]) and ("not triggered" in ro[2])  # the TERMINATE handler
    assert {k: len(v) for k, v in _times_by_name(mine).items()} == {
        k: len(v) for k, v in _times_by_name(oracle).items()
    }

    # print_results: the same table layout (column widths, header, separators).
    HandlersTimeProfiler.print_results(copy.deepcopy(rm))
    mine_text = capsys.readouterr().out
    IProfiler.print_results(copy.deepcopy(rm))
    assert mine_text == capsys.readouterr().out
    assert "Processing took total" in mine_text

    # write_results: ignite's columns, without pandas.
    path = tmp_path / "profile.csv"
    mine.write_results(str(path))
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["#", "processing_stats", "dataflow_stats"]
    assert any(h.endswith("build.<locals>.slow (ITERATION_COMPLETED)") for h in rows[0])
    assert len(rows) == 1 + 8 and [float(r[0]) for r in rows[1:]] == list(range(1, 9))


def test_profiler_handler_added_and_removed_after_attach(backend):
    engine, calls = _profiled_engine()
    profiler = HandlersTimeProfiler()
    profiler.attach(engine)
    late: list[int] = []

    def added_after_attach(engine):
        late.append(engine.state.iteration)

    engine.add_event_handler(Events.ITERATION_STARTED, added_after_attach)
    removed = [h for h, _, _ in engine._event_handlers[Events.ITERATION_COMPLETED] if "on_iteration" in h.__qualname__]
    engine.remove_event_handler(removed[0], Events.ITERATION_COMPLETED)

    added_mid_run: list[int] = []

    def mid_run(engine):
        added_mid_run.append(1)

    @engine.on(Events.EPOCH_COMPLETED(once=1))
    def add_more(engine):
        engine.add_event_handler(Events.ITERATION_COMPLETED, mid_run)

    removable = engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: None)

    @engine.on(Events.ITERATION_COMPLETED(once=2))
    def remove_while_profiled(engine):
        # The handle and has_event_handler still see the user's handler through the wrapper.
        assert engine.has_event_handler(added_after_attach, Events.ITERATION_STARTED)
        removable.remove()

    engine.run(range(4), max_epochs=2)
    times = _times_by_name(profiler)
    assert len(times[("ITERATION_STARTED", added_after_attach.__qualname__)]) == len(late) == 8
    assert not any("on_iteration" in name for _, name in times)
    # Added during epoch 1: profiled from epoch 2 on, which is all its calls.
    assert len(added_mid_run) == 4 and len(times[("ITERATION_COMPLETED", mid_run.__qualname__)]) == 4
    assert (
        len(times[("ITERATION_COMPLETED", "test_profiler_handler_added_and_removed_after_attach.<locals>.<lambda>")])
        == 2
    )
    assert not any(
        h.__qualname__.endswith("<lambda>") for h, _, _ in engine._event_handlers[Events.ITERATION_COMPLETED]
    )


def test_profiler_costs_nothing_when_not_attached(backend):
    import fastignite.engine as engine_module

    bystander, _ = _profiled_engine()
    bystander.run(range(3))  # builds its dispatch tables
    entries_before = _snapshot(bystander)
    objects_before = {e: [entry[0] for entry in v] for e, v in entries_before.items()}
    tables_before = list(bystander._tables.tables) if backend == "pure" else None
    class_before = dict(vars(engine_module.Engine))

    profiled, _ = _profiled_engine()
    profiler = HandlersTimeProfiler()
    profiler.attach(profiled)
    profiled.run(range(3))
    HandlersTimeProfiler()  # an unattached profiler does nothing either

    assert _snapshot(bystander) == entries_before
    assert {e: [entry[0] for entry in v] for e, v in _snapshot(bystander).items()} == objects_before
    assert dict(vars(engine_module.Engine)) == class_before
    bystander.run(range(3))
    if tables_before is not None:
        # Not one table rebuilt: the very same dispatch objects.
        assert all(a is b for a, b in zip(bystander._tables.tables, tables_before))
        built = [t for t in tables_before if hasattr(t, "records")]
        assert built and not any(type(r[0]).__name__ == "_Timed" for t in built for r in t.records)


def test_profiler_restores_originals_after_run_and_detach(backend):
    engine, calls = _profiled_engine()
    before = _snapshot(engine)
    profiler = HandlersTimeProfiler()
    profiler.attach(engine)
    profiler.attach(engine)  # once only
    assert sum(1 for h, _, _ in engine._event_handlers[Events.STARTED] if "_as_first_started" in repr(h)) == 1

    seen_wrapped = []

    @engine.on(Events.EPOCH_COMPLETED)
    def look(engine):
        seen_wrapped.append(
            all(type(h).__name__ == "_Timed" or hasattr(h, "_profiler_original")
                for h, _, _ in engine._event_handlers[Events.ITERATION_COMPLETED]
                if getattr(h, "__self__", None) is not profiler)
        )  # fmt: skip

    engine.run(range(3), max_epochs=2)
    assert seen_wrapped == [True, True]
    engine.remove_event_handler(look, Events.EPOCH_COMPLETED)
    after_run = _snapshot(engine)
    # After the run: the original entries (same objects), plus only the STARTED hook.
    started = after_run.pop(Events.STARTED)
    assert "_as_first_started" in repr(started[0][0]) and started[1:] == before[Events.STARTED]
    assert {e: v for e, v in after_run.items() if e != Events.STARTED} == {
        e: v for e, v in before.items() if e != Events.STARTED
    }
    first = len(profiler.processing_times)

    engine.state.max_epochs = None
    engine.run(range(3), max_epochs=1)  # a second run is profiled afresh
    assert len(profiler.processing_times) == 3 and first == 6
    assert len(_times_by_name(profiler)[("STARTED", "_profiled_engine.<locals>.on_started")]) == 1

    profiler.detach(engine)
    assert _snapshot(engine) == before
    assert all(a[0] is b[0] for e in before for a, b in zip(_snapshot(engine)[e], before[e]))
    engine.run(range(3), max_epochs=1)
    assert len(profiler.processing_times) == 3  # no longer profiled


@needs_ignite
def test_profiler_on_ignite_engine_too():
    engine = IEngine(lambda e, b: None)
    profiler = HandlersTimeProfiler()
    profiler.attach(engine)
    hits = []
    engine.add_event_handler(IEvents.ITERATION_COMPLETED, lambda e: hits.append(1))
    engine.run(range(5))
    assert len(hits) == 5 and len(profiler.processing_times) == 5
    assert [len(v) for v in profiler.event_handlers_times[IEvents.ITERATION_COMPLETED].values()] == [5]
    with pytest.raises(TypeError, match="Argument engine"):
        profiler.attach(object())
