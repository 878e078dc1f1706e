"""fastignite demonstration: a real training loop, then what the engine costs.

Trains a logistic-regression classifier with SGD, in plain Python (no torch
needed), on a synthetic two-moons-like data set, using what an ignite user
writes: a trainer and an evaluator Engine, filtered handlers, a custom event,
early stopping with terminate(), an interrupt and resume, and a state_dict
checkpoint.  It also uses what ignite lacks: ``&`` of events, a throttle filter,
and a filter on a custom event that needs no ``event_to_attr``.

Then it measures the engine's per-iteration cost against a hand-written loop
making the same calls, the pure twin, and pytorch-ignite when it is installed
(the report of examples/digits.py, which needs no torch).

    python examples/demo.py
"""

from __future__ import annotations

import math
import random

from digits import measure_dispatch_cost  # the cost report, shared with examples/digits.py

import fastignite
from fastignite import Engine, EventEnum, Events, throttle_filter

# -- data and model -------------------------------------------------------------------------


def make_data(n: int, seed: int) -> list[tuple[list[float], int]]:
    """Two interleaved noisy half circles, with a few polynomial features."""
    rng = random.Random(seed)
    data = []
    for _ in range(n):
        label = rng.randrange(2)
        t = rng.uniform(0, math.pi)
        x = math.cos(t) + (1.0 if label else 0.0) + rng.gauss(0, 0.15)
        y = math.sin(t) * (-1 if label else 1) + (0.5 if label else 0.0) + rng.gauss(0, 0.15)
        data.append(([1.0, x, y, x * y, x * x, y * y, x * x * x, y * y * y], label))
    return data


def predict(w: list[float], features: list[float]) -> float:
    z = sum(wi * fi for wi, fi in zip(w, features))
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


class TrainEvents(EventEnum):
    NEW_BEST = "new_best"  # fired by a handler when validation accuracy improves


def main() -> None:
    train, val = make_data(2000, seed=0), make_data(500, seed=1)
    weights = [0.0] * 8
    lr = 0.05
    print(f"fastignite {fastignite.__version__}, backend: {fastignite.BACKEND}")

    def train_step(engine: Engine, batch: tuple[list[float], int]) -> float:
        features, label = batch
        p = predict(weights, features)
        for i, f in enumerate(features):
            weights[i] -= lr * (p - label) * f
        return -math.log(p if label else 1.0 - p + 1e-12)

    def eval_step(engine: Engine, batch: tuple[list[float], int]) -> bool:
        features, label = batch
        return (predict(weights, features) > 0.5) == bool(label)

    trainer, evaluator = Engine(train_step), Engine(eval_step)
    trainer.register_events(*TrainEvents)

    @trainer.on(Events.EPOCH_STARTED)
    def shuffle(engine: Engine) -> None:
        random.Random(engine.state.epoch).shuffle(train)

    @evaluator.on(Events.STARTED)
    def reset(engine: Engine) -> None:
        engine.state.correct = 0

    @evaluator.on(Events.ITERATION_COMPLETED)
    def count(engine: Engine) -> None:
        engine.state.correct += engine.state.output

    @evaluator.on(Events.COMPLETED)
    def accuracy(engine: Engine) -> None:
        engine.state.metrics["accuracy"] = engine.state.correct / engine.state.iteration

    best = {"accuracy": 0.0, "checkpoint": None, "stale": 0}

    @trainer.on(Events.EPOCH_COMPLETED(every=2))
    def validate(engine: Engine) -> None:
        acc = evaluator.run(val).metrics["accuracy"]
        print(f"  epoch {engine.state.epoch:2d}  validation accuracy {acc:.3f}")
        if acc > best["accuracy"]:
            best.update(accuracy=acc, stale=0)
            engine.fire_event(TrainEvents.NEW_BEST)
        else:
            best["stale"] += 1
            if best["stale"] >= 3:  # early stopping
                print("  no improvement in 3 validations: terminate()")
                engine.terminate()

    @trainer.on(TrainEvents.NEW_BEST)
    def checkpoint(engine: Engine) -> None:
        best["checkpoint"] = {"engine": dict(engine.state_dict()), "weights": list(weights)}

    # A filter on a custom event, with no event_to_attr: the engine counts its firings.
    @trainer.on(TrainEvents.NEW_BEST(every=3))
    def milestone(engine: Engine) -> None:
        print(f"  {engine.state.counters[TrainEvents.NEW_BEST]} improvements so far")

    # One call iff both: every 500 iterations AND at most once per 0.25 s of wall time.
    @trainer.on(Events.ITERATION_COMPLETED(every=500) & Events.ITERATION_COMPLETED(event_filter=throttle_filter(0.25)))
    def progress(engine: Engine) -> None:
        print(f"  iteration {engine.state.iteration:6d}  loss {engine.state.output:.4f}")

    # Interrupt mid-run once; run() returns, and the next run() resumes exactly there.
    @trainer.on(Events.ITERATION_COMPLETED(once=5000))
    def pause(engine: Engine) -> None:
        engine.interrupt()

    print("training (interrupted at iteration 5000, then resumed):")
    state = trainer.run(train, max_epochs=40)
    print(f"  -- interrupted at epoch {state.epoch}, iteration {state.iteration}; resuming")
    state = trainer.run(train, max_epochs=40)
    print(
        f"stopped at epoch {state.epoch} (iteration {state.iteration}); best validation accuracy "
        f"{best['accuracy']:.3f}, checkpoint at iteration {best['checkpoint']['engine']['iteration']}"
    )
    assert best["accuracy"] > 0.9, "the model should learn this data set"

    print()
    measure_dispatch_cost()


if __name__ == "__main__":
    main()
