"""pytest plugin: ignite's distributed tests, one rank per pytest-xdist worker.

Loaded by bare name (``-p ignite_distributed_plugin``), with ignite_dropin_plugin, by
fetch_ignite_tests.run_ignite_distributed, which runs ignite's tests as ignite's own CI
does (``WORLD_SIZE=2 pytest --dist=each --tx 2*popen//python=... -m distributed``): every
worker runs every test, and worker ``gwN`` is rank N (ignite's ``local_rank`` fixture).
Everything here is keyed on $FASTIGNITE_DIST_DIR, a directory private to one run:

- Only the tests that take ignite's single-node gloo fixture are kept (``-m distributed``
  also selects nccl, horovod and xla variants, which need hardware or launchers).
- That fixture's port exchange between the ranks goes through files in the run's
  directory, not ignite's machine-wide /tmp/free_port: a file left there by a killed run,
  or another run on the same machine, can never hand a rank someone else's port. The port
  is picked on 127.0.0.1; ignite's fixture still sets MASTER_ADDR=localhost itself.
- The controller exits when the harness is gone: the harness runs the run in a session of
  its own, to kill it whole at its time bound, so if the harness itself is killed first,
  nothing else would end a deadlocked run.
- Each worker logs there, a line as it happens (``gwN.jsonl``), the tests it starts, their
  phases' outcomes and, at the end, the classes its ignite test modules bound to ``Engine``
  (so the harness can check that the drop-in really was installed on every rank, or really
  was not). fetch_ignite_tests.read_worker_logs reads them.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

DIR_ENV = "FASTIGNITE_DIST_DIR"
PARENT_ENV = "FASTIGNITE_DIST_PARENT"
WORKER_LOG_SUFFIX = ".jsonl"
GLOO_FIXTURE = "distributed_context_single_node_gloo"
# Rank 0 writes the port as soon as the test's fixtures start; the others wait this long.
PORT_WAIT_S = 60.0
PARENT_POLL_S = 1.0

_config = None
_port_exchanges = itertools.count()
_port_exchange_installed = False


def _run_dir() -> Path:
    path = os.environ.get(DIR_ENV)
    if not path:
        raise pytest.UsageError(f"ignite_distributed_plugin needs ${DIR_ENV}: a directory private to this run")
    return Path(path)


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _exit_with_harness() -> None:
    """End this process (the controller) as soon as the harness that started it is gone.

    The harness's pid comes from $FASTIGNITE_DIST_PARENT, not from getppid() now: the
    controller configures itself seconds after it starts (ignite_dropin_plugin imports torch
    first), and the harness may be gone by then. Workers need no such watch: execnet ends a
    worker within 15 s of losing its controller."""
    harness = int(os.environ.get(PARENT_ENV) or os.getppid())

    def watch() -> None:
        while os.getppid() == harness:  # an orphan is adopted by another process
            time.sleep(PARENT_POLL_S)
        os._exit(3)

    threading.Thread(target=watch, name="exit-with-harness", daemon=True).start()


def pytest_configure(config):
    global _config
    _config = config
    _run_dir()
    if not _is_worker(config):
        _exit_with_harness()


# -- the port exchange ----------------------------------------------------------------


def _exchange_port(local_rank: int) -> int:
    """The MASTER_PORT of the fixture's next process group: rank 0 picks a free one, the
    others read it. Every rank calls this once per test that takes the fixture, in the same
    order (each worker runs the same tests), so the n-th call of each rank meets the n-th
    call of rank 0 in file ``port.n``."""
    path = _run_dir() / f"port.{next(_port_exchanges)}"
    if local_rank == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(str(port))
        os.replace(partial, path)  # readers never see a half-written number
        return port
    deadline = time.monotonic() + PORT_WAIT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"rank {local_rank}: rank 0 wrote no port to {path} within {PORT_WAIT_S:.0f} s")
        time.sleep(0.02)
    return int(path.read_text())


def pytest_plugin_registered(plugin, manager):
    # ignite's tests/ignite/conftest.py: its gloo fixture looks up _setup_free_port in the
    # module's globals when it runs, so replacing the global is enough.
    if getattr(plugin, "__name__", None) != "tests.ignite.conftest":
        return
    if not (hasattr(plugin, "_setup_free_port") and hasattr(plugin, GLOO_FIXTURE)):
        raise pytest.UsageError(
            f"{plugin.__file__} has no _setup_free_port or {GLOO_FIXTURE}: "
            "ignite's test layout changed, update ignite_distributed_plugin"
        )
    plugin._setup_free_port = _exchange_port
    global _port_exchange_installed
    _port_exchange_installed = True


# -- which tests ------------------------------------------------------------------------


def pytest_collection_modifyitems(config, items):
    kept = [item for item in items if GLOO_FIXTURE in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if GLOO_FIXTURE not in getattr(item, "fixturenames", ())]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    if kept and not _port_exchange_installed:  # never fall back to /tmp/free_port silently
        raise pytest.UsageError("ignite's tests/ignite/conftest.py was not loaded as tests.ignite.conftest")


# -- what happened on each worker ---------------------------------------------------------


def _engine_classes() -> list:
    """The classes this process's ignite test modules (and ignite.engine) call Engine."""
    modules = [m for name, m in list(sys.modules.items()) if name.startswith("tests.ignite.") and m is not None]
    if "ignite.engine" in sys.modules:
        modules.append(sys.modules["ignite.engine"])
    classes = {m.Engine for m in modules if isinstance(getattr(m, "Engine", None), type)}
    return sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in classes)


def _log(record: dict) -> None:
    """One line of this worker's log, written at once: a run killed at its time bound still
    leaves what each rank did, and the test it was in."""
    if _config is None or not _is_worker(_config):  # the controller runs no test
        return
    path = _run_dir() / f"{_config.workerinput['workerid']}{WORKER_LOG_SUFFIX}"
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


def pytest_runtest_logstart(nodeid, location):
    _log({"start": nodeid})


def pytest_runtest_logreport(report):
    outcome = report.outcome
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    _log({"nodeid": report.nodeid, "when": report.when, "outcome": outcome})


def pytest_sessionfinish(session):
    fastignite = sys.modules.get("fastignite")
    _log(
        {
            "finished": True,
            "engine_classes": _engine_classes(),
            "fastignite_backend": getattr(fastignite, "BACKEND", None),
        }
    )
