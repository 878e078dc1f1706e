"""fastignite.deterministic: ignite's DeterministicEngine data flow, and exact resume.

1. The data order (batch sampler indices, random iterables) is ignite's, epoch after
   epoch, fresh and resumed from an epoch start.
2. A real training run (tests/_resume_train.py: digits MLP, SGD with momentum)
   SIGKILLed in the middle of an epoch and resumed from its last checkpoint ends
   with bitwise the weights and optimizer state of a run never interrupted, with
   and without random numbers drawn in the step; ignite 0.5.5 does not.
3. keep_random_state and update_dataloader behave as ignite's.

Without torch or pytorch-ignite the tests that need them skip; the import check,
which runs without torch, still runs.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy", reason="needs numpy")

from fastignite import Events  # noqa: E402
from fastignite import deterministic as fast_det  # noqa: E402

try:
    import torch
    from torch.utils.data import DataLoader, WeightedRandomSampler
except ImportError:
    torch = None
try:
    from ignite.engine import Events as IgniteEvents
    from ignite.engine import deterministic as ignite_det
    from ignite.utils import manual_seed
except ImportError:
    ignite_det = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
needs_ignite = pytest.mark.skipif(ignite_det is None, reason="needs pytorch-ignite 0.5.5")

SRC = Path(__file__).resolve().parent.parent / "src"
SCRIPT = Path(__file__).resolve().parent / "_resume_train.py"


def _ignite_engine(step):
    return ignite_det.DeterministicEngine(step)


def _fast_engine(step):
    return fast_det.DeterministicEngine(step)


def _events(make):
    return IgniteEvents if make is _ignite_engine else Events


def _record_run(make, data_factory, seed=12, sd=None, **run_kwargs):
    """(iteration, batch as a list) for every iteration of a run."""
    seen = []

    def step(engine, batch):
        value = batch.tolist() if hasattr(batch, "tolist") else batch
        seen.append((engine.state.iteration, value))

    engine = make(step)
    if sd is not None:
        engine.load_state_dict(sd)
    torch.manual_seed(seed)
    engine.run(data_factory(), **run_kwargs)
    return seen, engine


# -- 1. same data order as ignite ---------------------------------------------------


def _shuffled_loader(num_workers=0, sampler=None):
    data = torch.arange(84)
    return DataLoader(data, batch_size=4, shuffle=sampler is None, sampler=sampler, num_workers=num_workers)


class _RandomIterable:
    """A sized iterable whose order comes from python's and numpy's global generators."""

    def __init__(self, n=21):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        order = list(range(self.n))
        random.shuffle(order)
        for i in order:
            yield i * 1000 + int(np.random.randint(0, 1000))


def _weighted_loader():
    return _shuffled_loader(sampler=WeightedRandomSampler(torch.ones(84), 84))


@needs_ignite
@pytest.mark.parametrize(
    "factory, run_kwargs",
    [
        (_shuffled_loader, dict(max_epochs=3)),
        (_shuffled_loader, dict(max_epochs=3, epoch_length=15)),
        (_shuffled_loader, dict(max_epochs=2, epoch_length=40)),
        (_weighted_loader, dict(max_epochs=3)),
        (_RandomIterable, dict(max_epochs=3)),
    ],
    ids=["loader", "loader-shorter-epochs", "loader-longer-epochs", "weighted", "random-iterable"],
)
def test_same_data_order_as_ignite(backend, factory, run_kwargs):
    ours, _ = _record_run(_fast_engine, factory, **run_kwargs)
    theirs, _ = _record_run(_ignite_engine, factory, **run_kwargs)
    assert ours == theirs
    # and the passes really differ from one another
    per_pass = len(factory())
    firsts = [ours[i][1] for i in range(0, min(len(ours), 3 * per_pass), per_pass)]
    assert len({str(f) for f in firsts}) == len(firsts)


@needs_ignite
def test_same_data_order_as_ignite_with_workers(backend):
    ours, _ = _record_run(_fast_engine, lambda: _shuffled_loader(num_workers=2), max_epochs=2)
    theirs, _ = _record_run(_ignite_engine, lambda: _shuffled_loader(num_workers=2), max_epochs=2)
    assert ours == theirs


@needs_ignite
@pytest.mark.parametrize("resume_epoch", [1, 2])
def test_resume_from_epoch_same_as_ignite(backend, resume_epoch):
    sd = dict(epoch=resume_epoch, max_epochs=3, epoch_length=21, rng_states=None)
    ours, _ = _record_run(_fast_engine, _shuffled_loader, sd=sd)
    theirs, _ = _record_run(_ignite_engine, _shuffled_loader, sd=sd)
    full, _ = _record_run(_fast_engine, _shuffled_loader, max_epochs=3)
    assert ours == theirs == full[resume_epoch * 21 :]


@needs_torch
@pytest.mark.parametrize(
    "factory, num_workers",
    [(_shuffled_loader, 0), (_shuffled_loader, 2), (_RandomIterable, 0)],
    ids=["loader", "loader-workers", "random-iterable"],
)
def test_mid_epoch_resume_in_process(backend, factory, num_workers):
    """The data, and random numbers drawn in the step, continue as in the original run
    (ignite's engine fails this for all three: permutation, seed, pass seed)."""
    make_data = (lambda: factory(num_workers=num_workers)) if factory is _shuffled_loader else factory
    checkpoints = {}

    def run(sd=None):
        seen = []

        def step(engine, batch):
            value = batch.tolist() if hasattr(batch, "tolist") else batch
            seen.append((engine.state.iteration, value, torch.rand(1).item(), random.random(), np.random.rand()))

        engine = fast_det.DeterministicEngine(step)

        @engine.on(Events.ITERATION_COMPLETED(every=5))
        def save(e):
            checkpoints[e.state.iteration] = e.state_dict()

        if sd is not None:
            engine.load_state_dict(sd)
        torch.manual_seed(7 if sd is None else 8)  # the checkpoint's seed wins
        engine.run(make_data(), max_epochs=3)
        return seen

    full = run()
    for it in (5, 25, 45):  # epoch 1, 2 and 3, mid-epoch
        assert run(checkpoints[it]) == full[it:]


@needs_ignite
def test_state_dict_format():
    engine = fast_det.DeterministicEngine(lambda e, b: None)
    sd = engine.state_dict()
    assert list(sd) == ["epoch_length", "iteration", "max_epochs", "rng_states"]
    states = sd["rng_states"]
    assert states[0] == random.getstate()
    assert torch.equal(states[1], torch.get_rng_state())
    assert isinstance(states[-1], dict) and "seed" in states[-1]
    # ignite's own rng_states load, and ignite's helper reads ours
    ignite_sd = ignite_det.DeterministicEngine(lambda e, b: None).state_dict()
    fast_det.DeterministicEngine(lambda e, b: None).load_state_dict(ignite_sd)
    ignite_det._set_rng_states(states)


def test_import_does_not_import_torch_and_runs_without_it(tmp_path):
    code = r"""
import sys
import fastignite, fastignite.deterministic
assert "torch" not in sys.modules, "import pulled in torch"
sys.modules["torch"] = None  # torch unavailable from here on
import random
import numpy as np
from fastignite import DeterministicEngine, Events

class Data:
    def __len__(self): return 7
    def __iter__(self):
        order = list(range(7)); random.shuffle(order); return iter(order)

def run(sd=None, keep=None):
    seen = []
    eng = DeterministicEngine(lambda e, b: seen.append((e.state.iteration, b, random.random(), np.random.rand())))
    if keep is not None:
        eng.add_event_handler(Events.ITERATION_COMPLETED(once=10), lambda e: keep.append(e.state_dict()))
    if sd is not None:
        eng.load_state_dict(sd)
    eng.run(Data(), max_epochs=3)
    return seen
keep = []
full = run(keep=keep)
assert run(keep[0]) == full[10:]
assert "torch" not in sys.modules or sys.modules["torch"] is None
print("OK")
"""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "OK"


# -- 2. SIGKILL and resume: a real training run -----------------------------------------


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="needs scikit-learn (its digits data set)")
    x, y = sklearn_datasets.load_digits(return_X_y=True)
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    np.savez(path, x=x, y=y)
    return path


