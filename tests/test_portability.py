"""Which twin runs where, and the compiled twin's caches on this CPython.

* Interpreters the compiled twin is not built for (PyPy, free-threaded CPython)
  and builds without it run the pure twin without a warning; an extension that
  is there but fails to import warns, or fails under FASTIGNITE_REQUIRE_COMPILED.
* The compiled loop's layout caches hit: a CPython that keeps type version
  tags differently (3.13 no longer sets Py_TPFLAGS_VALID_VERSION_TAG) must not
  turn every check into a re-resolution, which no behaviour test would notice.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import sysconfig
import textwrap

import pytest

import fastignite
from fastignite import Engine, Events
from fastignite._backend import compiled_unsupported

try:
    from fastignite import _dispatch_c
except ImportError:  # a pure build, or an interpreter the twin is not built for
    _dispatch_c = None

needs_compiled = pytest.mark.skipif(_dispatch_c is None, reason="needs the compiled twin (not built here)")


def _child(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports this same fastignite."""
    package_root = os.path.dirname(os.path.dirname(fastignite.__file__))
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("FASTIGNITE_")}
    child_env.update(env)
    child_env["PYTHONPATH"] = package_root + os.pathsep + os.environ.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=120,
    )


# A meta-path finder in the child that makes importing the compiled twin fail
# the way a given build would.
_FAIL_COMPILED = """
import sys

class FailCompiled:
    def find_spec(self, name, path=None, target=None):
        if name == "fastignite._dispatch_c":
            raise {error}
        return None

sys.meta_path.insert(0, FailCompiled())
"""


# -- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["PyPy", "GraalVM", "IronPython"])
def test_interpreters_other_than_cpython_run_the_pure_twin(implementation):
    assert "pure twin" in compiled_unsupported(implementation, gil_disabled=0)


def test_free_threaded_cpython_runs_the_pure_twin():
    assert "free-threaded" in compiled_unsupported("CPython", gil_disabled=1)


def test_cpython_with_a_gil_may_run_the_compiled_twin():
    assert compiled_unsupported("CPython", gil_disabled=0) is None


def test_this_interpreter_follows_the_rule():
    reason = compiled_unsupported()
    if reason is not None:
        assert fastignite.BACKEND == "pure"
    assert (platform.python_implementation() == "CPython" and not sysconfig.get_config_var("Py_GIL_DISABLED")) == (
        reason is None
    )


# -- imports in a fresh interpreter ----------------------------------------------------------


def test_import_warns_about_nothing():
    done = _child("import fastignite; print(fastignite.BACKEND)")
    assert done.returncode == 0, done.stderr
    expected = "compiled" if _dispatch_c is not None else "pure"
    assert done.stdout.strip() == expected
    assert "Warning" not in done.stderr


def test_a_build_without_the_extension_runs_pure_silently():
    error = "ModuleNotFoundError('No module named fastignite._dispatch_c', name='fastignite._dispatch_c')"
    done = _child(_FAIL_COMPILED.format(error=error) + "import fastignite; print(fastignite.BACKEND)")
    assert done.returncode == 0, done.stderr  # -W error::RuntimeWarning: no warning was issued
    assert done.stdout.strip() == "pure"


