"""Sphinx configuration of fastignite's documentation site.

Build it from the repository root (tests/test_docs.py runs both, warnings as errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest

The reference is built from the docstrings of the fastignite that Python imports:
an installed one (``pip install -e .`` makes it this checkout), else this
checkout's ``src/`` (pure twin, unless the extension was built in place).

The site also builds without torch and pytorch-ignite (the tests build it
wherever Sphinx is installed): torch is then a stand-in for autodoc (the
docstrings are fastignite's own), the page of fastignite.ignite, whose classes
derive from ignite's and cannot be imported without it, says it was left out,
and the examples that need either skip themselves.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if importlib.util.find_spec("fastignite") is None:
    sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "src"))

import fastignite  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_IGNITE = HAVE_TORCH and importlib.util.find_spec("ignite") is not None

project = "fastignite"
author = "the fastignite authors"
copyright = "fastignite authors, MIT licence"
release = version = fastignite.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Heading anchors, so that pages can link to a section of another (and of
# ARCHITECTURE.md, which is a page of the site as it is, in place).
myst_heading_anchors = 3

# -- autodoc ----------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True  # defaults as written (``lambda x: x``), not their repr
autodoc_mock_imports = [] if HAVE_TORCH else ["torch"]

# -- doctest ----------------------------------------------------------------------------
# Every example on the pages is a ``testcode``/``doctest`` block that
# ``-b doctest`` runs.  Those that need torch or pytorch-ignite say so with
# ``:skipif: not HAVE_TORCH`` (``HAVE_IGNITE``, ``HAVE_TQDM``) and are skipped
# cleanly where those are not installed.
doctest_global_setup = """
import importlib.util as _util
HAVE_TORCH = _util.find_spec("torch") is not None
HAVE_IGNITE = HAVE_TORCH and _util.find_spec("ignite") is not None
HAVE_TQDM = _util.find_spec("tqdm") is not None
"""
doctest_test_doctest_blocks = "default"

# -- HTML -------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"fastignite {release}"
html_theme_options = {
    "description": "pytorch-ignite's Engine, at the cost of a hand-written loop",
    "fixed_sidebar": True,
    # Room for the speed table's seven columns.
    "page_width": "1300px",
    "sidebar_width": "230px",
    "body_max_width": "none",
}
html_static_path: list[str] = []

# -- without pytorch-ignite ---------------------------------------------------------------
_WITHOUT_IGNITE = """\
``fastignite.ignite``
=====================

.. py:module:: fastignite.ignite

This copy of the documentation was built without pytorch-ignite, which the
drop-in's classes derive from: ``pip install "fastignite[ignite]"`` and build
it again to see this page.
"""


def _leave_out_the_drop_in(app: Any, docname: str, source: list[str]) -> None:
    if docname == "api/ignite" and not HAVE_IGNITE:
        source[0] = _WITHOUT_IGNITE


def setup(app: Any) -> None:
    app.connect("source-read", _leave_out_the_drop_in)
