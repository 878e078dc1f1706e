"""The cost-per-iteration table and plot of the benchmark scenarios.

``report()`` measures the scenarios of ``scenarios.py`` and prints the table;
``python -m fastignite bench`` and ``benchmarks/report.py`` both call it, with
their own options.  All implementations run in this one process, interleaved
within each repeat (see ``scenarios.measure``).  The table shows the minimum
over repeats by default: the least disturbed run, since noise only ever adds
time.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from . import scenarios as sc

NO_FIRING_MARK = "\u2020"  # dagger
IGNITE_EXTRA = 'pip install "fastignite[ignite]"'

Results = dict[tuple[str, str], sc.Result]


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


def _import_error(module: str) -> str | None:
    """The error importing ``module`` gives, or None (implementations() only says whether it imports)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return str(exc)
    return None


def environment_lines(impls: Sequence[sc.Implementation]) -> list[str]:
    import fastignite

    keys = [impl.key for impl in impls]
    twins = [name for name in ("compiled", "pure") if name in keys]
    missing = "" if "compiled" in keys else "; compiled: not built (fastignite._dispatch_c does not import)"
    ignite = next((impl.label for impl in impls if impl.key == "ignite"), None)
    if ignite is None:
        # Said here once, so that the table need not carry columns of "not installed".
        error = _import_error("ignite.engine")
        if error:
            ignite = (
                f"no ignite, which does not import ({error}): the ignite and drop-in columns are left out "
                f"({IGNITE_EXTRA} adds them)"
            )
        else:
            ignite = "no ignite (left out): the ignite and drop-in columns are left out"
    return [
        (
            f"Python {platform.python_version()} ({platform.python_implementation()}) on {platform.system()} "
            f"{platform.machine()}, {_cpu_model()}, nproc={_nproc()}"
        ),
        (
            f"fastignite {fastignite.__version__} from {os.path.dirname(fastignite.__file__)}; "
            f"backends available: {', '.join(twins)}{missing}; default at import: {fastignite.BACKEND}"
        ),
        f"compared with: {ignite}",
    ]


# -- table ----------------------------------------------------------------------------


