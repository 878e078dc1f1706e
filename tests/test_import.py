"""The core imports and runs without its optional dependencies, and reports its backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import fastignite

# Imports of these top-level packages fail in the child, as if they were not installed.
BLOCK_OPTIONAL = textwrap.dedent(
    """
    import sys

    class NotInstalled:
        blocked = {"torch", "ignite", "numpy"}

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NotInstalled())
    """
)


def _run_child(code: str, **env: str) -> str:
    # The child must import this same fastignite (the working tree or the installed one).
    package_root = os.path.dirname(os.path.dirname(fastignite.__file__))
    child_env = {**os.environ, **env, "PYTHONPATH": package_root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_OPTIONAL + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_core_imports_and_runs_without_torch_ignite_or_numpy():
    out = _run_child(
        """
        from fastignite import Engine, Events, every_filter
        engine = Engine(lambda e, b: b * 2)
        calls = []
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=2), lambda e: calls.append(e.state.output))
        state = engine.run([1, 2, 3, 4], max_epochs=2)
        assert calls == [4, 8, 4, 8], calls
        assert not {"torch", "ignite", "numpy"} & set(sys.modules)
        print("ok", state.iteration)
        """
    )
    assert out.split() == ["ok", "8"]


def test_fastignite_pure_forces_the_pure_backend():
    out = _run_child("import fastignite; print(fastignite.BACKEND)", FASTIGNITE_PURE="1")
    assert out.strip() == "pure"


def test_backend_is_named():
    assert fastignite.BACKEND in ("pure", "compiled")
