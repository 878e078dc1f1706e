"""No crash, no stall, no late release: adversarial uses of the engine.

Each class of failure that a real client or an adversarial case found, tested
on both twins and, where ignite has the behaviour, against ignite 0.5.5.
Anything that could kill the interpreter runs in a child process, so that a
crash fails its test instead of the run:

* zero periods in filters (a C ``%`` by zero is a SIGFPE);
* recursion through nested firings with no Python frame in between, and with
  the recursion limit raised (the C stack);
* a class attribute that is another class's slot descriptor;
* out-of-range slots and replaced or emptied tables reached from Python;
* loops that run no bytecode for a whole epoch (signals, other threads);
* outputs and batches released where ignite releases them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
from conftest import BACKENDS, cpython_only

import fastignite
from fastignite._backend import use_twin

try:
    import ignite.engine as ignite_engine
except ImportError:
    ignite_engine = None

needs_ignite = pytest.mark.skipif(ignite_engine is None, reason="needs pytorch-ignite 0.5.5 (the oracle)")

# The child's preamble: `Engine` and `Events` of the implementation named by
# IMPL ("pure", "compiled" or "ignite"), and `report(value)` to send back JSON.
PREAMBLE = """
import json, sys, os
IMPL = os.environ["IMPL"]
if IMPL == "ignite":
    from ignite.engine import Engine, Events, EventEnum, State
else:
    import importlib
    from fastignite._backend import use_twin
    # Held for the child's life: a dropped context manager would be closed,
    # and give engines the default twin again.
    TWIN_CHOICE = use_twin(importlib.import_module(
        {"pure": "fastignite._dispatch_py", "compiled": "fastignite._dispatch_c"}[IMPL]))
    TWIN_CHOICE.__enter__()
    from fastignite import Engine, Events, EventEnum, State
    assert Engine(lambda e, b: None)._twin.BACKEND == IMPL, "the child runs another twin"
def report(value):
    print("REPORT " + json.dumps(value))
"""


def run_child(impl: str, code: str, timeout: float = 120, **env: str) -> tuple[subprocess.CompletedProcess, object]:
    """Run ``code`` in a child interpreter on ``impl``; its process and report."""
    package_root = os.path.dirname(os.path.dirname(fastignite.__file__))
    child_env = {**os.environ, **env, "IMPL": impl}
    child_env["PYTHONPATH"] = package_root + os.pathsep + os.environ.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", PREAMBLE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{impl}: exit {done.returncode}\n{done.stderr[-3000:]}"
    reports = [line[len("REPORT ") :] for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert reports, f"{impl}: no report\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done, json.loads(reports[-1])


IMPLS = BACKENDS + (["ignite"] if ignite_engine is not None else [])


def _same_everywhere(code: str, **env: str) -> object:
    """Run ``code`` on every implementation; all must report the same; that report."""
    results = {impl: run_child(impl, code, **env)[1] for impl in IMPLS}
    first = next(iter(results.values()))
    assert all(r == first for r in results.values()), results
    return first


# -- 1. zero (and other degenerate) periods --------------------------------------------------

ZERO_PERIODS = """
calls, errors = [], []
def attempt(make_filter, n=12):
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.ITERATION_COMPLETED(event_filter=make_filter()),
                             lambda e: calls.append(e.state.iteration))
    try:
        engine.run(range(n), max_epochs=1)
    except Exception as exc:
        errors.append([type(exc).__name__, engine.state.iteration])
    else:
        errors.append(None)
E = Events.ITERATION_COMPLETED
attempt(lambda: E.every_event_filter(0))
attempt(lambda: E.every_before_and_after_event_filter(0, 10, 1))
attempt(lambda: E.every_before_and_after_event_filter(0, 10, 11))  # the window is empty: never divides
attempt(lambda: E.every_before_and_after_event_filter(-3, 12, 1))
attempt(lambda: E.every_event_filter(-4))
attempt(lambda: E.before_and_after_event_filter(0, 0))
report([calls, errors])
"""


def test_zero_periods_raise_where_ignite_raises_and_never_crash():
    calls, errors = _same_everywhere(ZERO_PERIODS)
    assert errors[0] == ["ZeroDivisionError", 1]
    assert errors[1] == ["ZeroDivisionError", 2]
    assert errors[2] is None


# -- 2. recursion through nested firings ------------------------------------------------------

RECURSION = """
import functools, threading
mode, limit, stack = PARAMS
class Ev(EventEnum):
    A = "a"
