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

import heapq
import math
import operator
import time
import warnings
import weakref
from typing import Any

from ._registry import FilteredHandler
from .events import Events, State
from .filters import SCHEDULED, _gate_due_of, is_gated, is_opaque, key_of

__all__ = ["BACKEND", "STALE", "Tables", "run_as_gen"]

BACKEND = "pure"

NEVER = math.inf
# SCHEDULED (filters.py): the due-count schedule orders int counts within
# +-SCHEDULED (the compiled twin's int64 arithmetic stays exact there); any
# other count is evaluated against every filter.

# How a record calls its handler ("shape"), decided once when the table is built.
NO_ARGS = 0  # handler()
ENGINE_ONLY = 1  # handler(engine)
PLAIN = 2  # handler(*event_args, *args, **kwargs)
ENGINE = 3  # handler(engine, *event_args, *args, **kwargs)
WEAKREF = 4  # args[0] is a weak reference other than to this engine: resolved per call


class _Stale:
    """Marks a table to rebuild at the event's next firing."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STALE"


STALE = _Stale()


class Table:
    """One event's handlers, ready to call.

    ``records`` are all handlers in registration order, each
    ``(handler, filter, shape, args, kwargs, index, group)``.  ``group`` is -1 for
    no filter, -2 for a filter evaluated at every firing (time or user code), or
    the handler's filter group: records with equal count filters share a group,
    evaluated once per firing, and a gated opaque filter has a group of its own.

    ``heap`` holds ``(due, group)``: the count from which each group can pass.
    While ``last_count < count < next_due`` (the heap's least due) no group can,
    and a firing walks ``hot`` (the -1 and -2 records) only.
    """

    __slots__ = (
        "entries", "records", "hot", "groups", "shared", "members", "heap", "next_due", "last_count", "attr",
        "watch_count", "engine_only",
    )  # fmt: skip

    def __init__(self, entries: list, records: list, attr: str | None) -> None:
        self.entries = entries  # the registry list this snapshot was taken from
        self.attr = attr
        records, groups, shared, members = group_records(records)
        members = [tuple(records[i] for i in m) for m in members]
        self.records = tuple(records)
        self.hot = tuple(r for r in records if r[6] < 0)
        self.groups = groups
        self.shared = shared
        self.members = members
        self.heap = [(-NEVER, g) for g in range(len(groups))]  # all due at the first firing
        self.next_due = -NEVER if groups else NEVER
        self.last_count = -NEVER
        # A handler moving the count it reads invalidates this firing's filter results.
        self.watch_count = attr is not None and any(r[1] is not None for r in records)
        # The common table: unfiltered handler(engine) calls only, walked without decoding records.
        plain = all(r[6] == -1 and r[2] == ENGINE_ONLY for r in records)
        self.engine_only = tuple(r[0] for r in records) if plain else None

    def due_records(self, count: int) -> tuple | list:
        """The records to walk at a firing on ``count`` at or past ``next_due``
        (or on a count that did not move forward); reschedules the due groups."""
        heap = self.heap
        if count > self.last_count:
            due = []
            while heap and heap[0][0] <= count:
                due.append(heapq.heappop(heap)[1])
        else:  # the count went back or repeated: every group may pass again
            due = list(range(len(self.groups)))
            heap.clear()
        self.last_count = count
        groups = self.groups
        for group in due:
            # _gate_due_of, not gate_due: a user's filter may return nan, None...;
            # the heap gets what the compiled twin's gets (an int, or +-NEVER) or
            # the same TypeError.
            heapq.heappush(heap, (_gate_due_of(groups[group], count), group))
        self.next_due = heap[0][0] if heap else NEVER
        if not due:
            return self.hot
        if len(due) == 1 and not self.hot:
            return self.members[due[0]]
        selected = list(self.hot)
        for group in due:
            selected.extend(self.members[group])
        selected.sort(key=_record_index)
        return selected


_record_index = operator.itemgetter(5)


def group_records(records: list) -> tuple[list, list, list, list]:
    """Give each record ``(handler, filter, shape, args, kwargs, index)`` its
    group (see Table), shared by both twins.  Returns the records with their
    group appended, each group's filter (its first record's), whether the group
    is shared (one evaluation per firing for all its records), and each
    group's record positions."""
    grouped: list = []
    groups: list = []
    shared: list = []
    members: list = []
    by_key: dict = {}
    for handler, event_filter, shape, args, kwargs, index in records:
        if event_filter is None:
            group = -1
        elif not is_gated(event_filter):
            group = -2
        else:
            key = None if is_opaque(event_filter) else key_of(event_filter)
            group = by_key.get(key) if key is not None else None
            if group is None:
                group = len(groups)
                groups.append(event_filter)
                shared.append(key is not None)
                members.append([])
                if key is not None:
                    by_key[key] = group
        if group >= 0:
            members[group].append(len(grouped))
        grouped.append((handler, event_filter, shape, args, kwargs, index, group))
    return grouped, groups, shared, members


