"""Drop-in for code written against pytorch-ignite: ignite's classes, fastignite's loop.

Change one import::

    from fastignite.ignite import Engine, Events        # was: from ignite.engine import ...

or leave the code as it is and call ``install()`` before it builds its engines::

    import fastignite.ignite
    fastignite.ignite.install()   # ignite.engine.Engine is now fastignite.ignite.Engine

``Engine`` subclasses ``ignite.engine.Engine``, so the ``isinstance`` checks
inside ignite's metrics and handlers pass; it keeps ignite's own Events,
EventEnum and filters, and its ``state`` is an ``ignite.engine.State``.  What
runs is fastignite's: the registry, the dispatch tables and the loop of the
backend ``fastignite.BACKEND`` names.  ``DeterministicEngine`` is ignite's
DeterministicEngine on the same footing.

ignite's filter factories (``Events.X(every=..., once=..., before=...,
after=...)``) make closures; the engine recognises them by their code object
and runs the equivalent fastignite filter, so a handler that is not due costs
nothing per iteration, as with fastignite's own Events.  Any other filter is
called as ignite calls it.

pytorch-ignite is an optional extra: ``pip install fastignite[ignite]``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

try:
    import ignite.engine as _ignite_engine
    import ignite.engine.deterministic as _ignite_deterministic
    import ignite.engine.engine as _ignite_engine_module
    import ignite.engine.events as _ignite_events
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fastignite.ignite needs pytorch-ignite (pip install 'fastignite[ignite]'): " + str(exc)) from exc

from ignite.engine.events import CallableEventWithFilter, EventEnum, Events, EventsList, RemovableEventHandle

from . import engine as _engine
from . import events as _events
from .filters import Every, Once, Window

__all__ = [
    "CallableEventWithFilter",
    "DeterministicEngine",
    "Engine",
    "EventEnum",
    "Events",
    "EventsList",
    "RemovableEventHandle",
    "State",
    "install",
    "installed",
    "uninstall",
]


# mypy does not read ignite (see pyproject.toml), so its classes are Any as bases.
class State(_events.State, _ignite_events.State):  # type: ignore[misc]
    """``engine.state`` of the drop-in engine: an ``ignite.engine.State`` whose
    per-iteration attributes live in fastignite's slots."""

    __slots__ = ()


# -- State.event_to_attr: one mapping ------------------------------------------------
# ignite's filters read ignite's ``State.event_to_attr``, and ignite code edits
# it directly (``ignite.engine.State.event_to_attr[Ev.STEP] = "step_count"``).
# The drop-in makes it the very object fastignite's tables read and watch, so
# an edit in place, from any engine or none, before engines are built or in
# the middle of a run, is seen as ignite sees it.


def _share_event_to_attr(mapping: Any) -> None:
    type.__setattr__(_ignite_events.State, "event_to_attr", mapping)


def _adopt_ignite_event_to_attr() -> None:
    """Follow a wholesale ``ignite.engine.State.event_to_attr = {...}``.

    ignite's State is a plain class, so that assignment cannot be seen when it
    happens; the drop-in adopts the new dict when an engine is built, events
    are registered, a handler is added or a run starts.  (fastignite's own
    State sees its assignments at once.)"""
    current = _ignite_events.State.__dict__.get("event_to_attr")
    if current is not _events.State.event_to_attr:
        _events._replace_event_to_attr(current if isinstance(current, dict) else {})


def _merge_ignite_event_to_attr() -> None:
    # Mappings ignite code added before this module was imported are kept.
    ours = _events.State.event_to_attr
    theirs = _ignite_events.State.__dict__.get("event_to_attr")
    if isinstance(theirs, dict) and theirs is not ours:
        for event, attr in theirs.items():
            if event not in ours:
                ours[event] = attr
    _share_event_to_attr(ours)


_merge_ignite_event_to_attr()
_events._EVENT_TO_ATTR_HOOKS.append(_share_event_to_attr)


# -- ignite's filters, recognised ----------------------------------------------
# ignite's factories return closures; two closures of one factory share its code
# object, and their cells hold the arguments.  Reading them back gives the
# fastignite filter with the same decisions (tests/test_ignite_dropin.py checks
# the equivalence over a range of counts).

_Factory = CallableEventWithFilter


def _cells(f: Any) -> dict[str, Any]:
    return {name: cell.cell_contents for name, cell in zip(f.__code__.co_freevars, f.__closure__ or ())}


def _every(cells: dict[str, Any]) -> Any:
    return Every((cells["every"],))


# Only CPython's reference counts tell a list nothing else holds (PyPy has no
# sys.getrefcount): elsewhere every once=<list> keeps ignite's closure, exact.
_COUNTS_REFERENCES = sys.implementation.name == "cpython"


def _once_refs(cells: dict[str, Any]) -> int:
    return sys.getrefcount(cells["once"])