out = {}
def main():
    sys.setrecursionlimit(int(limit))
    engine = Engine(lambda e, b: e.fire_event(Ev.A))
    engine.register_events(*Ev)
    depth = [0]
    if mode == "partial":
        engine.add_event_handler(Ev.A, functools.partial(engine.fire_event, Ev.A))
    else:
        def again(e):
            depth[0] += 1
            e.fire_event(Ev.A)
        engine.add_event_handler(Ev.A, again)
    try:
        engine.run([1], max_epochs=1)
    except RecursionError:
        out["error"] = "RecursionError"
    out["deep"] = depth[0] > 50 or mode == "partial"
if int(stack):
    threading.stack_size(int(stack))
    t = threading.Thread(target=main)
    t.start()
    t.join()
else:
    main()
report(out)
"""


@pytest.mark.parametrize("mode", ["partial", "python"])
@pytest.mark.parametrize("limit, stack", [(1_000, 0), (100_000, 0), (100_000, 512 * 1024)])
def test_recursive_firing_raises_recursion_error(mode, limit, stack):
    """A handler that fires its own event (through functools.partial, which
    makes no Python frame, or through a Python function) ends in a
    RecursionError, even with the limit raised far beyond what the C stack of
    the main thread or of a small-stacked thread holds."""
    if limit > 1_000 and platform.python_implementation() != "CPython":
        pytest.skip("a raised recursion limit lets any deep Python recursion overflow PyPy's own stack")
    code = RECURSION.replace("PARAMS", repr((mode, str(limit), str(stack))))
    # The C stack is watched by the compiled fire_event, which serves engines
    # on either twin when it is built.  Without it, a limit raised past what
    # the C stack holds crashes CPython 3.11 and 3.13 on this same recursion
    # written in plain Python (a partial calling a function that calls it):
    # Python's own limit, which no pure-Python code can measure.
    compiled_built = importlib.util.find_spec("fastignite._dispatch_c") is not None
    tried = [impl for impl in BACKENDS if compiled_built or limit <= 1_000]
    if not tried:
        pytest.skip("a recursion limit raised past the C stack crashes CPython itself without the compiled guard")
    for impl in tried:
        _, out = run_child(impl, code, timeout=300)
        assert out == {"error": "RecursionError", "deep": True}, (impl, out)


# -- 3. a slot descriptor of another class -----------------------------------------------------

FOREIGN_SLOT = """
Foreign = type("Foreign", (), {"__slots__": tuple(f"s{i}" for i in range(4000))})
class S(State):
    pass
outcomes = []
for attr in ("iteration", "output", "batch", "epoch"):
    setattr(S, attr, Foreign.__dict__["s3999"])
    engine = Engine(lambda e, b: b)
    try:
        engine.state = S()
        engine.run([1, 2], max_epochs=1)
        outcomes.append("ran")
    except Exception as exc:
        outcomes.append(type(exc).__name__)
    delattr(S, attr)
report(outcomes)
"""


def test_a_foreign_slot_descriptor_is_never_written_in_place():
    outcomes = {impl: run_child(impl, FOREIGN_SLOT)[1] for impl in BACKENDS}
    assert all(o == outcomes["pure"] for o in outcomes.values()), outcomes
    assert all(name == "TypeError" for name in outcomes["pure"]), outcomes


# -- 4. private tables reached from Python -----------------------------------------------------

TABLES = """
outcomes = {}
def attempt(name, action):
    try:
        action()
        outcomes[name] = "ok"
    except Exception as exc:
        outcomes[name] = [type(exc).__name__, str(exc)[:60]]
engine = Engine(lambda e, b: b)
engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: None)
tables = engine._tables
for slot in (-1, -2**62, 10**6):
    attempt(f"count {slot}", lambda: tables.count(engine, slot))
    attempt(f"firings {slot}", lambda: tables.firings(slot))
    attempt(f"fire {slot}", lambda: tables.fire(engine, slot))
    if hasattr(tables, "build"):
        attempt(f"build {slot}", lambda: tables.build(engine, slot))
def fresh():
    engine._tables = type(tables)()
    engine.run([1, 2], max_epochs=1)
attempt("fresh tables", fresh)
engine._tables = tables
def cleared():
    tables.events.clear()
    engine.run([1, 2], max_epochs=1)
