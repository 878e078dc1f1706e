"""What rank agreement costs per iteration: 2 ranks on gloo, on 127.0.0.1.

    python benchmarks/distributed.py [--iterations N] [--repeats R] [--ranks W]

For each loop, the same run with ``engine.agree_every`` = 0 (no agreement:
ignite's behaviour), "auto" (the default) and 1 (an agreement after every
iteration), measured side by side in the same processes, min over repeats of
the slowest rank's time per iteration.  Loops:

* ``empty``: a process function that does nothing: the agreement's whole cost;
* ``ddp``: a small MLP's DDP training step (forward, backward with its
  gradient all_reduce, SGD step): what a small model pays.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import itertools
import os
import socket
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sharded:
    """What the engine sees of a DataLoader over a DistributedSampler (which
    makes "auto" agree): sized, iterable, with the sampler; its batches cost
    nothing, so that the loop's own cost shows."""

    def __init__(self, n: int, world: int, rank: int) -> None:
        from torch.utils.data import DistributedSampler

        self.n = n
        self.sampler = DistributedSampler(range(n * world), num_replicas=world, rank=rank, shuffle=False)

    def __iter__(self):
        return itertools.repeat(None, self.n)

    def __len__(self) -> int:
        return self.n


def _rank_main(rank: int, world: int, port: int, iterations: int, repeats: int, queue) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn

    from fastignite import Engine

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120))
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))

    def ddp_step(engine, batch):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    loops = {"empty": (lambda engine, batch: None, iterations * 10), "ddp": (ddp_step, iterations)}
    results: dict = {}
    for _ in range(repeats):
        for loop, (step, n) in loops.items():
            for every in (0, "auto", 1):
                engine = Engine(step)
                engine.agree_every = every
                dist.barrier()
                start = time.perf_counter()
                engine.run(Sharded(n, world, rank), max_epochs=1)
                took = torch.tensor([(time.perf_counter() - start) / n])
                dist.all_reduce(took, op=dist.ReduceOp.MAX)  # the slowest rank's
                key = (loop, str(every))
                results[key] = min(results.get(key, float("inf")), took.item())
    if rank == 0:
        queue.put(results)
    dist.destroy_process_group()
    gc.collect()  # see examples/ddp_digits.py's end


def main(argv: list[str] | None = None) -> dict:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=2000, help="DDP iterations per run (empty loop: 10x)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(
        _rank_main,
        args=(args.ranks, _free_port(), args.iterations, args.repeats, queue),
        nprocs=args.ranks,
        start_method="spawn",
    )
    results = queue.get()
    print(f"per iteration, {args.ranks} ranks on gloo, min of {args.repeats} (slowest rank)")
    print('| loop | agree_every=0 (off) | "auto" (default) | 1 (every iteration) |')
    print("|---|---|---|---|")
    for loop in ("empty", "ddp"):
        off = results[(loop, "0")]
        cells = [f"{off * 1e6:,.1f} us"]
        for every in ("auto", "1"):
            t = results[(loop, every)]
            cells.append(f"{t * 1e6:,.1f} us (+{(t - off) * 1e6:,.1f} us, {t / off:.2f}x)")
        print(f"| {loop} | " + " | ".join(cells) + " |")
    return results


if __name__ == "__main__":
    main()
