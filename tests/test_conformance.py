"""Conformance: pytorch-ignite 0.5.5's own engine tests, run against fastignite.

The tests are fetched from ignite's sdist at test time and run in a subprocess; see
tests/conformance/fetch_ignite_tests.py and tests/conformance/ignite_alias_plugin.py.
"""

import sys
from pathlib import Path

import pytest
from conftest import BACKENDS

# Every suite runs ignite's tests in a subprocess of this interpreter, which imports ignite.
pytest.importorskip("ignite", reason="needs pytorch-ignite 0.5.5")

# Plain `pytest` does not put the repo root on sys.path (only `python -m pytest` does);
# appended, not prepended, so it never shadows an installed package.
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)


pytestmark = pytest.mark.conformance

# What pytorch-ignite 0.5.5 scores on itself on the reference machine: 312 passed, 4 skipped.
MIN_PASSED = 312


# The whole tests/ignite/engine directory on ignite itself here: 347 passed, 17 skipped
# (test_create_supervised.py and test_deterministic.py included; they need torch).
MIN_PASSED_DROPIN = 347


# ignite 0.5.5's test_deterministic.py and test_create_supervised.py on ignite itself
# here: 20 + 15 passed (2 + 13 skipped: GPU, TPU, apex).
MIN_PASSED_ESSENTIALS = 35


# Each suite is a subprocess that keeps one core busy for one to two minutes.
# tests/conftest.py starts them in the background when collection ends (see
# tests/conformance/background.py) and runs these tests last; run alone (or
# without that), the fixture starts them itself.
MODES = ("dropin", "essentials", "alias")  # longest first
_NEEDS_TORCH = {"essentials", "dropin"}


def suite_keys() -> list:
    """The suites to run, (mode, backend), longest first."""
    import importlib.util

    has_torch = importlib.util.find_spec("torch") is not None
    return [(mode, backend) for mode in MODES if has_torch or mode not in _NEEDS_TORCH for backend in BACKENDS]


@pytest.fixture(scope="module")
def suites():
    from tests.conformance import background

    if not background.started():
        background.start(suite_keys())
    return set(suite_keys())


def _result(suites, mode: str, backend: str) -> dict:
    from tests.conformance import background

    if (mode, backend) not in suites:
        pytest.skip(f"the {mode} suite needs torch")
    return background.result(mode, backend)


def _check(capsys, label: str, backend: str, result: dict, min_passed: int) -> None:
    # Bypass output capture so the CI log always shows the counts, and any failures.
    with capsys.disabled():
        print(f"\n[{label} backend={backend}, ran: {result['ran_backend']}]\n{result['tail']}")
    assert result["summary"] is not None, f"no pytest summary line (crash?):\n{result['tail']}"
    # fastignite silently falls back to pure when the extension is missing; a "compiled"
    # pass that really ran pure would be a false pass. ("ignite": aliasing switched off.)
    if result["ran_backend"] != "ignite":
        assert result["ran_backend"] == backend, f"asked for {backend}, ran {result['ran_backend']}"
    assert result["failed"] == 0, f"{result['failed']} ignite tests failed:\n{result['tail']}"
    assert result["errors"] == 0, f"{result['errors']} ignite tests errored:\n{result['tail']}"
    assert result["passed"] >= min_passed, f"only {result['passed']} passed (< {min_passed}): {result['summary']}"


def test_ignite_engine_suite(backend, suites, capsys):
    _check(capsys, "conformance", backend, _result(suites, "alias", backend), MIN_PASSED)


def test_ignite_engine_suite_with_dropin_installed(backend, suites, capsys):
    """ignite's whole engine test directory, with only Engine and DeterministicEngine
    swapped by fastignite.ignite.install(): ignite's Events, State and filters stay."""
    _check(capsys, "conformance drop-in", backend, _result(suites, "dropin", backend), MIN_PASSED_DROPIN)


def test_ignite_essentials_suites(backend, suites, capsys):
    """ignite's DeterministicEngine and create_supervised tests against fastignite's own names."""
    _check(capsys, "conformance essentials", backend, _result(suites, "essentials", backend), MIN_PASSED_ESSENTIALS)
