"""The hot path in pure Python: dispatch tables, firing counters, the run loop.

This module is the readable reference of the backend interface; the compiled
twin implements the same names with the same behaviour:

* ``Tables`` - per engine: a slot per registered event, its firing counter, and
  its dispatch table (``None`` when the event has no handler, ``STALE`` after the
  registry changed, else a ``Table``).
* ``Tables.fire(engine, slot, args, kwargs)`` - fire one event.
* ``run_as_gen(engine, interruptible)`` - the whole run (ignite's epoch and
  iteration loops) as a generator that yields the state when interrupted.

A table is an immutable snapshot of one event's registry list, so handlers may
add or remove handlers (themselves included) while it is being walked: the
firing notices (the table is no longer current) and finishes over the live list
exactly as ignite's loop over that list would.
"""

from __future__ import annotations

import math
import time
import warnings
import weakref
from typing import Any

from ._registry import FilteredHandler
from .events import Events, State
from .filters import EventFilter

__all__ = ["BACKEND", "STALE", "Tables", "run_as_gen"]

BACKEND = "pure"

NEVER = math.inf

# How a record passes its arguments.
PLAIN = 0  # handler(*event_args, *args, **kwargs)
ENGINE = 1  # handler(engine, *event_args, *args, **kwargs)
WEAKREF = 2  # args[0] is a weak reference other than to this engine: resolved per call


