"""Typing and lint: mypy and ruff pass, and the wheel ships ``py.typed``.

* mypy checks ``src/`` with the configuration in pyproject.toml (strict), with
  ``--no-site-packages``: the optional dependencies are never read (see
  ``[tool.mypy]``), so the verdict is the same with or without them installed,
  and an import of any other third-party package shows up here rather than on
  a machine without it.
* ruff checks, and ``ruff format --check`` checks, ``src/``, ``tests/``,
  ``benchmarks/`` and ``examples/`` with ``[tool.ruff]``.
* A pure wheel (no extension: nothing to compile) built from a copy of the
  sources carries ``fastignite/py.typed``; the compiled wheels take package
  data by the same rule.

The tools come with the ``test`` extra.  Where they are not installed (the
torch-free runs on the other interpreters) these tests skip, unless
``FASTIGNITE_REQUIRE_LINT=1`` (set by .ci/run for the main interpreter): then a
missing tool fails.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIRE = os.environ.get("FASTIGNITE_REQUIRE_LINT", "") not in ("", "0")

pytestmark = pytest.mark.skipif(
    not (ROOT / "src" / "fastignite").is_dir(), reason="needs the source tree (src/fastignite)"
)


def _module_or_skip(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed (it comes with the `test` extra)"
        if REQUIRE:
            pytest.fail(message + " and FASTIGNITE_REQUIRE_LINT is set")
        pytest.skip(message)


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_mypy_passes_on_src(tmp_path: Path) -> None:
    _module_or_skip("mypy")
    # A cache of its own: a cold run, as on a fresh clone, and nothing written to the tree.
    result = _run(
        "-m", "mypy", "--config-file", "pyproject.toml", "--cache-dir", str(tmp_path / "mypy"),
        "--no-site-packages", "src",
    )  # fmt: skip
    _assert_ok(result)


@pytest.mark.parametrize("directory", ["src", "tests", "benchmarks", "examples"])
def test_ruff_check(directory: str) -> None:
    _module_or_skip("ruff")
    _assert_ok(_run("-m", "ruff", "check", "--no-cache", directory))


@pytest.mark.parametrize("directory", ["src", "tests", "benchmarks", "examples"])
def test_ruff_format_check(directory: str) -> None:
    _module_or_skip("ruff")
    _assert_ok(_run("-m", "ruff", "format", "--check", "--no-cache", directory))


def _setuptools_builds_this_project() -> bool:
    # pyproject.toml's build-system: setuptools>=77 (the SPDX license string).
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 77


def test_the_wheel_ships_py_typed(tmp_path: Path) -> None:
    """PEP 561: a type checker reads fastignite's annotations only if the
    installed package holds ``py.typed``."""
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed")
    isolation: list[str] = ["--no-build-isolation"]
    if not _setuptools_builds_this_project():
        if not REQUIRE:
            pytest.skip("this interpreter's setuptools is older than pyproject.toml's build-system asks")
        isolation = []  # pip installs the build requirements (slower)
    # A copy of what a build reads, so that the build leaves nothing in the tree.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.c", "*.html")
    )
    env = {**os.environ, "FASTIGNITE_NO_EXTENSIONS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    out = tmp_path / "wheel"
    _assert_ok(_run("-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(out), str(source), env=env))
    (wheel,) = out.glob("fastignite-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "fastignite/py.typed" in names
    assert "fastignite/__init__.py" in names
    assert "Classifier: Typing :: Typed" in metadata
