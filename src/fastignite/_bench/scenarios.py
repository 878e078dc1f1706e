"""The benchmark scenarios, and how they are measured.

One code path for every speed figure: ``python -m fastignite bench``,
``benchmarks/report.py`` (the README's table and plot), ``benchmarks/speed_check.py``,
``benchmarks/allocations.py`` and ``benchmarks/test_benchmarks.py`` all run these
scenarios.  They live in the package, not in ``benchmarks/``, so that an
installed wheel (which has no ``benchmarks/``) can measure them too.

Each scenario is one engine configuration (process function, handlers, data),
measured per iteration on up to five implementations:

* ``loop``: a hand-written loop making the same calls, the floor to compare with;
* ``compiled``: fastignite on its Cython twin (only if ``fastignite._dispatch_c`` imports);
* ``dropin``: ``fastignite.ignite.Engine``, the drop-in for ignite code, built
  with ignite's own Events and run on fastignite's default backend (only if
  ignite is importable);
* ``pure``: fastignite on its pure-Python twin;
* ``ignite``: pytorch-ignite's own Engine (only if importable).

An implementation's ``prepare(scenario)`` builds the engine (untimed) and returns
``make_run(n)``, which sets up a run of ``n`` iterations (untimed) and returns
``run()``, the thunk to time.  ``measure`` times the thunks, interleaving the
implementations within each repeat; pytest-benchmark times the same thunks.
"""

from __future__ import annotations

import functools
import gc
import importlib
import itertools
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

DEFAULT_N = 200_000
DEFAULT_REPEATS = 5
# ignite costs ~100x more per iteration: it runs N // IGNITE_DIVISOR iterations.
IGNITE_DIVISOR = 50
# A run whose iterations make many handler calls is shortened so that it makes
# about n * CALLS_PER_ITERATION_BUDGET calls: the 256-handler rows would
# otherwise take minutes.  Costs are per iteration, so only noise changes.
CALLS_PER_ITERATION_BUDGET = 32

# The six events Ignite.jl's own benchmark fires; the two iteration events fire
# every iteration, the other four once per run.
SIX_LOOP_EVENTS = (
    "STARTED",
    "EPOCH_STARTED",
    "ITERATION_STARTED",
    "ITERATION_COMPLETED",
    "EPOCH_COMPLETED",
    "COMPLETED",
)


# -- scenarios -------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str  # short id (pytest ids, plot lookups)
    title: str
    shape: str  # "iteration_completed" | "custom_event" | "six_events"
    handlers: int  # per event
    every: int | None = None  # ITERATION_COMPLETED(every=...) when set
    sized_data: bool = False  # a list of n batches instead of data=None
    curves: tuple[str, ...] = ()  # plot panels ("scaling", "six") it is a point of

    @property
    def period(self) -> int:
        """Iterations after which the firing pattern repeats; runs span whole periods."""
        return self.every or 1

    @property
    def calls_per_iteration(self) -> int:
        """Handler calls per iteration, averaged over a period."""
        if self.shape == "six_events":
            return 2 * self.handlers
        return self.handlers // self.period

    @property
    def visits_per_iteration(self) -> int:
        """Handlers ignite visits per iteration: it evaluates each handler's
        filter at every firing, so filtered handlers cost it even when skipped."""
        if self.shape == "six_events":
            return 2 * self.handlers
        return self.handlers


def _scenarios() -> list[Scenario]:
    rows = [
        Scenario("0h", "0 handlers", "iteration_completed", 0),
        Scenario("0h-list", "0 handlers, sized list data", "iteration_completed", 0, sized_data=True),
        Scenario("10h", "10 handlers on ITERATION_COMPLETED", "iteration_completed", 10),
    ]
    # The scaling curve: k handlers with every=k, one handler call per iteration on average.
    for k in (10, 100, 1000, 10000):
        rows.append(
            Scenario(
                f"{k}h-every{k}",
                f"{k} handlers ITERATION_COMPLETED(every={k})",
                "iteration_completed",
                k,
                every=k,
                curves=("scaling",),
            )
        )
    rows += [
        Scenario("custom-0h", "process function fires a custom event, 0 handlers", "custom_event", 0),
        Scenario("custom-16h", "process function fires a custom event, 16 handlers", "custom_event", 16),
    ]
    for k in (0, 16, 64, 256):
        rows.append(
            Scenario(
                f"six-{k}h",
                f"Ignite.jl benchmark: six loop events, {k} handlers each",
                "six_events",
                k,
                curves=("six",),
            )
        )
    return rows