def _script(*args):
    return [sys.executable, str(SCRIPT), *map(str, args)]


def _env():
    return dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _finish(proc, what):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{what} failed:\n{err}"
    return out


def _kill_in_iteration(proc):
    """SIGKILL the script once it reports being in the middle of an iteration."""
    for line in proc.stdout:
        if line.startswith("HANG"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL


def _killed_and_resumed(tmp_path, engine, extra, kill_at, digits):
    """Final state of: an uninterrupted run; a run killed in iteration `kill_at` then
    resumed from its last checkpoint in a new process."""
    common = ["--engine", engine, "--data", digits, "--every", 10, *extra]
    full = subprocess.Popen(
        _script(*common, "--out", tmp_path / "full.pt", "--ckpt", tmp_path / "full-ckpt.pt"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    ckpt = tmp_path / "ckpt.pt"
    victim = subprocess.Popen(
        _script(*common, "--out", tmp_path / "never.pt", "--ckpt", ckpt, "--hang-at", kill_at),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(),
    )  # fmt: skip
    try:
        _kill_in_iteration(victim)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert not (tmp_path / "never.pt").exists()
    resumed = subprocess.run(
        _script(*common, "--out", tmp_path / "resumed.pt", "--ckpt", ckpt, "--resume"),
        capture_output=True, text=True, env=_env(), timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"RESUMED {(kill_at - 1) // 10 * 10}" in resumed.stdout
    _finish(full, "uninterrupted run")
    load = lambda name: torch.load(tmp_path / name, weights_only=False)  # noqa: E731
    return load("full.pt"), load("resumed.pt")


def _tensors(obj, prefix=""):
    """Every tensor (and other leaf) in a nested state_dict, by path."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
        return out
    if isinstance(obj, (list, tuple)):
        out = {}
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}/{i}"))
        return out
    return {prefix: obj}


def _bitwise_equal(a, b):
    ta, tb = _tensors(a), _tensors(b)
    if ta.keys() != tb.keys():
        return False
    for k in ta:
        x, y = ta[k], tb[k]
        if isinstance(x, torch.Tensor):
            if not (isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)):
                return False
        elif x != y:
            return False
    return True


@needs_torch
@pytest.mark.parametrize("dropout", [False, True], ids=["plain", "dropout+noise"])
def test_sigkill_mid_epoch_resume_is_bitwise_exact(tmp_path, digits_npz, dropout):
    # 1797 samples / 64 = 29 batches per epoch; iteration 45 is batch 16 of epoch 2;
    # the last checkpoint is at iteration 40 (batch 11 of epoch 2).
    extra = ["--dropout"] if dropout else []
    full, resumed = _killed_and_resumed(tmp_path, "fastignite", extra, 45, digits_npz)
    assert full["iteration"] == resumed["iteration"] == 87
    assert full["model"].keys() == resumed["model"].keys()
    for name in full["model"]:
        assert torch.equal(full["model"][name], resumed["model"][name]), name
    assert len(full["opt"]["state"]) == len(resumed["model"]) == 4
    assert _bitwise_equal(full["opt"], resumed["opt"])
    assert _bitwise_equal(full["model"], resumed["model"])


@needs_ignite
def test_ignite_mid_epoch_resume_diverges(tmp_path, digits_npz):
    """ignite 0.5.5 in the same setup: the resumed run ends elsewhere (its sampler draws
    the pass's permutation after the generators were put back)."""
    full, resumed = _killed_and_resumed(tmp_path, "ignite", ["--dropout"], 45, digits_npz)
    assert full["iteration"] == resumed["iteration"] == 87
    assert not _bitwise_equal(full["model"], resumed["model"])


# -- 3. helpers as ignite's --------------------------------------------------------------


def _draws():
    return (random.random(), torch.rand(3).tolist(), np.random.rand(2).tolist())


@needs_ignite
@pytest.mark.parametrize("module", [fast_det, ignite_det], ids=["fastignite", "ignite"])
def test_keep_random_state(module):
    manual_seed(54)
    expected = [_draws() for _ in range(4)]

    @module.keep_random_state
    def scramble():
        manual_seed(22)
        _draws()

    manual_seed(54)
    got = []
    for _ in range(4):
        got.append(_draws())
        scramble()
    assert got == expected


@needs_torch
def test_keep_random_state_extras():
    def f(x):
        random.random()
        torch.rand(1)
        return x * 2

    wrapped = fast_det.keep_random_state(f)
    assert wrapped.__name__ == "f"
    before = fast_det._get_rng_states()
    assert wrapped(21) == 42  # ignite's wrapper returns None
    after = fast_det._get_rng_states()
    assert before[0] == after[0] and torch.equal(before[1], after[1])

    @fast_det.keep_random_state
    def boom():
        torch.rand(5)
        raise KeyError("x")

    state = torch.get_rng_state()
    with pytest.raises(KeyError):
        boom()
    assert torch.equal(state, torch.get_rng_state())


@needs_torch
def test_keep_random_state_without_numpy(monkeypatch):
    monkeypatch.setitem(sys.modules, "numpy", None)

    @fast_det.keep_random_state
    def g():
        random.random()
        torch.rand(1)

    r, t = random.getstate(), torch.get_rng_state()
    g()
    assert random.getstate() == r and torch.equal(t, torch.get_rng_state())


@needs_ignite
def test_update_dataloader_as_ignite():
    loader = DataLoader(torch.arange(50), batch_size=4, shuffle=True, drop_last=True, num_workers=0)
    ours = fast_det.update_dataloader(loader, fast_det.ReproducibleBatchSampler(loader.batch_sampler))
    theirs = ignite_det.update_dataloader(loader, ignite_det.ReproducibleBatchSampler(loader.batch_sampler))
    assert type(ours) is type(theirs) is DataLoader
    for attr in ("dataset", "num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn", "generator"):
        assert getattr(ours, attr) is getattr(theirs, attr)
    assert isinstance(ours.batch_sampler, fast_det.ReproducibleBatchSampler)
    for epoch in range(3):
        torch.manual_seed(epoch)
        a = [b.tolist() for b in ours]
        torch.manual_seed(epoch)
        b = [b.tolist() for b in theirs]
        torch.manual_seed(epoch)
        c = [b.tolist() for b in loader]
        assert a == b == c


@needs_ignite
def test_reproducible_batch_sampler_as_ignite():
    loader = DataLoader(list(range(30)), batch_size=4, shuffle=True)
    ours = fast_det.ReproducibleBatchSampler(loader.batch_sampler, start_iteration=3)
    theirs = ignite_det.ReproducibleBatchSampler(loader.batch_sampler, start_iteration=3)
    assert len(ours) == len(theirs) == 8
    assert ours.sampler is loader.sampler
    for _ in range(2):  # start_iteration holds for one pass
        torch.manual_seed(5)
        a = list(ours)
        torch.manual_seed(5)
        b = list(theirs)
        assert a == b and a == ours.batch_indices
    with pytest.raises(TypeError, match="should be torch.utils.data.sampler.BatchSampler"):
        fast_det.ReproducibleBatchSampler([1, 2])
    import fastignite

    assert fastignite.ReproducibleBatchSampler is fast_det.ReproducibleBatchSampler


@needs_torch
def test_checkpointed_by_the_projects_checkpoint_it_loads_back(tmp_path):
    # rng_states holds plain values: torch.load's default weights_only=True and
    # the pickle fallback's safe unpickler both read the file.
    from fastignite.handlers import Checkpoint, DiskSaver

    engine = fast_det.DeterministicEngine(lambda e, b: None)
    engine.add_event_handler(Events.EPOCH_COMPLETED, Checkpoint({"trainer": engine}, DiskSaver(str(tmp_path))))
    engine.run(list(range(4)), max_epochs=1)
    restored = fast_det.DeterministicEngine(lambda e, b: None)
    Checkpoint.load_objects({"trainer": restored}, str(tmp_path / "trainer_4.pt"))
    assert restored.state.iteration == 4
