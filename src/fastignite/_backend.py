"""Chooses the hot-path backend once, at import.

* ``FASTIGNITE_PURE=1`` forces the pure-Python twin.
* Interpreters the compiled twin is not built for run the pure twin, silently:
  anything but CPython (PyPy, GraalPy, ...), and free-threaded CPython
  (3.13t, 3.14t).  The compiled twin relies on the GIL to keep its dispatch
  tables and in-place slot writes consistent; a free-threaded build gets the
  pure twin, so importing fastignite never turns the GIL back on (CPython
  re-enables it for an extension that does not declare itself safe).
* Otherwise the compiled twin is used when it was built.  A build without it
  (``FASTIGNITE_NO_EXTENSIONS=1``) runs the pure twin silently; an extension
  that is there but fails to import (a broken or mismatched build) runs the
  pure twin with a RuntimeWarning.  ``FASTIGNITE_REQUIRE_COMPILED=1`` (set by
  CI) makes either an ImportError instead.

Both twins export the same names (``BACKEND``, ``Loop``, ``Tables``,
``fire_event``).  A new engine runs on ``twin_for_new_engines()``: the default
twin, or the one a ``use_twin(twin)`` block chose (the test suite runs each
test on each twin that way).  An engine keeps its twin for life.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import platform
import sysconfig
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["BACKEND", "compiled_unsupported", "fire_event", "twin", "twin_for_new_engines", "use_twin"]

_COMPILED = "fastignite._dispatch_c"


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def compiled_unsupported(implementation: str | None = None, gil_disabled: object = None) -> str | None:
    """Why this interpreter runs the pure twin whatever was built, or None.

    The arguments stand for ``platform.python_implementation()`` and
    ``sysconfig.get_config_var("Py_GIL_DISABLED")`` (read when not given).
    setup.py applies the same rule when it decides whether to build the
    extension.
    """
    if implementation is None:
        implementation = platform.python_implementation()
    if implementation != "CPython":
        return f"{implementation} runs the pure twin (the compiled twin is built for CPython only)"
    if gil_disabled is None:
        gil_disabled = sysconfig.get_config_var("Py_GIL_DISABLED")
    if gil_disabled:
        return "free-threaded CPython runs the pure twin (the compiled twin relies on the GIL)"
    return None


def _load_compiled():
    """The compiled twin's module, or None with the pure twin to be used."""
    reason = compiled_unsupported()
    if reason is not None:
        if _truthy("FASTIGNITE_REQUIRE_COMPILED"):
            raise ImportError(f"FASTIGNITE_REQUIRE_COMPILED is set, but {reason}")
        return None
    try:
        module = importlib.import_module(_COMPILED)
    except ImportError as exc:
        if _truthy("FASTIGNITE_REQUIRE_COMPILED"):
            raise ImportError(
                f"fastignite's compiled backend ({_COMPILED}) is not available and FASTIGNITE_REQUIRE_COMPILED is set"
            ) from exc
        # Not built at all: a pure build, chosen at install time.
        if isinstance(exc, ModuleNotFoundError) and exc.name == _COMPILED:
            return None
        warnings.warn(
            f"fastignite's compiled backend could not be imported ({exc}); using the pure-Python backend",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return module


_compiled = None if _truthy("FASTIGNITE_PURE") else _load_compiled()
if _compiled is not None:
    twin = _compiled
else:
    from . import _dispatch_py as twin
del _compiled

BACKEND: str = twin.BACKEND
# Engine.fire_event: the default twin's, which fires an engine on either twin.
fire_event = twin.fire_event

_new_engines_twin: contextvars.ContextVar = contextvars.ContextVar("fastignite_twin")


def twin_for_new_engines() -> Any:
    """The twin an Engine made now runs on."""
    return _new_engines_twin.get(twin)


@contextlib.contextmanager
def use_twin(chosen: Any) -> Iterator[Any]:
    """Engines made within the block (directly, or by library code such as
    create_supervised_trainer) run on ``chosen``, a twin module."""
    if getattr(chosen, "BACKEND", None) not in ("pure", "compiled"):
        raise TypeError(f"twin should be fastignite._dispatch_py or fastignite._dispatch_c, got {chosen!r}")
    token = _new_engines_twin.set(chosen)
    try:
        yield chosen
    finally:
        _new_engines_twin.reset(token)
