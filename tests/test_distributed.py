"""Two ranks on gloo, on 127.0.0.1: what fastignite's standalone engine and
handlers do under torch.distributed (see src/fastignite/distributed.py).

Each test starts its ranks as processes of their own (tests/_dist_worker.py),
joined through a TCPStore this process hosts, as torchrun's agent hosts it,
and bounds them in time: a deadlock fails the test instead of hanging CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

WORKER = Path(__file__).with_name("_dist_worker.py")
from conftest import REQUIRE_COMPILED  # noqa: E402  (the default twin must then be the compiled one)

WORLD = 2


def launch(scenario: str, tmp_path: Path, timeout: float, env: dict | None = None) -> tuple[list, list, float]:
    """Run ``scenario`` on WORLD ranks; returns (each rank's JSON, each rank's
    completed process, seconds taken).  Kills them all after ``timeout``."""
    import datetime

    store = dist.TCPStore(
        "127.0.0.1", 0, WORLD + 1, is_master=True, timeout=datetime.timedelta(seconds=60), wait_for_workers=False
    )
    out = tmp_path / scenario
    out.mkdir()
    procs = []
    start = time.monotonic()
    for rank in range(WORLD):
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), scenario, str(rank), str(WORLD), str(store.port), str(out)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        )
    results = []
    try:
        for p in procs:
            left = max(timeout - (time.monotonic() - start), 0.1)
            stdout, stderr = p.communicate(timeout=left)
            results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    except subprocess.TimeoutExpired:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        logs = [p.communicate()[1][-3000:] for p in procs]
        pytest.fail(f"{scenario}: the ranks did not end within {timeout} s (a hang):\n" + "\n----\n".join(logs))
    elapsed = time.monotonic() - start
    outputs = []
    for rank in range(WORLD):
        path = out / f"rank{rank}.json"
        outputs.append(json.loads(path.read_text()) if path.exists() else {})
    return outputs, results, elapsed


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One launch runs every scenario on both twins (tests/_dist_worker.py's suite)."""
    outputs, procs, _ = launch("suite", tmp_path_factory.mktemp("suite"), timeout=300)
    for rank, p in enumerate(procs):
        assert p.returncode == 0, f"rank {rank} exited {p.returncode}:\n{p.stderr[-4000:]}"
    return outputs, procs


@pytest.fixture(params=["default", "pure"])
def suite(request, launched):
    outputs, procs = launched
    results = [out[request.param] for out in outputs]
    expected = "pure" if request.param == "pure" else ("compiled" if REQUIRE_COMPILED else results[0]["backend"])
    assert [r["backend"] for r in results] == [expected] * WORLD
    return request.param, results, procs


def test_each_epoch_gets_its_own_shuffle_without_set_epoch_in_user_code(suite):
    _, (r0, r1), _ = suite
    for out in (r0, r1):
        epochs = [out["shuffles"][str(e)] for e in (1, 2, 3)]
        assert epochs[0] != epochs[1] != epochs[2] != epochs[0]
        assert out["resumed_epoch3"] == epochs[2]
        # the drop-in, as ignite: the sampler's epoch is left alone (still 2, from the last run)
        assert out["dropin_shuffles"]["1"] == out["dropin_shuffles"]["2"] == epochs[2]
    for e in ("1", "2", "3"):  # the ranks share each epoch's items out between them
        assert sorted(r0["shuffles"][e] + r1["shuffles"][e]) == list(range(32))


def test_early_stopping_decides_on_the_reduced_score(suite):
    _, (r0, r1), _ = suite
    assert r0["early_stopping"] == r1["early_stopping"]
    # Mean scores 1, 2, 2.25, 2.7, 2.65, 2.6: best at epoch 4, then 2 epochs without gain.
    assert r0["early_stopping"]["epoch"] == 6
    assert r0["early_stopping"]["stopper"]["best_score"] == 2.7


def test_a_nan_on_one_rank_stops_every_rank_at_the_same_iteration(suite):
    _, (r0, r1), _ = suite
    assert r0["nan"] == r1["nan"]
    assert r0["nan"]["1"]["iteration"] == 7  # agreeing every iteration: exactly where ignite stops
    # Every 3: agreements at iterations 3, 6, then 8, the epoch's last (always one).
    assert r0["nan"]["3"]["iteration"] == 8
    assert 7 <= r0["nan"]["auto"]["iteration"] < 4 * 8


def test_terminate_epoch_and_interrupt_asked_on_one_rank(suite):
    _, (r0, r1), _ = suite
    assert r0["stops"] == r1["stops"]
    assert r0["stops"]["terminate_epoch"]["epoch_ends"] == [3, 11]
    assert r0["stops"]["interrupt"]["interrupted_at"] == 5
    assert r0["stops"]["interrupt"]["final"] == 16


