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


@pytest.mark.skipif(not PYPROJECT.exists(), reason="no pyproject.toml (not a checkout)")
def test_pyproject_reads_the_version_from_the_package():
    # setuptools>=77 is the build requirement; older ones may not read this pyproject.toml.
    pytest.importorskip("setuptools", minversion="77")
    from setuptools.config.pyprojecttoml import read_configuration

    written = read_configuration(PYPROJECT, expand=False)
    assert "version" not in written["project"], "pyproject.toml writes the version itself"
    assert "version" in written["project"]["dynamic"]
    assert written["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "fastignite.__version__"}
    # What a build of this checkout puts in its metadata (read from src/, not imported).
    assert read_configuration(PYPROJECT, expand=True)["project"]["version"] == fastignite.__version__


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
