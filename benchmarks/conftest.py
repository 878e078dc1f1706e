"""For test_benchmarks.py: a closing table of per-iteration costs.

pytest-benchmark's own tables compare whole runs, which differ in length between
ignite and the others; this one puts every implementation's cost per iteration
(minimum over rounds) side by side.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

# scenario title -> {implementation label: ns per iteration}, in test order.
_PER_ITERATION: dict[str, dict[str, float]] = {}


@pytest.fixture
def record_per_iteration() -> Callable:
    def record(scenario, impl, ns: float) -> None:
        _PER_ITERATION.setdefault(scenario.title, {})[impl.label] = ns

    return record


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _PER_ITERATION:
        return
    labels = list(dict.fromkeys(label for row in _PER_ITERATION.values() for label in row))
    width = max(len(title) for title in _PER_ITERATION)
    # Each column as wide as its label (the drop-in's is long), numbers at least 19.
    widths = {label: max(19, len(label)) for label in labels}
    terminalreporter.section("ns per iteration (min of rounds)")
    terminalreporter.write_line(" | ".join([" " * width, *(f"{label:>{widths[label]}}" for label in labels)]))
    for title, row in _PER_ITERATION.items():
        cells = [
            f"{row[label]:>{widths[label]},.1f}" if label in row else f"{'-':>{widths[label]}}" for label in labels
        ]
        terminalreporter.write_line(" | ".join([title.ljust(width), *cells]))
