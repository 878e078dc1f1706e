"""fastignite.distributed in one process, without torch: what a run does when
no process group exists (the multi-process behaviour is tests/test_distributed.py)."""

from __future__ import annotations

import copy
import pickle
import sys

import pytest

from fastignite import Events
from fastignite import distributed as fdist


class EpochSampler:
    """A sampler with set_epoch, as DistributedSampler has."""

    def __init__(self, n):
        self.n, self.epochs = n, []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


class Loader:
    """What the engine sees of a DataLoader: iterable, sized, with a sampler."""

    def __init__(self, sampler, batch_sampler=None):
        self.sampler, self.batch_sampler = sampler, batch_sampler

    def __iter__(self):
        return iter(list(self.sampler))

    def __len__(self):
        return len(self.sampler)


def test_without_torch_loaded_nothing_is_distributed():
    assert fdist.get_rank() == 0 and fdist.get_world_size() == 1
    if "torch" not in sys.modules:
        assert not fdist.is_distributed()


@pytest.mark.parametrize("value", ["never", 1.0, -1, True, None, "AUTO"])
def test_bad_agree_every_is_refused_naming_it_and_the_engine_stays_usable(Engine, value):
    engine = Engine(lambda e, b: None)
    engine.run(range(3), max_epochs=1)
    before = engine.state_dict()
    engine.agree_every = value
    with pytest.raises(ValueError, match=r"engine\.agree_every should be 'auto', 0 \(never\) or an int k >= 1"):
        engine.run(range(3), max_epochs=2)
    assert engine.state_dict() == before
    engine.agree_every = 1
    assert engine.run(range(3), max_epochs=2).epoch == 2


@pytest.mark.parametrize("every", ["auto", 0, 1, 7])
def test_agree_every_changes_nothing_without_a_process_group(Engine, every):
    seen = []
    engine = Engine(lambda e, b: seen.append(b))
    engine.agree_every = every
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=4), lambda e: e.terminate_epoch())
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=9), lambda e: e.terminate())
    state = engine.run(range(6), max_epochs=3)
    assert (state.epoch, state.iteration) == (2, 9)
    assert engine._agreement is None and engine._signal is bool(engine.should_terminate)


def test_the_sampler_gets_set_epoch_at_every_epoch_start_resumes_too(Engine):
    sampler = EpochSampler(4)
    engine = Engine(lambda e, b: None)
    engine.run(Loader(sampler), max_epochs=3)
    assert sampler.epochs == [0, 1, 2]
    resumed = Engine(lambda e, b: None)
    resumed.load_state_dict({"iteration": 8, "epoch_length": 4, "max_epochs": 4})
    sampler.epochs.clear()
    resumed.run(Loader(sampler))
    assert sampler.epochs == [2, 3]


def test_the_sampler_is_found_behind_a_batch_sampler():
    inner = EpochSampler(4)

    class BatchSampler:
        sampler = inner

    assert fdist.sampler_of(Loader(EpochSampler(2), BatchSampler())) is not inner  # the loader's own first
    loader = Loader(None, BatchSampler())
    assert fdist.sampler_of(loader) is inner
    assert fdist.sampler_of(range(3)) is None and fdist.sampler_of(None) is None


def test_the_drop_in_leaves_the_sampler_alone_as_ignite():
    pytest.importorskip("ignite", reason="the drop-in needs pytorch-ignite")
    from fastignite.ignite import Engine as DropInEngine

    sampler = EpochSampler(4)
    DropInEngine(lambda e, b: None).run(Loader(sampler), max_epochs=3)
    assert sampler.epochs == []


def test_score_reduction_and_barrier_are_identities_without_a_group():
    assert fdist.reduce_score(3) == 3 and type(fdist.reduce_score(3)) is int
    assert fdist.barrier() is None


def test_an_agreement_is_never_copied_with_its_engine():
    agreement = object.__new__(fdist.Agreement)
    assert copy.deepcopy(agreement) is None
    assert pickle.loads(pickle.dumps(agreement)) is None


class Box:
    """What a checkpoint saves and loads: one value."""

    def __init__(self, v):
        self.v = v

    def state_dict(self):
        return {"v": self.v}

    def load_state_dict(self, sd):
        self.v = sd["v"]