def _ns(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _ratio(value: float) -> str:
    return f"{value:.1f}x" if value < 10 else f"{value:,.0f}x"


def table(results: Results, scenarios: Sequence[sc.Scenario], stat: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the table.  The compiled column is always there
    ("not built" where it is missing: a pure-only install should see what it
    lacks); the drop-in and ignite columns only when ignite was measured."""
    measured = {ik for _, ik in results}
    with_ignite, with_dropin = "ignite" in measured, "dropin" in measured
    header = ["scenario", "hand loop ns", "compiled ns (x loop)"]
    if with_dropin:
        header.append("drop-in ns (x loop)")
    header.append("pure ns (x loop, x cheaper than ignite)" if with_ignite else "pure ns (x loop)")
    if with_ignite:
        header += ["ignite ns (x loop)", "iterations/run (others / ignite)"]
    else:
        header.append("iterations/run")
    rows = []
    for scenario in scenarios:
        cost = {ik: getattr(r, stat) for (sk, ik), r in results.items() if sk == scenario.key}
        loop = cost["loop"]
        row = [scenario.title, _ns(loop)]
        row.append(
            f"{_ns(cost['compiled'])} ({_ratio(cost['compiled'] / loop)})" if "compiled" in cost else "not built"
        )
        if with_dropin:
            row.append(f"{_ns(cost['dropin'])} ({_ratio(cost['dropin'] / loop)})")
        pure = f"{_ns(cost['pure'])} ({_ratio(cost['pure'] / loop)}"
        if with_ignite:
            pure += f", {_ratio(cost['ignite'] / cost['pure'])} cheaper than ignite"
        row.append(pure + ")")
        iterations = f"{results[scenario.key, 'loop'].iterations:,}"
        if with_ignite:
            ig = results[scenario.key, "ignite"]
            mark = "" if ig.covers_periods else NO_FIRING_MARK
            row.append(f"{_ns(cost['ignite'])}{mark} ({_ratio(cost['ignite'] / loop)})")
            iterations += f" / {ig.iterations:,}"
        row.append(iterations)
        rows.append(row)
    return header, rows


def format_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        # Scenario names left-aligned, numbers right-aligned.
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def format_markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    align = "| " + " | ".join([":---", *["---:"] * (len(header) - 1)]) + " |"
    return "\n".join([line(header), align, *(line(r) for r in rows)])


def footnotes(results: Results, n: int) -> list[str]:
    with_ignite = any(ik == "ignite" for _, ik in results)
    ignite_runs = f" and {n // sc.IGNITE_DIVISOR:,} (ignite)" if with_ignite else ""
    notes = [
        (
            f"Runs: {n:,} iterations (hand loop, fastignite{', drop-in' if with_ignite else ''}){ignite_runs}, "
            "data=None with epoch_length = iterations unless stated; runs making many handler calls per iteration "
            f"are shortened to about {sc.CALLS_PER_ITERATION_BUDGET} calls x N; filtered runs span whole periods."
        ),
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


def plot(results: Results, impls: Sequence[sc.Implementation], path: str, stat: str) -> None:
    """Cost against number of handlers, written to ``path`` as a PNG (whatever its extension)."""
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
                ax.plot(
                    *zip(*short),
                    "o",
                    mfc="white",
                    mec=line.get_color(),
                    label=f"{impl.label}: window < one period ({NO_FIRING_MARK})",
                )
        ax.set_yscale("log")
        if 0 in ks:
            # A log axis has no 0: symlog is linear below 1, logarithmic above.
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(-0.3, max(ks) * 1.5)  # symlog mirrors around 0: drop the empty negative side
        elif ks:
            ax.set_xscale("log")
        ax.set_xticks(ks, [f"{k:,}" for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("handlers k")
        ax.set_ylabel(f"ns per iteration ({stat} of repeats)")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
    fig.suptitle(f"fastignite: cost per iteration, Python {platform.python_version()}")
    # PNG whatever the name says: `bench --plot` promises a PNG, and an unknown
    # extension would otherwise fail only after the whole measurement.
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    print(f"plot written to {path}")


# -- progress -------------------------------------------------------------------------


class Progress:
    """``scenarios.measure``'s progress, on stderr: a tqdm bar when tqdm is
    installed and stderr is a terminal; else a plain line rewritten in place on
    a terminal, and one line per scenario elsewhere (a log gets no bar frames).

    Use as a context manager, passing the instance as measure's ``progress``."""

    BAR_WIDTH = 20

    def __init__(self, scenarios: Sequence[sc.Scenario], stream: TextIO | None = None) -> None:
        self._numbers = {s.key: i for i, s in enumerate(scenarios, 1)}
        self._count = len(scenarios)
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._current: str | None = None
        self._width = 0  # of the plain line last written, to blank it
        self._tqdm: Any = None
        self._bar: Any = None
        if self._tty:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._tqdm = tqdm

    def _label(self, scenario: sc.Scenario) -> str:
        return f"{self._numbers.get(scenario.key, 0)}/{self._count} {scenario.title}"

    def __call__(self, scenario: sc.Scenario, done: int, total: int) -> None:
        started = scenario.key != self._current
        self._current = scenario.key
        if self._tqdm is not None:
            if self._bar is None:
                self._bar = self._tqdm(total=total, unit="run", file=self._stream, leave=False, dynamic_ncols=True)
            if started:
                self._bar.set_description_str(self._label(scenario))  # shown at once: a scenario lasts seconds
            self._bar.update(done - self._bar.n)
        elif self._tty:
            filled = self.BAR_WIDTH * done // max(1, total)
            line = f"measuring {done / max(1, total):4.0%} [{'#' * filled:<{self.BAR_WIDTH}}] {self._label(scenario)}"
            self._stream.write("\r" + line.ljust(self._width))
            self._stream.flush()
            self._width = len(line)
        elif started:
            print(f"  measuring {self._label(scenario)}", file=self._stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._tty and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the report -----------------------------------------------------------------------


def report(
    scenarios: Sequence[sc.Scenario],
    *,
    n: int = sc.DEFAULT_N,
    repeats: int = sc.DEFAULT_REPEATS,
    stat: str = "min",
    other_stat: bool = True,
    markdown: bool = False,
    png: str | None = None,
    notes: Sequence[str] = (),
) -> Results:
    """Measures ``scenarios`` on every implementation available here and prints
    the table (then the table of the other statistic when ``other_stat``), the
    footnotes, ``notes`` and the time taken; with ``png``, writes the plot there."""
    impls = sc.implementations()
    other = "median" if stat == "min" else "min"
    print(
        f"fastignite benchmarks: cost per iteration in ns, {stat.upper()} of {repeats} repeats"
        f"{f' (the {other} follows)' if other_stat else ''}; lower is better"
    )
    # Before measuring, so that what is compared shows while the bar runs.
    for line in environment_lines(impls):
        print(line)
    print(flush=True)
    started = time.perf_counter()
    with Progress(scenarios) as progress:
        results = sc.measure(scenarios, impls, n, repeats, progress=progress)
    elapsed = time.perf_counter() - started

    fmt = format_markdown if markdown else format_text
    print(fmt(*table(results, scenarios, stat)))
    print()
    for note in [*footnotes(results, n), *notes]:
        print(note)
    print()
    if other_stat:
        print(f"The same, {other.upper()} of {repeats} repeats:")
        print()
        print(fmt(*table(results, scenarios, other)))
        print()
    print(f"measured in {elapsed:.0f} s")
    if png:
        plot(results, impls, png, stat)
    return results
