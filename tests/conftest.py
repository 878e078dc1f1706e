"""Every behaviour test runs on each backend twin: the ``backend`` fixture.

As in multidict's test suite, one fixture, ``twin``, yields each twin module,
and the tests built on it run once per twin.  Every engine made during such a
test, by the test or by library code (create_supervised_trainer, the drop-in),
runs on that twin: the fixture chooses it with ``fastignite._backend.use_twin``,
and an engine keeps the twin it was made with.

The compiled twin is included when it is importable.  With
``FASTIGNITE_REQUIRE_COMPILED=1`` (CI sets it wherever the extension is built:
CPython with a GIL) a missing compiled twin is an error, never a silent
pure-only run.

The suite runs anywhere: tests that need torch, pytorch-ignite, tqdm or
scikit-learn skip without them and say so; tests that rely on CPython's
reference counting or allocator carry ``cpython_only(why)`` and skip on other
interpreters (PyPy).

Hypothesis profiles: ``FASTIGNITE_HYPOTHESIS_PROFILE=light`` (or pytest's
``--hypothesis-profile=light``) runs every property test with at most
``LIGHT_EXAMPLES`` examples, for the quick runs on the extra interpreters in CI.
Tests that set their own ``max_examples`` pass it through ``examples(n)`` to
follow the profile; the default profile changes nothing.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

import fastignite
from fastignite._backend import use_twin

TWIN_MODULES = {"pure": "fastignite._dispatch_py", "compiled": "fastignite._dispatch_c"}

# FASTIGNITE_REQUIRE_COMPILED=1: a compiled module that does not import is an error, not a skip.
REQUIRE_COMPILED = os.environ.get("FASTIGNITE_REQUIRE_COMPILED", "") not in ("", "0")


def _available_backends() -> list[str]:
    names = ["pure"]
    try:
        importlib.import_module(TWIN_MODULES["compiled"])
    except ImportError:
        if REQUIRE_COMPILED:
            raise
    else:
        names.append("compiled")
    return names


BACKENDS = _available_backends()

IS_CPYTHON = platform.python_implementation() == "CPython"


def cpython_only(why: str) -> pytest.MarkDecorator:
    """Skip on interpreters other than CPython: the test relies on ``why``
    (reference counting, the allocator's counters...), which they lack."""
    return pytest.mark.skipif(
        not IS_CPYTHON, reason=f"CPython only: relies on {why} ({platform.python_implementation()} has none)"
    )


# -- hypothesis profiles ------------------------------------------------------------------

HYPOTHESIS_PROFILE_ENV = "FASTIGNITE_HYPOTHESIS_PROFILE"
LIGHT_PROFILE = "light"
LIGHT_EXAMPLES = 20

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the tests that use hypothesis import it themselves (and skip or fail there)
    settings = None
else:
    # Fewer examples, and no deadline or too_slow check: a JIT's warm-up (PyPy) is not slowness.
    settings.register_profile(
        LIGHT_PROFILE, max_examples=LIGHT_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    if os.environ.get(HYPOTHESIS_PROFILE_ENV):
        settings.load_profile(os.environ[HYPOTHESIS_PROFILE_ENV])


def examples(n: int) -> int:
    """``max_examples`` for a test that asks for ``n``: ``n``, or at most the light
    profile's count while that profile is loaded (an explicit ``max_examples``
    would otherwise override the profile)."""
    if settings is not None and settings.default is settings.get_profile(LIGHT_PROFILE):
        return min(n, LIGHT_EXAMPLES)
    return n


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"fastignite backends under test: {', '.join(BACKENDS)} (default at import: {fastignite.BACKEND})"]
    if settings is not None and settings.default is settings.get_profile(LIGHT_PROFILE):
        lines.append(f"hypothesis profile {LIGHT_PROFILE!r}: at most {LIGHT_EXAMPLES} examples per property test")
    return lines


@pytest.fixture(params=BACKENDS)
def twin(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The twin module this test runs on (``fastignite._dispatch_py`` or
    ``fastignite._dispatch_c``); every engine made in the test runs on it."""
    module = importlib.import_module(TWIN_MODULES[request.param])
    with use_twin(module):
        yield module


@pytest.fixture
def backend(twin: ModuleType) -> str:
    """The name of the twin this test runs on ("pure" or "compiled")."""
    return twin.BACKEND


@pytest.fixture
def Engine(twin: ModuleType) -> type:
    """fastignite.Engine, whose engines run on the twin under test."""
    return fastignite.Engine


# -- ignite's conformance suites in the background (tests/conformance/background.py) --


def _is_conformance(item: pytest.Item) -> bool:
    return item.path.name == "test_conformance.py"


# Tests that measure how soon a thread or a signal gets into a running loop
# (a fraction of a second, bounded at 10 s): they run first, before the
# suites load the machine.
_QUIET_FILES = ("test_robustness.py",)


def _order(item: pytest.Item) -> int:
    return 2 if _is_conformance(item) else 0 if item.path.name in _QUIET_FILES else 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Stable: each group keeps its order; the conformance tests come last.
    items.sort(key=_order)


_suite_keys: list = []


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any(_is_conformance(i) for i in session.items):
        return
    module = next(i for i in session.items if _is_conformance(i)).module
    _suite_keys.extend(module.suite_keys())


def pytest_runtest_setup(item: pytest.Item) -> None:
    # The suites start with the first test that is not a quiet one.
    if _suite_keys and _order(item) != 0:
        from tests.conformance import background

        if not background.started():
            background.start(_suite_keys)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if "tests.conformance.background" in sys.modules:
        sys.modules["tests.conformance.background"].cancel()
