"""The per-iteration work in pure Python: the specification of the compiled twin.

The compiled twin (``_dispatch_c``) exports the same names, with the same
steps in the same order; everything that runs less than once per iteration is
written once, in ``_driver``, which drives both:

* ``Tables`` - per engine: a slot per registered event, its firing counter, and
  its dispatch table (``None`` when the event has no handler, ``STALE`` after the
  registry changed, else a ``Table``).
* ``Tables.fire(engine, slot, args, kwargs)`` - fire one event: the walk of
  its table.
* ``fire_event(engine, event)`` - ``Engine.fire_event``.
* ``Loop(engine, interruptible)`` - one run's iteration loop:
  ``Loop.iterate()`` runs iterations until the driver has work to do (a flag
  set at a check point, the data's end, the epoch's end, max_iters).

A table is an immutable snapshot of one event's registry list, so handlers may
add or remove handlers (themselves included) while it is being walked: the
firing notices (the table is no longer current) and finishes over the live list
exactly as ignite's loop over that list would.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from ._driver import (
    ENGINE_ONLY,
    EPOCH_END,
    EXHAUSTED,
    MAX_ITERS,
    NO_ARGS,
    NOT_LOOP_TABLES,
    S_GET_BATCH_COMPLETED,
    S_GET_BATCH_STARTED,
    S_INTERRUPT,
    S_ITERATION_COMPLETED,
    S_ITERATION_STARTED,
    SIGNAL,
    SIGNAL_AFTER_ITERATION,
    STALE,
    call,
    call_entries,
    fire_event_overridden,
    fire_through,
    group_records,
    record,
)
from .events import Events, State
from .filters import SCHEDULED, _gate_due_of

if TYPE_CHECKING:
    from ._driver import GroupedRecord, Record
    from ._registry import Entry
    from .engine import Engine

__all__ = ["BACKEND", "Loop", "Tables", "fire_event"]

BACKEND = "pure"

NEVER = math.inf
# SCHEDULED (filters.py): the due-count schedule orders int counts within
# +-SCHEDULED (the compiled twin's int64 arithmetic stays exact there); any
# other count is evaluated against every filter.


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
        "watch_count", "engine_only_handlers",
    )  # fmt: skip

    def __init__(self, entries: list[Entry], records: list[Record], attr: str | None) -> None:
        self.entries = entries  # the registry list this snapshot was taken from
        self.attr = attr
        grouped, groups, shared, positions = group_records(records)
        members = [tuple(grouped[i] for i in m) for m in positions]
        self.records = tuple(grouped)
        self.hot = tuple(r for r in grouped if r[6] < 0)
        self.groups = groups
        self.shared = shared
        self.members = members
        self.heap = [(-NEVER, g) for g in range(len(groups))]  # all due at the first firing
        self.next_due = -NEVER if groups else NEVER
        self.last_count = -NEVER
        # A handler moving the count it reads invalidates this firing's filter results.
        self.watch_count = attr is not None and any(r[1] is not None for r in grouped)
        # The common table: unfiltered handler(engine) calls only, walked without decoding records.
        plain = all(r[6] == -1 and r[2] == ENGINE_ONLY for r in grouped)
        self.engine_only_handlers = tuple(r[0] for r in grouped) if plain else None

    def due_records(self, count: int) -> Sequence[GroupedRecord]:
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


class Tables:
    """Slots, counters and dispatch tables of one engine."""

    __slots__ = (
        "slots", "slot_by_id", "events", "counts", "fired_before", "tables", "last_event", "check_allowed",
        "__weakref__",
    )  # fmt: skip

    def __init__(self) -> None:
        self.slots: dict[Any, int] = {}  # event -> slot (events compare by name)
        self.slot_by_id: dict[int, int] = {}  # id(registered event object) -> slot: no __hash__ call
        self.events: list[Any] = []  # slot -> the event object registered first
        self.counts: list[int] = []  # slot -> firings since the run started
        self.fired_before: set[int] = set()  # slots fired in an earlier run (see fired_ever)
        # slot -> None | STALE | Table (Any: mypy cannot narrow by `is STALE`)
        self.tables: list[Any] = []
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
            if self.counts[slot]:
                self.fired_before.add(slot)
            self.counts[slot] = 0

    def fired_ever(self, slot: int) -> bool:
        """Whether the event of ``slot`` ever fired on this engine: ignite's
        registry then has an entry for it (see Engine.remove_event_handler)."""
        self.check_slot(slot)
        return self.counts[slot] > 0 or slot in self.fired_before

    def build(self, engine: Engine, slot: int) -> Table | None:
        self.check_slot(slot)
        event = self.events[slot]
        entries = dict.get(engine._event_handlers, event)
        table = None
        if entries:
            records = [record(engine, i, entry) for i, entry in enumerate(entries)]
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

    def count(self, engine: Engine, slot: int) -> int:
        """The count filters on this slot read: ignite's state attribute for
        built-in and mapped events, else this engine's own firing counter."""
        self.check_slot(slot)
        attr = State.event_to_attr.get(self.events[slot])
        return self.counts[slot] if attr is None else getattr(engine.state, attr)

    # -- firing (hot) --------------------------------------------------------

    def fire_event(self, engine: Engine, event_name: Any) -> None:
        """Engine.fire_event for an engine on this twin."""
        slot = self.slot_of(event_name)
        if slot is None or self.check_allowed:
            engine._assert_allowed_event(event_name)  # raises, naming the event
            slot = self.slot_of(event_name)  # an event listed by hand is added
            if slot is None:  # a subclass's _assert_allowed_event let it through
                engine._fire_event(event_name)
                return
        if fire_event_overridden(engine):
            engine._fire_event(event_name)
            return
        self.fire(engine, slot)

    def fire(self, engine: Engine, slot: int, event_args: tuple[Any, ...] = (), event_kwargs: Any = None) -> None:
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
        if table.engine_only_handlers is not None and simple:
            for index, handler in enumerate(table.engine_only_handlers):
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
        results: dict[int, bool] | None = None  # shared filter group -> its answer at this firing, made when needed
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
                call(engine, handler, shape, args, kwargs, event_args)
            # The handler changed this event's handlers, or the count the remaining
            # filters read: finish over the live list, as ignite's loop would.
            if tables[slot] is not table or (watch_count and _moved(getattr(engine.state, attr), count)):
                call_entries(engine, table.entries, index + 1, attr, count, event_args, event_kwargs)
                return


