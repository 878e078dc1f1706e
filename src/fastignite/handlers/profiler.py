"""HandlersTimeProfiler: time spent in each handler, per event, plus the
processing and data-loading times (ignite's handler of the same name).

It costs nothing to an engine it is not attached to: the engine has no hook for
it.  Attached, it works on the registry as ignite's does: at STARTED it replaces
every registered handler in ``engine._event_handlers`` by a timing wrapper and
adds its own timing handlers; at COMPLETED (or ``detach``) it puts the original
entries back and removes its own.

Differences from ignite, all deliberate:

* Call counts are exact for filtered handlers. ignite counts a call only if it
  took at least 0.1 ms, taking shorter ones for calls its filter refused.
* The engine is left as it was after a run. ignite leaves its timers and empty
  handler lists in place.
* A user's own Timer handlers are timed too. ignite skips any handler whose
  repr contains "Timer.".
* A handler added during a run is timed from the next EPOCH_STARTED on.
* Statistics are Python floats, where ignite uses torch float32, so the last
  digit can differ.
* ``detach(engine)`` exists; ignite has no such method.
"""

from __future__ import annotations

import csv
import functools
import math
import weakref
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from .._registry import Entry, FilteredHandler
from ..events import Events
from ._handler_logging import is_engine

__all__ = ["HandlersTimeProfiler"]


class _Timed:
    """A registered handler that records the duration of each of its calls.

    Registry code recognises a wrapper by ``_parent`` (the user's handler), so
    ``has_event_handler`` and ``remove_event_handler`` still find the user's
    handler while it is wrapped.
    """

    def __init__(
        self, handler: Callable[..., Any], times: list[float], profiler: HandlersTimeProfiler, gated: bool
    ) -> None:
        functools.update_wrapper(self, handler)
        # update_wrapper copied the handler's __dict__; a _parent or marker found
        # there belongs to the handler, this object defines its own below.
        for name in ("_parent", "_profiler", "_profiler_original"):
            self.__dict__.pop(name, None)
        parent = getattr(handler, "_parent", None)
        self._user_handler = handler if parent is None else parent()
        self.handler = handler
        self.times = times
        # A wrapper (ignite's) that evaluates its filter inside: a near-zero time
        # means the filter said no, as ignite's profiler assumes.
        self.gated = gated

    def _parent(self) -> Callable[..., Any]:
        return self._user_handler

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        start = perf_counter()
        self.handler(*args, **kwargs)
        elapsed = perf_counter() - start
        if not self.gated or elapsed >= HandlersTimeProfiler.EVENT_FILTER_THESHOLD_TIME:
            self.times.append(elapsed)

    def __repr__(self) -> str:
        return f"<timed {self.handler!r}>"


def _stats(times: Sequence[float]) -> list[Any]:
    """[total, (min, index), (max, index), mean, std] over the non-zero times, or
    ignite's placeholders when there are none."""
    data = [t for t in times if t > 0]
    if not data:
        return ["not triggered", ("None", "None"), ("None", "None"), "None", "None"]
    low = min(range(len(data)), key=data.__getitem__)
    high = max(range(len(data)), key=data.__getitem__)
    mean = math.fsum(data) / len(data)
    std: Any = "None"
    if len(data) > 1:  # the sample deviation, as torch.std
        std = round(math.sqrt(math.fsum((t - mean) ** 2 for t in data) / (len(data) - 1)), 5)
    return [round(math.fsum(data), 5), (round(data[low], 5), low), (round(data[high], 5), high), round(mean, 5), std]