class _Stale:
    """Marks a table to rebuild at the event's next firing."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STALE"


STALE = _Stale()


class Table:
    """One event's handlers, ready to call.

    ``records`` are all handlers in registration order; ``hot`` those that must be
    looked at on every firing (unfiltered, or filtered by something other than the
    count).  Between ``last_count`` and ``next_due`` no count-based filter can pass,
    so a firing there walks ``hot`` only.
    """

    __slots__ = ("entries", "records", "hot", "scheduled", "attr", "last_count", "next_due")

    def __init__(self, entries: list, records: tuple, attr: str | None) -> None:
        self.entries = entries  # the registry list this snapshot was taken from
        self.records = records
        self.hot = tuple(r for r in records if r[2] is None or _is_opaque(r[2]))
        self.scheduled = tuple(r[2] for r in records if r[2] is not None and not _is_opaque(r[2]))
        self.attr = attr
        self.last_count = -NEVER
        self.next_due = -NEVER


def _is_opaque(f: Any) -> bool:
    return not isinstance(f, EventFilter) or f.opaque


def _record(engine: Any, index: int, entry: tuple) -> tuple:
    handler, args, kwargs = entry
    event_filter = None
    if type(handler) is FilteredHandler:
        event_filter = handler.filter
        handler = handler.handler
    mode = PLAIN
    if args and isinstance(args[0], weakref.ref):
        if args[0]() is engine:
            mode, args = ENGINE, args[1:]
        else:
            mode = WEAKREF
    return (index, handler, event_filter, mode, args, kwargs)


def _call(engine: Any, handler: Any, mode: int, args: tuple, kwargs: dict, event_args: tuple) -> None:
    if mode == ENGINE:
        handler(engine, *event_args, *args, **kwargs)
    elif mode == PLAIN:
        handler(*event_args, *args, **kwargs)
    else:
        target = args[0]()
        if target is None:
            raise RuntimeError("Engine reference not resolved. Cannot execute event handler.")
        handler(target, *event_args, *args[1:], **kwargs)


def call_entries(
    engine: Any, entries: list, start: int, attr: str | None, count: int, event_args: tuple, event_kwargs: Any
) -> None:
    """Walk a live registry list from ``start`` the way ignite does: the list may
    grow or shrink under the walk, and filters read the count afresh each time."""
    i = start
    while i < len(entries):
        handler, args, kwargs = entries[i]
        i += 1
        if event_kwargs:
            kwargs.update(event_kwargs)
        if type(handler) is FilteredHandler:
            if attr is not None:
                count = getattr(engine.state, attr)
            if not handler.filter(engine, count):
                continue
            handler = handler.handler
        mode = PLAIN
        if args and isinstance(args[0], weakref.ref):
            mode = WEAKREF
        _call(engine, handler, mode, args, kwargs, event_args)


class Tables:
    """Slots, counters and dispatch tables of one engine."""

    __slots__ = ("slots", "slot_by_id", "events", "counts", "tables", "__weakref__")

    def __init__(self) -> None:
        self.slots: dict = {}  # event -> slot (events compare by name)
        self.slot_by_id: dict = {}  # id(registered event object) -> slot: no __hash__ call
        self.events: list = []  # slot -> the event object registered first
        self.counts: list = []  # slot -> firings since the run started
        self.tables: list = []  # slot -> None | STALE | Table

    # -- registration (cold) -------------------------------------------------

    def add_event(self, event: Any) -> int:
        slot = self.slots.get(event)
        if slot is None:
            slot = len(self.events)
            self.slots[event] = slot
            self.events.append(event)
            self.counts.append(0)
            self.tables.append(STALE)
        self.slot_by_id[id(event)] = slot
        return slot

    def slot_of(self, event: Any) -> int | None:
        slot = self.slot_by_id.get(id(event))
        if slot is None:
            slot = self.slots.get(event)
        return slot

    def invalidate(self, event: Any) -> None:
        slot = self.slots.get(event)
        if slot is not None:
            self.tables[slot] = STALE

    def invalidate_all(self) -> None:
        for slot in range(len(self.tables)):
            self.tables[slot] = STALE

    def reset_counts(self) -> None:
        for slot in range(len(self.counts)):
            self.counts[slot] = 0

    def build(self, engine: Any, slot: int) -> Table | None:
        event = self.events[slot]
        entries = dict.get(engine._event_handlers, event)
        table = None
        if entries:
            records = tuple(_record(engine, i, entry) for i, entry in enumerate(entries))
            table = Table(entries, records, State.event_to_attr.get(event))
        self.tables[slot] = table
        return table

    def count(self, engine: Any, slot: int) -> int:
        """The count filters on this slot read: ignite's state attribute for
        built-in and mapped events, else this engine's own firing counter."""
        attr = State.event_to_attr.get(self.events[slot])
        return self.counts[slot] if attr is None else getattr(engine.state, attr)

    # -- firing (hot) --------------------------------------------------------

    def fire(self, engine: Any, slot: int, event_args: tuple = (), event_kwargs: Any = None) -> None:
        engine.last_event_name = self.events[slot]
        counts = self.counts
        counts[slot] += 1
        table = self.tables[slot]
        if table is None:
            return
        if table is STALE:
            table = self.build(engine, slot)
            if table is None:
                return
        attr = table.attr
        count = counts[slot] if attr is None else getattr(engine.state, attr)
        if table.last_count < count < table.next_due:
            records = table.hot
        else:
            records = table.records
            table.last_count = count
            table.next_due = min([f.next_due(count) for f in table.scheduled], default=NEVER)
        for index, handler, event_filter, mode, args, kwargs in records:
            if event_filter is not None and not event_filter(engine, count):
                continue
            if event_kwargs:
                kwargs.update(event_kwargs)
            _call(engine, handler, mode, args, kwargs, event_args)
            # The handler may have changed this event's handlers, or the counter the
            # remaining filters read: finish over the live list, as ignite would.
            if self.tables[slot] is not table or (attr is not None and getattr(engine.state, attr) != count):
                call_entries(engine, table.entries, index + 1, attr, count, event_args, event_kwargs)
                return


# ---------------------------------------------------------------------------
# The run loop


class TerminateRun(Exception):
    """Raised inside the loop when terminate() was asked for (or max_iters hit)."""


class TerminateEpoch(Exception):
    """Raised inside the loop when terminate_epoch() was asked for."""