def _moved(now: Any, count: Any) -> bool:
    """Whether the count a firing read has changed: the same object is the same count,
    even one not equal to itself (nan), as in the compiled twin (Table.count_moved)."""
    return now is not count and now != count


def fire_event(engine: Engine, event_name: Any) -> None:
    """Fire a (registered) event now, e.g. a custom event from the process function."""
    engine._tables.fire_event(engine, event_name)


# ---------------------------------------------------------------------------
# The iteration loop


_DSI = Events.DATALOADER_STOP_ITERATION


class _HandlerStop(Exception):
    """Carries a handler's StopIteration out of the iteration generator, which
    would otherwise turn it into a RuntimeError (PEP 479)."""


class Loop:
    """One run's iteration loop, driven by ``_driver.run_epoch``.

    ``iterate()`` runs iterations until the driver has work to do and says
    which (``_driver.SIGNAL``, ``EXHAUSTED``, ``EPOCH_END``, ``MAX_ITERS``);
    after SIGNAL or EXHAUSTED, the next call goes on from where it stopped.
    Here that is a ``yield`` of the ``iterations`` generator; the compiled twin
    keeps the same places as numbered phases.  ``iter_counter`` is the epoch's iteration
    counter; ``restarted`` says that the data ended right after the driver
    restarted it, with no batch read in between."""

    __slots__ = ("engine", "tables", "fire_raw", "interruptible", "closed", "iter_counter", "restarted", "steps")

    def __init__(self, engine: Engine, interruptible: bool = True) -> None:
        # The loop fires its events by slot number: the tables must be this
        # twin's and hold them (the compiled loop indexes them unchecked).
        tables = engine._tables
        if type(tables) is not Tables or not S_INTERRUPT < len(tables.events) == len(tables.tables):
            raise RuntimeError(NOT_LOOP_TABLES.format(tables=tables))
        self.engine = engine
        self.tables = tables
        # A subclass's _fire_event sees every firing, as in ignite.
        self.fire_raw: Callable[..., None] = fire_through(engine) if fire_event_overridden(engine) else tables.fire
        self.interruptible = interruptible
        self.closed = False  # set by the driver when close() reached the run at its yield
        self.iter_counter: Any = 0
        self.restarted = False
        self.steps: Generator[tuple[int, Any, bool], None, None] | None = None

    def fire(self, slot: int, event_args: tuple[Any, ...] = (), event_kwargs: Any = None) -> None:
        """Fire one of the loop's events (slots 0..S_INTERRUPT only, as the compiled twin)."""
        if not 0 <= slot <= S_INTERRUPT:
            raise IndexError(f"slot should be a loop event's, 0..{S_INTERRUPT}, got {slot}")
        self.fire_raw(self.engine, slot, event_args, event_kwargs)

    def start_epoch(self, init_iter: Any) -> None:
        """An epoch starts, at iteration ``init_iter`` of it (a resume) or 0."""
        self.iter_counter = 0 if init_iter is None else init_iter
        self.restarted = False
        self.steps = iterations(self.engine, self.tables, self.fire_raw, self.iter_counter)

    def iterate(self) -> int:
        try:
            # The driver calls start_epoch first (steps is None only before it).
            status, self.iter_counter, self.restarted = next(self.steps)  # type: ignore[arg-type]
        except _HandlerStop as stop:
            raise stop.args[0] from None
        return status