class HandlersTimeProfiler:
    """Profile the handlers of an engine, and its processing and data flow.

    ::

        profiler = HandlersTimeProfiler()
        profiler.attach(trainer)
        trainer.run(data, max_epochs=3)
        profiler.print_results(profiler.get_results())
        profiler.write_results("profile.csv")

    ``event_handlers_times[event][handler_name]`` holds the duration of every
    call (a handler on a filtered event: every call its filter let through);
    ``processing_times`` and ``dataflow_times`` one duration per iteration.
    Handlers are named by ``__qualname__`` (else their class name).  Each run
    starts a new profile; handlers added during a run are profiled from the
    next epoch on.
    """

    EVENT_FILTER_THESHOLD_TIME = 0.0001  # ignite's name, typo included

    def __init__(self) -> None:
        self.dataflow_times: list[float] = []
        self.processing_times: list[float] = []
        self.event_handlers_times: dict[Any, dict[str, list[float]]] = {}
        self.event_handlers_names: dict[Any, list[str]] = {}
        self._dataflow_start = 0.0
        self._processing_start = 0.0
        # engine -> registry keys this profiler created (removed again when empty)
        self._created: weakref.WeakKeyDictionary[Any, set[Any]] = weakref.WeakKeyDictionary()

    @staticmethod
    def _get_callable_name(handler: Callable[..., Any]) -> str:
        return getattr(handler, "__qualname__", handler.__class__.__name__)

    # -- the profiler's own handlers ----------------------------------------------

    def _timeit_processing(self) -> None:
        self.processing_times.append(perf_counter() - self._processing_start)

    def _start_processing(self) -> None:
        self._processing_start = perf_counter()

    def _timeit_dataflow(self) -> None:
        self.dataflow_times.append(perf_counter() - self._dataflow_start)

    def _start_dataflow(self) -> None:
        self._dataflow_start = perf_counter()

    def _owns(self, handler: Any) -> bool:
        """A handler this profiler added (a bound method of it) or wrapped."""
        return getattr(handler, "__self__", None) is self or getattr(handler, "_profiler", None) is self

    @staticmethod
    def _is_internal_handler(handler: Any) -> bool:
        """Not to be profiled: any profiler's own handlers and wrappers."""
        if isinstance(handler, _Timed) or hasattr(handler, "_profiler_original"):
            return True
        return type(getattr(handler, "__self__", None)).__name__ == "HandlersTimeProfiler"

    # -- wrapping and restoring ---------------------------------------------------

    def _wrapped_entry(self, engine: Any, event: Any, entry: Entry) -> Entry:
        handler, args, kwargs = entry
        name = self._get_callable_name(handler)
        times = self.event_handlers_times.setdefault(event, {}).setdefault(name, [])
        names = self.event_handlers_names.setdefault(event, [])
        if name not in names:
            names.append(name)
        if type(handler) is FilteredHandler:
            # Keep the filter outside the wrapper, where the engine evaluates it
            # without a call: the wrapper runs (and counts) only when it passes.
            timed = _Timed(handler.handler, times, self, gated=False)
            wrapper: Any = FilteredHandler(timed, handler.filter, handler.event, engine)
            wrapper.__qualname__ = handler.__qualname__
            wrapper.__name__ = handler.__name__
            wrapper._parent = handler._parent  # the user's handler, for has/remove_event_handler
        else:
            wrapper = _Timed(handler, times, self, gated=hasattr(handler, "_parent"))
        wrapper._profiler_original = handler
        wrapper._profiler = self
        return (wrapper, args, kwargs)

    def _wrap(self, engine: Any) -> None:
        """Wrap every registered handler not wrapped yet.  In place: a firing under
        way (STARTED's, EPOCH_STARTED's) then calls the wrappers further on."""
        registry = engine._event_handlers
        for event in engine._allowed_events:
            entries = dict.get(registry, event)
            if not entries:
                continue
            for i, entry in enumerate(entries):
                if not self._is_internal_handler(entry[0]):
                    entries[i] = self._wrapped_entry(engine, event, entry)

    def _as_first_started(self, engine: Any) -> None:
        self._restore(engine, keep_attached=True)  # a run that ended without COMPLETED
        self.dataflow_times = []
        self.processing_times = []
        # Every event has its (possibly empty) table, as in ignite's results.
        self.event_handlers_names = {e: [] for e in engine._allowed_events}
        self.event_handlers_times = {e: {} for e in engine._allowed_events}
        self._wrap(engine)
        ref = weakref.ref(engine)
        self._insert(engine, Events.EPOCH_STARTED, 0, (self._rewrap, (ref,), {}))
        self._insert(engine, Events.ITERATION_STARTED, None, (self._start_processing, (), {}))
        self._insert(engine, Events.ITERATION_COMPLETED, 0, (self._timeit_processing, (), {}))
        self._insert(engine, Events.GET_BATCH_STARTED, None, (self._start_dataflow, (), {}))
        self._insert(engine, Events.GET_BATCH_COMPLETED, 0, (self._timeit_dataflow, (), {}))
        self._insert(engine, Events.COMPLETED, None, (self._detach_profiler_handlers, (ref,), {}))

    def _rewrap(self, engine: Any) -> None:
        """At each epoch start: profile handlers added since the last one."""
        self._wrap(engine)

    def _detach_profiler_handlers(self, engine: Any) -> None:
        self._restore(engine, keep_attached=True)

    def _insert(self, engine: Any, event: Any, index: int | None, entry: Entry) -> None:
        registry = engine._event_handlers
        if event not in registry:
            self._created.setdefault(engine, set()).add(event)
        entries = registry[event]
        if index is None:
            entries.append(entry)
        else:
            entries.insert(index, entry)

    def _restore(self, engine: Any, keep_attached: bool) -> None:
        """Put the original handlers back and drop this profiler's own (but the
        STARTED hook when ``keep_attached``).

        Each changed event gets a new list rather than an edit in place, as
        remove_event_handler does: a firing under way (COMPLETED's, which runs
        this) finishes over the list it started with, skipping nothing.
        """
        registry = engine._event_handlers
        created = self._created.get(engine, set())
        for event in list(registry):
            entries = dict.get(registry, event)
            restored: list[Entry] = []
            changed = False
            for entry in entries:  # type: ignore[union-attr]  # event is one of the registry's keys
                handler = entry[0]
                if not self._owns(handler):
                    restored.append(entry)
                elif getattr(handler, "_profiler", None) is self:
                    restored.append((handler._profiler_original, entry[1], entry[2]))
                    changed = True
                elif keep_attached and getattr(handler, "__func__", None) is HandlersTimeProfiler._as_first_started:
                    restored.append(entry)
                else:
                    changed = True
            if not changed:
                continue
            if not restored and event in created:
                del registry[event]
                created.discard(event)
            else:
                registry[event] = restored

    # -- public API ---------------------------------------------------------------

    def attach(self, engine: Any) -> None:
        """Profile ``engine``'s runs from its next STARTED on."""
        if not is_engine(engine):
            raise TypeError(f"Argument engine should be ignite.engine.Engine, but given {type(engine)}")
        if not engine.has_event_handler(self._as_first_started):
            # First at STARTED, so that the other STARTED handlers are timed too;
            # a weak reference to the engine, as add_event_handler stores it.
            self._insert(engine, Events.STARTED, 0, (self._as_first_started, (weakref.ref(engine),), {}))

    def detach(self, engine: Any) -> None:
        """Stop profiling ``engine``: its registry is as it was before ``attach``
        (with the handlers added or removed since)."""
        self._restore(engine, keep_attached=False)

    def get_results(self) -> list[list[Any]]:
        """The profile, as ignite's: a row ``[handler, event name, total, (min,
        index), (max, index), mean, std]`` per handler and event, then a
        ``Total`` row, a ``Processing`` and a ``Dataflow`` row (seconds, rounded
        to 5 digits; a handler never called is "not triggered")."""
        total = round(
            float(
                math.fsum(t for by_name in self.event_handlers_times.values() for ts in by_name.values() for t in ts)
            ),
            5,
        )
        rows: list[list[Any]] = [
            [name, getattr(event, "name", str(event)), *_stats(times)]
            for event, by_name in self.event_handlers_times.items()
            for name, times in by_name.items()
        ]
        rows.append(["Total", "", total, "", "", "", ""])
        rows.append(["Processing", "None", *_stats(self.processing_times)])
        rows.append(["Dataflow", "None", *_stats(self.dataflow_times)])
        return rows

    def write_results(self, output_path: str) -> None:
        """Every recorded duration, as csv: a ``#`` column, ``processing_stats``,
        ``dataflow_stats`` and one ``name (EVENT)`` column per handler; shorter
        columns padded with 0 (ignite's layout, without needing pandas)."""
        headers = ["processing_stats", "dataflow_stats"]
        columns: list[list[float]] = [self.processing_times, self.dataflow_times]
        for event, by_name in self.event_handlers_times.items():
            for name, times in by_name.items():
                headers.append(f"{name} ({getattr(event, 'name', str(event))})")
                columns.append(times)
        length = max(len(c) for c in columns)
        with open(output_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["#", *headers])
            for i in range(length):
                writer.writerow([float(i + 1), *(float(c[i]) if i < len(c) else 0.0 for c in columns)])

    @staticmethod
    def print_results(results: list[list[Any]]) -> None:
        """Print ``get_results()`` as ignite's table."""
        handler_width = max(len(row[0]) for row in results) + 4
        event_width = max(len(row[1]) for row in results) + 4
        widths = [handler_width, event_width] + [14] * 5
        aligns = ["<", "<"] + [">"] * 5
        row_format = "".join("{: " + a + str(w) + "}  " for a, w in zip(aligns, widths))
        separator = "".join("-" * w + "  " for w in widths)
        headers = ["Handler", "Event Name", "Total(s)", "Min(s)/IDX", "Max(s)/IDX", "Mean(s)", "Std(s)"]
        lines = ["", separator, row_format.format(*headers), separator]
        for row in results[:-3]:
            lines.append(row_format.format(*row[:3], "{}/{}".format(*row[3]), "{}/{}".format(*row[4]), *row[5:]))
        lines += [separator, row_format.format(*results[-3]), separator]
        for name, _, total, low, high, mean, std in results[-2:]:
            lines.append(
                f"{name} took total {total}s [min/index: {'{}s/{}'.format(*low)}, "
                f"max/index: {'{}s/{}'.format(*high)}, mean: {mean}s, std: {std}s]"
            )
        print("\n".join(lines) + "\n")
