"""The documentation site (docs/) builds without a warning, and its examples run.

One child process runs Sphinx twice, as a user would with
``python -m sphinx -W --keep-going -b doctest|html docs OUT``: first the
doctest builder, which runs every ``testcode``/``doctest`` block of the pages
and compares what it prints with the ``testoutput`` below it, then the HTML
builder, which reuses the parsed pages (one reading, one torch import).
Warnings are errors in both, so a docstring that Sphinx cannot parse, a
broken cross-reference or include, or an example that prints something else
fails here.

The reference is built from the fastignite this test imports (the child gets
its directory first on PYTHONPATH), so it documents the code under test.

Without Sphinx or MyST (the ``test`` extra installs both) the build is
skipped, except when ``FASTIGNITE_REQUIRE_DOCS=1`` (the main CI run sets it),
where a missing tool fails the test, as does a missing torch, pytorch-ignite or
tqdm.  Without those three the site still builds (docs/conf.py) and the
examples that need them skip themselves; where all are installed, none may be
skipped.  The check that every Python example is one the doctest builder runs
needs no tool and runs everywhere.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastignite

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REQUIRE_DOCS = os.environ.get("FASTIGNITE_REQUIRE_DOCS", "") not in ("", "0")

# The child: both builds in one process, their exit codes as JSON on stdout.
BUILD = r"""
import json, sys
from sphinx.cmd.build import build_main

docs, out = sys.argv[1:3]
common = ["-W", "--keep-going", "-q", "-d", out + "/doctrees", docs]
codes = {}
for builder in ("doctest", "html"):
    codes[builder] = build_main(["-b", builder, *common, out + "/" + builder])