def _once(cells: dict[str, Any]) -> Any:
    # ignite's closure reads the sequence it was given at every firing.  A tuple
    # or range cannot change, nor can a list only the closure holds (once=<int>
    # makes one; so does a literal), and Once can take their values.  A list
    # its caller still holds can change: ignite's closure is kept, which is
    # exact.  Counted before any local names the list, as in the calibration.
    if type(cells["once"]) not in (tuple, range) and (not _COUNTS_REFERENCES or _once_refs(cells) > _PRIVATE_ONCE_REFS):
        return None
    return Once(cells["once"])


def _window_bounds(cells: dict[str, Any]) -> tuple[Any, Any]:
    before = cells["before_"]
    return (None if before == math.inf else before), cells["after_"]


def _window(cells: dict[str, Any]) -> Any:
    return Window(*_window_bounds(cells))


def _every_window(cells: dict[str, Any]) -> Any:
    before, after = _window_bounds(cells)
    return Window(before, after, cells["every"])


# What _once_refs counts for a list nothing but its closure holds (the cell and
# the cells dict, plus CPython's own references, which vary across versions).
_probe = _Factory.once_event_filter([1])
_PRIVATE_ONCE_REFS = _once_refs(_cells(_probe)) if _COUNTS_REFERENCES else 0
del _probe

_TRANSLATIONS = {
    _Factory.every_event_filter(2).__code__: _every,
    _Factory.once_event_filter([1]).__code__: _once,
    _Factory.before_and_after_event_filter(2, 1).__code__: _window,
    _Factory.every_before_and_after_event_filter(2, 2, 1).__code__: _every_window,
}


def native_filter(event_filter: Any) -> Any:
    """fastignite's equivalent of a filter made by ignite's Events.X(...), else
    the filter itself."""
    code = getattr(event_filter, "__code__", None)
    translate = _TRANSLATIONS.get(code) if code is not None else None
    if translate is None:
        return event_filter
    try:
        native = translate(_cells(event_filter))
    except (ValueError, TypeError, KeyError):
        # Arguments ignite accepted but fastignite's filters do not: keep
        # ignite's closure, which is exact.
        return event_filter
    return event_filter if native is None else native


# -- the engines -------------------------------------------------------------------


class Engine(_engine.Engine, _ignite_engine_module.Engine):  # type: ignore[misc]  # ignite's: Any to mypy
    """``ignite.engine.Engine`` running on fastignite's backend.  Same
    constructor, methods and behaviour; see the module docstring."""

    __slots__ = ()
    _state_class = State
    # ignite's distributed behaviour exactly: no stop agreement, no set_epoch.
    _rank_aware = False

    def __init__(self, process_function: Any) -> None:
        _adopt_ignite_event_to_attr()
        super().__init__(process_function)

    @staticmethod
    def _filter_of(event_name: Any) -> Any:
        return native_filter(_engine.Engine._filter_of(event_name))

    def register_events(self, *event_names: Any, event_to_attr: dict[Any, str] | None = None) -> None:
        _adopt_ignite_event_to_attr()
        super().register_events(*event_names, event_to_attr=event_to_attr)

    def add_event_handler(self, event_name: Any, handler: Any, *args: Any, **kwargs: Any) -> Any:
        _adopt_ignite_event_to_attr()
        return super().add_event_handler(event_name, handler, *args, **kwargs)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        _adopt_ignite_event_to_attr()
        return super().run(*args, **kwargs)


class DeterministicEngine(_ignite_deterministic.DeterministicEngine, Engine):  # type: ignore[misc]  # as Engine
    """``ignite.engine.DeterministicEngine`` running on fastignite's backend.

    ignite's class contributes what makes a run deterministic (the seeded
    data flow, the reproducible batch sampler, the saved random states);
    the rest is ``Engine`` above."""

    __slots__ = ()


# -- install / uninstall -------------------------------------------------------------

# Where ignite code finds the engine classes: the names its modules bind.
_PATCH_POINTS = (
    (_ignite_engine, "Engine", Engine),
    (_ignite_engine, "DeterministicEngine", DeterministicEngine),
    (_ignite_engine_module, "Engine", Engine),
    (_ignite_deterministic, "DeterministicEngine", DeterministicEngine),
)
_originals: dict[tuple[int, str], Any] = {}


def install() -> None:
    """Make unchanged ignite code build fastignite.ignite's engines.

    ``ignite.engine.Engine`` and ``ignite.engine.DeterministicEngine`` (and the
    same names in the modules that define them) become this module's classes;
    ``create_supervised_trainer`` and ``create_supervised_evaluator`` look them
    up there, so they build fast engines too.  Code that imported the names
    before ``install()`` keeps the classes it imported.  Calling it again does
    nothing; ``uninstall()`` restores ignite's classes."""
    for module, name, replacement in _PATCH_POINTS:
        key = (id(module), name)
        if key not in _originals:
            _originals[key] = getattr(module, name)
        setattr(module, name, replacement)


def uninstall() -> None:
    """Undo ``install()``: ignite's own classes are back where they were."""
    for module, name, _ in _PATCH_POINTS:
        original = _originals.pop((id(module), name), None)
        if original is not None:
            setattr(module, name, original)


def installed() -> bool:
    """Whether ``install()`` is in effect."""
    return bool(_originals)