def test_load_latest_checkpoint_without_a_group(tmp_path):
    from fastignite.handlers import Checkpoint, DiskSaver

    assert fdist.load_latest_checkpoint({"box": Box(0)}, tmp_path) is None
    box = Box(1)
    ckpt = Checkpoint({"box": box}, DiskSaver(str(tmp_path)), n_saved=None)
    engine_like = type(
        "E", (), {"state": type("S", (), {"iteration": 1, "epoch": 1})(), "last_event_name": Events.ITERATION_COMPLETED}
    )()
    engine_like.state.get_event_attrib_value = lambda event: engine_like.state.iteration
    for i in (1, 2, 3):
        box.v = i * 10
        engine_like.state.iteration = i
        ckpt(engine_like)
    target = Box(0)
    path = fdist.load_latest_checkpoint({"box": target}, tmp_path, pattern="*")
    assert target.v == 30 and path.name == str(ckpt.last_checkpoint).split("/")[-1]


def test_load_latest_checkpoint_compares_the_numbers_in_names_when_times_tie(tmp_path):
    import os
    import pickle

    for step in (99, 100, 7):
        (tmp_path / f"resume_{step}.pkl").write_bytes(pickle.dumps({"box": {"v": step}}))
    for f in tmp_path.iterdir():
        os.utime(f, ns=(10**18, 10**18))

    box = Box(0)
    assert fdist.load_latest_checkpoint({"box": box}, tmp_path, pattern="*.pkl").name == "resume_100.pkl"
    assert box.v == 100


def test_load_latest_checkpoint_never_chooses_a_file_still_being_written(tmp_path):
    import os
    import pickle

    from fastignite.handlers.checkpoint import TMP_PREFIX

    (tmp_path / "model_1.pkl").write_bytes(pickle.dumps({"box": {"v": 1}}))
    os.utime(tmp_path / "model_1.pkl", ns=(10**18, 10**18))
    (tmp_path / f"{TMP_PREFIX}abc.part").write_bytes(b"half a checkpoint")  # newer, but DiskSaver's temporary
    (tmp_path / "a_directory.pkl").mkdir()

    box = Box(0)
    assert fdist.load_latest_checkpoint({"box": box}, tmp_path, pattern="*").name == "model_1.pkl"
    assert box.v == 1


@pytest.mark.parametrize(
    "args, error, match",
    [
        (([], "."), TypeError, "to_load should be a mapping"),
        (({}, 3), TypeError, "dirname should be a str or a path"),
        (({}, ".", ""), ValueError, "pattern should be a non-empty glob pattern"),
        (({}, ".", b"*.pt"), ValueError, "pattern should be a non-empty glob pattern"),
    ],
)
def test_load_latest_checkpoint_refuses_what_it_cannot_use(args, error, match):
    with pytest.raises(error, match=match):
        fdist.load_latest_checkpoint(*args)


GROUP_LIFETIME = """
import atexit, datetime, gc, os, socket, weakref
import torch.distributed as dist
from fastignite import distributed as fdist

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
dist.init_process_group("gloo", rank=0, world_size=1, timeout=datetime.timedelta(seconds=30))
before = atexit._ncallbacks()
first = fdist._group(dist)
assert fdist._group(dist) is first
assert atexit._ncallbacks() == before + 1  # gc.collect at exit, registered once
mine = weakref.ref(first)
del first
dist.destroy_process_group()
gc.collect()
assert mine() is None, "fastignite kept its group alive after destroy_process_group()"
dist.init_process_group("gloo", rank=0, world_size=1, timeout=datetime.timedelta(seconds=30))
second = fdist._group(dist)
assert second is not None and atexit._ncallbacks() == before + 1
dist.destroy_process_group()
print("OK")
"""


def test_fastignite_never_keeps_a_process_group_alive():
    """destroy_process_group() lets fastignite's own group go (a group alive in
    the interpreter's teardown can abort the process, see docs/distributed.md),
    a new default group gets a new one, and gc.collect is registered at exit
    once."""
    pytest.importorskip("torch.distributed")
    import subprocess

    done = subprocess.run([sys.executable, "-c", GROUP_LIFETIME], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stderr[-3000:]
