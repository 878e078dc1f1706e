"""examples/ignite_digits.py gives the same numbers on fastignite.

The script is written against pytorch-ignite alone.  It runs once as it is,
then twice on fastignite: unchanged, with ``fastignite.ignite.install()`` done
by a small runner before the script starts (on the pure twin), and as a user
following docs/migrating.md makes it (on the default twin): a copy with the
edit that page shows, applied from the page itself.  Every reproducible number
it reports (metrics, running averages, learning rates, checkpoint names,
early-stopping state, digests of the final weights and optimizer state) must
be equal with ==, and the guided run must print the lines the page shows.

The runner also proves the install took: it wraps ignite's
``create_supervised_trainer`` / ``create_supervised_evaluator`` to record the
class of every engine they build, and counts calls to ignite's own epoch loop,
which a fast engine never enters.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs torch")
pytest.importorskip("ignite", reason="needs pytorch-ignite 0.5.5")
pytest.importorskip("sklearn", reason="needs scikit-learn (its digits data set)")
pytest.importorskip("tqdm", reason="needs tqdm")

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "ignite_digits.py"

# Ten epochs with patience 2: early stopping ends the run before max_epochs on
# this seed, so the terminate path is part of what gets compared.
ARGS = ["--epochs", "10", "--patience", "2"]

# Runs the script, under fastignite's drop-in when told to install it (a script
# edited as docs/migrating.md says installs it itself).  argv: "install" or
# "as-is", report path, script, args.
RUNNER = r"""
import json, runpy, sys

import fastignite
import fastignite.ignite
if sys.argv[1] == "install":
    fastignite.ignite.install()

import ignite.engine
import ignite.engine.engine

made = []

def recording(factory):
    # The script imports the factories by name when runpy executes it, i.e.
    # after this wrapper replaced them in ignite.engine.
    def wrapper(*args, **kwargs):
        engine = factory(*args, **kwargs)
        made.append({
            "class": type(engine).__module__ + "." + type(engine).__qualname__,
            "fast": isinstance(engine, fastignite.ignite.Engine),
        })
        return engine
    return wrapper

for name in ("create_supervised_trainer", "create_supervised_evaluator"):
    setattr(ignite.engine, name, recording(getattr(ignite.engine, name)))

# ignite's own per-epoch loops: a fast engine runs fastignite's loop instead,
# so these must never be entered.
ignite_loops = {}
for name in ("_run_once_on_dataset_as_gen", "_run_once_on_dataset_legacy"):
    original = getattr(ignite.engine.engine.Engine, name)
    def counted(*args, _original=original, _name=name, **kwargs):
        ignite_loops[_name] = ignite_loops.get(_name, 0) + 1
        return _original(*args, **kwargs)
    setattr(ignite.engine.engine.Engine, name, counted)
    ignite_loops[name] = 0

report_path, script, *script_args = sys.argv[2:]
sys.argv = [script, *script_args]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exc:
    if exc.code not in (None, 0):
        raise
with open(report_path, "w") as f:
    json.dump({
        "installed": fastignite.ignite.installed(),
        "backend": fastignite.BACKEND,
        "engine_class": ignite.engine.Engine.__module__ + "." + ignite.engine.Engine.__qualname__,
        "made": made,
        "ignite_loops": ignite_loops,
    }, f)
"""


def _compiled_available() -> bool:
    return importlib.util.find_spec("fastignite._dispatch_c") is not None


# (backend, how the script is made to run on fastignite): the user's way on the
# default twin, the unchanged script on the other.
RUNS = [("compiled" if _compiled_available() else "pure", "guide"), ("pure", "install")]

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "migrating.md"


def _env(backend: str | None) -> dict[str, str]:
    env = dict(os.environ)
    # Same thread count and no stray backend choice in every run.
    env.pop("FASTIGNITE_PURE", None)
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    if backend == "pure":
        env["FASTIGNITE_PURE"] = "1"
    return env


def _run(cmd: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{cmd[:3]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


def _guide_block(name: str) -> list[str]:
    """The lines of the ``{code-block}`` named ``name`` in docs/migrating.md."""
    lines = GUIDE.read_text().splitlines()
    start = lines.index(f":name: {name}")
    block = lines[start + 1 : lines.index("```", start)]
    return block[1:] if block and not block[0].strip() else block  # the blank line after the options


def apply_guide_edit(source: str) -> str:
    """The script as docs/migrating.md's diff makes it: each hunk's context and
    removed lines found in order, replaced by its context and added lines."""
    diff = _guide_block("ignite-digits-edit")
    hunks: list[list[str]] = []
    for line in diff:
        if line.startswith("@@"):
            hunks.append([])
        elif hunks and not line.startswith(("---", "+++")):
            hunks[-1].append(line or " ")  # an empty line is an empty context line
    assert hunks, "docs/migrating.md shows no hunk"
    lines = source.splitlines()
    at = 0
    for hunk in hunks:
        old = [h[1:] for h in hunk if h[0] in " -"]
        new = [h[1:] for h in hunk if h[0] in " +"]
        for i in range(at, len(lines) - len(old) + 1):
            if lines[i : i + len(old)] == old:
                lines[i : i + len(old)] = new
                at = i + len(new)
                break
        else:
            raise AssertionError(f"docs/migrating.md's edit does not apply to {SCRIPT.name}: {old}")
    return "\n".join(lines) + "\n"


def _script_args(out: Path) -> list[str]:
    return [*ARGS, "--out", str(out / "out"), "--json", str(out / "result.json")]


@pytest.fixture(scope="module")
def plain_result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The script run by itself, exactly as a user would: pytorch-ignite only."""
    out = tmp_path_factory.mktemp("plain")
    _run([sys.executable, str(SCRIPT), *_script_args(out)], _env(None))
    return json.loads((out / "result.json").read_text())