def iterations(
    engine: Engine, tables: Tables, fire: Callable[..., None], iter_counter: Any
) -> Generator[tuple[int, Any, bool], None, None]:
    """The iterations of one epoch, as a generator that yields where
    ``Loop.iterate`` returns: ``(status, iter_counter, restarted)``; the driver
    resumes it.  (It holds no reference to its Loop: a run ended with the
    generator suspended leaves no cycle to collect.)"""
    restarted = False
    try:
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
                            yield SIGNAL, iter_counter, restarted
                # run_epoch refuses to start an epoch without a data iterator.
                engine.state.batch = next(engine._dataloader_iter)  # type: ignore[arg-type]
                engine.state.output = None
                if engine.state.dataloader is not None:
                    fire(engine, S_GET_BATCH_COMPLETED)
                    if engine._signal:
                        yield SIGNAL, iter_counter, restarted
            except StopIteration:
                # The data ended (or a GET_BATCH_* handler said so): the driver
                # restarts it and resumes here, or ends the epoch.
                yield EXHAUSTED, iter_counter, restarted
                restarted = True
                continue
            iter_counter += 1
            restarted = False
            engine.state.iteration += 1
            fire(engine, S_ITERATION_STARTED)
            if engine._signal:
                yield SIGNAL, iter_counter, restarted
            engine.state.output = engine._process_function(engine, engine.state.batch)
            fire(engine, S_ITERATION_COMPLETED)
            if engine._signal:
                yield SIGNAL_AFTER_ITERATION, iter_counter, restarted
            state = engine.state
            if state.epoch_length is not None and iter_counter == state.epoch_length:
                yield EPOCH_END, iter_counter, restarted
                return
            if state.max_iters is not None and state.iteration == state.max_iters:
                yield MAX_ITERS, iter_counter, restarted
                return
    except StopIteration as stop:
        # A handler's StopIteration anywhere else ends the run as any exception
        # does; a generator must not let one out (PEP 479).
        raise _HandlerStop(stop) from None