S_EPOCH_STARTED = 0
S_EPOCH_COMPLETED = 1
S_STARTED = 2
S_COMPLETED = 3
S_ITERATION_STARTED = 4
S_ITERATION_COMPLETED = 5
S_EXCEPTION_RAISED = 6
S_GET_BATCH_STARTED = 7
S_GET_BATCH_COMPLETED = 8
S_DATALOADER_STOP_ITERATION = 9
S_TERMINATE = 10
S_TERMINATE_SINGLE_EPOCH = 11
S_INTERRUPT = 12
assert [e.name for e in Events] == [
    "EPOCH_STARTED", "EPOCH_COMPLETED", "STARTED", "COMPLETED", "ITERATION_STARTED", "ITERATION_COMPLETED",
    "EXCEPTION_RAISED", "GET_BATCH_STARTED", "GET_BATCH_COMPLETED", "DATALOADER_STOP_ITERATION", "TERMINATE",
    "TERMINATE_SINGLE_EPOCH", "INTERRUPT",
]  # fmt: skip

_DSI = Events.DATALOADER_STOP_ITERATION


def _hours_mins_secs(seconds: float) -> str:
    mins, secs = divmod(seconds, 60)
    hours, mins = divmod(mins, 60)
    return f"{int(hours):02d}:{int(mins):02d}:{secs:06.3f}"


def _on_signal(engine: Any, fire: Any, interruptible: bool) -> Any:
    """What a set flag means at a check point: stop the run, stop the epoch, or
    (interrupt) hand the state back to run()'s caller until the next run()."""
    if engine.should_terminate:
        raise TerminateRun()
    if engine.should_terminate_single_epoch:
        raise TerminateEpoch()
    if interruptible and engine.should_interrupt:
        fire(engine, S_INTERRUPT)
        engine.should_interrupt = False
        yield engine.state


def run_as_gen(engine: Any, interruptible: bool = True) -> Any:
    """ignite's run: STARTED, epochs until done or terminated, COMPLETED."""
    tables = engine._tables
    # A subclass overriding _fire_event sees every firing, as in ignite.
    overridden = not getattr(type(engine)._fire_event, "_fastignite_base", False)
    fire = _fire_through(engine) if overridden else tables.fire
    engine.should_terminate = engine.should_terminate_single_epoch = engine.should_interrupt = False
    times = engine.state.times
    times[Events.EPOCH_COMPLETED.name] = 0.0
    times[Events.COMPLETED.name] = 0.0
    start_time = time.time()
    try:
        try:
            fire(engine, S_STARTED)
            if engine._signal:
                yield from _on_signal(engine, fire, interruptible)
            while not engine._is_done(engine.state) and not engine.should_terminate:
                engine.state.epoch += 1
                handlers_start = time.time()
                fire(engine, S_EPOCH_STARTED)
                epoch_time = time.time() - handlers_start
                if engine._signal:
                    yield from _on_signal(engine, fire, interruptible)
                if engine._dataloader_iter is None:
                    engine._setup_engine()
                epoch_time += yield from _run_epoch(engine, fire, interruptible)
                engine.state.times[Events.EPOCH_COMPLETED.name] = epoch_time
                if engine.should_terminate_single_epoch != "skip_epoch_completed":
                    handlers_start = time.time()
                    fire(engine, S_EPOCH_COMPLETED)
                    epoch_time += time.time() - handlers_start
                    engine.state.times[Events.EPOCH_COMPLETED.name] = epoch_time
                if engine.should_terminate_single_epoch:
                    engine.should_terminate_single_epoch = False
                if engine._signal:
                    yield from _on_signal(engine, fire, interruptible)
                engine.logger.info("Epoch[%s] Complete. Time taken: %s", engine.state.epoch, _hours_mins_secs(epoch_time))
        except TerminateRun:
            fire(engine, S_TERMINATE)
        except TerminateEpoch:
            raise RuntimeError(
                "The method terminate_epoch() should not be called on Event.STARTED or Event.EPOCH_STARTED. "
                "If this is a desired behaviour, please open a feature request on "
                "https://github.com/pytorch/ignite/issues/new/choose"
            ) from None
        time_taken = time.time() - start_time
        engine.state.times[Events.COMPLETED.name] = time_taken
        if engine.should_terminate != "skip_completed":
            handlers_start = time.time()
            fire(engine, S_COMPLETED)
            time_taken += time.time() - handlers_start
            engine.state.times[Events.COMPLETED.name] = time_taken
        engine.logger.info("Engine run finished. Time taken: %s", _hours_mins_secs(time_taken))
    except GeneratorExit:
        # An interrupted run whose engine is being discarded: nothing to report.
        engine._dataloader_iter = None
        raise
    except BaseException as e:
        engine._dataloader_iter = None
        engine.logger.error("Engine run is terminating due to exception: %s", e)
        engine._handle_exception(e)
    engine._dataloader_iter = None
    return engine.state


