"""The run, written once: everything either twin does less than once per iteration.

A backend twin (``_dispatch_py`` or the compiled ``_dispatch_c``) implements
only the per-iteration work: the walk of one firing's handler table
(``Tables.fire``) and the iteration loop of one epoch (``Loop.iterate``).
This module drives them, and holds what both build their tables from:

* ``run_as_gen`` / ``run_epoch`` - ignite's run: STARTED, the epochs,
  TERMINATE, COMPLETED, interrupt and resume, exception handling, and what
  happens when the data ends;
* ``record`` / ``group_records`` - a registry entry as a table's record, and
  the grouping of records by filter;
* ``call_entries`` - ignite's walk over a live registry list, where a firing
  ends after a handler changed the registry;
* ``fire_event_overridden`` / ``fire_through`` - an Engine subclass that
  overrides ``_fire_event`` sees every firing;
* the numbers both twins share: loop-event slots, record shapes, what
  ``Loop.iterate`` returns.

Neither twin owns this module; the compiled one imports it and never the pure
one, so the twin comparison tests two implementations of the kernels against
one driver.
"""

from __future__ import annotations

import math
import time
import warnings
import weakref
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._backend import LoopLike
    from ._registry import Entry
    from .engine import Engine
    from .events import State
    from .filters import FilterCallable

    # A table's record of a registry entry: (handler, filter, shape, args, kwargs, index).
    Record = tuple[Callable[..., Any], FilterCallable | None, int, tuple[Any, ...], dict[str, Any], int]
    # A record with its filter group appended (see group_records).
    GroupedRecord = tuple[Callable[..., Any], FilterCallable | None, int, tuple[Any, ...], dict[str, Any], int, int]

from . import distributed
from ._registry import FilteredHandler
from .events import Events
from .filters import is_gated, is_opaque, key_of

__all__ = [
    "STALE", "TerminateEpoch", "TerminateRun", "call_entries", "fire_event_overridden", "fire_through",
    "group_records", "record", "run_as_gen",
]  # fmt: skip


class _Stale:
    """Marks a table to rebuild at the event's next firing."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STALE"


STALE = _Stale()


class TerminateRun(Exception):
    """Raised inside the run when terminate() was asked for (or max_iters hit)."""


class TerminateEpoch(Exception):
    """Raised inside the run when terminate_epoch() was asked for."""


# -- numbers both twins use -------------------------------------------------------
# The compiled twin declares them as C constants and checks them against these
# at import (an ImportError, not an assert that -O would drop).

# The loop's events, by slot: every engine registers Events first, in this order.
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
LOOP_SLOTS = {name: value for name, value in globals().items() if name.startswith("S_")}
if [f"S_{e.name}" for e in Events] != sorted(LOOP_SLOTS, key=LOOP_SLOTS.__getitem__):
    raise ImportError("fastignite: Events and the loop's slot numbers (_driver.S_*) disagree")

# How a record calls its handler ("shape"), decided once when the table is built.
NO_ARGS = 0  # handler()
ENGINE_ONLY = 1  # handler(engine)
PLAIN = 2  # handler(*event_args, *args, **kwargs)
ENGINE = 3  # handler(engine, *event_args, *args, **kwargs)
WEAKREF = 4  # args[0] is a weak reference other than to this engine: resolved per call

# What Loop.iterate returns to run_epoch.
SIGNAL = 1  # a check point saw a flag set: on_signal, then iterate again (it resumes where it stopped)
EXHAUSTED = 2  # the data ended, or a GET_BATCH_* handler raised StopIteration
EPOCH_END = 3  # epoch_length iterations done
MAX_ITERS = 4  # state.iteration reached max_iters
SIGNAL_AFTER_ITERATION = 5  # SIGNAL at the check after ITERATION_COMPLETED (where ranks agree on stops)

NOT_LOOP_TABLES = (
    "engine._tables should be the dispatch tables the engine was built with (its loop events "
    "registered), got {tables!r}; build a new Engine instead of replacing them"
)


# -- records ------------------------------------------------------------------------


def record(engine: Engine, index: int, entry: Entry) -> Record:
    """A registry entry ``(handler, args, kwargs)`` at ``index`` as a table's
    record ``(handler, filter, shape, args, kwargs, index)``."""
    handler, args, kwargs = entry
    event_filter: FilterCallable | None = None
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


def group_records(
    records: list[Record],
) -> tuple[list[GroupedRecord], list[FilterCallable], list[bool], list[list[int]]]:
    """Give each record its group: -1 for no filter, -2 for a filter evaluated
    at every firing (time or user code), else its filter group.  Records whose
    filters have the same key share a group, evaluated once per firing; a
    gated opaque filter has a group of its own.  Returns the records with
    their group appended, each group's filter (its first record's), whether the
    group is shared, and each group's record positions."""
    grouped: list[GroupedRecord] = []
    groups: list[FilterCallable] = []
    shared: list[bool] = []
    members: list[list[int]] = []
    by_key: dict[object, int] = {}
    for handler, event_filter, shape, args, kwargs, index in records:
        group: int | None
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


