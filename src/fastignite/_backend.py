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
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from typing import Protocol

    class TablesLike(Protocol):
        """What a twin's ``Tables`` offers the API layer: one engine's event slots,
        firing counters and dispatch tables."""

        check_allowed: bool

        @property
        def events(self) -> list[Any]: ...  # slot -> the event registered first
        @property
        def last_event(self) -> Any: ...
        @last_event.setter
        def last_event(self, event: Any) -> None: ...
        def add_event(self, event: Any) -> int: ...
        def slot_of(self, event: Any) -> int | None: ...
        def invalidate(self, event: Any) -> None: ...
        def invalidate_all(self) -> None: ...
        def reset_counts(self) -> None: ...
        def fired_ever(self, slot: int) -> bool: ...
        def firings(self, slot: int) -> int: ...
        def set_firings(self, slot: int, count: int) -> None: ...
        def count(self, engine: Any, slot: int) -> int: ...
        def fire(self, engine: Any, slot: int, event_args: tuple[Any, ...] = (), event_kwargs: Any = None) -> None: ...
        def fire_event(self, engine: Any, event_name: Any) -> None: ...

    class LoopLike(Protocol):
        """A twin's ``Loop``: one run's iteration loop, driven by ``_driver``."""

        interruptible: bool
        closed: bool

        @property
        def iter_counter(self) -> Any: ...
        @property
        def restarted(self) -> bool: ...
        def fire(self, slot: int, event_args: tuple[Any, ...] = (), event_kwargs: Any = None) -> None: ...
        def start_epoch(self, init_iter: Any) -> None: ...
        def iterate(self) -> int: ...

    class Twin(Protocol):
        """A backend twin module: ``_dispatch_py`` or the compiled ``_dispatch_c``."""

        BACKEND: str

        def Tables(self) -> TablesLike: ...
        def Loop(self, engine: Any, interruptible: bool = True) -> LoopLike: ...
        def fire_event(self, engine: Any, event_name: Any) -> None: ...


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


def _load_compiled() -> Twin | None:
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
    return cast("Twin", module)  # the compiled twin, which mypy does not read


_compiled = None if _truthy("FASTIGNITE_PURE") else _load_compiled()
if _compiled is not None:
    twin: Twin = _compiled
else:
    from . import _dispatch_py as _pure

    twin = _pure
del _compiled

BACKEND: str = twin.BACKEND
# Engine.fire_event: the default twin's, which fires an engine on either twin.
fire_event = twin.fire_event

_new_engines_twin: contextvars.ContextVar[Twin] = contextvars.ContextVar("fastignite_twin")


def twin_for_new_engines() -> Twin:
    """The twin an Engine made now runs on."""
    return _new_engines_twin.get(twin)


@contextlib.contextmanager
def use_twin(chosen: Twin) -> Iterator[Twin]:
    """Engines made within the block (directly, or by library code such as
    create_supervised_trainer) run on ``chosen``, a twin module."""
    if getattr(chosen, "BACKEND", None) not in ("pure", "compiled"):
        raise TypeError(f"twin should be fastignite._dispatch_py or fastignite._dispatch_c, got {chosen!r}")
    token = _new_engines_twin.set(chosen)
    try:
        yield chosen
    finally:
        _new_engines_twin.reset(token)
