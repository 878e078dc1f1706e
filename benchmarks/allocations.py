"""Count heap allocations per iteration, exactly, with valgrind's callgrind.

    PYTHONPATH=src python benchmarks/allocations.py [--n N] [--only KEY ...] [--all]
                                                    [--detail] [--markdown]

For each scenario of fastignite/_bench/scenarios.py and each implementation
(the hand-written loop, fastignite's compiled twin if ``fastignite._dispatch_c``
imports, its pure twin; not ignite, whose import of torch would take minutes
under valgrind) it prints the heap allocations one iteration makes, and the excess
over the hand loop.

How it counts
-------------
Each implementation is measured in its own child process, run as

    PYTHONMALLOC=malloc PYTHONHASHSEED=0 valgrind --tool=callgrind
        --dump-before=getppid --compress-strings=no ... python allocations.py --child KEY

* ``PYTHONMALLOC=malloc`` makes CPython's allocators (PyObject_Malloc,
  PyMem_Malloc, PyMem_RawMalloc and their Calloc/Realloc) call libc's
  malloc/calloc/realloc, one call per request.  So the calls into those libc
  functions, from outside the allocator itself, are every heap allocation
  request the process makes: CPython's and those of C extensions (the Cython
  twin) that call malloc directly.  It changes where a block comes from, not
  how many are requested: the count is the default (pymalloc) build's count
  of allocator requests.  Free lists (floats, tuples, frames...) serve some
  objects without any request, in either mode; they are not counted.  A
  realloc is counted as one allocation (it may move the block).
* callgrind counts executed calls exactly (it instruments every instruction;
  it does not sample), so the count is not an estimate.  The child is
  deterministic: fixed hash seed, the garbage collector off while measuring,
  and no timing-dependent work in the scenarios' loops; the same command gives
  the same counts every time.
* The child calls ``os.getppid()`` (libc's getppid, which nothing else calls)
  as a marker: ``--dump-before=getppid`` writes the counters to a numbered
  file and zeroes them at every call.  Each dump therefore holds exactly what
  ran between two markers.
* Per scenario the child builds the engine and sets up four runs (for sized
  data, the lists of batches are built here), outside the measured dumps.
  It warms up with 64 runs of one iteration (so that CPython specialises the
  code run once per run) and one of N iterations (dispatch tables built,
  per-iteration code specialised, free lists left as every run leaves them),
  then runs N, 2N and 3N iterations, each between two markers.  Every run pays
  the same fixed cost (marker calls, ``engine.run``'s set-up and end,
  STARTED/EPOCH/COMPLETED firings), so

      per iteration = (count(2N) - count(N)) / N

  is exactly the average number of allocations of iterations N+1 to 2N of a
  run.  N is rounded up to a multiple of the scenario's period, so filtered
  handlers fire equally often in any N iterations.
* Check: (count(3N) - count(2N)) / N must be the same.  A cell where it is
  not (cost growing with the run, e.g. a list that keeps growing) is marked.
* What depends on where in a run the iterations are: CPython caches the ints
  below 257, so an int computed from the count costs an allocation only once
  it is past 256.  In iterations N+1 to 2N, ``state.iteration`` is past 256,
  and with the default N so is count // 10; count // 100 and count // 1000
  (which a filter with every=100 or 1000 may compute once per firing) are
  not yet: at most a couple of allocations per firing of the filter, under
  0.02 per iteration, are left out of those rows.

``--detail`` adds the calls per function and allocations minus frees per
iteration (0 in a steady state; but free(NULL), which the compiled twin calls
for scratch buffers it did not need, counts as a free).

Run time: some seconds of valgrind start-up per implementation (they run in
parallel, one per CPU), plus ~50x the native time of 7N iterations (with
64 one-iteration runs) per scenario: about a minute and a half on 2 cores.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fastignite
from fastignite._bench import scenarios as sc

HERE = Path(__file__).resolve().parent
# Iterations past 2,570, so that count // 10 (computed by every=10 filters) is
# past CPython's cached small ints (< 257) in all measured iterations.
DEFAULT_N = 3_000
# Rows measured by default: every shape, with few enough handler calls per
# iteration that valgrind's slowdown stays tolerable (--all adds the rest;
# six-0h is the same engine as 0h).
DEFAULT_KEYS = (
    "0h", "0h-list", "10h", "10h-every10", "100h-every100", "1000h-every1000",
    "custom-0h", "custom-16h", "six-16h",
)  # fmt: skip
WARM_UP_RUNS = 64
MARKER_FUNCTION = "getppid"  # libc's; called by os.getppid() and by nothing in the runs
ALLOCATING = frozenset(
    {"malloc", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign", "aligned_alloc", "valloc", "pvalloc"}
)
FREEING = frozenset({"free", "cfree"})
_RECURSION_SUFFIX = re.compile(r"'\d+$")  # callgrind's name'2 for a recursion level
NOT_LINEAR_MARK = "*"


# -- child: runs inside valgrind ----------------------------------------------------------------


def _marker() -> None:
    os.getppid()


def period_multiple(n: int, scenario: sc.Scenario) -> int:
    """``n`` rounded up to a whole number of the scenario's periods."""
    period = scenario.period
    return max(1, -(-n // period)) * period


def child(impl_key: str, keys: Sequence[str], n: int, manifest: str) -> None:
    impl = next(i for i in sc.implementations(with_ignite=False) if i.key == impl_key)
    labels: list[list] = []  # per marker call: [scenario key, what ran since the previous marker]
    gc.collect()
    gc.freeze()  # what exists now is out of the collector's reach (it is off anyway while measuring)
    for scenario in (s for s in sc.SCENARIOS if s.key in keys):
        steps = period_multiple(n, scenario)
        make_run = impl.prepare(scenario)
        runs = [make_run(k * steps) for k in (1, 1, 2, 3)]  # set up outside the measured dumps
        run_0, run_1, run_2, run_3 = runs
        # Warm-up.  The code that runs once per run (engine.run's set-up, the
        # STARTED/EPOCH/COMPLETED firings) is specialised by CPython's adaptive
        # interpreter only after it ran some dozens of times; until then its
        # allocations change from run to run (e.g. a bound method object
        # that a specialised call no longer makes).  Runs of one iteration
        # warm it; run_0 warms the per-iteration code.
        for _ in range(WARM_UP_RUNS):
            make_run(1)()
        gc.collect()
        gc.disable()
        # Between two markers nothing runs but the run itself (no loop, no
        # bookkeeping), so that every dump pays the same fixed cost.  run_0,
        # not measured, leaves the free lists (dicts, tuples...) as every run
        # leaves them, so that each measured run starts from that state.
        run_0()
        _marker()
        run_1()
        _marker()
        run_2()
        _marker()
        run_3()
        _marker()
        gc.enable()
        labels += [[scenario.key, "set-up"], *([scenario.key, k * steps] for k in (1, 2, 3))]
        del make_run, runs, run_0, run_1, run_2, run_3  # free the engine before the next scenario
    Path(manifest).write_text(json.dumps({"impl": impl_key, "labels": labels}))


# -- parent: runs the children, reads the dumps ------------------------------------------------


def count_calls(dump: Path) -> collections.Counter:
    """Calls into the allocator in one callgrind dump (uncompressed names), by
    function, leaving out the allocator's calls to itself (e.g. glibc's realloc
    of NULL calling malloc)."""
    calls: collections.Counter = collections.Counter()
    caller = target = None
    with open(dump) as f:
        for line in f:
            if line.startswith("fn="):
                caller = _RECURSION_SUFFIX.sub("", line[3:].strip())
            elif line.startswith("cfn="):
                target = _RECURSION_SUFFIX.sub("", line[4:].strip())
            elif line.startswith("calls=") and target is not None:
                if (target in ALLOCATING or target in FREEING) and caller not in ALLOCATING | FREEING:
                    calls[target] += int(line[6:].split()[0])
                target = None
    return calls


def valgrind_command(impl_key: str, keys: Sequence[str], n: int, out_dir: Path, manifest: Path) -> list[str]:
    return [
        "valgrind", "--tool=callgrind", f"--dump-before={MARKER_FUNCTION}",
        "--compress-strings=no", "--compress-pos=no",
        f"--callgrind-out-file={out_dir / 'callgrind.%p'}",
        sys.executable, str(Path(__file__).resolve()), "--child", impl_key,
        "--n", str(n), "--only", *keys, "--manifest", str(manifest),
    ]  # fmt: skip


def measure_impl(impl_key: str, keys: Sequence[str], n: int, work: Path) -> dict:
    """{(scenario key, steps): Counter of allocator calls} for one implementation."""
    out_dir = work / impl_key
    out_dir.mkdir()
    manifest = out_dir / "manifest.json"
    env = dict(os.environ, PYTHONMALLOC="malloc", PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        valgrind_command(impl_key, keys, n, out_dir, manifest),
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not manifest.exists():
        raise RuntimeError(f"the {impl_key} child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    labels = json.loads(manifest.read_text())["labels"]
    # callgrind.PID.K is the K-th dump, written at the K-th marker call.
    dumps = sorted(out_dir.glob("callgrind.*.*"), key=lambda p: int(p.suffix[1:]))
    if len(dumps) != len(labels):
        raise RuntimeError(f"{impl_key}: {len(dumps)} dumps for {len(labels)} markers")
    return {(key, what): count_calls(dump) for (key, what), dump in zip(labels, dumps) if what != "set-up"}


class Cell:
    """One implementation on one scenario: allocator calls per iteration."""

    def __init__(self, counts: dict, key: str, steps: int) -> None:
        c1, c2, c3 = (counts[key, k * steps] for k in (1, 2, 3))
        self.steps = steps

        def per_iteration(fn_names: frozenset, a: collections.Counter, b: collections.Counter) -> float:
            return sum(b[f] - a[f] for f in fn_names) / steps

        self.allocs = per_iteration(ALLOCATING, c1, c2)
        self.frees = per_iteration(FREEING, c1, c2)
        self.linear = self.allocs == per_iteration(ALLOCATING, c2, c3)
        self.by_function = {f: (c2[f] - c1[f]) / steps for f in sorted(ALLOCATING | FREEING) if c2[f] - c1[f]}


def _num(value: float) -> str:
    """Up to 3 decimals (every=1000 rows differ in the third), no trailing zeros."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def table(
    cells: dict, scenarios: Sequence[sc.Scenario], impls: Sequence[str], labels: dict, detail: bool
) -> tuple[list[str], list[list[str]]]:
    columns = ["scenario", "iterations N"]
    for impl in impls:
        columns.append(f"{labels[impl]} allocs/it" + ("" if impl == "loop" else " (excess)"))
    if detail:
        columns += [f"{labels[impl]} by function /it; allocs-frees" for impl in impls]
    rows = []
    for s in scenarios:
        loop = cells[s.key, "loop"]
        row = [s.title, f"{loop.steps:,}"]
        for impl in impls:
            cell = cells[s.key, impl]
            text = _num(cell.allocs) + ("" if cell.linear else NOT_LINEAR_MARK)
            if impl != "loop":
                text += f" ({'+' if cell.allocs >= loop.allocs else ''}{_num(cell.allocs - loop.allocs)})"
            row.append(text)
        if detail:
            for impl in impls:
                cell = cells[s.key, impl]
                parts = ", ".join(f"{f} {_num(v)}" for f, v in cell.by_function.items()) or "none"
                row.append(f"{parts}; {_num(cell.allocs - cell.frees)}")
        rows.append(row)
    return columns, rows


def format_text(columns: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(columns), "-+-".join("-" * w for w in widths), *(line(r) for r in rows)])


def format_markdown(columns: list[str], rows: list[list[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    align = "| " + " | ".join([":---", *["---:"] * (len(columns) - 1)]) + " |"
    return "\n".join([line(columns), align, *(line(r) for r in rows)])


def _nproc() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--n",
        type=int,
        default=DEFAULT_N,
        help="iterations N of the smallest measured run (rounded up to whole filter periods)",
    )
    p.add_argument(
        "--only", metavar="KEY", nargs="+", help=f"scenario keys to measure (default: {' '.join(DEFAULT_KEYS)})"
    )
    p.add_argument("--all", action="store_true", help="measure every scenario (the 256-handler rows take minutes)")
    p.add_argument("--detail", action="store_true", help="also print calls per function and allocations minus frees")
    p.add_argument("--markdown", action="store_true", help="print the table as GitHub markdown")
    p.add_argument("--child", metavar="IMPL", help=argparse.SUPPRESS)  # internal: run inside valgrind
    p.add_argument("--manifest", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("--n must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    keys = [s.key for s in sc.SCENARIOS] if args.all else (args.only or list(DEFAULT_KEYS))
    if args.child:
        child(args.child, keys, args.n, args.manifest)
        return
    scenarios = [s for s in sc.SCENARIOS if s.key in keys]
    if not scenarios:
        sys.exit(f"no scenario among {keys}; keys: {', '.join(s.key for s in sc.SCENARIOS)}")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (e.g. apt-get install valgrind)")
    impls = [impl.key for impl in sc.implementations(with_ignite=False)]
    labels = {"loop": "hand loop", "compiled": "compiled", "pure": "pure"}

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fastignite-allocations-") as tmp:
        print(
            f"  measuring {', '.join(impls)} under callgrind ({len(scenarios)} scenarios)...",
            file=sys.stderr,
            flush=True,
        )
        with ThreadPoolExecutor(max_workers=_nproc()) as pool:
            futures = {
                impl: pool.submit(measure_impl, impl, [s.key for s in scenarios], args.n, Path(tmp)) for impl in impls
            }
            counts = {impl: f.result() for impl, f in futures.items()}
    elapsed = time.perf_counter() - started

    cells = {(s.key, impl): Cell(counts[impl], s.key, period_multiple(args.n, s)) for s in scenarios for impl in impls}
    print(
        "fastignite: heap allocations per iteration (calls to malloc/calloc/realloc under PYTHONMALLOC=malloc, "
        "counted by callgrind); (count(2N) - count(N)) / N; lower is better"
    )
    print(
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}; fastignite "
        f"{fastignite.__version__}; implementations: {', '.join(labels[i] for i in impls)}"
        + ("" if "compiled" in impls else " (compiled: not built)")
    )
    print()
    fmt = format_markdown if args.markdown else format_text
    print(fmt(*table(cells, scenarios, impls, labels, args.detail)))
    print()
    if all(cell.linear for cell in cells.values()):
        print("Check passed in every cell: (count(3N) - count(2N)) / N is the same figure.")
    else:
        print(f"{NOT_LINEAR_MARK} (count(3N) - count(2N)) / N differs: the cost per iteration changes along the run.")
    print(
        "(excess) = allocations per iteration beyond the hand loop's, which makes the same calls. The hand "
        "loop's own: its iteration counter (an int past 256), a list iterator per walk over handlers, and with "
        "every=k > 256 the remainder it % k whenever it is past 256 (0.74 per iteration for every=1000)."
    )
    print(f"measured in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
