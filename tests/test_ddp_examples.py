"""examples/ddp_digits.py under torchrun: data-parallel training on CPU/gloo.

1. ``torchrun --standalone --nproc_per_node=2``: the run trains, and every rank
   ends with the same weights (the example compares their sha256 digests).
2. Two torchrun "nodes" of one process each (``--nnodes=2 --node_rank=0/1``,
   rendezvous on 127.0.0.1) end with bitwise the weights of one node with two
   processes.
3. Rank 1 is SIGKILLed in the middle of an epoch, after a mid-epoch
   checkpoint; torchrun stops the job; the relaunch with ``--resume`` ends
   with bitwise the weights and optimizer state of the run never interrupted.
4. Plain ``python examples/ddp_digits.py`` runs as one process.

Every launch runs in its own session with a hard time bound: on expiry it is
killed, torchrun's workers included (torchrun starts each in a session of its
own), and the test fails.  Addresses are 127.0.0.1 only; the two-node
rendezvous port is a free one.  3 epochs of 23 iterations (2 ranks, 32
samples a batch; the ranks read the digits from an .npz, not scikit-learn):
the file costs about 90 s of CPU, nearly all of it 14 interpreters importing
torch and DistributedDataParallel's constructor importing torch._dynamo
(torch 2.13); training itself takes about a second a run.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

np = pytest.importorskip("numpy", reason="needs numpy")
torch = pytest.importorskip("torch", reason="needs torch")
pytest.importorskip("sklearn", reason="needs scikit-learn (its digits data set)")
pytest.importorskip("tqdm", reason="needs tqdm (the example's progress bar)")
if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
    pytest.skip("needs torch.distributed with gloo", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ddp_digits.py"
LAUNCH_TIMEOUT = 150.0  # seconds a launch may take before it is killed and the test fails
EPOCHS = 3  # 23 iterations each on 2 ranks: 69 in all
KILL_AT = 35  # iteration 12 of epoch 2; the last checkpoint is at iteration 30 (every 10)
SUMMARY = re.compile(
    r"trained (\d+) epochs \((\d+) iterations\) on (\d+) process(?:es)? .*validation accuracy ([0-9.]+)"
)
DIGESTS = re.compile(r"weights sha256 on ranks 0\.\.(\d+): ([0-9a-f ]+): identical")


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    if sys.platform.startswith("linux"):
        env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's connections on the loopback interface only
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # a test run under torchrun must not hand its own group to the example
    return env


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc; elsewhere none are found)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Launch:
    """A command in a session of its own, output to files under ``logs``."""

    def __init__(self, name: str, cmd: list[str], logs: Path) -> None:
        self.name = name
        self.out_path, self.err_path = logs / f"{name}.out", logs / f"{name}.err"
        self.started = time.monotonic()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=_env(), cwd=ROOT, start_new_session=True)

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def remaining(self) -> float:
        return self.started + LAUNCH_TIMEOUT - time.monotonic()

    def kill(self) -> None:
        """SIGKILL the launch and every process under it (torchrun's workers have
        sessions of their own, so killing the launch's group alone would leave them)."""
        for pid in [*_descendants(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=max(self.remaining(), 0.1))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not end within {LAUNCH_TIMEOUT:.0f} s: killed\n{self.report()}")

    def finish(self) -> str:
        """Wait for a successful end; its stdout."""
        code = self.wait()
        assert code == 0, f"{self.name} failed with exit code {code}\n{self.report()}"
        return self.stdout()

    def report(self) -> str:
        return f"--- stdout\n{self.stdout()[-3000:]}\n--- stderr\n{self.stderr()[-5000:]}"


def _summary(out: str) -> tuple[int, int, int, float]:
    match = SUMMARY.search(out)
    assert match, f"no summary in the output:\n{out[-3000:]}"
    epochs, iterations, processes, accuracy = match.groups()
    return int(epochs), int(iterations), int(processes), float(accuracy)


def _check_equal_on_ranks(out: str, world_size: int) -> str:
    match = DIGESTS.search(out)
    assert match, f"no weight digests in the output:\n{out[-3000:]}"
    digests = match.group(2).split()
    assert int(match.group(1)) == world_size - 1 and len(digests) == world_size
    assert len(set(digests)) == 1
    return digests[0]


def _check_sampler_epochs(out: str) -> None:
    """The engine called set_epoch at every epoch start: each epoch had its own order."""
    assert f"the training sampler's epoch at the end: {EPOCHS - 1}" in out, out[-3000:]


def _final(out_dir: Path) -> dict:
    return torch.load(out_dir / "final.pt", weights_only=True)


def _assert_bitwise_equal(a, b, where: str = "") -> None:
    """Nested state dicts, tensors compared bit for bit (dtype included)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_bitwise_equal(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_bitwise_equal(x, y, f"{where}/{i}")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


def _assert_same_training(result: dict, reference: dict) -> None:
    assert (result["epoch"], result["iteration"], result["world_size"]) == (EPOCHS, EPOCHS * 23, 2)
    _assert_bitwise_equal(result["model"], reference["model"], "model")
    _assert_bitwise_equal(result["optimizer"], reference["optimizer"], "optimizer")
    assert len(result["optimizer"]["state"]) == 4  # momentum buffers of the 4 parameters


@pytest.fixture(scope="module")
def common(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The arguments every torchrun launch shares.  The digits are read from an
    .npz written here: the ranks then skip importing scikit-learn (seconds each)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    np.savez(path, x=x, y=y)
    return ["--epochs", str(EPOCHS), "--seed", "3", "--data", str(path)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, common: list[str]) -> dict:
    """One node, two processes, never interrupted: the run the others must equal.
    It shows its progress bar (on stderr), as a user's run does."""
    tmp = tmp_path_factory.mktemp("reference")
    launch = Launch("reference", _torchrun("--standalone", "--nproc_per_node=2", str(EXAMPLE), *common,
                                           "--out", str(tmp / "out")), tmp)  # fmt: skip
    out = launch.finish()
    return {"out": out, "final": _final(tmp / "out"), "dir": tmp / "out"}


def test_two_processes_train_to_equal_weights(reference):
    epochs, iterations, processes, accuracy = _summary(reference["out"])
    assert (epochs, iterations, processes) == (EPOCHS, EPOCHS * 23, 2)
    assert accuracy > 0.85, "the model should learn the digits"
    _check_equal_on_ranks(reference["out"], 2)
    _check_sampler_epochs(reference["out"])
    assert reference["final"]["world_size"] == 2
    # Checkpoints: rank 0 wrote them, once each, where the run was told to.
    assert sorted(p.name for p in (reference["dir"] / "checkpoints").iterdir()) == [
        "resume_checkpoint_60.pt", "resume_checkpoint_69.pt"]  # fmt: skip
    assert len(list((reference["dir"] / "best").glob("model_*_accuracy=*.pt"))) >= 1


def test_two_nodes_train_as_one_node_with_two_processes(reference, common, tmp_path):
    port = str(_free_port())
    nodes = [
        Launch(
            f"node{node}",
            _torchrun(
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={node}",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                str(EXAMPLE),
                *common,
                "--no-progress",
                "--out",
                str(tmp_path / "out"),
            ),
            tmp_path,
        )  # fmt: skip
        for node in (0, 1)
    ]
    try:
        outs = [node.finish() for node in nodes]
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.kill()
    assert _summary(outs[0])[:3] == (EPOCHS, EPOCHS * 23, 2)
    assert _check_equal_on_ranks(outs[0], 2) == _check_equal_on_ranks(reference["out"], 2)
    assert "trained" not in outs[1], "the summary is rank 0's"
    _assert_same_training(_final(tmp_path / "out"), reference["final"])


def test_sigkill_one_rank_mid_epoch_then_resume_is_bitwise_exact(reference, common, tmp_path):
    out_dir = tmp_path / "out"
    victim = Launch("victim", _torchrun("--standalone", "--nproc_per_node=2", str(EXAMPLE), *common, "--no-progress",
                                        "--out", str(out_dir), "--hang-at", str(KILL_AT), "--hang-rank", "1"),
                    tmp_path)  # fmt: skip
    try:
        # Rank 1 stops at the start of iteration KILL_AT and says so; rank 0 waits
        # for it in the step's gradient all-reduce.
        while (match := re.search(r"HANG iteration=(\d+) rank=(\d+) pid=(\d+)", victim.stdout())) is None:
            if victim.proc.poll() is not None:
                pytest.fail(f"the run ended before hanging (exit {victim.proc.returncode})\n{victim.report()}")
            if victim.remaining() <= 0:
                victim.kill()
                pytest.fail(f"the run did not reach iteration {KILL_AT} in time\n{victim.report()}")
            time.sleep(0.1)
        assert match.group(1, 2) == (str(KILL_AT), "1")
        # Written before the kill: the newest checkpoint is mid-epoch 2's (iteration 30).
        assert sorted(p.name for p in (out_dir / "checkpoints").glob("*.pt")) == [
            "resume_checkpoint_23.pt", "resume_checkpoint_30.pt"]  # fmt: skip
        os.kill(int(match.group(3)), signal.SIGKILL)
        code = victim.wait()
    finally:
        if victim.proc.poll() is None:
            victim.kill()
    assert code != 0, "torchrun should report the job failed"
    assert "SIGKILL" in victim.stderr(), victim.report()
    assert not (out_dir / "final.pt").exists()

    resumed = Launch("resumed", _torchrun("--standalone", "--nproc_per_node=2", str(EXAMPLE), *common,
                                          "--no-progress", "--out", str(out_dir), "--resume"), tmp_path)  # fmt: skip
    out = resumed.finish()
    assert "resumed from resume_checkpoint_30.pt (iteration 30)" in out
    _check_equal_on_ranks(out, 2)
    _check_sampler_epochs(out)
    _assert_same_training(_final(out_dir), reference["final"])
    assert _summary(out)[:3] == (EPOCHS, EPOCHS * 23, 2)


def test_runs_as_a_single_process(tmp_path):
    # As a user runs it, with scikit-learn's digits.
    single = Launch("single", [sys.executable, str(EXAMPLE), "--epochs", "1", "--no-progress",
                               "--out", str(tmp_path / "out")], tmp_path)  # fmt: skip
    out = single.finish()
    assert _summary(out)[:3] == (1, 45, 1)  # 1437 training samples, 32 a batch
    _check_equal_on_ranks(out, 1)
    assert _final(tmp_path / "out")["world_size"] == 1
