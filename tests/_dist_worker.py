"""One rank of a multi-process test (tests/test_distributed.py starts them).

    python tests/_dist_worker.py SCENARIO RANK WORLD STORE_PORT OUT_DIR

The ranks join a gloo process group through a TCPStore that the test process
hosts on 127.0.0.1 (as torchrun's agent hosts it), run SCENARIO, and write what
they saw to OUT_DIR/rank{RANK}.json.  Every scenario is plain user code: a DDP
model, a DistributedSampler, fastignite's Engine and handlers, nothing else.
"""

from __future__ import annotations

import datetime
import gc
import hashlib
import json
import os
import sys
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from fastignite import Engine, Events
from fastignite import distributed as fdist

RANK = WORLD = 0
OUT: dict = {}


def weights_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for p in model.state_dict().values():
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def make_data(n: int = 64, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x.sum(1) > 0).long()
    return TensorDataset(x, y)


def ddp_trainer(model_seed: int = 0, nan_at: tuple | None = None) -> tuple:
    """A DDP MLP trainer; with ``nan_at=(rank, iteration)`` that rank's output
    is NaN at that iteration (the weights stay finite and equal)."""
    torch.manual_seed(model_seed)
    model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(engine, batch):
        x, y = batch
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if nan_at is not None and (RANK, engine.state.iteration) == nan_at:
            return float("nan")
        return loss.item()

    data = DataLoader(make_data(), batch_size=4, sampler=DistributedSampler(make_data(), shuffle=True, seed=1))
    return Engine(step), model, data


# -- scenarios ------------------------------------------------------------------------------


def shuffles() -> None:
    """No set_epoch in this code: each epoch must get its own shuffle, resumes too."""
    data = DataLoader(
        TensorDataset(torch.arange(32)),
        batch_size=4,
        sampler=DistributedSampler(TensorDataset(torch.arange(32)), shuffle=True, seed=3),
    )
    seen: dict = {}
    engine = Engine(lambda e, b: seen.setdefault(e.state.epoch, []).extend(b[0].tolist()))
    engine.run(data, max_epochs=3)
    OUT["shuffles"] = seen
    # A resume from the end of epoch 2 sees epoch 3's shuffle again.
    again: dict = {}
    resumed = Engine(lambda e, b: again.setdefault(e.state.epoch, []).extend(b[0].tolist()))
    resumed.load_state_dict({"iteration": 2 * len(data), "epoch_length": len(data), "max_epochs": 3})
    resumed.run(data)
    OUT["resumed_epoch3"] = again[3]
    # The drop-in keeps ignite's behaviour: no set_epoch, the same shuffle every epoch.
    from fastignite.ignite import Engine as DropInEngine

    same: dict = {}
    DropInEngine(lambda e, b: same.setdefault(e.state.epoch, []).extend(b[0].tolist())).run(data, max_epochs=2)
    OUT["dropin_shuffles"] = same


def early_stopping() -> None:
    """Scores skewed by rank: alone, rank 0 would stop after epoch 3 and rank 1
    never; the reduced score stops both at the same epoch."""
    from fastignite.handlers import EarlyStopping

    trainer, model, data = ddp_trainer()
    scores = {0: [1.0, 2.0, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0], 1: [1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0]}
    stopper = EarlyStopping(patience=2, score_function=lambda e: scores[RANK][e.state.epoch - 1], trainer=trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, stopper)
    state = trainer.run(data, max_epochs=8)
    OUT["early_stopping"] = {
        "epoch": state.epoch,
        "iteration": state.iteration,
        "weights": weights_hash(model),
        "stopper": dict(stopper.state_dict()),
    }


def nan_on_one_rank() -> None:
    from fastignite.handlers import TerminateOnNan

    results = {}
    for every in ("auto", 1, 3):
        trainer, model, data = ddp_trainer(nan_at=(1, 7))
        trainer.agree_every = every
        trainer.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan())
        state = trainer.run(data, max_epochs=4)
        results[str(every)] = {"epoch": state.epoch, "iteration": state.iteration, "weights": weights_hash(model)}
    OUT["nan"] = results


def stops_asked_on_one_rank() -> None:
    """terminate_epoch and interrupt asked by rank 1 only, at iteration 3."""
    results = {}
    trainer, model, data = ddp_trainer()
    trainer.agree_every = 1
    epochs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda e: RANK == 1 and e.terminate_epoch())
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(e.state.iteration))
    trainer.run(data, max_epochs=2)
    results["terminate_epoch"] = {"epoch_ends": epochs, "weights": weights_hash(model)}

    trainer, model, data = ddp_trainer()
    trainer.agree_every = 1
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=5), lambda e: RANK == 1 and e.interrupt())
    state = trainer.run(data, max_epochs=2)
    first = state.iteration
    state = trainer.run(data)
    results["interrupt"] = {"interrupted_at": first, "final": state.iteration, "weights": weights_hash(model)}
    OUT["stops"] = results


