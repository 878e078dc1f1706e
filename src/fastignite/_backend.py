"""Chooses the hot-path backend once, at import.

``FASTIGNITE_PURE=1`` forces the pure-Python twin.  Otherwise the compiled twin
is used when it was built; when it is missing the pure twin runs, with a warning,
unless ``FASTIGNITE_REQUIRE_COMPILED=1`` (set by CI) makes that an error.
Both twins export the same names; nothing else in the package knows which one
it got.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["BACKEND", "Tables", "call_entries", "run_as_gen"]


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


if _truthy("FASTIGNITE_PURE"):
    from ._dispatch_py import BACKEND, Tables, call_entries, run_as_gen
else:
    try:
        from ._dispatch_c import BACKEND, Tables, call_entries, fire_event, run_as_gen  # type: ignore[import-not-found]
    except ImportError as exc:
        if _truthy("FASTIGNITE_REQUIRE_COMPILED"):
            raise ImportError(
                "fastignite's compiled backend (fastignite._dispatch_c) is not available and "
                "FASTIGNITE_REQUIRE_COMPILED is set"
            ) from exc
        if os.path.exists(os.path.join(os.path.dirname(__file__), "_dispatch_c.pyx")):
            warnings.warn(
                f"fastignite's compiled backend could not be imported ({exc}); using the pure-Python backend",
                RuntimeWarning,
                stacklevel=2,
            )
        from ._dispatch_py import BACKEND, Tables, call_entries, run_as_gen