SCENARIOS: list[Scenario] = _scenarios()


def iterations(scenario: Scenario, impl: Implementation, n: int) -> int:
    """Iterations one timed run of ``impl`` makes on ``scenario`` for base size ``n``."""
    count = n // impl.n_divisor
    per_iteration = scenario.visits_per_iteration if impl.key == "ignite" else scenario.calls_per_iteration
    count = max(1, count // max(1, per_iteration // CALLS_PER_ITERATION_BUDGET))
    if count >= scenario.period:
        return count - count % scenario.period  # whole periods: the average is exact
    if impl.key == "ignite":
        # A whole period would take ignite minutes (e.g. 10,000 iterations of
        # 10,000 filter checks); its window then holds no firing, see covers_periods.
        return count
    return scenario.period


def covers_periods(scenario: Scenario, impl: Implementation, n: int) -> bool:
    """False when the window is shorter than one period, so no filtered handler ran
    in it: the cost then leaves out the ~1 handler call per iteration a full
    period averages (negligible next to ignite's per-handler filter checks)."""
    return iterations(scenario, impl, n) >= scenario.period


# -- what every implementation runs ------------------------------------------------


def _step(engine: Any, batch: Any) -> Any:
    return batch


def _new_handler() -> Callable[[Any], None]:
    # A distinct function object per handler, as real handlers are; it has no
    # free variables, so calling it costs what calling a module function costs.
    def handler(engine: Any) -> None:
        return None

    return handler


def _new_handlers(k: int) -> list[Callable[[Any], None]]:
    return [_new_handler() for _ in range(k)]


@functools.lru_cache(maxsize=4)
def _sized_data(n: int) -> list[int]:
    # Shared by all implementations (read only) and built outside any timing.
    return list(range(n))


def _timed(run: Callable[[], Any]) -> float:
    """Seconds ``run()`` takes, with the garbage collector off (as timeit does):
    a collection triggered by garbage left by another implementation would
    otherwise land in whichever measurement happens to be running."""
    gc.collect()  # cheap after measure's gc.freeze(): only the benchmark's own objects
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        if was_enabled:
            gc.enable()


# -- the hand-written loops ----------------------------------------------------------
# Each makes exactly the calls the engine makes for its scenario and nothing
# else; the iteration counter is kept because filters and state need it.


# What a process function and a handler are to the loops.
Step = Callable[[Any, Any], Any]
Handler = Callable[[Any], None]


def _loop_plain(e: Any, step: Step, batches: Iterable[Any]) -> None:
    it = 0
    for b in batches:
        it += 1
        out = step(e, b)  # noqa: F841 - an engine keeps the output too


def _loop_each(e: Any, step: Step, batches: Iterable[Any], hs: Sequence[Handler]) -> None:
    it = 0
    for b in batches:
        it += 1
        out = step(e, b)  # noqa: F841
        for h in hs:
            h(e)


def _loop_every(e: Any, step: Step, batches: Iterable[Any], hs: Sequence[Handler], k: int) -> None:
    it = 0
    for b in batches:
        it += 1
        out = step(e, b)  # noqa: F841
        if it % k == 0:
            for h in hs:
                h(e)


def _loop_six(e: Any, step: Step, batches: Iterable[Any], hs: dict[str, Sequence[Handler]]) -> None:
    for h in hs["STARTED"]:
        h(e)
    for h in hs["EPOCH_STARTED"]:
        h(e)
    started, completed = hs["ITERATION_STARTED"], hs["ITERATION_COMPLETED"]
    it = 0
    for b in batches:
        it += 1
        for h in started:
            h(e)
        out = step(e, b)  # noqa: F841
        for h in completed:
            h(e)
    for h in hs["EPOCH_COMPLETED"]:
        h(e)
    for h in hs["COMPLETED"]:
        h(e)


def _hand_fire(hs: Sequence[Handler]) -> Handler:
    """The hand-written stand-in for firing an event: a function calling its handlers."""

    def fire(e: Any) -> None:
        for h in hs:
            h(e)

    return fire


def _hand_step_firing(fire: Handler) -> Step:
    def step(e: Any, b: Any) -> Any:
        fire(e)
        return b

    return step


def _hand_loop(scenario: Scenario) -> Callable[..., None]:
    """``loop(e, batches=...)`` for the scenario, with its handlers bound."""
    k = scenario.handlers
    if scenario.shape == "custom_event":
        return functools.partial(_loop_plain, step=_hand_step_firing(_hand_fire(_new_handlers(k))))
    if scenario.shape == "six_events":
        if k == 0:
            return functools.partial(_loop_plain, step=_step)
        return functools.partial(_loop_six, step=_step, hs={name: _new_handlers(k) for name in SIX_LOOP_EVENTS})
    if k == 0:
        return functools.partial(_loop_plain, step=_step)
    if scenario.every is None:
        return functools.partial(_loop_each, step=_step, hs=_new_handlers(k))
    return functools.partial(_loop_every, step=_step, hs=_new_handlers(k), k=scenario.every)


def _prepare_hand_loop(scenario: Scenario) -> Callable[[int], Callable[[], None]]:
    loop = _hand_loop(scenario)
    e = SimpleNamespace()  # what step and handlers receive as "the engine"

    def make_run(n: int) -> Callable[[], None]:
        batches = _sized_data(n) if scenario.sized_data else itertools.repeat(None, n)
        return functools.partial(loop, e, batches=batches)

    return make_run


# -- engines (fastignite and ignite share the API) -------------------------------------


def _custom_event_enum(event_enum: Any) -> Any:
    # fastignite's EventEnum or ignite's, which mypy does not follow (Any).
    class BenchEvents(event_enum):  # type: ignore[misc]
        X = "bench_custom_x"

    return BenchEvents


def _build_engine(api: SimpleNamespace, scenario: Scenario) -> Any:
    """An engine of ``api`` (fastignite or ignite) configured for the scenario."""
    k = scenario.handlers
    if scenario.shape == "custom_event":
        custom = _custom_event_enum(api.EventEnum)
        x = custom.X

        def step(engine: Any, batch: Any) -> Any:
            engine.fire_event(x)
            return batch

        engine = api.Engine(step)
        engine.register_events(*custom)
        for h in _new_handlers(k):
            engine.add_event_handler(x, h)
        return engine
    engine = api.Engine(_step)
    if scenario.shape == "six_events":
        for name in SIX_LOOP_EVENTS:
            for h in _new_handlers(k):
                engine.add_event_handler(getattr(api.Events, name), h)
        return engine
    event = api.Events.ITERATION_COMPLETED
    if scenario.every is not None:
        event = event(every=scenario.every)
    for h in _new_handlers(k):
        engine.add_event_handler(event, h)
    return engine


def _engine_runner(engine: Any, scenario: Scenario) -> Callable[[int], Callable[[], None]]:
    def make_run(n: int) -> Callable[[], None]:
        data = _sized_data(n) if scenario.sized_data else None

        def run() -> None:
            engine.run(data, max_epochs=1, epoch_length=n)

        return run

    return make_run


@contextmanager
def _on_twin(twin: Any) -> Iterator[None]:
    """Engines built inside run on ``twin`` (an engine keeps the twin it was made with)."""
    from fastignite._backend import use_twin

    with use_twin(twin):
        yield


def _fastignite_preparer(twin: Any) -> Callable[[Scenario], Callable[[int], Callable[[], None]]]:
    def prepare(scenario: Scenario) -> Callable[[int], Callable[[], None]]:
        import fastignite

        api = SimpleNamespace(Engine=fastignite.Engine, Events=fastignite.Events, EventEnum=fastignite.EventEnum)
        with _on_twin(twin):
            engine = _build_engine(api, scenario)
        return _engine_runner(engine, scenario)

    return prepare


def _prepare_ignite(scenario: Scenario) -> Callable[[int], Callable[[], None]]:
    from ignite.engine import Engine, EventEnum, Events

    engine = _build_engine(SimpleNamespace(Engine=Engine, Events=Events, EventEnum=EventEnum), scenario)
    return _engine_runner(engine, scenario)


def _prepare_dropin(scenario: Scenario) -> Callable[[int], Callable[[], None]]:
    # The drop-in as ignite code meets it: its Engine, but ignite's Events and
    # EventEnum (so Events.X(every=k) is ignite's closure, which the drop-in
    # translates).  Built outside _on_twin: an engine fixes its backend at
    # creation, so this one runs on fastignite's default, as a user's would.
    from ignite.engine import EventEnum, Events

    import fastignite.ignite

    api = SimpleNamespace(Engine=fastignite.ignite.Engine, Events=Events, EventEnum=EventEnum)
    engine = _build_engine(api, scenario)
    return _engine_runner(engine, scenario)


# -- implementations ------------------------------------------------------------------


@dataclass(frozen=True)
class Implementation:
    key: str  # "loop" | "compiled" | "dropin" | "pure" | "ignite"
    label: str
    n_divisor: int
    # prepare(scenario) -> make_run(n) -> run(): engine built, run set up, thunk timed.
    prepare: Callable[[Scenario], Callable[[int], Callable[[], None]]] = field(repr=False)


def _import_or_none(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def implementations(with_ignite: bool = True) -> list[Implementation]:
    """The implementations available in this process, in table order.
    ``with_ignite=False`` leaves ignite out without importing it (and torch)."""
    ignite = _import_or_none("ignite") if with_ignite else None
    if ignite is not None and _import_or_none("ignite.engine") is None:
        ignite = None
    impls = [Implementation("loop", "hand loop", 1, _prepare_hand_loop)]
    compiled = _import_or_none("fastignite._dispatch_c")
    if compiled is not None:
        impls.append(Implementation("compiled", "fastignite compiled", 1, _fastignite_preparer(compiled)))
    # Next to compiled, its default backend, so the two columns read side by side.
    if ignite is not None and _import_or_none("fastignite.ignite") is not None:
        impls.append(Implementation("dropin", "fastignite.ignite (ignite's Events)", 1, _prepare_dropin))
    pure = importlib.import_module("fastignite._dispatch_py")
    impls.append(Implementation("pure", "fastignite pure", 1, _fastignite_preparer(pure)))
    if ignite is not None:
        impls.append(Implementation("ignite", f"ignite {ignite.__version__}", IGNITE_DIVISOR, _prepare_ignite))
    return impls


# -- measuring ------------------------------------------------------------------------


@dataclass
class Result:
    scenario: Scenario
    impl: Implementation
    iterations: int
    covers_periods: bool
    ns_per_iteration: list[float] = field(default_factory=list)  # one per repeat

    @property
    def min(self) -> float:
        return min(self.ns_per_iteration)

    @property
    def median(self) -> float:
        return statistics.median(self.ns_per_iteration)


def measure(
    scenarios: Sequence[Scenario],
    impls: Sequence[Implementation],
    n: int = DEFAULT_N,
    repeats: int = DEFAULT_REPEATS,
    progress: Callable[[Scenario, int, int], None] | None = None,
) -> dict[tuple[str, str], Result]:
    """Per-iteration costs, keyed by (scenario.key, impl.key).

    Within a scenario each repeat runs every implementation once, in an order
    rotated per repeat, so slow drifts and bursts of load on the machine hit
    all implementations alike.  ``progress(scenario, runs_done, runs_total)``
    is called as each scenario starts and after each timed run."""
    # Everything alive now (torch, ignite, modules) moves out of the collector's
    # reach, so the collection before each timed run scans only our objects.
    gc.collect()
    if hasattr(gc, "freeze"):  # CPython only (PyPy has no gc.freeze)
        gc.freeze()
    results: dict[tuple[str, str], Result] = {}
    runs_total, runs_done = len(scenarios) * repeats * len(impls), 0
    for scenario in scenarios:
        if progress:
            progress(scenario, runs_done, runs_total)
        make_runs = {impl.key: impl.prepare(scenario) for impl in impls}
        counts = {impl.key: iterations(scenario, impl, n) for impl in impls}
        for impl in impls:
            results[scenario.key, impl.key] = Result(
                scenario, impl, counts[impl.key], covers_periods(scenario, impl, n)
            )
            make_runs[impl.key](max(1, counts[impl.key] // 10))()  # warm-up: caches, first-run set-up
        for r in range(repeats):
            shift = r % len(impls)
            for impl in [*impls[shift:], *impls[:shift]]:
                seconds = _timed(make_runs[impl.key](counts[impl.key]))
                results[scenario.key, impl.key].ns_per_iteration.append(seconds / counts[impl.key] * 1e9)
                runs_done += 1
                if progress:
                    progress(scenario, runs_done, runs_total)
        del make_runs  # free the engines (10,000 handlers each) before the next scenario
    return results