def checkpoints(directory: str) -> None:
    """Checkpoint with per-rank scores: the same files and last_checkpoint on
    every rank, and every rank finds each file complete right after the save."""
    from fastignite.handlers import Checkpoint, DiskSaver

    trainer, model, data = ddp_trainer()
    saver = DiskSaver(directory, require_empty=False)
    ckpt = Checkpoint(
        {"model": model.module, "trainer": trainer},
        saver,
        n_saved=2,
        score_function=lambda e: float(e.state.epoch % 3 + RANK),
        score_name="s",
    )
    seen = []

    def after_save(engine):
        last = ckpt.last_checkpoint
        loaded = torch.load(os.path.join(directory, last), weights_only=True)
        seen.append(
            {
                "last": str(last),
                "saved": [item.filename for item in ckpt._saved],
                "complete": sorted(loaded) == ["model", "trainer"],
            }
        )

    trainer.add_event_handler(Events.EPOCH_COMPLETED, ckpt)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, after_save)
    trainer.run(data, max_epochs=5)
    # Every rank loads the newest file, chosen once.
    fresh = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    path = fdist.load_latest_checkpoint({"model": fresh}, directory)
    # A pattern only rank 0 reads (pathlib refuses absolute ones): rank 0 raises,
    # and the others learn it instead of waiting for its choice.
    try:
        fdist.load_latest_checkpoint({"model": fresh}, directory, pattern="/abs/*.pt")
        cannot_choose = "nothing raised"
    except Exception as e:
        cannot_choose = f"{type(e).__name__}: {e}"
    OUT["checkpoints"] = {
        "seen": seen,
        "latest": os.path.basename(str(path)),
        "latest_weights": weights_hash(fresh),
        "files": sorted(os.listdir(directory)),
        "cannot_choose": cannot_choose,
    }


def failed_save() -> None:
    """The save fails on the rank that writes (rank 0), and both processes
    live on: every rank raises at the save's barrier instead of waiting there,
    and keeps the same list of saved files."""
    from fastignite.handlers import Checkpoint

    def save(checkpoint, filename, metadata):
        if RANK == 0 and "3" in filename:
            raise OSError(f"no space left on purpose, writing {filename}")

    trainer, model, data = ddp_trainer()
    ckpt = Checkpoint({"model": model}, save, n_saved=2, global_step_transform=lambda e, _: e.state.epoch)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, ckpt)
    start = time.monotonic()
    failed_rank = None
    try:
        trainer.run(data, max_epochs=5)
        raised = "nothing raised"
    except Exception as e:
        raised, failed_rank = f"{type(e).__name__}: {e}", getattr(e, "rank", None)
    OUT["failed_save"] = {
        "raised": raised,
        "failed_rank": failed_rank,
        "seconds": time.monotonic() - start,
        "epoch": trainer.state.epoch,
        "saved": [item.filename for item in ckpt._saved],
    }


def failed_scores() -> None:
    """A score function fails on one rank only (EarlyStopping's on rank 1, a
    Checkpoint's giving a non-number on rank 0), and both processes live on:
    every rank raises at once instead of waiting for that rank's score."""
    from fastignite.handlers import Checkpoint, EarlyStopping

    def early_stopping_score(engine):
        if RANK == 1 and engine.state.epoch == 2:
            raise KeyError("accuracy")
        return 1.0

    def checkpoint_score(engine):
        return "high" if RANK == 0 and engine.state.epoch == 3 else 0.5

    results = {}
    for name, attach in (
        ("early_stopping", lambda t, m: EarlyStopping(patience=5, score_function=early_stopping_score, trainer=t)),
        ("checkpoint", lambda t, m: Checkpoint({"model": m}, lambda *a: None, score_function=checkpoint_score)),
    ):
        trainer, model, data = ddp_trainer()
        trainer.add_event_handler(Events.EPOCH_COMPLETED, attach(trainer, model))
        start = time.monotonic()
        try:
            trainer.run(data, max_epochs=5)
            raised, failed_rank = "nothing raised", None
        except Exception as e:
            raised, failed_rank = f"{type(e).__name__}: {e}", getattr(e, "rank", None)
        results[name] = {
            "raised": raised,
            "failed_rank": failed_rank,
            "epoch": trainer.state.epoch,
            "seconds": time.monotonic() - start,
        }
    OUT["failed_scores"] = results