def _record(engine: Any, index: int, entry: tuple) -> tuple:
    handler, args, kwargs = entry
    event_filter = None
    # A filtered entry made for another engine (a deepcopy's entries, or ones
    # moved between registries) stays opaque: its filter reads the count of the
    # engine it was made for, as ignite's wrapper, a closure over that engine, does.
    if type(handler) is FilteredHandler and handler._engine() is engine:
        event_filter = handler.filter
        handler = handler.handler
    if args and isinstance(args[0], weakref.ref):
        if args[0]() is not engine:
            return (handler, event_filter, WEAKREF, args, kwargs, index)
        args = args[1:]
        shape = ENGINE if args or kwargs else ENGINE_ONLY
    else:
        shape = PLAIN if args or kwargs else NO_ARGS
    return (handler, event_filter, shape, args, kwargs, index)


def _call(engine: Any, handler: Any, shape: int, args: tuple, kwargs: dict, event_args: tuple) -> None:
    if shape == ENGINE or shape == ENGINE_ONLY:
        handler(engine, *event_args, *args, **kwargs)
    elif shape == PLAIN or shape == NO_ARGS:
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
        if type(handler) is FilteredHandler and handler._engine() is engine:  # see _record
            if attr is not None:
                count = getattr(engine.state, attr)
            if not handler.filter(engine, count):
                continue
            handler = handler.handler
        _call(engine, handler, WEAKREF if args and isinstance(args[0], weakref.ref) else PLAIN, args, kwargs, event_args)


class Tables:
    """Slots, counters and dispatch tables of one engine."""

    __slots__ = ("slots", "slot_by_id", "events", "counts", "tables", "last_event", "check_allowed", "__weakref__")

    def __init__(self) -> None:
        self.slots: dict = {}  # event -> slot (events compare by name)
        self.slot_by_id: dict = {}  # id(registered event object) -> slot: no __hash__ call
        self.events: list = []  # slot -> the event object registered first
        self.counts: list = []  # slot -> firings since the run started
        self.tables: list = []  # slot -> None | STALE | Table
        self.last_event: Any = None  # engine.last_event_name
        self.check_allowed = False  # fire_event checks engine._allowed_events (edited by hand)

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
        self.check_slot(slot)
        event = self.events[slot]
        entries = dict.get(engine._event_handlers, event)
        table = None
        if entries:
            records = [_record(engine, i, entry) for i, entry in enumerate(entries)]
            table = Table(entries, records, State.event_to_attr.get(event))
        self.tables[slot] = table
        return table

    def check_slot(self, slot: int) -> None:
        # Python's lists would take a negative slot from the end; the compiled
        # twin's C arrays take none: both refuse it alike.
        if not 0 <= slot < len(self.counts):
            raise IndexError(f"slot should be within 0..{len(self.counts) - 1}, got {slot}")

    def firings(self, slot: int) -> int:
        """How many times the event of ``slot`` fired since the run started."""
        self.check_slot(slot)
        return self.counts[slot]

    def set_firings(self, slot: int, count: int) -> None:
        """Set a firing counter (load_state_dict): 0 <= count < 2**62, as the
        compiled twin's int64 counters and its schedule hold it."""
        self.check_slot(slot)
        if type(count) is not int or not 0 <= count < SCHEDULED:
            raise ValueError(f"count should be an int from 0 to 2**62 - 1, got {count!r}")
        self.counts[slot] = count

    def count(self, engine: Any, slot: int) -> int:
        """The count filters on this slot read: ignite's state attribute for
        built-in and mapped events, else this engine's own firing counter."""
        self.check_slot(slot)
        attr = State.event_to_attr.get(self.events[slot])
        return self.counts[slot] if attr is None else getattr(engine.state, attr)

    # -- firing (hot) --------------------------------------------------------

    def fire_event(self, engine: Any, event_name: Any) -> None:
        """Engine.fire_event for an engine on this twin."""
        slot = self.slot_of(event_name)
        if slot is None or self.check_allowed:
            engine._assert_allowed_event(event_name)  # raises, naming the event
            slot = self.slot_of(event_name)  # an event listed by hand is added
            if slot is None:  # a subclass's _assert_allowed_event let it through
                engine._fire_event(event_name)
                return
        if engine._fire_event_overridden:
            engine._fire_event(event_name)
            return
        self.fire(engine, slot)

    def fire(self, engine: Any, slot: int, event_args: tuple = (), event_kwargs: Any = None) -> None:
        if slot < 0:  # a larger slot raises IndexError below, as check_slot would
            self.check_slot(slot)
        self.last_event = self.events[slot]
        counts = self.counts
        counts[slot] += 1
        tables = self.tables
        table = tables[slot]
        if table is None:
            return
        if table is STALE:
            table = self.build(engine, slot)
            if table is None:
                return
        attr = table.attr
        simple = not event_args and not event_kwargs
        if table.engine_only is not None and simple:
            for index, handler in enumerate(table.engine_only):
                handler(engine)
                if tables[slot] is not table:
                    count = counts[slot] if attr is None else getattr(engine.state, attr)
                    call_entries(engine, table.entries, index + 1, attr, count, event_args, event_kwargs)
                    return
            return
        count = counts[slot] if attr is None else getattr(engine.state, attr)
        if type(count) is not int or not -SCHEDULED < count < SCHEDULED:
            # A count the schedule cannot order (a handler may store anything in
            # the state): every filter is evaluated, the schedule left alone.
            records = table.records
        elif table.last_count < count < table.next_due:
            records = table.hot
            if not records:
                return  # nothing can be due: the common case of filtered handlers
        else:
            records = table.due_records(count)
        shared = table.shared
        results = None  # shared filter group -> its answer at this firing, made when needed
        watch_count = table.watch_count
        for handler, event_filter, shape, args, kwargs, index, group in records:
            if group != -1:
                if group >= 0 and shared[group]:
                    if results is None:
                        results = {}
                    passed = results.get(group)
                    if passed is None:
                        # Its truth, as the compiled twin keeps it: a filter answering
                        # None (or any falsy value) is not evaluated again for the group.
                        passed = results[group] = True if event_filter(engine, count) else False
                else:
                    passed = event_filter(engine, count)
                if not passed:
                    continue
            if simple and shape == ENGINE_ONLY:
                handler(engine)
            elif simple and shape == NO_ARGS:
                handler()
            else:
                if event_kwargs:
                    kwargs.update(event_kwargs)
                _call(engine, handler, shape, args, kwargs, event_args)
            # The handler changed this event's handlers, or the count the remaining
            # filters read: finish over the live list, as ignite's loop would.
            if tables[slot] is not table or (watch_count and _moved(getattr(engine.state, attr), count)):
                call_entries(engine, table.entries, index + 1, attr, count, event_args, event_kwargs)
                return


