"""A small, real training run for the resume tests (tests/test_deterministic.py).

An MLP on sklearn's digits, SGD with momentum, a shuffling DataLoader, checkpoints
(engine state_dict + model + optimizer) every ``--every`` iterations, written to a
temporary file then os.replace'd onto ``--ckpt``.

    python tests/_resume_train.py --engine fastignite|ignite --out final.pt --ckpt ckpt.pt
        [--dropout] [--hang-at K] [--resume] [--data digits.npz]

``--dropout``: the step draws from torch (dropout), numpy (input noise) and python
``random`` (a learning-rate jitter).  ``--hang-at K``: in iteration K, after the
forward pass, print ``HANG K`` and wait to be killed.  ``--resume``: load ``--ckpt``
before running.  At the end the model and optimizer state_dicts go to ``--out``.
"""

import argparse
import os
import random
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["fastignite", "ignite"], default="fastignite")
    parser.add_argument("--out", required=True)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dropout", action="store_true")
    parser.add_argument("--hang-at", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--data", default=None, help="digits as .npz (x, y); default: sklearn's load_digits")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    if args.engine == "ignite":
        from ignite.engine import Events
        from ignite.engine.deterministic import DeterministicEngine
    else:
        from fastignite import DeterministicEngine, Events

    if args.data is not None:
        with np.load(args.data) as arrays:
            x, y = arrays["x"], arrays["y"]
    else:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=True, num_workers=0)

    torch.manual_seed(1234)
    random.seed(1234)
    np.random.seed(1234)
    layers = [nn.Linear(64, 96), nn.ReLU()]
    if args.dropout:
        layers.append(nn.Dropout(0.3))
    layers.append(nn.Linear(96, 10))
    model = nn.Sequential(*layers)
    lr = 0.05
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step(engine, batch):
        xb, yb = batch
        model.train()
        if args.dropout:
            xb = xb + torch.from_numpy(np.random.normal(0.0, 0.05, size=tuple(xb.shape))).float()
            for group in opt.param_groups:
                group["lr"] = lr * (1.0 + 0.1 * random.random())
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        if args.hang_at is not None and engine.state.iteration == args.hang_at:
            print(f"HANG {engine.state.iteration}", flush=True)
            while True:
                time.sleep(1)
        loss.backward()
        opt.step()
        return loss.item()

    trainer = DeterministicEngine(step)

    @trainer.on(Events.ITERATION_COMPLETED(every=args.every))
    def checkpoint(engine):
        tmp = args.ckpt + ".tmp"
        torch.save({"engine": engine.state_dict(), "model": model.state_dict(), "opt": opt.state_dict()}, tmp)
        os.replace(tmp, args.ckpt)

    if args.resume:
        ckpt = torch.load(args.ckpt, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        trainer.load_state_dict(ckpt["engine"])
        print(f"RESUMED {ckpt['engine']['iteration']}", flush=True)

    torch.manual_seed(99)  # the same in every process: ignite draws its seed from here
    trainer.run(loader, max_epochs=args.epochs)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "iteration": trainer.state.iteration}, args.out)
    print(f"DONE {trainer.state.iteration}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
