"""Train the digits MLP on several processes: fastignite with DistributedDataParallel.

The run of examples/digits.py, data-parallel: every process (rank) trains the
same model on its own share of the training set (a DistributedSampler), and
DistributedDataParallel averages the gradients, so all ranks hold the same
weights after every step.  Launch it with torchrun:

    torchrun --standalone --nproc_per_node=2 examples/ddp_digits.py [--epochs 20] [--out DIR]

or, on several machines, one torchrun per machine (see the README); or as a
single process, with no process group at all:

    python examples/ddp_digits.py

What the example does not do itself, because fastignite's engine does it once
a process group is initialized: call ``sampler.set_epoch`` at each epoch,
stop every rank at the same iteration when one of them stops (EarlyStopping,
TerminateOnNan), average the scores of EarlyStopping and Checkpoint over the
ranks, write checkpoints on rank 0 only and make the other ranks wait for the
file, show the progress bar and the handlers' messages on rank 0 only.

Checkpoints (engine, model, optimizer, early stopping) are written to
DIR/checkpoints every ``--checkpoint-every`` iterations and at every epoch
end; ``--resume`` continues from the newest one, and the resumed run ends
with bitwise the weights of a run never interrupted.  The trainer is a
DeterministicEngine, whose state holds the random generators' states
(dropout), so a resume in the middle of an epoch is exact too.  At the end
every rank checks that all ranks hold the same weights, and rank 0 writes
them to DIR/final.pt.  The same ``--seed`` gives bitwise the same weights.

The digits data set ships inside scikit-learn: no download.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from fastignite import Engine, Events, create_supervised_evaluator, create_supervised_trainer
from fastignite import distributed as fdist
from fastignite.handlers import Checkpoint, DiskSaver, EarlyStopping, ProgressBar, TerminateOnNan

RESUME_PATTERN = "resume_checkpoint_*.pt"


# -- data and model -------------------------------------------------------------------------


def load_data(seed: int, batch_size: int, rank: int, world_size: int,
              data: str | None = None) -> tuple[DataLoader, DataLoader]:  # fmt: skip
    """This rank's training and validation loaders: the same 80/20 split on every
    rank, each set split between the ranks by a DistributedSampler (in a process
    without a group, plain loaders).  The digits come from scikit-learn, or from
    ``data``, an .npz of arrays x and y."""
    if data is None:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
    else:
        import numpy as np

        with np.load(data) as arrays:
            x, y = arrays["x"], arrays["y"]
    x = torch.tensor(x, dtype=torch.float32) / 16.0  # pixel values are 0..16
    y = torch.tensor(y, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(x))
    train = TensorDataset(x[order[:cut]], y[order[:cut]])
    val = TensorDataset(x[order[cut:]], y[order[cut:]])
    if not dist.is_initialized():  # one process: a plain shuffle
        return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(val, batch_size=256)
    # The sampler shuffles with its own generator, seeded with seed + epoch: the
    # engine calls set_epoch at every epoch start, so each epoch has its order,
    # the same on every rank (each rank takes its share of it).
    train_sampler = DistributedSampler(train, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    val_sampler = DistributedSampler(val, num_replicas=world_size, rank=rank, shuffle=False)
    return (DataLoader(train, batch_size=batch_size, sampler=train_sampler),
            DataLoader(val, batch_size=256, sampler=val_sampler))  # fmt: skip


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10))


class EpochMetrics:
    """Accuracy and mean loss over an evaluator's epoch, over every rank's share
    of the validation set: the sums are added up across ranks (all_reduce) at
    the epoch end, so every rank gets the same, exact figures."""

    def __init__(self, loss_fn) -> None:
        self.loss_fn = loss_fn

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.EPOCH_STARTED, self.reset)
        evaluator.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, self.compute)

    def reset(self, engine: Engine) -> None:
        self.sums = torch.zeros(3, dtype=torch.float64)  # correct, loss sum, count

    def update(self, engine: Engine) -> None:
        y_pred, y = engine.state.output
        self.sums += torch.tensor([float((y_pred.argmax(dim=1) == y).sum()),
                                   float(self.loss_fn(y_pred, y)) * len(y), len(y)], dtype=torch.float64)  # fmt: skip

    def compute(self, engine: Engine) -> None:
        if fdist.is_distributed():
            dist.all_reduce(self.sums)
        correct, loss_sum, count = self.sums.tolist()
        engine.state.metrics["accuracy"] = correct / count
        engine.state.metrics["loss"] = loss_sum / count


def weights_digest(model: nn.Module) -> str:
    """sha256 of the parameters' bytes: equal digests are bitwise-equal weights."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# -- the run --------------------------------------------------------------------------------