def metrics() -> None:
    """ignite.metrics and torchmetrics on the standalone engine reduce across ranks."""
    import torchmetrics
    from ignite.metrics import Accuracy

    ds = make_data(n=50, seed=5)  # 50 = 2 x 25: no padding, every item once
    torch.manual_seed(0)
    model = nn.Linear(8, 2)
    evaluator = Engine(lambda e, b: (model(b[0]).detach(), b[1]))
    Accuracy().attach(evaluator, "accuracy")
    tm = torchmetrics.classification.MulticlassAccuracy(num_classes=2, average="micro")
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: tm.update(*e.state.output))
    loader = DataLoader(ds, batch_size=5, sampler=DistributedSampler(ds, shuffle=False))
    state = evaluator.run(loader)
    x, y = ds.tensors
    expected = (model(x).argmax(1) == y).float().mean().item()
    OUT["metrics"] = {"ignite": state.metrics["accuracy"], "torchmetrics": float(tm.compute()), "expected": expected}


def output() -> None:
    """A ProgressBar and a handler's log line, attached on every rank."""
    from fastignite.handlers import EarlyStopping, ProgressBar

    trainer, model, data = ddp_trainer()
    ProgressBar(persist=True).attach(trainer)
    stopper = EarlyStopping(patience=1, score_function=lambda e: -e.state.epoch, trainer=trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, stopper)
    trainer.run(data, max_epochs=5)


def suite(directory: str) -> None:
    """Every scenario on each twin (engines built in a use_twin block run on
    it), then out_of_step; one launch, since starting ranks costs most."""
    global OUT
    import fastignite._dispatch_py as pure_twin
    from fastignite import _backend

    top = OUT
    for name, twin in (("default", _backend.twin), ("pure", pure_twin)):
        OUT = top[name] = {}
        with _backend.use_twin(twin):
            shuffles()
            early_stopping()
            nan_on_one_rank()
            stops_asked_on_one_rank()
            checkpoints(os.path.join(directory, name))
            failed_save()
            failed_scores()
            metrics()
            output()
            OUT["backend"] = Engine(lambda e, b: None)._twin.BACKEND
    OUT = top
    out_of_step()


def failure(failing: int) -> None:
    """Rank ``failing`` raises in its process function at iteration 5."""

    def boom(engine):
        if RANK == failing:
            OUT["raised_at"] = time.time()
            _flush()
            raise ValueError(f"boom on purpose at iteration {engine.state.iteration}")

    trainer, model, data = ddp_trainer()
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=5), boom)
    OUT["started"] = True
    _flush()
    trainer.run(data, max_epochs=100)


def out_of_step() -> None:
    """An evaluator on rank 0 only, then a barrier (an ignite idiom): its
    unsharded data makes no agreement by default, so it runs as on ignite.
    Asked to agree (agree_every = 1), and met by the other rank's next
    agreement, it gets a clear error on every rank, never a hang.  (Met by a
    collective of the user's instead, as the barrier here, it would wait:
    agree_every = k promises that every rank runs the engine.)"""
    trainer, model, data = ddp_trainer()
    evaluator = Engine(lambda e, b: None)

    def evaluate(engine):
        if RANK == 0:
            evaluator.run(range(3))
        if evaluator.agree_every == "auto":
            dist.barrier()

    trainer.add_event_handler(Events.EPOCH_COMPLETED, evaluate)
    OUT["rank0_only_epochs"] = trainer.run(data, max_epochs=2).epoch
    evaluator.agree_every = 1
    try:
        trainer.run(data, max_epochs=4)
    except Exception as e:
        OUT["out_of_step_error"] = f"{type(e).__name__}: {e}"


def _flush() -> None:
    with open(os.path.join(sys.argv[5], f"rank{RANK}.json"), "w") as f:
        json.dump(OUT, f)


def main() -> None:
    global RANK, WORLD
    scenario, RANK, WORLD, port, out_dir = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
        sys.argv[5],
    )
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, WORLD, is_master=False, timeout=datetime.timedelta(seconds=60))
    dist.init_process_group("gloo", store=store, rank=RANK, world_size=WORLD, timeout=datetime.timedelta(seconds=120))
    try:
        if scenario == "suite":
            suite(os.path.join(out_dir, "ckpt"))
        elif scenario.startswith("failure"):
            failure(int(scenario[-1]))
        else:
            raise SystemExit(f"unknown scenario {scenario}")
    except BaseException as e:
        OUT["exception_at"] = time.time()
        OUT["exception"] = f"{type(e).__name__}: {e}"
        OUT["failed_rank"] = getattr(e, "rank", None)
        raise
    finally:
        _flush()
    dist.destroy_process_group()
    gc.collect()  # see examples/ddp_digits.py's end


if __name__ == "__main__":
    main()
