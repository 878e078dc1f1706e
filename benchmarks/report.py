"""Measure the benchmark scenarios and print the cost per iteration table.

    PYTHONPATH=src python benchmarks/report.py [--n N] [--repeats R] [--stat min|median]
                                               [--png PATH] [--markdown]

All implementations run in this one process, interleaved within each repeat
(see scenarios.measure).  The table shows the minimum over repeats by default
(the least disturbed run: noise only ever adds time); the other statistic is
printed after it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence

import scenarios as sc

COLUMNS = (
    "scenario",
    "hand loop ns",
    "compiled ns (x loop)",
    "drop-in ns (x loop)",
    "pure ns (x loop, x cheaper than ignite)",
    "ignite ns (x loop)",
    "iterations/run (others / ignite)",
)
NO_FIRING_MARK = "\u2020"  # dagger


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=sc.DEFAULT_N,
                   help=f"iterations per run for the hand loop and fastignite (ignite: N//{sc.IGNITE_DIVISOR})")
    p.add_argument("--repeats", type=int, default=sc.DEFAULT_REPEATS, help="measurements per implementation")
    p.add_argument("--stat", choices=("min", "median"), default="min", help="statistic of the main table")
    p.add_argument("--png", metavar="PATH", help="also plot cost against number of handlers to this PNG")
    p.add_argument("--markdown", action="store_true", help="print the tables as GitHub markdown")
    p.add_argument("--only", metavar="KEY", nargs="+", help="run only these scenario keys (e.g. 0h six-16h)")
    args = p.parse_args(argv)
    if args.n < 1 or args.repeats < 1:
        p.error("--n and --repeats must be positive")
    return args


# -- environment ----------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _nproc() -> int:
    # What `nproc` prints: the CPUs this process may run on, not the machine's total.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def environment_lines(impls: Sequence[sc.Implementation]) -> list[str]:
    import fastignite

    keys = [impl.key for impl in impls]
    twins = [name for name in ("compiled", "pure") if name in keys]
    missing = "" if "compiled" in keys else "; compiled: not built (fastignite._dispatch_c does not import)"
    ignite = next((impl.label for impl in impls if impl.key == "ignite"), "ignite: not installed")
    return [
        f"Python {platform.python_version()} ({platform.python_implementation()}) on {platform.system()} "
        f"{platform.machine()}, {_cpu_model()}, nproc={_nproc()}",
        f"fastignite {fastignite.__version__} from {os.path.dirname(fastignite.__file__)}; "
        f"backends available: {', '.join(twins)}{missing}; default at import: {fastignite.BACKEND}",
        f"compared with: {ignite}",
    ]


# -- table ----------------------------------------------------------------------------


def _ns(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _ratio(value: float) -> str:
    return f"{value:.1f}x" if value < 10 else f"{value:,.0f}x"


def table_rows(results: dict, scenarios: Sequence[sc.Scenario], stat: str) -> list[list[str]]:
    rows = []
    for scenario in scenarios:
        cost = {ik: getattr(r, stat) for (sk, ik), r in results.items() if sk == scenario.key}
        loop = cost["loop"]
        row = [scenario.title, _ns(loop)]
        row.append(f"{_ns(cost['compiled'])} ({_ratio(cost['compiled'] / loop)})" if "compiled" in cost else "not built")
        # The drop-in needs ignite (its Events, its base class): absent with it.
        row.append(f"{_ns(cost['dropin'])} ({_ratio(cost['dropin'] / loop)})" if "dropin" in cost else "not installed")
        pure = f"{_ns(cost['pure'])} ({_ratio(cost['pure'] / loop)}"
        if "ignite" in cost:
            pure += f", {_ratio(cost['ignite'] / cost['pure'])} cheaper than ignite"
        row.append(pure + ")")
        if "ignite" in cost:
            ig = results[scenario.key, "ignite"]
            mark = "" if ig.covers_periods else NO_FIRING_MARK
            row.append(f"{_ns(cost['ignite'])}{mark} ({_ratio(cost['ignite'] / loop)})")
            ig_iterations = f"{ig.iterations:,}"
        else:
            row.append("not installed")
            ig_iterations = "-"
        row.append(f"{results[scenario.key, 'loop'].iterations:,} / {ig_iterations}")
        rows.append(row)
    return rows


def format_text(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        # Scenario names left-aligned, numbers right-aligned.
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(COLUMNS), rule, *(line(r) for r in rows)])


def format_markdown(rows: list[list[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    align = "| " + " | ".join([":---", *["---:"] * (len(COLUMNS) - 1)]) + " |"
    return "\n".join([line(COLUMNS), align, *(line(r) for r in rows)])


def footnotes(results: dict, n: int) -> list[str]:
    notes = [
        f"Runs: {n:,} iterations (hand loop, fastignite, drop-in) and {n // sc.IGNITE_DIVISOR:,} (ignite), "
        "data=None with epoch_length = iterations unless stated; runs making many handler calls per iteration "
        f"are shortened to about {sc.CALLS_PER_ITERATION_BUDGET} calls x N; filtered runs span whole periods.",
    ]
    if any(ik == "dropin" for _, ik in results):
        import fastignite

        notes.append(
            "drop-in: fastignite.ignite.Engine (a subclass of ignite's Engine) built with ignite's own Events, "
            f"EventEnum and Events.X(every=k) filters, on fastignite's default backend ({fastignite.BACKEND})."
        )
    if any(not r.covers_periods for r in results.values()):
        notes.append(
            f"{NO_FIRING_MARK} ignite's window is shorter than one period (a full one would take minutes): no "
            "handler ran in it, so the ~1 handler call per iteration a period averages is left out; ignite "
            "evaluates every handler's filter each iteration, which is what the figure measures."
        )
    return notes


# -- plot -----------------------------------------------------------------------------


def plot(results: dict, impls: Sequence[sc.Implementation], path: str, stat: str) -> None:
    try:
        import matplotlib
    except ImportError:
        print(f"matplotlib is not installed (pip install matplotlib): no plot written to {path}")
        return
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    panels = (
        ("scaling", "k handlers on ITERATION_COMPLETED(every=k)\n(one handler call per iteration on average)"),
        ("six", "Ignite.jl's benchmark: k handlers on each\nof the six loop events (all unfiltered)"),
    )
    # The drop-in runs compiled's loop and lies on its curve: dotted, so both show.
    styles = {"loop": "k--", "compiled": "C0-", "dropin": "C2:", "pure": "C1-", "ignite": "C3-"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    for ax, (curve, title) in zip(axes, panels):
        points = [s for s in sc.SCENARIOS if curve in s.curves and (s.key, "loop") in results]
        ks = [s.handlers for s in points]
        for impl in impls:
            ys = [getattr(results[s.key, impl.key], stat) for s in points]
            (line,) = ax.plot(ks, ys, styles.get(impl.key, "-"), marker="o", label=impl.label)
            # Hollow: a window shorter than one period (the table's dagger).
            short = [(k, y) for s, k, y in zip(points, ks, ys) if not results[s.key, impl.key].covers_periods]
            if short:
                ax.plot(*zip(*short), "o", mfc="white", mec=line.get_color(),
                        label=f"{impl.label}: window < one period ({NO_FIRING_MARK})")
        ax.set_yscale("log")
        if 0 in ks:
            # A log axis has no 0: symlog is linear below 1, logarithmic above.
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(-0.3, max(ks) * 1.5)  # symlog mirrors around 0: drop the empty negative side
        else:
            ax.set_xscale("log")
        ax.set_xticks(ks, [f"{k:,}" for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("handlers k")
        ax.set_ylabel(f"ns per iteration ({stat} of repeats)")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
    fig.suptitle(f"fastignite: cost per iteration, Python {platform.python_version()}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot written to {path}")


# -- main -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    scenarios = [s for s in sc.SCENARIOS if not args.only or s.key in args.only]
    if not scenarios:
        sys.exit(f"no scenario among {args.only}; keys: {', '.join(s.key for s in sc.SCENARIOS)}")
    impls = sc.implementations()
    started = time.perf_counter()
    results = sc.measure(scenarios, impls, args.n, args.repeats,
                         progress=lambda title: print(f"  measuring: {title}", file=sys.stderr, flush=True))
    elapsed = time.perf_counter() - started

    fmt = format_markdown if args.markdown else format_text
    other = "median" if args.stat == "min" else "min"
    print(f"fastignite benchmarks: cost per iteration in ns, {args.stat.upper()} of {args.repeats} repeats "
          f"(the {other} follows); lower is better")
    for line in environment_lines(impls):
        print(line)
    print()
    print(fmt(table_rows(results, scenarios, args.stat)))
    print()
    for note in footnotes(results, args.n):
        print(note)
    print()
    print(f"The same, {other.upper()} of {args.repeats} repeats:")
    print()
    print(fmt(table_rows(results, scenarios, other)))
    print()
    print(f"measured in {elapsed:.0f} s")
    if args.png:
        plot(results, impls, args.png, args.stat)


if __name__ == "__main__":
    main()