def train(args: argparse.Namespace, out_dir: Path) -> None:
    rank, world_size = fdist.get_rank(), fdist.get_world_size()
    # The same initial weights and the same random draws (dropout) on every rank:
    # the checkpoints hold rank 0's generator states, which a resume gives every rank.
    torch.manual_seed(args.seed)
    train_loader, val_loader = load_data(args.seed, args.batch_size, rank, world_size, args.data)
    model = make_model()
    if dist.is_initialized():
        model = nn.parallel.DistributedDataParallel(model)  # CPU: no device_ids
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    # deterministic=True: a DeterministicEngine, whose state_dict() holds the
    # random generators' states, for an exact resume in the middle of an epoch.
    trainer = create_supervised_trainer(model, optimizer, loss_fn, deterministic=True)
    evaluator = create_supervised_evaluator(model, output_transform=lambda x, y, y_pred: (y_pred, y))
    EpochMetrics(loss_fn).attach(evaluator)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan())

    def accuracy(engine: Engine) -> float:
        return engine.state.metrics["accuracy"]

    @trainer.on(Events.EPOCH_COMPLETED)
    def validate(engine: Engine) -> None:
        metrics = evaluator.run(val_loader).metrics
        if rank == 0 and (args.no_progress or engine.state.epoch % 5 == 0):
            message = (
                f"epoch {engine.state.epoch:3d}: validation accuracy {metrics['accuracy']:.3f}, "
                f"loss {metrics['loss']:.4f}"
            )
            (print if args.no_progress else bar.log_message)(message)

    # The two best models by validation accuracy, named by the trainer's epoch.
    best = Checkpoint(
        {"model": model},
        DiskSaver(out_dir / "best", require_empty=False),
        n_saved=2,
        score_function=accuracy,
        score_name="accuracy",
        global_step_transform=lambda engine, event: trainer.state.epoch,
    )
    evaluator.add_event_handler(Events.COMPLETED, best)
    early_stopping = EarlyStopping(patience=args.patience, score_function=accuracy, trainer=trainer)
    evaluator.add_event_handler(Events.COMPLETED, early_stopping)

    # Checkpoints to resume from, every N iterations and at every epoch end.  An
    # epoch's last iteration is saved at EPOCH_COMPLETED, after the validation,
    # not at ITERATION_COMPLETED: a run resumed from the end of an epoch starts the
    # next one, so a checkpoint taken before the validation would skip it.
    to_save = {"trainer": trainer, "model": model, "optimizer": optimizer,
               "early_stopping": early_stopping, "best": best}  # fmt: skip
    epoch_length = len(train_loader)

    def mid_epoch(engine: Engine, iteration: int) -> bool:
        return iteration % args.checkpoint_every == 0 and iteration % epoch_length != 0

    resume_dir = out_dir / "checkpoints"
    saver = Checkpoint(to_save, DiskSaver(resume_dir, atomic=True, require_empty=not args.resume),
                       filename_prefix="resume", n_saved=2, include_self=True)  # fmt: skip
    to_save_and_self = {**to_save, "checkpointer": saver}
    trainer.add_event_handler(Events.ITERATION_COMPLETED(event_filter=mid_epoch) | Events.EPOCH_COMPLETED, saver)

    if args.hang_at is not None:
        hang_rank = args.hang_rank if args.hang_rank is not None else world_size - 1

        @trainer.on(Events.ITERATION_STARTED(once=args.hang_at))
        def hang(engine: Engine) -> None:
            # For the kill-and-resume test: this rank stops here and waits to be
            # killed; the others block in the step's gradient all-reduce.
            if rank == hang_rank:
                print(f"HANG iteration={engine.state.iteration} rank={rank} pid={os.getpid()}", flush=True)
                while True:
                    time.sleep(1)

    if not args.no_progress:
        bar = ProgressBar(persist=False)
        bar.attach(trainer, output_transform=lambda loss: {"loss": loss})

    if args.resume:
        path = fdist.load_latest_checkpoint(to_save_and_self, resume_dir, pattern=RESUME_PATTERN)
        if rank == 0:
            where = f"{path.name} (iteration {trainer.state.iteration})" if path else "nothing: no checkpoint yet"
            print(f"resumed from {where}", flush=True)

    start = time.perf_counter()
    state = trainer.run(train_loader, max_epochs=args.epochs)
    elapsed = time.perf_counter() - start

    # Every rank should hold the same weights: DDP gave them the same gradients.
    digest = weights_digest(model)
    digests = [digest]
    if dist.is_initialized():
        digests = [None] * world_size
        dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        raise SystemExit(f"rank {rank}: the ranks' weights differ: {digests}")

    if rank == 0:
        final = out_dir / "final.pt"
        plain = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        torch.save({"model": plain.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch": state.epoch, "iteration": state.iteration, "world_size": world_size}, final)  # fmt: skip
        print(
            f"trained {state.epoch} epochs ({state.iteration} iterations) on {world_size} "
            f"process{'es' if world_size > 1 else ''} in {elapsed:.1f} s; "
            f"validation accuracy {evaluator.state.metrics['accuracy']:.3f}"
        )
        print(f"weights sha256 on ranks 0..{world_size - 1}: {' '.join(digests)}: identical")
        if isinstance(train_loader.sampler, DistributedSampler):
            # The engine called set_epoch(epoch - 1) on it at every epoch start.
            print(f"the training sampler's epoch at the end: {train_loader.sampler.epoch}")
        print(f"best checkpoint {best.last_checkpoint.name}; final weights {final}", flush=True)


@contextlib.contextmanager
def shared_temporary_directory() -> Iterator[Path]:
    """A temporary directory made by rank 0, whose name every rank gets (the
    ranks of one machine share it; on several machines, give --out on a file
    system they all see)."""
    if not dist.is_initialized():
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
        return
    with contextlib.ExitStack() as stack:
        name = [stack.enter_context(tempfile.TemporaryDirectory()) if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(name, src=0)
        yield Path(name[0])
        dist.barrier()  # every rank is done with it before rank 0 removes it


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", help="directory of the checkpoints and final weights (default: a temporary one)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--patience", type=int, default=5, help="early stopping: epochs without improvement")
    parser.add_argument("--checkpoint-every", type=int, default=10, metavar="N", help="iterations (default 10)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--data", metavar="NPZ", help="the digits as an .npz of x and y (default: scikit-learn's)")
    parser.add_argument("--hang-at", type=int, metavar="K", help="(tests) hang at the start of iteration K")
    parser.add_argument("--hang-rank", type=int, metavar="R", help="(tests) the rank that hangs (default: the last)")
    args = parser.parse_args(argv)
    if args.resume and not args.out:
        parser.error("--resume needs --out, the directory of the run to continue")

    # torchrun sets WORLD_SIZE (and RANK, MASTER_ADDR...): join its process group.
    # Run plainly, the script is one process without a group (and without DDP).
    if "WORLD_SIZE" in os.environ:
        dist.init_process_group("gloo")
    try:
        if args.out:
            train(args, Path(args.out))
        else:
            with shared_temporary_directory() as tmp:
                train(args, tmp)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
            # Frees the process groups now, their gloo worker threads joined,
            # rather than in the interpreter's teardown: the engine's handlers
            # hold the DDP model (and its group) in reference cycles, and a
            # gloo worker still letting go of a collective's tensors there
            # aborts the process (torch 2.13; 5 runs in 30 without this,
            # none in 30 with it).
            gc.collect()


if __name__ == "__main__":
    sys.exit(main())
