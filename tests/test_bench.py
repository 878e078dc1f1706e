"""``python -m fastignite bench``: the README's speed table measured by an installed fastignite.

One test runs the real ``--quick`` (what a user types; about 15 s, so not in
the light runs on CI's other interpreters); the others run the same code on a
few scenarios and very short runs (the hidden ``--n``,
``--repeats`` and ``--only``), in a child interpreter where a missing package
(ignite and torch, the compiled twin, matplotlib) is simulated by making its
import fail.  Argument errors are checked in this process: argparse stops
before anything is measured.  Nothing here judges speed; only that the table,
the notes and the plot are there.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import BACKENDS, HYPOTHESIS_PROFILE_ENV, LIGHT_PROFILE

import fastignite
from fastignite.__main__ import main
from fastignite._bench import cli
from fastignite._bench import report as rp
from fastignite._bench import scenarios as sc

ROOT = Path(__file__).resolve().parent.parent
# A few scenarios of each shape, runs of 2,000 iterations: about a second.
TINY = ["--n", "2000", "--repeats", "1", "--only", "0h", "10h-every10", "six-0h", "six-16h"]
TINY_TITLES = [s.title for s in sc.SCENARIOS if s.key in TINY]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The child makes these imports fail, as if the modules were not there (a
# module of the package "not built" fails the way a missing file does).
BLOCKER = textwrap.dedent(
    """
    import runpy, sys

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name in BLOCKED or name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    BLOCKED = set(sys.argv[1].split(",")) - {""}
    sys.meta_path.insert(0, NotInstalled())
    sys.argv = ["fastignite", *sys.argv[2:]]
    runpy.run_module("fastignite", run_name="__main__", alter_sys=True)
    """
)


def bench(*args: str, blocked: tuple[str, ...] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m fastignite bench ARGS`` in a child, with ``blocked`` modules missing."""
    package_root = os.path.dirname(os.path.dirname(fastignite.__file__))
    env = {**os.environ, "PYTHONPATH": package_root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # The child may run the pure twin alone (a pure-only install): not an error there.
    env.pop("FASTIGNITE_REQUIRE_COMPILED", None)
    env.pop("FASTIGNITE_PURE", None)
    command = [sys.executable, "-c", BLOCKER, ",".join(blocked), "bench", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def table_lines(stdout: str) -> tuple[list[str], dict[str, list[str]]]:
    """The text table's header cells and its rows' cells by scenario title."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("scenario "))
    header = [cell.strip() for cell in lines[start].split(" | ")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = [cell.strip() for cell in line.split(" | ")]
        rows[cells[0]] = cells
    return header, rows


def ignite_importable() -> bool:
    try:
        import ignite.engine  # noqa: F401
    except ImportError:
        return False
    return True


def assert_measured(cell: str) -> None:
    # "123 (1.2x)" or "1,234 (12x, ...)": a number and its ratio to the hand loop.
    number, _, ratio = cell.partition(" (")
    assert float(number.rstrip("\u2020").replace(",", "")) > 0, cell
    assert ratio[0].isdigit() and "x" in ratio, cell


# -- the real --quick ---------------------------------------------------------------------------


@pytest.mark.skipif(
    os.environ.get(HYPOTHESIS_PROFILE_ENV) == LIGHT_PROFILE,
    reason="the light runs (CI's other interpreters) run the short tests of the same code; the main run runs --quick",
)
def test_quick_prints_the_table_of_every_implementation_here(tmp_path):
    """What the README tells users to run: every --quick row, with the compiled and pure
    columns measured (compiled "not built" where it is not), ignite's where it imports;
    and the plot, in the same run (each run costs seconds)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        plot = []
    else:
        plot = ["--plot", str(tmp_path / "bench.png")]
    done = bench("--quick", *plot, timeout=300)
    assert done.returncode == 0, done.stderr
    header, rows = table_lines(done.stdout)
    assert header[:3] == ["scenario", "hand loop ns", "compiled ns (x loop)"]
    pure = header.index("pure ns (x loop, x cheaper than ignite)" if ignite_importable() else "pure ns (x loop)")
    expected = [s.title for s in sc.SCENARIOS if s.key not in cli.QUICK_LEAVES_OUT]
    assert list(rows) == expected
    for cells in rows.values():
        assert_measured(cells[pure])
        if "compiled" in BACKENDS:
            assert_measured(cells[2])
        else:
            assert cells[2] == "not built"
    assert ("ignite ns (x loop)" in header) == ignite_importable()
    assert f"--quick: runs of {cli.QUICK_N:,} iterations" in done.stdout
    # The progress display: a log (not a terminal) gets one line per scenario.
    assert f"measuring {len(expected)}/{len(expected)} {expected[-1]}" in done.stderr
    if plot:
        assert Path(plot[1]).read_bytes()[:8] == PNG_SIGNATURE
        assert f"plot written to {plot[1]}" in done.stdout


# -- what the user has installed -----------------------------------------------------------------


def test_without_ignite_and_torch_their_columns_are_left_out_and_said_so():
    done = bench(*TINY, blocked=("ignite", "torch"))
    assert done.returncode == 0, done.stderr
    header, rows = table_lines(done.stdout)
    assert header == ["scenario", "hand loop ns", "compiled ns (x loop)", "pure ns (x loop)", "iterations/run"]
    assert list(rows) == TINY_TITLES
    assert "compared with: no ignite, which does not import (No module named 'ignite'" in done.stdout
    assert "the ignite and drop-in columns are left out" in done.stdout
    assert 'pip install "fastignite[ignite]"' in done.stdout


def test_a_pure_only_install_says_compiled_is_not_built():
    """As on PyPy, or a build with FASTIGNITE_NO_EXTENSIONS=1: the compiled twin's module is absent."""
    done = bench(*TINY, blocked=("fastignite._dispatch_c", "ignite", "torch"))
    assert done.returncode == 0, done.stderr
    header, rows = table_lines(done.stdout)
    assert header[2] == "compiled ns (x loop)"
    for cells in rows.values():
        assert cells[2] == "not built"
        assert_measured(cells[3])
    assert "compiled: not built" in done.stdout
    assert "default at import: pure" in done.stdout


def test_plot_without_matplotlib_fails_before_measuring(tmp_path):
    done = bench("--quick", "--plot", str(tmp_path / "bench.png"), blocked=("matplotlib",))
    assert done.returncode == 2
    assert "--plot" in done.stderr and "pip install matplotlib" in done.stderr, done.stderr
    assert done.stdout == ""  # refused before anything was measured
    assert not (tmp_path / "bench.png").exists()


# -- arguments (in this process: argparse stops before measuring) ------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--bogus"], "bench: error: unrecognized arguments: --bogus"),
        (["bench", "--quick", "extra"], "bench: error: unrecognized arguments: extra"),
        (["bench", "--plot"], "argument --plot: expected one argument"),
        (["bench", "--plot", "/no/such/folder/bench.png"], "the folder /no/such/folder does not exist"),
        (["bench", "--plot", "."], "is a folder; give a file name"),
        (["bench", "--n", "0"], "argument --n: should be a positive whole number, got '0'"),
        (["bench", "--repeats", "many"], "argument --repeats: should be a positive whole number, got 'many'"),
        (["bench", "--only", "0h", "nope"], "--only: no scenario nope; the keys are 0h, "),
        (["bnech"], "argument COMMAND: invalid choice: 'bnech'"),
    ],
)
def test_bad_arguments_fail_with_argparses_message(capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert message in err
    assert err.startswith("usage: python -m fastignite")
    assert out == ""


def test_plot_checks_matplotlib_in_this_process_too(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" now raises ImportError
    with pytest.raises(SystemExit):
        main(["bench", "--plot", str(tmp_path / "bench.png")])
    assert "needs matplotlib" in capsys.readouterr().err


def test_no_command_prints_the_usage(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m fastignite")
    assert "bench" in out


def test_bench_help_shows_only_the_public_options(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "--plot FILE" in out
    assert "--n" not in out and "--only" not in out  # test-only


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"fastignite {fastignite.__version__}"


# -- the progress display ----------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _show(progress: rp.Progress, scenarios: list[sc.Scenario]) -> None:
    total = 2 * len(scenarios)
    with progress:
        for i, scenario in enumerate(scenarios):
            for done in (2 * i, 2 * i + 1, 2 * i + 2):
                progress(scenario, done, total)


def test_progress_in_a_log_is_a_line_per_scenario():
    scenarios = sc.SCENARIOS[:3]
    log = io.StringIO()
    _show(rp.Progress(scenarios, log), scenarios)
    assert log.getvalue().splitlines() == [f"  measuring {i}/3 {s.title}" for i, s in enumerate(scenarios, 1)]


def test_progress_on_a_terminal_without_tqdm_is_one_line_rewritten(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    scenarios = sc.SCENARIOS[:3]
    terminal = Terminal()
    _show(rp.Progress(scenarios, terminal), scenarios)
    shown = terminal.getvalue()
    assert "\n" not in shown  # rewritten in place with \r
    *frames, blank, end = shown.split("\r")[1:]
    assert frames[0] == f"measuring   0% [{' ' * 20}] 1/3 {scenarios[0].title}"
    assert frames[-1] == f"measuring 100% [{'#' * 20}] 3/3 {scenarios[2].title}"
    assert (blank, end) == (" " * len(frames[-1]), "")  # blanked at the end


def test_progress_on_a_terminal_with_tqdm_is_its_bar():
    pytest.importorskip("tqdm")
    scenarios = sc.SCENARIOS[:3]
    terminal = Terminal()
    _show(rp.Progress(scenarios, terminal), scenarios)
    shown = terminal.getvalue()
    assert f"1/3 {scenarios[0].title}" in shown  # each scenario's title shown as it starts
    assert "0/6 [" in shown  # tqdm's count of timed runs


# -- benchmarks/ runs the same code ------------------------------------------------------------------


@pytest.mark.skipif(not (ROOT / "benchmarks" / "report.py").exists(), reason="no benchmarks/ (not a checkout)")
def test_the_benchmarks_report_is_the_same_code_path():
    """benchmarks/report.py keeps its options and prints the package's table."""
    package_root = os.path.dirname(os.path.dirname(fastignite.__file__))
    env = {**os.environ, "PYTHONPATH": package_root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("FASTIGNITE_REQUIRE_COMPILED", None)
    script = ROOT / "benchmarks" / "report.py"
    code = BLOCKER.replace(
        'runpy.run_module("fastignite", run_name="__main__", alter_sys=True)',
        f"runpy.run_path({str(script)!r}, run_name='__main__')",
    )
    args = ["--n", "2000", "--repeats", "2", "--stat", "median", "--markdown", "--only", "0h", "six-16h"]
    done = subprocess.run(
        [sys.executable, "-c", code, "ignite,torch", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "MEDIAN of 2 repeats (the min follows)" in done.stdout
    assert "| scenario | hand loop ns | compiled ns (x loop) | pure ns (x loop) | iterations/run |" in done.stdout
    assert "The same, MIN of 2 repeats:" in done.stdout
