"""``python -m fastignite``: fastignite's command line.

    python -m fastignite bench [--quick] [--plot FILE]

With no command it prints its usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import fastignite
from fastignite._bench import cli as bench


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastignite",
        description="fastignite: pytorch-ignite's training loop, compiled.",
    )
    parser.add_argument("--version", action="version", version=f"fastignite {fastignite.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_parser = commands.add_parser(
        "bench",
        help="measure the cost per iteration of fastignite, a hand-written loop and ignite on this machine",
        description=(
            "Measures, on this machine and in this one process, what the README's speed table shows: the "
            "cost per iteration of a hand-written loop, fastignite's compiled and pure twins, and "
            "pytorch-ignite with fastignite's drop-in for it when ignite is installed."
        ),
    )
    bench.add_arguments(bench_parser)
    # An unknown option after a command is reported by that command's parser,
    # whose usage then lists the options it does take.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        (bench_parser if args.command == "bench" else parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 0
    return bench.run(args, bench_parser)


if __name__ == "__main__":
    sys.exit(main())
