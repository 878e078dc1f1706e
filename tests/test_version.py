"""The version is written once, as ``fastignite.__version__``; pyproject.toml reads it.

Building a wheel to read its metadata would compile the extension (a minute):
instead, setuptools' own reading of pyproject.toml is checked (what every build
and install uses), and the metadata of the installed distribution when it is the
fastignite under test (an editable install of this checkout, as the README's
test command makes, or a wheel).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

import fastignite

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
# PEP 440's public versions, as releases spell them (1.2.3, 1.2.3rc1, 1.2.3.dev4, 1.2.3.post1).
PUBLIC_VERSION = re.compile(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?")


def test_the_version_is_a_release_version():
    assert PUBLIC_VERSION.fullmatch(fastignite.__version__), fastignite.__version__


# Run in a child: importing setuptools in the test process asserts that the
# standard library's distutils was not imported before (setuptools' distutils
# hack), and in a whole test run some other library may have imported it.
_READ_PYPROJECT = """
import json, sys
try:
    import setuptools
    from setuptools.config.pyprojecttoml import read_configuration
except ImportError:
    sys.exit(3)
major = int(setuptools.__version__.split(".")[0])
if major < 77:  # the build requirement; older ones may not read this pyproject.toml
    sys.exit(3)
path = sys.argv[1]
written = read_configuration(path, expand=False)
expanded = read_configuration(path, expand=True)
print(json.dumps({
    "project": written["project"],
    "dynamic_version": written["tool"]["setuptools"]["dynamic"].get("version"),
    "expanded_version": expanded["project"]["version"],
}))
"""


@pytest.mark.skipif(not PYPROJECT.exists(), reason="no pyproject.toml (not a checkout)")
def test_pyproject_reads_the_version_from_the_package():
    proc = subprocess.run(
        [sys.executable, "-c", _READ_PYPROJECT, str(PYPROJECT)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    if proc.returncode == 3:
        pytest.skip("needs setuptools>=77 (the build requirement) to read pyproject.toml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    read = json.loads(proc.stdout)
    assert "version" not in read["project"], "pyproject.toml writes the version itself"
    assert "version" in read["project"]["dynamic"]
    assert read["dynamic_version"] == {"attr": "fastignite.__version__"}
    # What a build of this checkout puts in its metadata (read from src/, not imported).
    assert read["expanded_version"] == fastignite.__version__


def _installed_here(dist: importlib.metadata.Distribution) -> bool:
    """Whether ``dist`` is the fastignite imported here: a wheel's files, or an
    editable install of the checkout that holds it."""
    package = Path(fastignite.__file__).resolve()
    direct_url = dist.read_text("direct_url.json")
    if direct_url:
        info = json.loads(direct_url)
        if info.get("dir_info", {}).get("editable"):
            source = Path(unquote(urlparse(info["url"]).path)).resolve()
            return source in package.parents
    return any(Path(str(dist.locate_file(f))).resolve() == package for f in dist.files or ())


def test_the_installed_metadata_has_the_same_version():
    try:
        dist = importlib.metadata.distribution("fastignite")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastignite is not installed (imported from a path)")
    if not _installed_here(dist):
        pytest.skip(f"the installed fastignite is not the one imported here ({fastignite.__file__})")
    assert dist.version == fastignite.__version__
    assert importlib.metadata.version("fastignite") == fastignite.__version__
