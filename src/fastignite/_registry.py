"""The handler registry: ignite's ``engine._event_handlers``, kept as the record.

It maps each event to a list of ``(handler, args, kwargs)`` entries, exactly the
shape ignite exposes, because code in the wild (ignite's own profilers among it)
reads and edits that structure in place.  The backend never walks these lists on
the hot path: it compiles them into dispatch tables.  So every way of changing a
list or the mapping tells the backend which event's table is now stale; the
backend rebuilds it, once, at that event's next firing.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._watched import LIST_MUTATORS, report_changes

if TYPE_CHECKING:
    from ._backend import TablesLike

# One registration, as ignite keeps it: (handler, args, kwargs).
Entry = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class FilteredHandler:
    """A handler registered on a filtered event, e.g. ``Events.X(every=10)``.

    The backend unwraps it and evaluates ``filter`` itself; calling the wrapper
    directly (as code that wraps handlers in turn does) evaluates the filter too.
    ``_parent`` is ignite's way for callers to find the user's function.
    """

    def __init__(
        self, handler: Callable[..., Any], event_filter: Callable[[Any, int], object], event: Any, engine: Any
    ) -> None:
        functools.update_wrapper(self, handler)
        # update_wrapper copies only the names the handler has.  ignite's wrapper is
        # a nested function, which keeps its own names when the handler (a callable
        # object) has none; profilers label handlers by these names.
        if not hasattr(handler, "__qualname__"):
            self.__qualname__ = "Engine._handler_wrapper.<locals>.wrapper"
        if not hasattr(handler, "__name__"):
            self.__name__ = "wrapper"
        self.handler = handler
        self.filter = event_filter
        self.event = event
        self._engine = weakref.ref(engine)
        self._parent = weakref.ref(handler)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        engine = self._engine()
        if engine is None:
            raise RuntimeError("Engine reference not resolved. Cannot execute event handler.")
        if self.filter(engine, engine._event_count(self.event)):
            return self.handler(*args, **kwargs)
        return None

    def __repr__(self) -> str:
        return f"<filtered {self.handler!r} on {self.event!r}>"


class HandlerList(list[Entry]):
    """One event's ``(handler, args, kwargs)`` entries; any change marks the
    event's dispatch table stale.

    The tables are held by weak reference (``tables_ref``): a built table holds
    its list, so a strong reference back would be a cycle keeping every
    handler alive after the engine is gone, until a collection.
    """

    __slots__ = ("_key", "_tables")

    def __init__(self, key: Any, tables_ref: weakref.ref[TablesLike], entries: Any = ()) -> None:
        super().__init__(entries)
        self._key = key
        self._tables = tables_ref

    def _changed(self) -> None:
        tables = self._tables()
        if tables is not None:
            tables.invalidate(self._key)


report_changes(HandlerList, list, LIST_MUTATORS)


class HandlerRegistry(dict[Any, HandlerList]):
    """event -> HandlerList, with ``defaultdict(list)`` behaviour as in ignite.

    It holds the backend's table set (to invalidate) but not the engine, so that
    an engine is freed by reference counting alone.
    """

    __slots__ = ("_tables",)

    def __init__(self, tables: TablesLike) -> None:
        super().__init__()
        self._tables = weakref.ref(tables)  # weak, as in HandlerList

    def _invalidate(self, key: Any) -> None:
        tables = self._tables()
        if tables is not None:
            tables.invalidate(key)

    def __missing__(self, key: Any) -> HandlerList:
        entries = HandlerList(key, self._tables)
        dict.__setitem__(self, key, entries)
        return entries

    def __setitem__(self, key: Any, entries: Any) -> None:
        dict.__setitem__(self, key, HandlerList(key, self._tables, entries))
        self._invalidate(key)

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self._invalidate(key)

    def pop(self, key: Any, *default: Any) -> Any:
        try:
            return dict.pop(self, key, *default)
        finally:
            self._invalidate(key)

    def popitem(self) -> tuple[Any, HandlerList]:
        key, entries = dict.popitem(self)
        self._invalidate(key)
        return key, entries

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = [] if default is None else default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, entries in dict(*args, **kwargs).items():
            self[key] = entries

    # mypy holds |= to the types of dict's |, which widens to the other dict's key
    # and value types; |= on a registry keeps it a registry.
    def __ior__(self, other: Any) -> HandlerRegistry:  # type: ignore[override, misc]
        self.update(other)
        return self

    def clear(self) -> None:
        dict.clear(self)
        tables = self._tables()
        if tables is not None:
            tables.invalidate_all()