attempt("events cleared", cleared)
attempt("last_event after clear", lambda: engine.last_event_name)
engine2 = Engine(lambda e, b: b)
engine2._tables = None
attempt("no tables", lambda: engine2.run([1], max_epochs=1))
report(outcomes)
"""


@pytest.mark.parametrize("impl", BACKENDS)
def test_private_tables_never_crash(impl):
    _, outcomes = run_child(impl, TABLES)
    for name, outcome in outcomes.items():
        if name.startswith(("count", "firings", "fire", "build")):
            assert outcome[0] == "IndexError", (name, outcome)
    assert outcomes["fresh tables"][0] == "RuntimeError", outcomes
    assert "engine._tables should be" in outcomes["fresh tables"][1]
    assert outcomes["events cleared"][0] == "RuntimeError", outcomes
    assert outcomes["no tables"] != "ok", outcomes  # an exception, whichever: the point is no crash


def test_a_loop_made_from_python_checks_what_it_is_given(twin, Engine):
    # The compiled loop indexes its tables unchecked: a Loop checks them when
    # made, and fires only the loop's own events.
    engine = Engine(lambda e, b: None)
    with pytest.raises(RuntimeError, match="engine._tables should be"):
        twin.Loop(type("NotAnEngine", (), {"_tables": None})())
    loop = twin.Loop(engine)
    for slot in (-1, 10**6):
        with pytest.raises(IndexError):
            loop.fire(slot)
    loop.start_epoch(None)
    with pytest.raises(TypeError, match="not an iterator"):
        loop.iterate()  # no data set up: next()'s own error, no crash
    assert engine.run(range(3)).iteration == 3


# -- 5. a loop that runs no bytecode ---------------------------------------------------------

NO_BYTECODE = """
import operator, threading, time, signal
how = HOW
# Python's own Ctrl-C handler, whatever was inherited: a shell starts a
# background job with SIGINT ignored, and Python then installs none.
signal.signal(signal.SIGINT, signal.default_int_handler)
engine = Engine(operator.is_)  # C code: no bytecode runs per iteration
if how == "terminate":
    threading.Timer(0.3, engine.terminate).start()
else:
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
start = time.monotonic()
try:
    engine.run(None, max_epochs=1, epoch_length=10**9)
    outcome = "terminated"
except KeyboardInterrupt:
    outcome = "KeyboardInterrupt"
report([outcome, time.monotonic() - start, engine.state.iteration < 10**9])
"""


@pytest.mark.parametrize("how", ["terminate", "sigint"])
def test_other_threads_and_signals_get_in(how):
    """terminate() from another thread and Ctrl-C take effect within a fraction
    of a second, though the epoch (10**9 iterations of a C process function,
    minutes of work) would take far longer: the loop lets them in."""
    for impl in IMPLS:
        _, (outcome, seconds, early) = run_child(impl, NO_BYTECODE.replace("HOW", repr(how)), timeout=120)
        assert outcome == ("terminated" if how == "terminate" else "KeyboardInterrupt"), impl
        assert early and seconds < 10, (impl, seconds)


# -- 6. references released where ignite releases them ----------------------------------------

FINALIZERS = """
log = []
class Tracked:
    def __init__(self, name):
        self.name = name
    def __del__(self):
        log.append("del " + self.name)
def data():
    for i in range(3):
        yield Tracked(f"batch{i}")
def step(e, b):
    log.append("process " + b.name)
    return Tracked("out" + b.name[-1])
engine = Engine(step)
for event in (Events.GET_BATCH_STARTED, Events.GET_BATCH_COMPLETED, Events.ITERATION_STARTED,
              Events.ITERATION_COMPLETED, Events.EPOCH_COMPLETED):
    engine.add_event_handler(event, lambda e, name=event.name: log.append(name))
engine.run(data(), max_epochs=1)
report(log)
"""


@cpython_only("finalizers that run when the last reference goes")
@needs_ignite
def test_batches_and_outputs_are_released_when_ignite_releases_them():
    log = _same_everywhere(FINALIZERS)
    # The previous output is gone before the next process call, the previous
    # batch before the next read.
    assert log.index("del out0") < log.index("process batch1")
    assert log.index("del batch0") < log.index("GET_BATCH_COMPLETED", log.index("process batch0"))


PEAK = """
import tracemalloc
def step(e, b):
    return bytearray(10**7)