print(json.dumps(codes))
"""

# Fenced blocks a page may hold: the doctest builder's own directives, and
# blocks that are not Python (shell commands, program output, a diff).
RUN_BY_DOCTEST = {"{testcode}", "{doctest}"}
ALLOWED_FENCES = RUN_BY_DOCTEST | {
    "{testoutput}", "{testsetup}", "{testcleanup}", "{toctree}", "{include}", "bash", "text",
}  # fmt: skip
ALLOWED_CODE_BLOCKS = {"text", "diff", "bash"}
FENCE = re.compile(r"^(`{3,})(.*)$")
# The docs tools, and what the examples need to run without a skip.
EVERYTHING = ("sphinx", "myst_parser", "torch", "ignite", "tqdm")


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if REQUIRE_DOCS and _missing(*EVERYTHING):
        pytest.fail(
            f"FASTIGNITE_REQUIRE_DOCS=1 and {', '.join(_missing(*EVERYTHING))} missing (pip install -e '.[test]')"
        )
    missing = _missing("sphinx", "myst_parser")
    if missing:
        pytest.skip(f"the docs build needs {', '.join(missing)} (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("docs")
    env = dict(os.environ)
    package_dir = str(Path(fastignite.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_dir, env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"  # the examples' torch numbers, whatever the thread count
    proc = subprocess.run(
        [sys.executable, "-c", BUILD, str(DOCS), str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        codes = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        pytest.fail(
            f"the docs build did not finish (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    out_log = (out / "doctest" / "output.txt").read_text() if (out / "doctest" / "output.txt").exists() else ""
    (out / "build.json").write_text(json.dumps({"codes": codes, "stderr": proc.stderr, "doctest": out_log}))
    return out


def _build(site: Path) -> dict:
    return json.loads((site / "build.json").read_text())


# Sphinx's "path:line: WARNING: ..." (or "WARNING: ..."), not the log lines the
# examples' handlers write to stderr ("... TerminateOnNan WARNING: ...").
SPHINX_WARNING = re.compile(r"(^|: )(WARNING|ERROR|SEVERE|CRITICAL):")


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if SPHINX_WARNING.search(line)]


def test_the_site_builds_without_a_warning(site: Path) -> None:
    build = _build(site)
    assert build["codes"]["html"] == 0, "\n".join(_warnings(build["stderr"])) or build["stderr"][-5000:]
    assert (site / "html" / "index.html").exists()
    assert (site / "html" / "ARCHITECTURE.html").exists()  # docs/ARCHITECTURE.md, a page as it is
    assert not _warnings(build["stderr"]), _warnings(build["stderr"])


def test_every_example_on_the_pages_runs_and_prints_what_the_page_shows(site: Path) -> None:
    build = _build(site)
    assert build["codes"]["doctest"] == 0, build["doctest"][-5000:] + build["stderr"][-5000:]
    summary = re.search(r"Doctest summary\n=+\n\s*(\d+) tests?\n\s*(\d+) failures? in tests", build["doctest"])
    assert summary, build["doctest"][-3000:]
    ran, failed = int(summary[1]), int(summary[2])
    assert failed == 0
    blocks = sum(len(_fences(page, RUN_BY_DOCTEST)) for page in _pages())
    if not _missing("torch", "ignite", "tqdm"):
        # Nothing skipped where everything the examples use is installed.
        assert ran == blocks, f"{ran} examples ran, the pages have {blocks}"
    else:
        assert 0 < ran <= blocks


def _pages() -> list[Path]:
    """The guides: every MyST page but ARCHITECTURE.md, the design notes, whose
    one block is a diagram."""
    return sorted(p for p in DOCS.rglob("*.md") if p.name != "ARCHITECTURE.md" and "_build" not in p.parts)


def _fences(page: Path, kinds: set[str] | None = None) -> list[tuple[int, str]]:
    """(line, kind) of each fenced block of a MyST page: the fence's info
    string ("{testcode}", "bash"), or ``{code-block} <language>``."""
    found = []
    lines = page.read_text().splitlines()
    closing = None
    for number, line in enumerate(lines, 1):
        if closing is not None:
            if line.strip() == closing:
                closing = None
            continue
        match = FENCE.match(line.strip())
        if match:
            closing, kind = match[1], match[2].strip()
            if kind in kinds if kinds is not None else True:
                found.append((number, kind))
    return found


def test_every_python_example_on_the_pages_is_one_the_doctest_builder_runs() -> None:
    # A ```python block would be shown and never run; every Python example is
    # a testcode (or doctest) block instead.  Shell commands, program output
    # and diffs are the only other blocks.
    unrun = []
    for page in _pages():
        for number, kind in _fences(page):
            directive, _, language = kind.partition(" ")
            if directive == "{code-block}":
                ok = language.strip() in ALLOWED_CODE_BLOCKS
            else:
                ok = (directive if directive in ("{include}", "{toctree}") else kind) in ALLOWED_FENCES
            if not ok:
                unrun.append(f"{page.relative_to(ROOT)}:{number}: {kind or '(no language)'}")
    assert not unrun, "blocks the doctest builder does not run:\n" + "\n".join(unrun)
    assert sum(len(_fences(page, RUN_BY_DOCTEST)) for page in _pages()) >= 20


# -- the reference covers every public name ----------------------------------------------


def _public_modules() -> list[str]:
    """fastignite and each of its modules and subpackages whose dotted name has
    no part starting with an underscore."""
    names = ["fastignite"]
    for info in pkgutil.walk_packages(fastignite.__path__, "fastignite."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _inventory(site: Path) -> dict[str, str]:
    """Python object name -> role, from the built site's objects.inv."""
    from sphinx.util.inventory import InventoryFile

    with open(site / "html" / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    items = inventory.data if hasattr(inventory, "data") else inventory
    return {name: role for role, entries in items.items() if role.startswith("py:") for name in entries}


def _resolve(name: str) -> object:
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def test_every_name_in_every_public_all_is_in_the_reference(site: Path) -> None:
    # Documented under its own name (fastignite.filters.EventFilter), under its
    # defining module's name (a class's canonical name), or, for a name a module
    # re-exports, where the exporting module is documented: the same object.
    documented = _inventory(site)
    objects = {}  # id -> the object, kept alive so that no id is reused
    for name in documented:
        try:
            value = _resolve(name)
        except (ImportError, AttributeError):
            continue
        objects[id(value)] = value
    modules = _public_modules()
    assert {"fastignite", "fastignite.events", "fastignite.filters", "fastignite.handlers",
            "fastignite.distributed", "fastignite.ignite"} <= set(modules)  # fmt: skip
    missing = []
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            # fastignite.supervised needs torch, fastignite.ignite pytorch-ignite.
            assert _missing("torch", "ignite"), f"{module_name} does not import"
            continue
        # A page for the package and each of its modules; the handlers'
        # submodules are documented through fastignite.handlers, which exports
        # all their names.
        if module_name.count(".") <= 1:
            assert module_name in documented, f"{module_name} has no page in the reference"
        for name in getattr(module, "__all__", ()):
            full = f"{module_name}.{name}"
            if full in documented:
                continue
            value = getattr(module, name)
            if isinstance(value, (str, int, float, bool)) or id(value) not in objects:
                missing.append(full)
    assert not missing, f"public names with no entry in the reference: {missing}"
