"""Measure the benchmark scenarios and print the cost per iteration table.

    PYTHONPATH=src python benchmarks/report.py [--n N] [--repeats R] [--stat min|median]
                                               [--png PATH] [--markdown] [--only KEY ...]

All implementations run in this one process, interleaved within each repeat
(see fastignite/_bench/scenarios.py's measure).  The table shows the minimum
over repeats by default (the least disturbed run: noise only ever adds time);
the other statistic is printed after it.  The scenarios, the measurement, the
table and the plot are the package's (fastignite/_bench/), which
``python -m fastignite bench`` runs too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fastignite._bench import report as rp
from fastignite._bench import scenarios as sc


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--n",
        type=int,
        default=sc.DEFAULT_N,
        help=f"iterations per run for the hand loop and fastignite (ignite: N//{sc.IGNITE_DIVISOR})",
    )
    p.add_argument("--repeats", type=int, default=sc.DEFAULT_REPEATS, help="measurements per implementation")
    p.add_argument("--stat", choices=("min", "median"), default="min", help="statistic of the main table")
    p.add_argument("--png", metavar="PATH", help="also plot cost against number of handlers to this PNG")
    p.add_argument("--markdown", action="store_true", help="print the tables as GitHub markdown")
    p.add_argument("--only", metavar="KEY", nargs="+", help="run only these scenario keys (e.g. 0h six-16h)")
    args = p.parse_args(argv)
    if args.n < 1 or args.repeats < 1:
        p.error("--n and --repeats must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    scenarios = [s for s in sc.SCENARIOS if not args.only or s.key in args.only]
    if not scenarios:
        sys.exit(f"no scenario among {args.only}; keys: {', '.join(s.key for s in sc.SCENARIOS)}")
    rp.report(scenarios, n=args.n, repeats=args.repeats, stat=args.stat, markdown=args.markdown, png=args.png)


if __name__ == "__main__":
    main()