engine = Engine(step)
engine.run(range(2), max_epochs=1)
tracemalloc.start()
tracemalloc.reset_peak()
engine.run(range(4), max_epochs=1)
report(round(tracemalloc.get_traced_memory()[1] / 1e6))
"""


@cpython_only("tracemalloc")
def test_peak_memory_holds_one_output_at_a_time():
    """A 10 MB output per iteration peaks at 10 MB, as on ignite: the previous
    output is not alive during the next process call."""
    for impl in IMPLS:
        _, peak_mb = run_child(impl, PEAK)
        assert peak_mb <= 11, (impl, peak_mb)


def test_sigint_is_delivered_to_a_pure_python_run_as_well(Engine):
    """The same on a loop that does run bytecode: a control for the test above."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    # What the test measures is the engine's: the process's own SIGINT set-up
    # is put back to Python's default first (a shell starts a background job
    # with SIGINT ignored, and Python then installs no handler), so that a
    # lost signal can only be the loop's.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    engine = Engine(lambda e, b: None)
    timer = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        engine.run(None, max_epochs=1, epoch_length=10**9)
    timer.join()


# -- 7. a State whose class sees every attribute access -----------------------------------------


def _hooked_state_run(impl: str) -> tuple[list, list]:
    """A State subclass recording every write and doubling every batch it is
    asked for; what the process function got, and the writes, in order."""
    if impl == "ignite":
        Engine, State = ignite_engine.Engine, ignite_engine.State
    else:
        import importlib

        chosen = use_twin(
            importlib.import_module({"pure": "fastignite._dispatch_py", "compiled": "fastignite._dispatch_c"}[impl])
        )
        chosen.__enter__()
        Engine, State = fastignite.Engine, fastignite.State
    writes, got = [], []

    class Hooked(State):
        def __setattr__(self, name, value):
            if name in ("iteration", "batch", "output"):
                writes.append((name, value))
            super().__setattr__(name, value)

        def __getattribute__(self, name):
            value = super().__getattribute__(name)
            return value * 2 if name == "batch" and value is not None else value

    try:
        engine = Engine(lambda e, b: got.append(b) or b + 100)
        engine.state = Hooked()
        engine.run([1, 2, 3], max_epochs=2)
    finally:
        if impl != "ignite":
            chosen.__exit__(None, None, None)
    return got, writes


def test_state_hooks_see_every_access():
    """__setattr__ and __getattribute__ of a State subclass see what the loop
    writes and reads, as on ignite: the compiled loop takes the generic path
    for such a type, as it does for a property."""
    results = {impl: _hooked_state_run(impl) for impl in IMPLS}
    got, writes = results["pure"]
    assert got == [2, 4, 6, 2, 4, 6]
    assert ("output", 102) in writes and ("iteration", 6) in writes
    for impl, result in results.items():
        assert result == results["pure"], impl


# -- 8, 9. counts past 2**63, float and numpy epoch lengths ------------------------------------


def _resume_trace(Engine, Events, state: dict, data, max_epochs=None) -> list:
    engine = Engine(lambda e, b: None)
    seen = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(("I", e.state.iteration)))
    engine.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: (seen.append(("E", e.state.epoch, e.state.iteration)), e.terminate())
    )
    engine.add_event_handler(
        Events.TERMINATE_SINGLE_EPOCH, lambda e, iter_counter=None: seen.append(("TS", repr(iter_counter)))
    )
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=3), lambda e: e.terminate_epoch())
    for name, value in state.items():
        setattr(engine.state, name, value)
    try:
        engine.run(data, max_epochs=max_epochs)
    except Exception as exc:  # the same error everywhere is as good as the same run
        seen.append((type(exc).__name__, str(exc)))
    return seen + [repr(engine.state.iteration), repr(engine.state.epoch)]


def _numeric_cases():
    cases = [
        ({"iteration": 2**63 + 5, "epoch_length": 2**63 + 8, "epoch": 1, "max_epochs": 3}, None, None),
        ({"iteration": 2**64 + 1, "epoch_length": 2**63 + 1, "epoch": 2, "max_epochs": 4}, None, None),
        ({"iteration": 2**62 - 2, "epoch_length": 2**62, "epoch": 0, "max_epochs": 2}, None, None),
        ({"iteration": 25, "epoch": 2, "epoch_length": 10.0}, list(range(10)), 4),
        ({"iteration": 26, "epoch": 2, "epoch_length": 10.5}, list(range(10)), 4),
        ({"iteration": 0, "epoch": 0, "epoch_length": 10.0}, list(range(10)), 2),
    ]
    try:
        import numpy as np
    except ImportError:
        return cases
    return cases + [
        ({"iteration": 25, "epoch": 2, "epoch_length": np.ceil(95 / 10)}, list(range(10)), 4),
        ({"iteration": 25, "epoch": 2, "epoch_length": np.int64(10)}, list(range(10)), 4),
        ({"iteration": np.int64(25), "epoch": 2, "epoch_length": 10}, list(range(10)), 4),
    ]