def call(
    engine: Engine,
    handler: Callable[..., Any],
    shape: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    event_args: tuple[Any, ...],
) -> None:
    """Call a record's handler as its shape says."""
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
    engine: Engine,
    entries: list[Entry],
    start: int,
    attr: str | None,
    count: Any,
    event_args: tuple[Any, ...],
    event_kwargs: Any,
) -> None:
    """Walk a live registry list from ``start`` the way ignite does: the list may
    grow or shrink under the walk, and filters read the count afresh each time.
    A firing goes on here once a handler changed its event's handlers (or the
    count its filters read)."""
    i = start
    while i < len(entries):
        handler, args, kwargs = entries[i]
        i += 1
        if event_kwargs:
            kwargs.update(event_kwargs)
        if type(handler) is FilteredHandler and handler._engine() is engine:  # see record
            if attr is not None:
                count = getattr(engine.state, attr)
            if not handler.filter(engine, count):
                continue
            handler = handler.handler
        call(engine, handler, WEAKREF if args and isinstance(args[0], weakref.ref) else PLAIN, args, kwargs, event_args)


# -- an Engine subclass's own _fire_event -------------------------------------------

_base_fire_event: Any = None  # Engine._fire_event, set by engine.py (which imports this module)


def fire_event_overridden(engine: Engine) -> bool:
    """Whether the engine's class overrides ``_fire_event``: then, as in ignite,
    every firing goes through it."""
    return type(engine)._fire_event is not _base_fire_event


def fire_through(engine: Engine) -> Callable[..., None]:
    """A ``fire(engine, slot, event_args, event_kwargs)``, as ``Tables.fire``,
    that fires through the engine's own ``_fire_event``."""
    events = engine._tables.events

    def fire(engine: Engine, slot: int, event_args: tuple[Any, ...] = (), event_kwargs: Any = None) -> None:
        engine._fire_event(events[slot], *event_args, **(event_kwargs or {}))

    return fire


# -- the run --------------------------------------------------------------------------


def hours_mins_secs(seconds: float) -> str:
    mins, secs = divmod(seconds, 60)
    hours, mins = divmod(mins, 60)
    return f"{int(hours):02d}:{int(mins):02d}:{secs:06.3f}"


_EPOCH_COMPLETED = Events.EPOCH_COMPLETED.name  # keys of state.times
_COMPLETED = Events.COMPLETED.name


def run_as_gen(engine: Engine, interruptible: bool = True) -> Generator[State, None, State]:
    """ignite's run as a generator, on the engine's twin: STARTED, epochs until
    done or terminated, COMPLETED.  It yields the state when interrupted
    (``interruptible``) and returns it at the end."""
    loop = engine._twin.Loop(engine, interruptible)
    engine.should_terminate = engine.should_terminate_single_epoch = engine.should_interrupt = False
    # Under torch.distributed the ranks agree on stops (see distributed.py): the
    # engine's _signal then stays set for the run, so that every check point
    # comes to on_signal, which agrees at the agreement points.
    agreement = distributed.agreement_for(engine)
    if agreement is not None:
        engine._agreement = agreement
        engine._update_signal()
    try:
        return (yield from _run(engine, loop, agreement))
    finally:
        if agreement is not None:
            del engine._agreement
            engine._update_signal()


def _run(engine: Engine, loop: LoopLike, agreement: distributed.Agreement | None) -> Generator[State, None, State]:
    times = engine.state.times
    times[_EPOCH_COMPLETED] = 0.0
    times[_COMPLETED] = 0.0
    start_time = time.time()
    try:
        try:
            loop.fire(S_STARTED)
            if engine._signal:
                yield from on_signal(engine, loop, distributed.STARTED)
            while not engine._is_done(engine.state) and not engine.should_terminate:
                engine.state.epoch += 1
                if engine._rank_aware:
                    # A deliberate deviation from ignite (see distributed.py):
                    # each epoch its own shuffle, resumes included.
                    sampler = distributed.sampler_of(engine.state.dataloader)
                    if sampler is not None:
                        sampler.set_epoch(engine.state.epoch - 1)
                handlers_start = time.time()
                loop.fire(S_EPOCH_STARTED)
                epoch_time = time.time() - handlers_start
                if engine._signal:
                    yield from on_signal(engine, loop, distributed.EPOCH_STARTED)
                if engine._dataloader_iter is None:
                    engine._setup_engine()
                epoch_time += yield from run_epoch(engine, loop)
                engine.state.times[_EPOCH_COMPLETED] = epoch_time
                if engine.should_terminate_single_epoch != "skip_epoch_completed":
                    epoch_time = fire_timed(engine, loop, S_EPOCH_COMPLETED, _EPOCH_COMPLETED, epoch_time)
                if engine.should_terminate_single_epoch:
                    engine.should_terminate_single_epoch = False
                if engine._signal:
                    yield from on_signal(engine, loop, distributed.EPOCH_COMPLETED)
                engine.logger.info(
                    "Epoch[%s] Complete. Time taken: %s", engine.state.epoch, hours_mins_secs(epoch_time)
                )
        except TerminateRun:
            loop.fire(S_TERMINATE)
        except TerminateEpoch:
            raise RuntimeError(
                "The method terminate_epoch() should not be called on Event.STARTED or Event.EPOCH_STARTED. "
                "If this is a desired behaviour, please open a feature request on "
                "https://github.com/pytorch/ignite/issues/new/choose"
            ) from None
        time_taken = time.time() - start_time
        engine.state.times[_COMPLETED] = time_taken
        if engine.should_terminate != "skip_completed":
            time_taken = fire_timed(engine, loop, S_COMPLETED, _COMPLETED, time_taken)
        engine.logger.info("Engine run finished. Time taken: %s", hours_mins_secs(time_taken))
    except BaseException as e:
        engine._dataloader_iter = None
        if loop.closed and type(e) is GeneratorExit:
            # An interrupted run closed (its engine being discarded): nothing to report.
            raise
        if agreement is not None:
            e = agreement.failed(engine, e)
        engine.logger.error("Engine run is terminating due to exception: %s", e)
        engine._handle_exception(e)
    engine._dataloader_iter = None
    return engine.state


