"""Every behaviour test runs on each backend twin: the ``backend`` fixture.

As in multidict's test suite, one fixture decides the implementation and the
tests built on it run once per twin.  The engine reaches its backend through
the module attribute ``fastignite.engine._backend``, so pointing that at a twin
for the duration of a test runs that test on it.

The compiled twin is included when it is importable.  With
``FASTIGNITE_REQUIRE_COMPILED=1`` (CI sets it once a .pyx exists) a missing
compiled twin is an error, never a silent pure-only run.
"""

from __future__ import annotations

import importlib
import os

import pytest

import fastignite.engine

TWIN_MODULES = {"pure": "fastignite._dispatch_py", "compiled": "fastignite._dispatch_c"}


def _available_backends() -> list[str]:
    names = ["pure"]
    try:
        importlib.import_module(TWIN_MODULES["compiled"])
    except ImportError:
        if os.environ.get("FASTIGNITE_REQUIRE_COMPILED", "") not in ("", "0"):
            raise
    else:
        names.append("compiled")
    return names


BACKENDS = _available_backends()


def pytest_report_header(config: pytest.Config) -> str:
    return f"fastignite backends under test: {', '.join(BACKENDS)} (default at import: {fastignite.BACKEND})"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of the twin this test runs on ("pure" or "compiled")."""
    monkeypatch.setattr(fastignite.engine, "_backend", importlib.import_module(TWIN_MODULES[request.param]))
    return request.param


@pytest.fixture
def Engine(backend: str) -> type:
    """fastignite.Engine, running on the twin under test."""
    return fastignite.Engine
