"""Train an MLP on scikit-learn's digits with fastignite, then show what the engine costs.

A complete training run with what fastignite ships, in ignite's names: a
supervised trainer and evaluator, accuracy and loss computed by the evaluator,
checkpoints of the best models (atomic writes, rotation by score), early
stopping, a progress bar, and a reload of the best checkpoint at the end.
Then the engine's per-iteration dispatch cost, with 100 handlers on
ITERATION_COMPLETED(every=100), beside a hand-written loop making the same
calls, fastignite's pure-Python twin and pytorch-ignite (when installed).

    python examples/digits.py [--epochs 40] [--out DIR] [--no-progress]

The digits data set ships inside scikit-learn: no download.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import fastignite
from fastignite import Engine, Events

# -- data and model -------------------------------------------------------------------------


def load_data(seed: int, batch_size: int):
    import torch
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # pixel values are 0..16
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(x))
    train, val = order[:cut], order[cut:]
    shuffle = torch.Generator().manual_seed(seed + 1)  # the loader's own: runs repeat exactly
    train_loader = DataLoader(TensorDataset(x[train], y[train]), batch_size=batch_size, shuffle=True, generator=shuffle)
    val_loader = DataLoader(TensorDataset(x[val], y[val]), batch_size=256)
    return train_loader, val_loader


def make_model():
    from torch import nn

    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10))


class EpochMetrics:
    """Accuracy and mean loss over an evaluator's epoch, into state.metrics.

    The evaluator's output is (y_pred, y); sums are kept per epoch, so the
    figures are exact averages over the whole validation set."""

    def __init__(self, loss_fn) -> None:
        self.loss_fn = loss_fn

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.EPOCH_STARTED, self.reset)
        evaluator.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, self.compute)

    def reset(self, engine: Engine) -> None:
        self.correct = self.loss_sum = self.count = 0

    def update(self, engine: Engine) -> None:
        y_pred, y = engine.state.output
        self.correct += int((y_pred.argmax(dim=1) == y).sum())
        self.loss_sum += float(self.loss_fn(y_pred, y)) * len(y)
        self.count += len(y)

    def compute(self, engine: Engine) -> None:
        engine.state.metrics["accuracy"] = self.correct / self.count
        engine.state.metrics["loss"] = self.loss_sum / self.count


def train(epochs: int, out_dir: str, progress: bool, seed: int = 0) -> float:
    import torch
    from torch import nn

    from fastignite import create_supervised_evaluator, create_supervised_trainer
    from fastignite.handlers import Checkpoint, DiskSaver, EarlyStopping, ProgressBar

    torch.manual_seed(seed)
    train_loader, val_loader = load_data(seed, batch_size=64)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    trainer = create_supervised_trainer(model, optimizer, loss_fn)
    evaluator = create_supervised_evaluator(model, output_transform=lambda x, y, y_pred: (y_pred, y))
    EpochMetrics(loss_fn).attach(evaluator)

    def accuracy(engine: Engine) -> float:
        return engine.state.metrics["accuracy"]

    # The two best models by validation accuracy, named by the trainer's epoch.
    best = Checkpoint(
        {"model": model, "optimizer": optimizer, "trainer": trainer},
        DiskSaver(out_dir, require_empty=False),
        n_saved=2,
        score_function=accuracy,
        score_name="accuracy",
        global_step_transform=lambda engine, event: trainer.state.epoch,
    )
    evaluator.add_event_handler(Events.COMPLETED, best)
    evaluator.add_event_handler(Events.COMPLETED, EarlyStopping(patience=5, score_function=accuracy, trainer=trainer))

    @trainer.on(Events.EPOCH_COMPLETED)
    def validate(engine: Engine) -> None:
        metrics = evaluator.run(val_loader).metrics
        if engine.state.epoch % 5 == 0 or not progress:
            message = (
                f"epoch {engine.state.epoch:3d}: validation accuracy {metrics['accuracy']:.3f}, "
                f"loss {metrics['loss']:.4f}"
            )
            (bar.log_message if progress else print)(message)

    if progress:
        bar = ProgressBar(persist=False)
        bar.attach(trainer, output_transform=lambda loss: {"loss": loss})

    state = trainer.run(train_loader, max_epochs=epochs)
    print(
        f"trained {state.epoch} epochs ({state.iteration} iterations); "
        f"best checkpoint {os.path.basename(best.last_checkpoint)}"
    )

    # Reload the best checkpoint into fresh objects and check it scores what it scored.
    fresh = make_model()
    Checkpoint.load_objects({"model": fresh}, best.last_checkpoint)
    check = create_supervised_evaluator(fresh, output_transform=lambda x, y, y_pred: (y_pred, y))
    EpochMetrics(loss_fn).attach(check)
    reloaded = check.run(val_loader).metrics["accuracy"]
    print(f"best model reloaded from disk: validation accuracy {reloaded:.3f}")
    return reloaded


# -- what the engine costs ------------------------------------------------------------------

HANDLERS, EVERY = 100, 100


def _step(engine, batch):
    return batch


def _per_iteration_ns(run, n: int, repeats: int = 5) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run(n)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e9


def _engine_cost(events_module, n: int) -> float:
    """What an engine of ``events_module`` (fastignite, or ignite.engine) costs per iteration."""
    engine = events_module.Engine(_step)
    for _ in range(HANDLERS):
        engine.add_event_handler(events_module.Events.ITERATION_COMPLETED(every=EVERY), lambda e: None)

    def run(n: int) -> None:
        engine.run(None, max_epochs=1, epoch_length=n)
        engine.state.max_epochs = None  # the next run starts over

    return _per_iteration_ns(run, n)


def _hand_loop_cost(n: int) -> float:
    handlers = [lambda e: None for _ in range(HANDLERS)]

    def run(n: int) -> None:
        it, e = 0, None
        for b in range(n):
            it += 1
            _step(e, b)
            if it % EVERY == 0:
                for h in handlers:
                    h(e)

    return _per_iteration_ns(run, n)


def measure_dispatch_cost(n: int = 200_000) -> None:
    rows = [
        ("hand-written loop", _hand_loop_cost(n)),
        (f"fastignite ({fastignite.BACKEND})", _engine_cost(fastignite, n)),
    ]
    # The pure twin is chosen at import: measure it in a child process.
    child = subprocess.run(
        [sys.executable, __file__, "--cost-only", str(n)],
        capture_output=True,
        text=True,
        env={**os.environ, "FASTIGNITE_PURE": "1"},
        check=True,
    )
    rows.append(("fastignite (pure)", json.loads(child.stdout.strip().splitlines()[-1])["ns"]))
    try:
        import ignite.engine
    except ImportError:
        print('(pytorch-ignite is not installed: python -m pip install -e ".[ignite]" adds it here)')
    else:
        rows.append((f"pytorch-ignite {ignite.__version__}", _engine_cost(ignite.engine, n // 50)))
    print(
        f"\nper-iteration dispatch cost, {HANDLERS} handlers on ITERATION_COMPLETED(every={EVERY}), "
        f"best of 5 runs of {n:,} iterations:"
    )
    loop = rows[0][1]
    for name, ns in rows:
        print(f"  {name:24s} {ns:12,.0f} ns   {ns / loop:9,.1f}x the hand-written loop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", help="checkpoint directory (default: a temporary one)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--cost-only", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cost_only:
        print(json.dumps({"backend": fastignite.BACKEND, "ns": _engine_cost(fastignite, args.cost_only)}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        accuracy = train(args.epochs, args.out or tmp, progress=not args.no_progress)
    assert accuracy > 0.9, "the model should learn the digits"
    measure_dispatch_cost()


if __name__ == "__main__":
    main()