def run_epoch(engine: Engine, loop: LoopLike) -> Generator[State, None, float]:
    """One epoch of iterations (a generator, like run_as_gen); returns the time
    it took.  Ends at epoch_length iterations, at the data's end (which, for
    data of unknown length, fixes epoch_length), at max_iters, or on a flag."""
    start_time = time.time()
    loop.start_epoch(engine._init_iter)
    engine._init_iter = None
    try:
        if engine._dataloader_iter is None:
            raise RuntimeError("Internal error, the data iterator is None at the start of an epoch; please report it.")
        while True:
            status = loop.iterate()
            if status == SIGNAL_AFTER_ITERATION:
                yield from on_signal(engine, loop, distributed.ITERATION)
            elif status == SIGNAL:
                yield from on_signal(engine, loop)
            elif status == EPOCH_END:
                break
            elif status == MAX_ITERS:
                engine.should_terminate = True
                raise TerminateRun()
            else:  # EXHAUSTED
                state = engine.state
                if state.epoch_length is None:
                    # Data of unknown length: its first end fixes the epoch length.
                    state.epoch_length = loop.iter_counter
                    if state.max_iters is not None:
                        state.max_epochs = math.ceil(state.max_iters / state.epoch_length)
                    break
                if loop.restarted:
                    # Restarting the data gave nothing either.
                    if not engine._is_done(state):
                        total = (
                            state.epoch_length * state.max_epochs if state.max_epochs is not None else state.max_iters
                        )
                        warnings.warn(
                            "Data iterator can not provide data anymore but required total number of "
                            "iterations to run is not reached. "
                            f"Current iteration: {state.iteration} vs Total iterations to run : {total}"
                        )
                    break
                if state.dataloader is not None:
                    loop.fire(S_DATALOADER_STOP_ITERATION)
                    if engine._signal:
                        yield from on_signal(engine, loop)
                engine._setup_dataloader_iter()  # iterate() reads it next, with loop.restarted set
    except TerminateEpoch:
        loop.fire(S_TERMINATE_SINGLE_EPOCH, (), {"iter_counter": loop.iter_counter})
        engine._setup_dataloader_iter()
    except TerminateRun:
        raise
    except Exception as e:
        agreement = engine._agreement
        if agreement is not None:
            # Rebinding `e` (the except clause then deletes it: no frame cycle).
            e = agreement.failed(engine, e)  # type: ignore[assignment]
        engine.logger.error("Current run is terminating due to exception: %s", e)
        engine._handle_exception(e)
    return time.time() - start_time


def on_signal(engine: Engine, loop: LoopLike, point: int = 0) -> Generator[State, None, None]:
    """What a set flag means at a check point: stop the run, stop the epoch, or
    (interrupt) hand the state back to run()'s caller until the next run().

    In a run whose ranks agree (distributed.py), only an agreement point acts,
    on the flags the ranks agreed: ``point`` says which one this is (0: none)."""
    agreement = engine._agreement
    if agreement is not None:
        if point == 0 or (point == distributed.ITERATION and not agreement.due(engine.state, loop.iter_counter)):
            return  # a flag set here waits for the next agreement
        agreement.agree(engine, point)
    if engine.should_terminate:
        raise TerminateRun()
    if engine.should_terminate_single_epoch:
        raise TerminateEpoch()
    if loop.interruptible and engine.should_interrupt:
        loop.fire(S_INTERRUPT)
        engine.should_interrupt = False
        try:
            yield engine.state
        except GeneratorExit:
            # close() of the suspended run, not a GeneratorExit from a handler
            # (which goes to EXCEPTION_RAISED, as in ignite): run_as_gen tells
            # the two apart by this mark.
            loop.closed = True
            raise


def fire_timed(engine: Engine, loop: LoopLike, slot: int, times_key: str, elapsed: float) -> float:
    """Fire, adding the handlers' time to ``elapsed`` (kept in state.times, as in ignite)."""
    start = time.time()
    loop.fire(slot)
    elapsed += time.time() - start
    engine.state.times[times_key] = elapsed
    return elapsed