def _moved(now: Any, count: Any) -> bool:
    """Whether the count a firing read has changed: the same object is the same count,
    even one not equal to itself (nan), as in the compiled twin (Table.count_moved)."""
    return now is not count and now != count


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


_EPOCH_COMPLETED = Events.EPOCH_COMPLETED.name  # keys of state.times
_COMPLETED = Events.COMPLETED.name


def _fire_timed(engine: Any, fire: Any, slot: int, times_key: str, elapsed: float) -> float:
    """Fire, adding the handlers' time to ``elapsed`` (kept in state.times, as in ignite)."""
    start = time.time()
    fire(engine, slot)
    elapsed += time.time() - start
    engine.state.times[times_key] = elapsed
    return elapsed


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
        try:
            yield engine.state
        except GeneratorExit:
            # close() of the suspended run, not a GeneratorExit from a handler
            # (which goes to EXCEPTION_RAISED, as in ignite): run_as_gen tells
            # the two apart by this mark.
            engine._run_closed = True
            raise


NOT_LOOP_TABLES = (
    "engine._tables should be the dispatch tables the engine was built with (its loop events "
    "registered), got {tables!r}; build a new Engine instead of replacing them"
)


def loop_tables(engine: Any) -> Tables:
    """engine._tables, if they are this twin's and hold the loop's events: a
    run fires those by slot number (the compiled loop without bounds checks)."""
    tables = engine._tables
    if type(tables) is not Tables or not S_INTERRUPT < len(tables.events) == len(tables.tables):
        raise RuntimeError(NOT_LOOP_TABLES.format(tables=tables))
    return tables


def run_as_gen(engine: Any, interruptible: bool = True) -> Any:
    """ignite's run: STARTED, epochs until done or terminated, COMPLETED."""
    tables = loop_tables(engine)
    fire = _fire_through(engine) if engine._fire_event_overridden else tables.fire
    engine.should_terminate = engine.should_terminate_single_epoch = engine.should_interrupt = False
    times = engine.state.times
    times[_EPOCH_COMPLETED] = 0.0
    times[_COMPLETED] = 0.0
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
                engine.state.times[_EPOCH_COMPLETED] = epoch_time
                if engine.should_terminate_single_epoch != "skip_epoch_completed":
                    epoch_time = _fire_timed(engine, fire, S_EPOCH_COMPLETED, _EPOCH_COMPLETED, epoch_time)
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
        engine.state.times[_COMPLETED] = time_taken
        if engine.should_terminate != "skip_completed":
            time_taken = _fire_timed(engine, fire, S_COMPLETED, _COMPLETED, time_taken)
        engine.logger.info("Engine run finished. Time taken: %s", _hours_mins_secs(time_taken))
    except BaseException as e:
        engine._dataloader_iter = None
        if type(e) is GeneratorExit and getattr(engine, "_run_closed", False):
            # An interrupted run closed (its engine being discarded): nothing to report.
            engine._run_closed = False
            raise
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
        tables = engine._tables  # an engine's tables never change
        while True:
            engine.state.batch = None
            try:
                # Right after DATALOADER_STOP_ITERATION the restarted data is read
                # without a second GET_BATCH_STARTED, as in ignite.
                last = tables.last_event  # engine.last_event_name, without the property
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