@needs_ignite
@pytest.mark.parametrize("case", range(len(_numeric_cases())))
def test_resumes_from_any_count_ignite_accepts(Engine, case):
    """Resumes whose counts do not fit a C integer, or whose epoch length is a
    float or a numpy number (as a client sets it: ``np.ceil(n / batch)``),
    run as on ignite: the same iterations, epochs, iteration counters."""
    state, data, max_epochs = _numeric_cases()[case]
    expected = _resume_trace(ignite_engine.Engine, ignite_engine.Events, state, data, max_epochs)
    assert _resume_trace(Engine, fastignite.Events, state, data, max_epochs) == expected


def _whole_number_cases():
    cases = [
        ("load", {"epoch_length": 4.0, "epoch": 1, "max_epochs": 3}),
        ("load", {"epoch_length": 4, "iteration": 6.0, "max_epochs": 3}),
        ("load", {"epoch_length": 4, "iteration": 6, "max_epochs": 3.0}),
        ("load", {"epoch_length": 4, "iteration": 6, "max_iters": 10.0}),
        ("run", {"max_epochs": 2.0}),
        ("run", {"epoch_length": 3.0}),
        ("run", {"max_iters": 5.0}),
    ]
    try:
        import numpy as np
    except ImportError:
        return cases
    return cases + [
        ("load", {"epoch_length": np.float64(4), "iteration": 6, "max_epochs": 3}),
        ("load", {"epoch_length": np.int64(4), "iteration": np.int64(6), "max_iters": np.int64(10)}),
        ("run", {"max_epochs": np.float64(2)}),
    ]


def _whole_number_trace(Engine, Events, how, values):
    engine = Engine(lambda e, b: None)
    seen = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append((e.state.epoch, e.state.iteration)))
    if how == "load":
        engine.load_state_dict(values)
        state = engine.run(range(4))
    else:
        state = engine.run(range(4), **values)
    return seen, (state.epoch, state.iteration, state.epoch_length, state.max_epochs, state.max_iters)


@needs_ignite
@pytest.mark.parametrize("case", range(len(_whole_number_cases())))
def test_whole_numbers_of_any_type_count_as_on_ignite(Engine, case):
    """ignite takes 4.0 or np.float64(4) wherever it takes 4 (a client stores
    ``np.ceil(n / batch)`` as epoch_length, and it comes back from its
    checkpoints): both twins run such states and arguments as ignite does.
    (ignite then counts in floats where a float iteration was loaded; the loop
    here counts in ints, equal in value.)"""
    how, values = _whole_number_cases()[case]
    expected = _whole_number_trace(ignite_engine.Engine, ignite_engine.Events, how, values)
    assert _whole_number_trace(Engine, fastignite.Events, how, values) == expected


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda e: e.load_state_dict({"epoch_length": 4.5, "iteration": 6, "max_epochs": 3}), "epoch_length should be an integer"),
        (lambda e: e.load_state_dict({"epoch_length": 4, "iteration": float("nan"), "max_epochs": 3}), "iteration should be a non-negative integer"),
        (lambda e: e.load_state_dict({"epoch_length": 4, "iteration": 6, "max_epochs": float("inf")}), "max_epochs should be an integer"),
        (lambda e: e.run(range(4), max_epochs=2.5), "Argument max_epochs should be a positive integer or None, got 2.5"),
        (lambda e: e.run(range(4), max_iters=float("inf")), "Argument max_iters should be a positive integer or None, got inf"),
        (lambda e: e.run(range(4), epoch_length=True), "Argument epoch_length should be a positive integer or None, got True"),
    ],
)  # fmt: skip
def test_counts_that_are_not_whole_numbers_are_refused(Engine, call, message):
    # ignite takes these and then fails mid-run, or loops for ever (inf).
    engine = Engine(lambda e, b: None)
    with pytest.raises(ValueError, match=re.escape(message)):
        call(engine)
    assert engine.run(range(4)).iteration == 4
