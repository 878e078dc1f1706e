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

Both twins export the names imported below; nothing else in the package knows
which one it got.
"""

from __future__ import annotations

import importlib
import os
import platform
import sysconfig
import warnings

__all__ = ["BACKEND", "Tables", "call_entries", "run_as_gen", "compiled_unsupported"]

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
    from ._dispatch_c import BACKEND, Tables, call_entries, fire_event, run_as_gen  # type: ignore[import-not-found]
else:
    from ._dispatch_py import BACKEND, Tables, call_entries, run_as_gen
del _compiled