@pytest.mark.skipif(compiled_unsupported() is not None, reason="this interpreter never imports the extension")
def test_a_broken_extension_warns_and_runs_pure():
    error = "ImportError('_dispatch_c.so: undefined symbol: _PyObject_NextNotImplemented')"
    code = _FAIL_COMPILED.format(error=error) + textwrap.dedent(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import fastignite
        print(fastignite.BACKEND)
        print(*[str(w.message) for w in caught], sep="\\n")
        """
    )
    done = _child(code)
    assert done.returncode == 0, done.stderr
    backend, message = done.stdout.strip().split("\n", 1)
    assert backend == "pure"
    assert "could not be imported" in message and "undefined symbol" in message


def test_a_broken_extension_fails_when_the_compiled_twin_is_required():
    error = "ImportError('_dispatch_c.so: undefined symbol: _PyObject_NextNotImplemented')"
    done = _child(_FAIL_COMPILED.format(error=error) + "import fastignite", FASTIGNITE_REQUIRE_COMPILED="1")
    assert done.returncode != 0
    assert "FASTIGNITE_REQUIRE_COMPILED" in done.stderr


def test_free_threaded_build_never_loads_the_extension():
    """As a free-threaded interpreter reports itself: the pure twin, and the
    extension (which would turn the GIL back on) never imported."""
    code = textwrap.dedent(
        """
        import sys, sysconfig
        real = sysconfig.get_config_var
        sysconfig.get_config_var = lambda name: 1 if name == "Py_GIL_DISABLED" else real(name)
        import fastignite
        engine = fastignite.Engine(lambda e, b: b)
        assert engine.run([1, 2, 3]).output == 3
        print(fastignite.BACKEND, "fastignite._dispatch_c" in sys.modules)
        """
    )
    done = _child(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pure", "False"]


@pytest.mark.skipif(not hasattr(sys, "_is_gil_enabled"), reason="needs CPython 3.13+ (sys._is_gil_enabled)")
def test_importing_fastignite_leaves_the_gil_as_it_was():
    done = _child("import sys; before = sys._is_gil_enabled(); import fastignite; print(before, sys._is_gil_enabled())")
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.split()
    assert before == after


# -- the compiled twin's layout caches ---------------------------------------------------------


@needs_compiled
@pytest.mark.parametrize("handlers", [0, 2])
def test_layout_caches_hit_at_every_iteration(handlers):
    """A run of many iterations resolves the engine's and the state's layouts
    a bounded number of times, with or without Python handlers between the
    checks (the count would grow with the iterations if the type version tags
    the caches key on never matched)."""
    engine = Engine(lambda e, b: b)
    for _ in range(handlers):
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: None)
    from fastignite import _fields

    engine.run(range(10), max_epochs=1)  # warm: layouts of this engine and state types
    before = _fields._layout_resolutions()
    engine.run(range(20_000), max_epochs=1)
    assert _fields._layout_resolutions() - before <= 4


@needs_compiled
def test_a_class_changed_mid_run_is_seen_by_the_loop():
    """The other side of the cache: a change to the state's class (a property
    replacing a slot) invalidates its layout, and the loop takes the new path."""
    from fastignite import State

    class Recording(State):
        __slots__ = ()

    seen = []

    def patch(engine):
        if engine.state.iteration == 3:
            slot = State.__dict__["output"]

            def get(self):
                return slot.__get__(self)

            def put(self, value):
                seen.append(value)
                slot.__set__(self, value)

            Recording.output = property(get, put)

    engine = Engine(lambda e, b: b * 10)
    engine.state = Recording()
    engine.add_event_handler(Events.ITERATION_COMPLETED, patch)
    engine.run([1, 2, 3, 4, 5], max_epochs=1)
    assert [v for v in seen if v is not None] == [40, 50]


# -- state.iteration incremented in place (_capi.increment_in_place) ---------------------------


@pytest.mark.parametrize("start", [0, 250, 1_000, 2**30 - 5, 2**62])
def test_iteration_increments_are_exact_and_unobservable(Engine, start):
    """Counts that cross the small-int cache, one 30-bit digit and 2**62 come
    out exact; every int a handler kept keeps the value it had when it was
    read, and no two kept counts are the same object (an int that another
    reference holds is never changed in place)."""
    kept = []
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=7), lambda e: kept.append(e.state.iteration))
    engine.load_state_dict({"iteration": start, "epoch_length": 50, "max_epochs": start // 50 + 2})
    state = engine.run(range(50))
    end = (start // 50 + 2) * 50
    assert state.iteration == end
    expected = [n for n in range(start + 1, end + 1) if n % 7 == 0]
    assert kept == expected
    assert len({id(n) for n in kept}) == len(kept)
    assert all(type(n) is int for n in kept)
