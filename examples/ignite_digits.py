"""Train a small MLP on scikit-learn's digits with pytorch-ignite, reproducibly.

A training script written only against pytorch-ignite's public API (0.5.x):
supervised trainer and evaluator, Accuracy / Loss / RunningAverage, early
stopping, two kinds of checkpoints, a cosine learning-rate schedule, timers and
profilers, a progress bar, filtered events and a custom event.  After training
it reloads the best checkpoint into fresh objects and evaluates it again.

Everything is seeded and runs single-threaded on the CPU, so two runs give the
same numbers bit for bit.  ``--json PATH`` writes those numbers (never the
timings) so that two runs can be compared with ``==``.

    python examples/ignite_digits.py [--epochs 10] [--out DIR] [--json PATH] [--no-progress]

The digits data set ships inside scikit-learn: no download.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from typing import Any

import torch
from ignite.engine import Engine, EventEnum, Events, create_supervised_evaluator, create_supervised_trainer
from ignite.handlers import (
    BasicTimeProfiler,
    Checkpoint,
    CosineAnnealingScheduler,
    DiskSaver,
    EarlyStopping,
    HandlersTimeProfiler,
    ModelCheckpoint,
    Timer,
    global_step_from_engine,
)
from ignite.handlers.tqdm_logger import ProgressBar
from ignite.metrics import Accuracy, Loss, RunningAverage
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class DigitsEvents(EventEnum):
    """Fired by the trainer when a validation pass beats the best accuracy so far."""

    NEW_BEST = "new_best"


# -- data and model ------------------------------------------------------------------------


def load_data(seed: int, batch_size: int) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train / validation loaders over the digits, split by a seeded permutation.

    Returns a third loader, the training set unshuffled, used to evaluate the
    training accuracy without consuming the shuffling generator's stream."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are 0..16; scaling to 0..1 keeps SGD stable at lr 0.1.
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = len(x) // 5
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    train_ds = TensorDataset(x[train_idx], y[train_idx])
    val_ds = TensorDataset(x[val_idx], y[val_idx])
    # A dedicated generator: the order of the batches depends on the seed only,
    # not on how much of torch's global random stream something else consumed.
    shuffle_gen = torch.Generator().manual_seed(seed + 1)
    train_loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, generator=shuffle_gen)
    val_loader = DataLoader(val_ds, batch_size=256, shuffle=False)
    train_eval_loader = DataLoader(train_ds, batch_size=256, shuffle=False)
    return train_loader, val_loader, train_eval_loader


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10))


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)


def make_scheduler(optimizer: torch.optim.Optimizer, lr: float, cycle: int) -> CosineAnnealingScheduler:
    return CosineAnnealingScheduler(optimizer, "lr", start_value=lr, end_value=lr / 20, cycle_size=cycle)


# -- digests ------------------------------------------------------------------------------


def _update_with_tensor(h: Any, t: torch.Tensor) -> None:
    # dtype and shape go in too, so that two different tensors with the same
    # bytes cannot give the same digest.
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.numpy().tobytes())


def model_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        _update_with_tensor(h, tensor)
    return h.hexdigest()


def optimizer_digest(optimizer: torch.optim.Optimizer) -> str:
    sd = optimizer.state_dict()
    h = hashlib.sha256()
    for key in sorted(sd["state"]):
        for name, value in sorted(sd["state"][key].items()):
            h.update(f"{key}.{name}".encode())
            if isinstance(value, torch.Tensor):
                _update_with_tensor(h, value)
            else:
                h.update(repr(value).encode())
    # The hyper-parameters (the scheduled lr above all) are part of the state.
    h.update(repr(sd["param_groups"]).encode())
    return h.hexdigest()


def _names_by_event(names: dict) -> dict[str, list[str]]:
    return {getattr(e, "name", str(e)): list(hs) for e, hs in names.items() if hs}


# -- the run --------------------------------------------------------------------------------


def run(
    epochs: int = 10,
    out_dir: str | None = None,
    seed: int = 12345,
    batch_size: int = 64,
    lr: float = 0.1,
    patience: int = 2,
    progress: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train, checkpoint, reload; return everything that must be reproducible."""
    # One thread: the order of floating-point reductions in matmuls may depend
    # on the thread count, and bit-exact runs are the point of this script.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    out_dir = out_dir or tempfile.mkdtemp(prefix="ignite_digits_")
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    models_dir = os.path.join(out_dir, "models")

    train_loader, val_loader, train_eval_loader = load_data(seed, batch_size)
    model = make_model(seed)
    optimizer = make_optimizer(model, lr)
    loss_fn = nn.CrossEntropyLoss()

    trainer = create_supervised_trainer(model, optimizer, loss_fn, device="cpu")
    metrics = {"accuracy": Accuracy(), "loss": Loss(loss_fn)}
    evaluator = create_supervised_evaluator(model, metrics=metrics, device="cpu")
    train_evaluator = create_supervised_evaluator(model, metrics={"accuracy": Accuracy()}, device="cpu")
    trainer.register_events(*DigitsEvents)

    record: dict[str, Any] = {
        "val_accuracy": [],
        "val_loss": [],
        "train_accuracy": [],
        "running_loss": [],
        "first_loss": None,
        "lr_per_epoch": [],
        "new_best": [],
        "powers_of_two": [],
        "weight_norms": [],
        "epoch_events": [],
    }

    # Smoothed training loss, recomputed each iteration from the trainer's output.
    RunningAverage(output_transform=lambda loss: loss).attach(trainer, "loss_avg")

    # Cosine decay over the whole run, one step per iteration.
    scheduler = make_scheduler(optimizer, lr, cycle=epochs * len(train_loader))
    trainer.add_event_handler(Events.ITERATION_STARTED, scheduler)

    @trainer.on(Events.EPOCH_STARTED)
    def record_lr(engine: Engine) -> None:
        record["lr_per_epoch"].append(optimizer.param_groups[0]["lr"])

    @trainer.on(Events.ITERATION_COMPLETED(once=1))
    def record_first_loss(engine: Engine) -> None:
        record["first_loss"] = engine.state.output

    @trainer.on(Events.ITERATION_COMPLETED(every=5))
    def record_running_loss(engine: Engine) -> None:
        record["running_loss"].append([engine.state.iteration, engine.state.metrics["loss_avg"]])

    # A filter of our own: log at iterations 1, 2, 4, 8...
    def is_power_of_two(engine: Engine, event: int) -> bool:
        return event & (event - 1) == 0

    @trainer.on(Events.ITERATION_COMPLETED(event_filter=is_power_of_two))
    def record_power_of_two(engine: Engine) -> None:
        record["powers_of_two"].append([engine.state.iteration, engine.state.output])

    # Watch the weights in a window of the run only, every 7th iteration in it.
    @trainer.on(Events.ITERATION_COMPLETED(every=7, after=10, before=60))
    def record_weight_norm(engine: Engine) -> None:
        norm = sum(float(p.detach().double().pow(2).sum()) for p in model.parameters()) ** 0.5
        record["weight_norms"].append([engine.state.iteration, norm])

    @trainer.on(Events.EPOCH_STARTED | Events.EPOCH_COMPLETED(every=2))
    def record_epoch_event(engine: Engine) -> None:
        record["epoch_events"].append([engine.last_event_name.name, engine.state.epoch])

    # Created here because the validation handler logs through it; attached
    # below, last, so the bar is updated after the other handlers ran.
    pbar = ProgressBar(persist=False, file=sys.stderr) if progress else None

    best = {"accuracy": -1.0}

    @trainer.on(Events.EPOCH_COMPLETED)
    def validate(engine: Engine) -> None:
        state = evaluator.run(val_loader)
        acc, loss = state.metrics["accuracy"], state.metrics["loss"]
        record["val_accuracy"].append(acc)
        record["val_loss"].append(loss)
        if acc > best["accuracy"]:
            best["accuracy"] = acc
            engine.fire_event(DigitsEvents.NEW_BEST)
        if pbar is not None:
            pbar.log_message(f"epoch {engine.state.epoch}: val accuracy {acc:.4f}, val loss {loss:.4f}")

    @trainer.on(DigitsEvents.NEW_BEST)
    def record_new_best(engine: Engine) -> None:
        record["new_best"].append([engine.state.epoch, best["accuracy"]])

    # Training accuracy once at the end of the run (COMPLETED also fires when
    # early stopping terminates the run).
    @trainer.on(Events.COMPLETED)
    def evaluate_train(engine: Engine) -> None:
        record["train_accuracy"].append(train_evaluator.run(train_eval_loader).metrics["accuracy"])

    def score(engine: Engine) -> float:
        return engine.state.metrics["accuracy"]

    early_stopping = EarlyStopping(patience=patience, score_function=score, trainer=trainer)
    evaluator.add_event_handler(Events.COMPLETED, early_stopping)

    # The best two full training states (model, optimizer, trainer, schedule),
    # named after the trainer's epoch rather than the evaluator's.
    to_save = {
        "model": model,
        "optimizer": optimizer,
        "trainer": trainer,
        "lr_scheduler": scheduler,
        "early_stopping": early_stopping,
    }
    best_checkpoint = Checkpoint(
        to_save,
        DiskSaver(ckpt_dir, require_empty=False),
        filename_prefix="best",
        score_function=score,
        score_name="val_acc",
        n_saved=2,
        global_step_transform=global_step_from_engine(trainer),
    )
    evaluator.add_event_handler(Events.COMPLETED, best_checkpoint)

    # Plain snapshots of the weights every second epoch, the last three kept.
    snapshots = ModelCheckpoint(models_dir, "digits", n_saved=3, require_empty=False)
    trainer.add_event_handler(Events.EPOCH_COMPLETED(every=2), snapshots, {"mlp": model})

    # Mean time per iteration, excluding the validation passes.
    timer = Timer(average=True)
    timer.attach(
        trainer,
        start=Events.EPOCH_STARTED,
        resume=Events.ITERATION_STARTED,
        pause=Events.ITERATION_COMPLETED,
        step=Events.ITERATION_COMPLETED,
    )
    handlers_profiler = HandlersTimeProfiler()
    handlers_profiler.attach(trainer)
    eval_profiler = BasicTimeProfiler()
    eval_profiler.attach(evaluator)

    if pbar is not None:
        # tqdm writes to stderr: stdout keeps only the summary.
        pbar.attach(trainer, metric_names=["loss_avg"])

    trainer.run(train_loader, max_epochs=epochs)

    # Reload the best checkpoint into fresh objects and check it scores what it
    # scored when it was saved.
    # last_checkpoint is the full path DiskSaver wrote to.
    best_path = str(best_checkpoint.last_checkpoint)
    fresh_model = make_model(seed + 7)
    fresh_optimizer = make_optimizer(fresh_model, lr)
    fresh_trainer = create_supervised_trainer(fresh_model, fresh_optimizer, loss_fn, device="cpu")
    fresh_scheduler = make_scheduler(fresh_optimizer, lr, cycle=epochs * len(train_loader))
    fresh_stopping = EarlyStopping(patience=patience, score_function=score, trainer=fresh_trainer)
    Checkpoint.load_objects(
        {
            "model": fresh_model,
            "optimizer": fresh_optimizer,
            "trainer": fresh_trainer,
            "lr_scheduler": fresh_scheduler,
            "early_stopping": fresh_stopping,
        },
        torch.load(best_path, weights_only=False),
    )
    reloaded = create_supervised_evaluator(fresh_model, metrics={"accuracy": Accuracy(), "loss": Loss(loss_fn)})
    reloaded_metrics = reloaded.run(val_loader).metrics

    result = {
        "val_accuracy": record["val_accuracy"],
        "val_loss": record["val_loss"],
        "train_accuracy": record["train_accuracy"],
        "first_loss": record["first_loss"],
        "running_loss": record["running_loss"],
        "final_running_loss": trainer.state.metrics["loss_avg"],
        "powers_of_two": record["powers_of_two"],
        "weight_norms": record["weight_norms"],
        "epoch_events": record["epoch_events"],
        "new_best": record["new_best"],
        "lr_per_epoch": record["lr_per_epoch"],
        "final_lr": optimizer.param_groups[0]["lr"],
        "trainer_state": {
            "iteration": trainer.state.iteration,
            "epoch": trainer.state.epoch,
            "max_epochs": trainer.state.max_epochs,
            "epoch_length": trainer.state.epoch_length,
            "should_terminate": trainer.should_terminate,
        },
        "trainer_state_dict": {k: v for k, v in trainer.state_dict().items() if isinstance(v, (int, type(None)))},
        "evaluator_state": {"iteration": evaluator.state.iteration, "epoch": evaluator.state.epoch},
        "early_stopping": {"counter": early_stopping.counter, "best_score": early_stopping.best_score},
        "last_checkpoint": os.path.basename(best_path),
        "checkpoint_files": sorted(os.listdir(ckpt_dir)),
        "model_files": sorted(os.listdir(models_dir)),
        "timer_steps": timer.step_count,
        # What the profilers saw registered, per event: not numbers, but as
        # fixed as they are for a given script.
        "profiled_handlers": {
            "trainer": _names_by_event(handlers_profiler.event_handlers_names),
            "evaluator": _names_by_event(eval_profiler.event_handlers_names),
        },
        "reloaded": {
            "trainer_iteration": fresh_trainer.state.iteration,
            "trainer_epoch": fresh_trainer.state.epoch,
            "early_stopping_counter": fresh_stopping.counter,
            "val_accuracy": reloaded_metrics["accuracy"],
            "val_loss": reloaded_metrics["loss"],
            "model_digest": model_digest(fresh_model),
        },
        "model_digest": model_digest(model),
        "optimizer_digest": optimizer_digest(optimizer),
    }

    if verbose:
        print(f"digits MLP, {trainer.state.epoch} epochs / {trainer.state.iteration} iterations")
        for epoch, (acc, loss) in enumerate(zip(record["val_accuracy"], record["val_loss"]), 1):
            print(
                f"  epoch {epoch}: lr {record['lr_per_epoch'][epoch - 1]:.5f}  val acc {acc:.4f}  val loss {loss:.4f}"
            )
        print(f"train accuracy {record['train_accuracy'][-1]:.4f}")
        print(f"early stopping: counter {early_stopping.counter}, best {early_stopping.best_score:.4f}")
        print(f"best checkpoint {os.path.basename(best_path)}: reloaded val acc {reloaded_metrics['accuracy']:.4f}")
        print(f"mean iteration time {timer.value() * 1e3:.3f} ms (timings are not part of --json)")
        eval_stats = eval_profiler.get_results()["processing_stats"]
        print(f"last validation pass: {eval_stats['total']:.4f} s computing")
        print(f"handler time on the trainer: {handlers_profiler.get_results()[-1][2]} s")
        print(f"model sha256 {result['model_digest'][:16]}...  optimizer sha256 {result['optimizer_digest'][:16]}...")
        print(f"outputs in {out_dir}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--out", default=None, help="directory for checkpoints (default: a new temp dir)")
    parser.add_argument("--json", default=None, help="write the reproducible results to this file")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    args = parser.parse_args(argv)

    result = run(
        epochs=args.epochs,
        out_dir=args.out,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        progress=not args.no_progress,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