def _run_epoch(engine: Any, fire: Any, interruptible: bool) -> Any:
    """One epoch of iterations; returns the time it took.  Ends at epoch_length
    iterations, at the data's end (which, for data of unknown length, fixes
    epoch_length), at max_iters, or on a flag."""
    start_time = time.time()
    iter_counter = 0 if engine._init_iter is None else engine._init_iter
    engine._init_iter = None
    should_exit = False
    try:
        if engine._dataloader_iter is None:
            raise RuntimeError("Internal error, the data iterator is None at the start of an epoch; please report it.")
        while True:
            engine.state.batch = None
            try:
                # Right after DATALOADER_STOP_ITERATION the restarted data is read
                # without a second GET_BATCH_STARTED, as in ignite.
                last = engine.last_event_name
                if last is not _DSI and (type(last) is Events or last != _DSI):
                    if engine.state.dataloader is not None:
                        fire(engine, S_GET_BATCH_STARTED)
                        if engine._signal:
                            yield from _on_signal(engine, fire, interruptible)
                engine.state.batch = next(engine._dataloader_iter)
                engine.state.output = None
                if engine.state.dataloader is not None:
                    fire(engine, S_GET_BATCH_COMPLETED)
                    if engine._signal:
                        yield from _on_signal(engine, fire, interruptible)
                iter_counter += 1
                should_exit = False
            except StopIteration:
                state = engine.state
                if state.epoch_length is None:
                    # Data of unknown length: its first end fixes the epoch length.
                    state.epoch_length = iter_counter
                    if state.max_iters is not None:
                        state.max_epochs = math.ceil(state.max_iters / state.epoch_length)
                    break
                if should_exit:
                    # Restarting the data gave nothing either.
                    if not engine._is_done(state):
                        total = state.epoch_length * state.max_epochs if state.max_epochs is not None else state.max_iters
                        warnings.warn(
                            "Data iterator can not provide data anymore but required total number of "
                            "iterations to run is not reached. "
                            f"Current iteration: {state.iteration} vs Total iterations to run : {total}"
                        )
                    break
                if state.dataloader is not None:
                    fire(engine, S_DATALOADER_STOP_ITERATION)
                    if engine._signal:
                        yield from _on_signal(engine, fire, interruptible)
                engine._setup_dataloader_iter()
                should_exit = True
                continue

            engine.state.iteration += 1
            fire(engine, S_ITERATION_STARTED)
            if engine._signal:
                yield from _on_signal(engine, fire, interruptible)
            engine.state.output = engine._process_function(engine, engine.state.batch)
            fire(engine, S_ITERATION_COMPLETED)
            if engine._signal:
                yield from _on_signal(engine, fire, interruptible)

            state = engine.state
            if state.epoch_length is not None and iter_counter == state.epoch_length:
                break
            if state.max_iters is not None and state.iteration == state.max_iters:
                engine.should_terminate = True
                raise TerminateRun()
    except TerminateEpoch:
        fire(engine, S_TERMINATE_SINGLE_EPOCH, (), {"iter_counter": iter_counter})
        engine._setup_dataloader_iter()
    except TerminateRun:
        raise
    except Exception as e:
        engine.logger.error("Current run is terminating due to exception: %s", e)
        engine._handle_exception(e)
    return time.time() - start_time


def _fire_through(engine: Any) -> Any:
    """For an Engine subclass that overrides ``_fire_event``: every firing goes
    through the override, as in ignite."""
    events = engine._tables.events

    def fire(engine: Any, slot: int, event_args: tuple = (), event_kwargs: Any = None) -> None:
        engine._fire_event(events[slot], *event_args, **(event_kwargs or {}))

    return fire
