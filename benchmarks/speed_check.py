"""Speed check: an empty fastignite run against a plain loop making the same call.

    python benchmarks/speed_check.py [--max-ratio 1.5] [--allow-pure] [--n N] [--repeats R]

Measures, side by side in this one process, the ns per iteration of
``Engine(step).run(data, max_epochs=1)`` with no handler (``step`` returns its
batch, ``data`` a list of N items) and of the hand loop making the same call:
the "0 handlers, sized list data" scenario of fastignite/_bench/scenarios.py, on the backend
fastignite picked at import.  Repeats interleave the two; each keeps its minimum.

Exits 1 when fastignite.BACKEND is not "compiled" (unless --allow-pure), or when
the engine costs more than --max-ratio times the loop.  cibuildwheel runs it on
every wheel.
"""

from __future__ import annotations

import argparse
import os
import sys

import fastignite
from fastignite._bench import scenarios as sc

SCENARIO = next(s for s in sc.SCENARIOS if s.key == "0h-list")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-ratio", type=float, default=1.5, help="fail above this engine/loop cost ratio (1.5)")
    p.add_argument("--allow-pure", action="store_true", help="measure the pure twin instead of failing on it")
    p.add_argument("--n", type=int, default=sc.DEFAULT_N, help=f"iterations per run ({sc.DEFAULT_N:,})")
    p.add_argument("--repeats", type=int, default=11, help="interleaved runs of each, minimum kept (11)")
    args = p.parse_args(argv)

    print(
        f"fastignite {fastignite.__version__} from {os.path.dirname(fastignite.__file__)}, "
        f"backend {fastignite.BACKEND}, Python {sys.version.split()[0]}"
    )
    if fastignite.BACKEND != "compiled" and not args.allow_pure:
        print(
            f"FAIL: fastignite.BACKEND is {fastignite.BACKEND!r}, not 'compiled' "
            "(its extension was not built or does not import; --allow-pure measures the pure twin)"
        )
        return 1

    impls = {impl.key: impl for impl in sc.implementations(with_ignite=False)}
    loop, engine = impls["loop"], impls[fastignite.BACKEND]
    results = sc.measure([SCENARIO], [loop, engine], n=args.n, repeats=args.repeats)
    loop_ns = results[SCENARIO.key, loop.key].min
    engine_ns = results[SCENARIO.key, engine.key].min
    ratio = engine_ns / loop_ns
    print(f"{SCENARIO.title}, {args.n:,} iterations, min of {args.repeats}:")
    print(f"  plain loop         {loop_ns:8.1f} ns/iteration")
    print(f"  fastignite {engine.key:<8} {engine_ns:8.1f} ns/iteration")
    print(f"  ratio              {ratio:8.2f}x  (max {args.max_ratio}x)")
    if ratio > args.max_ratio:
        print(f"FAIL: an empty iteration costs {ratio:.2f}x a plain loop, over {args.max_ratio}x")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
