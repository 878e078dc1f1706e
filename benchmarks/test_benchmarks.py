"""pytest-benchmark runs of the scenarios in fastignite/_bench/scenarios.py, one test per
(scenario, implementation).  Not part of the default test run (testpaths is
["tests"]); run explicitly:

    PYTHONPATH=src python -m pytest benchmarks/ --benchmark-only

pytest-benchmark times whole runs, and ignite's runs are 50x shorter, so its
groups are per scenario *and* run length (only equal runs compare); the
per-iteration costs of all implementations side by side are printed at the end
(conftest.py) and stored as ``extra_info["ns_per_iteration_min"]``.  Nothing
here asserts anything about speed: timings depend on the machine.
"""

from __future__ import annotations

import pytest

from fastignite._bench import scenarios as sc

# Small, so that the whole file runs in well under two minutes.
N = 20_000
ROUNDS = 5

IMPLEMENTATIONS = sc.implementations()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=[impl.key for impl in IMPLEMENTATIONS])
@pytest.mark.parametrize("scenario", sc.SCENARIOS, ids=[s.key for s in sc.SCENARIOS])
def test_scenario(benchmark, record_per_iteration, scenario: sc.Scenario, impl: sc.Implementation) -> None:
    make_run = impl.prepare(scenario)  # builds the engine: not part of what is timed
    n = sc.iterations(scenario, impl, N)
    benchmark.group = f"{scenario.title} [{n:,} iterations/run]"
    benchmark.extra_info["iterations"] = n
    # pedantic: a fixed number of rounds keeps the file's runtime bounded
    # (automatic calibration would repeat the slow ignite rows for a second
    # each); setup (untimed) prepares each round's run, only run() is timed.
    benchmark.pedantic(
        lambda run: run(), setup=lambda: ((make_run(n),), {}), rounds=ROUNDS, warmup_rounds=1, iterations=1
    )
    if benchmark.stats is not None:  # None under --benchmark-disable
        ns = benchmark.stats.stats.min / n * 1e9
        benchmark.extra_info["ns_per_iteration_min"] = round(ns, 1)
        record_per_iteration(scenario, impl, ns)