def test_script_does_not_import_fastignite() -> None:
    # The comparison means something only if the script is pure ignite code.
    tree = ast.parse(SCRIPT.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not any(name.split(".")[0] == "fastignite" for name in imported), imported
    assert "fastignite" not in SCRIPT.read_text()


def test_plain_run_is_sane(plain_result: dict) -> None:
    # Guards against comparing two equally broken runs.
    assert plain_result["val_accuracy"] and max(plain_result["val_accuracy"]) > 0.9
    state = plain_result["trainer_state"]
    assert state["iteration"] == state["epoch"] * state["epoch_length"]
    assert plain_result["running_loss"] and plain_result["lr_per_epoch"]
    assert plain_result["checkpoint_files"] and plain_result["model_files"]
    assert plain_result["reloaded"]["val_accuracy"] == max(plain_result["val_accuracy"])


@pytest.fixture(scope="module", params=RUNS, ids=[f"{b}-{how}" for b, how in RUNS])
def fast_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The script on fastignite, on one backend: unchanged under a runner that
    calls fastignite.ignite.install() ("install"), or edited as the migration
    guide says ("guide")."""
    backend, how = request.param
    out = tmp_path_factory.mktemp(f"fast_{backend}_{how}")
    report = out / "report.json"
    script = SCRIPT
    if how == "guide":
        script = out / "fast_digits.py"
        script.write_text(apply_guide_edit(SCRIPT.read_text()))
        assert "fastignite.ignite.install()" in script.read_text()
    stdout = _run(
        [sys.executable, "-c", RUNNER, "as-is" if how == "guide" else "install", str(report), str(script),
         *_script_args(out)],
        _env(backend),
    )  # fmt: skip
    return {
        "backend": backend,
        "how": how,
        "stdout": stdout,
        "info": json.loads(report.read_text()),
        "result": json.loads((out / "result.json").read_text()),
    }


def test_dropin_engines_are_fast(fast_run: dict) -> None:
    info = fast_run["info"]
    assert info["installed"] is True
    assert info["backend"] == fast_run["backend"]
    assert info["engine_class"] == "fastignite.ignite.Engine"
    # trainer, validation and training evaluators, the trainer rebuilt for
    # reloading, the evaluator of the reloaded model.
    assert len(info["made"]) >= 2, info["made"]
    assert all(m["fast"] and m["class"] == "fastignite.ignite.Engine" for m in info["made"]), info["made"]
    assert info["ignite_loops"] == {"_run_once_on_dataset_as_gen": 0, "_run_once_on_dataset_legacy": 0}


def test_dropin_numbers_match_plain_ignite(fast_run: dict, plain_result: dict) -> None:
    # Everything the script reports, the profilers' handler labels included.
    result = fast_run["result"]
    differing = sorted(k for k in plain_result.keys() | result.keys() if plain_result.get(k) != result.get(k))
    assert not differing, {k: (plain_result.get(k), result.get(k)) for k in differing}
    assert result == plain_result


@pytest.mark.parametrize("fast_run", RUNS[:1], ids=[f"{b}-{how}" for b, how in RUNS[:1]], indirect=True)
def test_the_guided_run_prints_what_the_guide_shows(fast_run: dict) -> None:
    assert fast_run["how"] == "guide"
    if not (sys.platform == "linux" and platform.machine() == "x86_64"):
        pytest.skip("docs/migrating.md shows the numbers of Linux x86-64; floats may differ elsewhere")
    printed = fast_run["stdout"].splitlines()
    shown = _guide_block("ignite-digits-output")
    assert len(shown) >= 10
    # The digests of the weights are bitwise: torch's CPU kernels round
    # differently on different instruction sets, so they are compared in form
    # only (the plain-ignite comparison above checks them exactly).
    digests = re.compile(r"[0-9a-f]{16}\.\.\.")
    printed = [digests.sub("<sha256>...", line) for line in printed]
    missing = [line for line in (digests.sub("<sha256>...", s) for s in shown) if line not in printed]
    assert not missing, f"lines docs/migrating.md shows that the run did not print: {missing}\n{fast_run['stdout']}"
