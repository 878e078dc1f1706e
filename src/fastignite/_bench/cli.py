"""``python -m fastignite bench``: the README's speed table, measured on this machine.

The same scenarios, measurement and table as ``benchmarks/report.py`` (both call
``report.report``); only the options differ.  ``--quick`` trades precision for
time: shorter runs, fewer repeats and one row fewer.
"""

from __future__ import annotations

import argparse
import os

from . import report as rp
from . import scenarios as sc

# --quick: 1/10 of the full run's iterations and 3 repeats instead of 5; runs
# still last milliseconds (far above the timer's resolution), so the ratios stay
# close to the full run's, with more noise.  Left out: the 10,000-handler row,
# whose engines (10,000 handlers each, registered one by one as a user would)
# take a quarter of --quick's time to build; the 10-1,000 rows show the same flat
# curve.  What is left then costs about as much as importing torch and ignite.
QUICK_N = sc.DEFAULT_N // 10
QUICK_REPEATS = 3
QUICK_LEAVES_OUT = ("10000h-every10000",)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"should be a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"should be a positive whole number, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a rougher measurement in under 30 s: runs of {QUICK_N:,} iterations, minimum of {QUICK_REPEATS} "
        f"repeats, without the 10,000-handler row (default: every row, {sc.DEFAULT_N:,} iterations, minimum of "
        f"{sc.DEFAULT_REPEATS}, a few minutes)",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="also write the plot of cost against number of handlers to FILE, a PNG (needs matplotlib)",
    )
    # For the tests, which need runs shorter than --quick's; not part of the interface.
    parser.add_argument("--n", type=_positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=_positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="+", metavar="KEY", help=argparse.SUPPRESS)


def _check_plot(parser: argparse.ArgumentParser, path: str) -> None:
    """Refuses a plot that could not be written, before minutes of measuring."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"--plot {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        parser.error(f"--plot {path}: is a folder; give a file name, such as {os.path.join(path, 'bench.png')}")
    try:
        import matplotlib  # noqa: F401 - only whether it imports
    except ImportError as exc:
        parser.error(f"--plot {path}: needs matplotlib, which does not import ({exc}); pip install matplotlib")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.plot is not None:
        _check_plot(parser, args.plot)
    keys = [s.key for s in sc.SCENARIOS]
    unknown = [key for key in args.only or () if key not in keys]
    if unknown:
        parser.error(f"--only: no scenario {', '.join(unknown)}; the keys are {', '.join(keys)}")
    if args.only:
        scenarios = [s for s in sc.SCENARIOS if s.key in args.only]
    else:
        scenarios = [s for s in sc.SCENARIOS if not (args.quick and s.key in QUICK_LEAVES_OUT)]
    n = args.n or (QUICK_N if args.quick else sc.DEFAULT_N)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else sc.DEFAULT_REPEATS)
    notes = []
    if args.quick:
        left_out = [s.title for s in sc.SCENARIOS if s not in scenarios]
        notes.append(
            f"--quick: runs of {n:,} iterations, minimum of {repeats} repeats"
            f"{'; left out: ' + ', '.join(left_out) if left_out else ''}. The full run (no --quick: every row, "
            f"{sc.DEFAULT_N:,} iterations, {sc.DEFAULT_REPEATS} repeats) is steadier."
        )
    rp.report(scenarios, n=n, repeats=repeats, other_stat=False, png=args.plot, notes=notes)
    return 0