def test_checkpoints_are_identical_and_complete_on_every_rank(suite):
    _, (r0, r1), _ = suite
    r0_error, r1_error = r0["checkpoints"].pop("cannot_choose"), r1["checkpoints"].pop("cannot_choose")
    assert r0_error.startswith("NotImplementedError"), r0_error
    assert r1_error.startswith("RankFailedError: rank 0 failed: choosing the checkpoint to load in "), r1_error
    assert r0_error.split(": ", 1)[1] in r1_error
    assert r0["checkpoints"] == r1["checkpoints"]
    seen = r0["checkpoints"]["seen"]
    assert all(s["complete"] for s in seen) and len(seen) == 5
    assert r0["checkpoints"]["latest"] == os.path.basename(seen[-1]["last"])


def test_a_save_that_fails_on_the_writing_rank_fails_every_rank_at_once(suite):
    """Both processes live on after the failure (the case in which waiting
    for a process to exit would never end)."""
    _, (r0, r1), _ = suite
    f0, f1 = r0["failed_save"], r1["failed_save"]
    assert f0["raised"] == "OSError: no space left on purpose, writing model_3.pt", f0
    assert f1["raised"].startswith("RankFailedError: rank 0 failed: OSError: no space left on purpose"), f1
    assert f1["failed_rank"] == 0
    assert f0["epoch"] == f1["epoch"] == 3
    assert f0["saved"] == f1["saved"] == ["model_1.pt", "model_2.pt"]
    assert max(f0["seconds"], f1["seconds"]) < 20, (f0, f1)


def test_a_score_function_failing_on_one_rank_fails_every_rank_at_once(suite):
    _, (r0, r1), _ = suite
    es0, es1 = r0["failed_scores"]["early_stopping"], r1["failed_scores"]["early_stopping"]
    assert es1["raised"] == "KeyError: 'accuracy'", es1
    # Where rank 1's failure was published (the engine's failure record in the
    # store, with its position) before rank 0's run ended, its message says
    # where; either way it names the rank and what it raised.
    assert es0["raised"].startswith("RankFailedError: rank 1 failed: KeyError: 'accuracy'"), es0
    assert es0["raised"].endswith("(rank 0 stopped because of it)"), es0
    assert es0["failed_rank"] == 1 and es0["epoch"] == es1["epoch"] == 2
    ck0, ck1 = r0["failed_scores"]["checkpoint"], r1["failed_scores"]["checkpoint"]
    assert ck0["raised"] == "ValueError: Output of score_function should be a number, got <class 'str'>", ck0
    assert ck1["raised"].startswith("RankFailedError: rank 0 failed: ValueError: Output of score_function"), ck1
    assert ck1["raised"].endswith("(rank 1 stopped because of it)"), ck1
    assert ck1["failed_rank"] == 0 and ck0["epoch"] == ck1["epoch"] == 3
    assert max(r["seconds"] for r in (es0, es1, ck0, ck1)) < 20


def test_ignite_metrics_and_torchmetrics_reduce_across_ranks(suite):
    _, (r0, r1), _ = suite
    for out in (r0, r1):
        m = out["metrics"]
        assert m["ignite"] == pytest.approx(m["expected"])
        assert m["torchmetrics"] == pytest.approx(m["expected"])


def test_progress_bars_and_handler_logs_on_rank_zero_only(suite):
    _, _, (p0, p1) = suite
    assert "EarlyStopping" in p0.stderr and "Epoch" in p0.stderr
    assert "EarlyStopping" not in p1.stderr, p1.stderr[-2000:]
    assert "it/s" not in p1.stderr and "Epoch [" not in p1.stderr, p1.stderr[-2000:]


@pytest.mark.parametrize("failing", [1, 0])
def test_an_exception_on_one_rank_ends_every_rank_quickly_naming_it(tmp_path, failing):
    outputs, procs, elapsed = launch(f"failure{failing}", tmp_path, timeout=90)
    other = 1 - failing
    assert procs[failing].returncode != 0 and "ValueError: boom on purpose" in procs[failing].stderr
    assert procs[other].returncode != 0
    assert outputs[other]["failed_rank"] == failing, outputs[other]
    assert f"rank {failing} failed: ValueError: boom on purpose at iteration 5" in outputs[other]["exception"]
    assert "RankFailedError" in procs[other].stderr
    # The other rank's run ends seconds after the failure, not at the collective
    # timeout (120 s here, 30 min by default).
    assert outputs[other]["exception_at"] - outputs[failing]["raised_at"] < 20
    print(
        f"rank {other} stopped {outputs[other]['exception_at'] - outputs[failing]['raised_at']:.2f} s after rank {failing} raised"
    )


def test_an_engine_on_rank_zero_only_runs_and_ranks_out_of_step_fail_clearly(launched):
    outputs, _ = launched
    for out in outputs:
        assert out["rank0_only_epochs"] == 2, out
        error = out["out_of_step_error"]
        assert "out of step" in error and "agree_every = 0" in error, error
