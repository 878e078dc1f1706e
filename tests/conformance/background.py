"""ignite's suites in the background, while the rest of the test run goes on.

Each conformance suite (tests/test_conformance.py) is a subprocess that keeps
one core busy for minutes; the rest of the run mostly keeps one core busy.  So
tests/conftest.py moves the conformance tests to the end of the run and starts
the suites with the first test that does not measure how soon a thread or a
signal gets in (those run first, on a quiet machine).

They run in a process of their own (``python tests/conformance/background.py
DIR mode:backend ...``), one suite at a time until the conformance tests are
reached (the file DIR/go appears), then two at a time; each suite's result is
DIR/<mode>-<backend>.json.  A process, not threads in pytest's: the memory
tests count the blocks the pytest process allocates, and a thread reading a
suite's output would allocate in the middle of their counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve()
_state: dict[str, Any] = {}


def start(keys: list[tuple[str, str]]) -> None:
    """Start the runner on the suites ``keys`` ((mode, backend), longest first)."""
    directory = Path(tempfile.mkdtemp(prefix="fastignite-conformance-"))
    args = [f"{mode}:{backend}" for mode, backend in keys]
    # The runner imports fetch_ignite_tests as tests.conformance...: the repo root on its path.
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(_HERE.parents[2]), os.environ.get("PYTHONPATH")) if p)
    )
    _state.update(
        directory=directory,
        keys=list(keys),
        process=subprocess.Popen([sys.executable, str(_HERE), str(directory), *args], env=env),
    )


def started() -> bool:
    return "process" in _state


def result(mode: str, backend: str) -> dict:
    """The suite's result; the caller waits, so the second worker joins."""
    directory: Path = _state["directory"]
    (directory / "go").touch()
    path = directory / f"{mode}-{backend}.json"
    process: subprocess.Popen = _state["process"]
    while not path.exists():
        if process.poll() is not None and not path.exists():
            raise RuntimeError(
                f"the conformance runner exited ({process.returncode}) without the {mode}/{backend} suite"
            )
        time.sleep(0.2)
    outcome = json.loads(path.read_text())
    if "error" in outcome:
        raise RuntimeError(f"the {mode}/{backend} suite failed to run: {outcome['error']}")
    return outcome


def cancel() -> None:
    """The run is over: the runner stops (a suite still running is killed)."""
    process = _state.get("process")
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


# -- the runner process ---------------------------------------------------------


def _runner(directory: Path, keys: list[tuple[str, str]]) -> None:
    from tests.conformance.fetch_ignite_tests import run_ignite_suite

    jobs = list(keys)
    lock = threading.Lock()
    parent = os.getppid()

    def work(wait: bool) -> None:
        while wait and not (directory / "go").exists():
            if os.getppid() != parent:  # pytest is gone
                return
            time.sleep(0.5)
        while True:
            with lock:
                if not jobs:
                    return
                mode, backend = jobs.pop(0)
            try:
                outcome = run_ignite_suite(backend, mode=mode)
            except Exception as e:  # the test waiting for it reports it
                outcome = {"error": f"{type(e).__name__}: {e}"}
            tmp = directory / f".{mode}-{backend}.json"
            tmp.write_text(json.dumps(outcome, default=str))
            tmp.replace(directory / f"{mode}-{backend}.json")

    second = threading.Thread(target=work, args=(True,), daemon=True)
    second.start()
    work(False)
    second.join()  # its suite, or its wait for "go" (ended by pytest's cancel() or exit)


if __name__ == "__main__":
    _runner(Path(sys.argv[1]), [tuple(arg.split(":", 1)) for arg in sys.argv[2:]])  # type: ignore[misc]
