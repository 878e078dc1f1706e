"""Built-in containers that report their changes.

The dispatch tables are built from what such a container holds (an event's
handler list, ``State.event_to_attr``), so every way of changing it must mark
the tables stale: each mutating method of the base type is wrapped to call the
container's ``_changed()`` once the change is done (or has failed half-way).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any


def _reporting(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def mutate(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self._changed()

    return mutate


def report_changes(cls: type, base: type, names: Iterable[str]) -> None:
    """Make ``base``'s mutating methods ``names`` call ``cls._changed`` after each change."""
    for name in names:
        setattr(cls, name, _reporting(getattr(base, name)))


LIST_MUTATORS = (
    "append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse",
    "__setitem__", "__delitem__", "__iadd__", "__imul__",
)  # fmt: skip
DICT_MUTATORS = ("__setitem__", "__delitem__", "update", "pop", "popitem", "setdefault", "clear", "__ior__")
