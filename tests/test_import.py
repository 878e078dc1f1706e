"""The core imports and runs without its optional dependencies, every module of
the package imports on its own in a fresh interpreter, and the backend is named."""

from __future__ import annotations

import importlib.util
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import BACKENDS

import fastignite
from fastignite import _backend

# The optional dependencies (extras "torch", "ignite", "examples") and numpy.
OPTIONAL_PACKAGES = ("torch", "ignite", "numpy", "tqdm", "sklearn")

# Imports of these top-level packages fail in the child, as if they were not installed.
BLOCK_OPTIONAL = textwrap.dedent(
    """
    import sys

    class NotInstalled:
        blocked = set(OPTIONAL_PACKAGES)

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NotInstalled())
    """
).replace("OPTIONAL_PACKAGES", repr(OPTIONAL_PACKAGES))


def _child(code: str, *args: str, block_optional: bool = True, **env: str) -> subprocess.CompletedProcess:
    """``code`` run by a fresh interpreter (``sys.argv[1:]`` is ``args``), with the
    optional packages blocked unless ``block_optional`` is false."""
    # The child must import this same fastignite (the working tree or the installed one).
    package_root = os.path.dirname(os.path.dirname(fastignite.__file__))
    child_env = {**os.environ, **env, "PYTHONPATH": package_root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-c", (BLOCK_OPTIONAL if block_optional else "") + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=120,
    )


def _run_child(code: str, **env: str) -> str:
    done = _child(code, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_core_imports_and_runs_without_its_optional_dependencies():
    out = _run_child(
        """
        from fastignite import Engine, Events, every_filter
        engine = Engine(lambda e, b: b * 2)
        calls = []
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=2), lambda e: calls.append(e.state.output))
        state = engine.run([1, 2, 3, 4], max_epochs=2)
        assert calls == [4, 8, 4, 8], calls
        assert not {"torch", "ignite", "numpy", "tqdm", "sklearn"} & set(sys.modules)
        print("ok", state.iteration)
        """
    )
    assert out.split() == ["ok", "8"]


def test_fastignite_pure_forces_the_pure_backend():
    out = _run_child("import fastignite; print(fastignite.BACKEND)", FASTIGNITE_PURE="1")
    assert out.strip() == "pure"


def test_backend_is_named():
    assert fastignite.BACKEND in ("pure", "compiled")


# -- every module, alone, in a fresh interpreter -----------------------------------------------
#
# One interpreter per module, importing nothing else first: a circular import
# (A imports B at import time, B imports A and uses a name A defines later) fails
# for the modules it is reached from first, whatever order the package's
# __init__ happens to import them in.  Core modules are imported with every
# optional package blocked, so that a new import-time dependency of one fails
# here too.

# The modules that import an optional package at import time (found by importing
# every module alone with each optional package blocked in turn).  Each is imported
# with nothing blocked, and skips where one of its packages is not installed.
NEEDS_OPTIONAL = {
    "fastignite.ignite": ("torch", "ignite"),
    "fastignite.supervised": ("torch",),
}

WALK_ERRORS: list[str] = []
# walk_packages imports each subpackage to list its modules; the compiled
# modules are listed by their extension suffix (where they are built).
ALL_MODULES = ["fastignite"] + [
    info.name for info in pkgutil.walk_packages(fastignite.__path__, "fastignite.", onerror=WALK_ERRORS.append)
]

IMPORT_ALONE = "import importlib, sys; importlib.import_module(sys.argv[1])"


def _not_installed(module: str) -> list[str]:
    return [name for name in NEEDS_OPTIONAL.get(module, ()) if importlib.util.find_spec(name) is None]


@pytest.mark.parametrize("module", ALL_MODULES)
def test_every_module_imports_alone_in_a_fresh_interpreter(module):
    missing = _not_installed(module)
    if missing:
        pytest.skip(f"{module} needs {' and '.join(missing)}, not installed")
    done = _child(IMPORT_ALONE, module, block_optional=module not in NEEDS_OPTIONAL)
    blocked = "" if module in NEEDS_OPTIONAL else f" (with {', '.join(OPTIONAL_PACKAGES)} blocked)"
    assert done.returncode == 0, f"`import {module}` alone in a fresh interpreter{blocked} failed:\n{done.stderr}"


def test_the_module_walk_is_complete():
    """Every subpackage could be walked, the compiled modules are in the list where
    they are built, and NEEDS_OPTIONAL names modules that exist."""
    assert WALK_ERRORS == []
    assert "fastignite.handlers.checkpoint" in ALL_MODULES
    assert set(NEEDS_OPTIONAL) <= set(ALL_MODULES)
    if "compiled" in BACKENDS:
        package_dir = Path(fastignite.__file__).parent
        compiled = {_backend._COMPILED} | {
            "fastignite." + ".".join(pyx.relative_to(package_dir).with_suffix("").parts)
            for pyx in package_dir.rglob("*.pyx")  # shipped with the extensions
        }
        assert compiled <= set(ALL_MODULES)


@pytest.mark.parametrize("module", sorted(NEEDS_OPTIONAL))
def test_optional_modules_do_need_their_packages(module):
    """NEEDS_OPTIONAL is not stale: without the optional packages, these modules
    fail to import, naming one of them (else they belong with the core modules)."""
    done = _child(IMPORT_ALONE, module)
    error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    assert done.returncode != 0, f"{module} imports without {', '.join(NEEDS_OPTIONAL[module])}"
    assert error.startswith(("ImportError", "ModuleNotFoundError")), done.stderr
    assert any(package in error for package in NEEDS_OPTIONAL[module]), done.stderr


# -- the seam between the twins ----------------------------------------------------------------


def test_both_twins_export_the_same_names():
    from conftest import BACKENDS, TWIN_MODULES

    twins = [importlib.import_module(TWIN_MODULES[name]) for name in BACKENDS]
    for twin in twins:
        assert twin.__all__ == ["BACKEND", "Loop", "Tables", "fire_event"], twin
        assert all(hasattr(twin, name) for name in twin.__all__), twin


def test_the_compiled_twin_never_imports_the_pure_one():
    from conftest import BACKENDS

    if "compiled" not in BACKENDS:
        pytest.skip("the compiled twin is not built here")
    # With the pure twin's import made to fail, the compiled one imports and runs.
    out = _run_child(
        """
        class NoPureTwin:
            def find_spec(self, name, path=None, target=None):
                if name == "fastignite._dispatch_py":
                    raise ModuleNotFoundError("the pure twin is blocked by the test")
                return None

        sys.meta_path.insert(0, NoPureTwin())
        import fastignite
        from fastignite import Engine
        assert fastignite.BACKEND == "compiled"
        print(Engine(lambda e, b: b).run(range(3), max_epochs=2).iteration)
        assert "fastignite._dispatch_py" not in sys.modules
        """
    )
    assert out.split() == ["6"]
