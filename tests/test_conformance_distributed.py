"""Conformance, distributed: ignite 0.5.5's own distributed tests under the drop-in.

ignite's distributed tests of the engine (tests/ignite/engine) and of the handlers that
drive one (checkpoint, early stopping, EMA) run as ignite's CI runs them: two ranks on
gloo, one per pytest-xdist worker (``--dist=each``), on 127.0.0.1. They run twice, in a
subprocess each, killed with its workers if it outlives its time bound: on ignite itself,
then with ``fastignite.ignite.install()`` on the default twin. Every test's outcome on
every rank must be the same in both runs. See run_ignite_distributed in
tests/conformance/fetch_ignite_tests.py and tests/conformance/ignite_distributed_plugin.py.
"""

import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import BACKENDS

pytest.importorskip("ignite", reason="needs pytorch-ignite 0.5.5")
pytest.importorskip("xdist", reason="needs pytest-xdist (in the test extra): one rank per worker")
torch = pytest.importorskip("torch", reason="ignite's distributed tests need torch")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("this torch has no gloo backend", allow_module_level=True)
if os.name != "posix":
    pytest.skip("the runs' time bound kills a process group (POSIX)", allow_module_level=True)

_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)  # see test_conformance.py

from tests.conformance.fetch_ignite_tests import WORLD_SIZE, run_ignite_distributed  # noqa: E402

pytestmark = pytest.mark.conformance

# ignite on itself here: 10 tests on each of the 2 ranks, all passed.
MIN_PASSED_DISTRIBUTED = 20

# The twin a user of the drop-in gets by default (the conftest requires the compiled one
# where CI builds it).
DROPIN_BACKEND = "compiled" if "compiled" in BACKENDS else "pure"

IGNITE_ENGINE = "ignite.engine.engine.Engine"
DROPIN_ENGINE = "fastignite.ignite.Engine"


@pytest.fixture(scope="module")
def runs():
    """Both runs, one after the other: each keeps the machine's two cores busy."""
    ignite = run_ignite_distributed(None)
    return {"ignite": ignite, "dropin": run_ignite_distributed(DROPIN_BACKEND)}


def _per_rank(result: dict) -> str:
    return "; ".join(
        f"{worker}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(Counter(tests.values()).items()))
        for worker, tests in sorted(result["outcomes"].items())
    )


def _check_run(capsys, label: str, result: dict, engine_class: str, backend) -> None:
    # Bypass output capture so the CI log always shows the counts, and any failures.
    with capsys.disabled():
        print(
            f"\n[{label}, WORLD_SIZE={WORLD_SIZE} on gloo, ran: {result['ran_backend']}, {result['seconds']:.0f} s]"
            f"\n{result['tail']}\nper rank: {_per_rank(result)}"
        )
    workers = result["workers"]
    where = "; ".join(
        f"{worker} in {seen['unfinished']}" for worker, seen in sorted(workers.items()) if seen["unfinished"]
    )
    assert not result["timed_out"], (
        f"killed after {result['seconds']:.0f} s (deadlock?), {where or 'no test running'}:\n{result['tail']}"
    )
    assert result["summary"] is not None, f"no pytest summary line (crash?):\n{result['tail']}"
    assert sorted(workers) == [f"gw{rank}" for rank in range(WORLD_SIZE)], f"workers that logged: {sorted(workers)}"
    for worker, seen in sorted(workers.items()):
        assert seen["finished"] and not seen["unfinished"], f"{worker} did not finish (in {seen['unfinished']})"
        # Each rank's test modules must have run on the engine (and twin) this run is about.
        assert seen["engine_classes"] == [engine_class], f"{worker} ran {seen['engine_classes']}"
        assert seen["fastignite_backend"] == backend, f"{worker} ran fastignite's {seen['fastignite_backend']}"


def _check_floor(result: dict) -> None:
    assert result["passed"] >= MIN_PASSED_DISTRIBUTED, (
        f"only {result['passed']} passed (< {MIN_PASSED_DISTRIBUTED}): {result['summary']}\n{result['tail']}"
    )


def _differences(reference: dict, other: dict) -> list:
    """Each (worker, test) whose outcome differs between two runs' outcomes, one line each."""
    lines = []
    for worker in sorted(set(reference) | set(other)):
        theirs, ours = reference.get(worker, {}), other.get(worker, {})
        for nodeid in sorted(set(theirs) | set(ours)):
            if theirs.get(nodeid) != ours.get(nodeid):
                lines.append(
                    f"{worker} {nodeid}: ignite {theirs.get(nodeid, 'not run')}, drop-in {ours.get(nodeid, 'not run')}"
                )
    return lines


def test_ignite_distributed_tests_on_ignite(runs, capsys):
    """The reference: ignite's own engine on both ranks."""
    _check_run(capsys, "conformance distributed, ignite itself", runs["ignite"], IGNITE_ENGINE, None)
    _check_floor(runs["ignite"])


def test_ignite_distributed_tests_with_dropin_installed(runs, capsys):
    """The same tests with fastignite.ignite.install(): the same outcome for every test on
    every rank."""
    ignite, dropin = runs["ignite"], runs["dropin"]
    _check_run(capsys, "conformance distributed, drop-in", dropin, DROPIN_ENGINE, DROPIN_BACKEND)
    assert ignite["summary"] is not None and not ignite["timed_out"], "the reference run on ignite did not finish"
    differences = _differences(ignite["outcomes"], dropin["outcomes"])
    assert not differences, "outcomes differ from ignite's:\n" + "\n".join(differences) + f"\n{dropin['tail']}"
    _check_floor(dropin)
