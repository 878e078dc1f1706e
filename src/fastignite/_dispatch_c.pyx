"""The compiled twin: the iteration loop, and the names the twin exports.

The compiled twin of ``_dispatch_py``, which is the specification: the same
names (``BACKEND``, ``Loop``, ``Tables``, ``fire_event``), the same steps in
the same order.  It is split by job, each module with its ``.pxd``:

* ``_cfilters`` - the library's filters as C (``CFilter``);
* ``_ctables``  - the dispatch tables: the walk of one firing, ``fire_event``;
* ``_fields``   - in-place access to the engine's and the state's attributes;
* this module   - ``Loop``: the iterations of one epoch.

``_capi.pxd`` holds every use of CPython's internals; ``_numbers.pxd`` the
numbers shared with ``_driver``, which drives the run and is checked here.
The loop reads and writes the engine's and the state's slots in place
(``_fields.pxd``), because getattr/setattr would cost more than everything
else an iteration does.
"""

cimport cython

from cpython.object cimport PyObject, PyTypeObject, Py_TYPE
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.ref cimport Py_REFCNT
from libc.stdint cimport int64_t

from ._capi cimport (
    PY_VECTORCALL_ARGUMENTS_OFFSET, PyErr_CheckSignals, PyIter_Check, fastignite_exhausted, has_next, item,
    next_or_exhausted, vectorcall,
)
from ._cfilters cimport as_count
from ._ctables cimport Tables, fire_event_overridden
from ._fields cimport (
    EngineLayout, StateLayout, check_engine, check_state, field_is, field_is_none, field_is_true, get_field,
    increment_field, peek_field, set_field,
)
from ._numbers cimport *

import itertools
import sys
import time

from . import _driver
from ._ctables import fire_event
from ._driver import NOT_LOOP_TABLES, fire_through
from .events import Events

__all__ = ["BACKEND", "Loop", "Tables", "fire_event"]

BACKEND = "compiled"
globals()["Tables"] = Tables  # the type cimported above, exported as the pure twin's is


def _check_numbers():
    """The C constants must be _driver's numbers (an ImportError, not an assert
    that -O would drop)."""
    mine = {
        "NO_ARGS": NO_ARGS, "ENGINE_ONLY": ENGINE_ONLY, "PLAIN": PLAIN, "ENGINE": ENGINE, "WEAKREF": WEAKREF,
        "S_EPOCH_STARTED": S_EPOCH_STARTED, "S_EPOCH_COMPLETED": S_EPOCH_COMPLETED, "S_STARTED": S_STARTED,
        "S_COMPLETED": S_COMPLETED, "S_ITERATION_STARTED": S_ITERATION_STARTED,
        "S_ITERATION_COMPLETED": S_ITERATION_COMPLETED, "S_GET_BATCH_STARTED": S_GET_BATCH_STARTED,
        "S_GET_BATCH_COMPLETED": S_GET_BATCH_COMPLETED, "S_DATALOADER_STOP_ITERATION": S_DATALOADER_STOP_ITERATION,
        "S_TERMINATE": S_TERMINATE, "S_TERMINATE_SINGLE_EPOCH": S_TERMINATE_SINGLE_EPOCH, "S_INTERRUPT": S_INTERRUPT,
        "SIGNAL": R_SIGNAL, "EXHAUSTED": R_EXHAUSTED, "EPOCH_END": R_EPOCH_END, "MAX_ITERS": R_MAX_ITERS,
        "SIGNAL_AFTER_ITERATION": R_SIGNAL_AFTER_ITERATION,
        "SCHEDULED": LIMIT,
    }  # fmt: skip
    import fastignite.filters

    wrong = [name for name, value in mine.items()
             if getattr(_driver, name, getattr(fastignite.filters, name, None)) != value]
    if wrong:
        raise ImportError(f"fastignite's compiled twin disagrees with _driver on {wrong}: rebuild it")


_check_numbers()


cdef object _EXHAUSTED = object()  # what next_or_exhausted gives when the data ends
# Iterators whose next() runs no Python code: data=None (itertools.repeat),
# lists, tuples, ranges.  The loop skips its after-Python-code checks for them.
cdef PyTypeObject *_QUIET_ITERATORS[4]
_QUIET_ITERATORS[0] = Py_TYPE(itertools.repeat(None))
_QUIET_ITERATORS[1] = Py_TYPE(iter([]))
_QUIET_ITERATORS[2] = Py_TYPE(iter(()))
_QUIET_ITERATORS[3] = Py_TYPE(iter(range(0)))


cdef inline bint quiet_iterator(object iterator) noexcept:
    cdef PyTypeObject *tp = Py_TYPE(iterator)
    return (tp is _QUIET_ITERATORS[0] or tp is _QUIET_ITERATORS[1] or tp is _QUIET_ITERATORS[2]
            or tp is _QUIET_ITERATORS[3])
fastignite_exhausted = <PyObject *>_EXHAUSTED  # the module keeps it alive
cdef object _DSI = Events.DATALOADER_STOP_ITERATION


# ---------------------------------------------------------------------------
# The iteration loop (see _dispatch_py.Loop)


# Phases of an iteration: each starts right after a check point of the pure twin.
cdef enum:
    P_TOP = 0       # state.batch = None; GET_BATCH_STARTED
    P_READ = 1      # next(data); GET_BATCH_COMPLETED
    P_COUNT = 2     # iter_counter, state.iteration; ITERATION_STARTED
    P_PROCESS = 3   # process_function; ITERATION_COMPLETED
    P_END = 4       # end of epoch, max_iters


@cython.final
cdef class Loop:
    """One run's iteration loop, driven by _driver.run_epoch (see _dispatch_py.Loop).

    ``iterate()`` runs iterations until the driver has work to do; the places
    where the pure twin's generator yields are numbered phases here, and the
    next ``iterate()`` resumes at ``phase``.  Its tables are checked here, once:
    the loop indexes them without bounds checks, and a loop keeps its own
    reference to them (an engine given other tables cannot change them under it)."""

    cdef object engine
    cdef Tables tables
    cdef object fire_through  # a subclass's _fire_event sees every firing; else None
    cdef public bint interruptible
    cdef public bint closed  # set by the driver when close() reached the run at its yield
    cdef readonly bint restarted  # the data ended again right after the driver restarted it
    cdef bint exhausted  # the last iterate() ended with the data: the next one reads restarted data
    cdef int phase  # where iterate() resumes
    # The epoch's iteration counter: counter, plus counter_base when that is not
    # None (a resume from an epoch length past 2**63, or a float or numpy one, as
    # ignite accepts), then compared through Python.
    cdef Py_ssize_t counter
    cdef object counter_base
    # The loop's own layouts (not the module's cache, which nested runs of other
    # engine types would keep re-resolving), checked after Python code ran.
    cdef EngineLayout el
    cdef StateLayout sl
    # Polling (see poll): iterations until the next poll, iterations between
    # polls, when the last poll and the last release of the GIL were
    # (time.monotonic), and how often to release it.
    cdef Py_ssize_t countdown, poll_every
    cdef double last_poll, last_release, release_every
    # The epoch length last compared with (held, so its address stays its
    # own) and its value; never None, so an unset length never matches it.
    cdef object length_obj
    cdef int64_t length
    # The last non-loop event compared with DATALOADER_STOP_ITERATION, and the
    # answer: events do not change.  Kept by the run, never past it.
    cdef object checked_last
    cdef bint checked_is_dsi

    def __init__(self, engine, bint interruptible=True):
        tables = engine._tables
        if type(tables) is not Tables or not S_INTERRUPT < len((<Tables>tables).events) == (<Tables>tables).n_slots:
            raise RuntimeError(NOT_LOOP_TABLES.format(tables=tables))
        self.engine = engine
        self.tables = <Tables>tables
        self.fire_through = fire_through(engine) if fire_event_overridden(engine) else None
        self.interruptible = interruptible
        self.countdown = self.poll_every = 64
        self.last_poll = self.last_release = _monotonic()
        self.release_every = 2 * sys.getswitchinterval()
        self.length_obj = object()

    cdef int fire_c(self, Py_ssize_t slot, tuple event_args, object event_kwargs) except -1:
        if self.fire_through is not None:
            self.fire_through(self.engine, slot, event_args, event_kwargs)
            return 0
        return self.tables.fire_c(self.engine, slot, event_args, event_kwargs)

    def fire(self, Py_ssize_t slot, tuple event_args=(), event_kwargs=None) -> None:
        """Fire one of the loop's events."""
        if not 0 <= slot <= S_INTERRUPT:
            raise IndexError(f"slot should be a loop event's, 0..{S_INTERRUPT}, got {slot}")
        self.fire_c(slot, event_args, event_kwargs)

    cdef int fire_or_stop(self, Py_ssize_t slot) except -1:
        """Fire GET_BATCH_*; 1 if a handler raised StopIteration, which ends
        the data as the pure twin's ``except StopIteration`` around them does."""
        try:
            self.fire_c(slot, (), None)
        except StopIteration:
            return 1
        return 0

    def start_epoch(self, init_iter) -> None:
        """An epoch starts, at iteration ``init_iter`` of it (a resume) or 0."""
        self.counter = 0
        self.counter_base = None
        if init_iter is not None:
            if type(init_iter) is int and -PY_SSIZE_T_MAX <= init_iter <= PY_SSIZE_T_MAX:
                self.counter = init_iter
            else:
                self.counter_base = init_iter
        self.restarted = self.exhausted = False
        self.phase = P_TOP

    @property
    def iter_counter(self):
        """The epoch's iteration counter, as ignite's loop variable holds it."""
        if self.counter_base is None:
            return self.counter
        return self.counter_base + self.counter

    def iterate(self) -> int:
        if self.exhausted:  # the driver restarted the data
            self.exhausted = False
            self.restarted = True
        return iterate(self)


# Polling (see poll): how often the loop lets signals and other threads in.
# About every POLL_SECONDS, counted in iterations so that the clock is read rarely.
cdef double POLL_SECONDS = 0.001
cdef Py_ssize_t POLL_MAX_ITERATIONS = 1 << 16
_monotonic = time.monotonic


cdef int poll(Loop run) except -1:
    """Let the interpreter do what running bytecode would let it do.

    When the process function is C code and no handler is Python, the loop
    runs no bytecode for a whole epoch, so neither a signal handler (Ctrl-C)
    nor another thread (terminate() from a watchdog) would run until it ends.
    Every ~POLL_SECONDS this runs pending signal handlers; every other switch
    interval (sys.getswitchinterval()) it also releases the GIL for a moment.
    Not more often: a thread waiting for the GIL asks for it only after
    waiting a whole switch interval, and each release wakes it early, so a
    release every millisecond would keep it waiting for ever.  Once it has
    asked, the release hands the GIL over (CPython's forced switching).  The
    number of iterations between polls adapts to their speed: a decrement
    per iteration and a clock read per poll."""
    cdef double now, elapsed
    PyErr_CheckSignals()  # raises what a handler raised (KeyboardInterrupt)
    now = _monotonic()
    if now - run.last_release >= run.release_every:
        with nogil:
            pass
        now = _monotonic()
        run.last_release = now
    elapsed = now - run.last_poll
    run.last_poll = now
    if elapsed < POLL_SECONDS / 2:
        run.poll_every = min(run.poll_every * 2, POLL_MAX_ITERATIONS)
    elif elapsed > 2 * POLL_SECONDS:
        run.poll_every = max(run.poll_every // 2, 1)
    run.countdown = run.poll_every
    return 0


cdef inline bint fired_quietly(Tables tables, bint direct, Py_ssize_t slot) noexcept:
    """Fire a loop event that has no handler, which is its last-event slot
    and its count: no Python code runs.  False, having done nothing, when
    the event has handlers or a subclass's _fire_event must see it."""
    if direct and item(<PyObject *>tables.tables, slot) is <PyObject *>None:
        tables.last_slot = slot
        tables.counts[slot] += 1
        return True
    return False



cdef inline int exhausted(Loop run) noexcept:
    run.phase = P_TOP
    run.exhausted = True
    return R_EXHAUSTED


cdef inline bint epoch_ends(Loop run, object state) except -1:
    """Whether the epoch's iteration ``run.counter`` is its last:
    state.epoch_length is set and equals it, compared without making an int
    object.  The epoch length is the int last seen in all but the first check,
    which then reads the slot and takes no reference."""
    cdef int64_t v = 0
    cdef PyObject *length = peek_field(state, run.sl.epoch_length)
    if length is <PyObject *>run.length_obj:  # never NULL or None
        return run.counter == run.length
    if field_is_none(state, run.sl.epoch_length):
        return False
    value = get_field(state, run.sl.epoch_length)
    if as_count(value, &v):
        run.length_obj = value
        run.length = v
        return run.counter == v
    return run.counter == value


cdef object _Events = Events


cdef inline bint after_restart(Loop run, Tables tables) except -1:
    """Whether engine.last_event_name is DATALOADER_STOP_ITERATION, as ignite
    compares it (by name, so a custom event is compared through Python)."""
    cdef Py_ssize_t slot = tables.last_slot
    if slot == S_DATALOADER_STOP_ITERATION:
        return True
    if 0 <= slot < S_INTERRUPT + 1:
        return False  # another built-in event
    last = tables.last_event
    if last is _DSI:
        return True
    if type(last) is _Events:
        return False
    if last is not run.checked_last:
        run.checked_is_dsi = not (last != _DSI)
        run.checked_last = last
    return run.checked_is_dsi


cdef inline bint moved(Loop run, object engine, object state) except -1:
    """After Python code may have run: check the engine's layout, and whether
    engine.state is still ``state`` (then its layout is checked too).
    ``engine`` is run.engine, passed in: reading the attribute here would
    cost a reference-count round trip at every check."""
    check_engine(&run.el, Py_TYPE(engine))
    if not field_is(engine, run.el.state, state):
        return True
    check_state(&run.sl, Py_TYPE(state))
    return False


cdef object current_state(Loop run):
    """engine.state, its layout checked (the first read, and after a replacement)."""
    check_engine(&run.el, Py_TYPE(run.engine))
    state = get_field(run.engine, run.el.state)
    check_state(&run.sl, Py_TYPE(state))
    return state


cdef int iterate(Loop run) except -1:
    """Run iterations from ``run.phase`` until the driver has work to do.

    The body of the pure twin's ``Loop.iterations`` generator, as a plain C
    function: no generator frame, locals in registers.  Where the pure twin
    yields, this returns with the phase to resume at.  After anything that can
    run Python code (data, handlers, the process function) ``moved`` checks
    the layouts and whether the state was replaced, because that code may
    change either.
    """
    cdef object engine = run.engine
    cdef Tables tables = run.tables
    cdef bint direct = run.fire_through is None  # else every firing goes through a subclass's _fire_event
    cdef EngineLayout *el = &run.el
    cdef StateLayout *sl = &run.sl
    cdef object state, batch, output, process_function, iterator
    cdef int phase = run.phase
    cdef PyObject *call_args[3]  # [0] is scratch the callee may use (PY_VECTORCALL_ARGUMENTS_OFFSET)
    # The data iterator, the process function and the batch are held here,
    # and re-read (a reference taken) only when their slot holds another
    # object: the same object in the slot costs a pointer comparison.
    cdef PyObject *seen
    cdef bint quiet, last_reference
    iterator = process_function = batch = None
    state = current_state(run)
    while True:
        if phase == P_TOP:
            run.countdown -= 1
            if run.countdown <= 0:
                poll(run)  # signal handlers and other threads may change anything
                if moved(run, engine, state):
                    state = current_state(run)
            set_field(state, sl.batch, None)
            # The previous batch goes now, as ignite's `state.batch = None`
            # drops it, before the next is read; a finalizer it runs may
            # change anything.
            last_reference = Py_REFCNT(batch) == 1
            batch = None
            if last_reference and moved(run, engine, state):
                state = current_state(run)
            # Right after DATALOADER_STOP_ITERATION the restarted data is read
            # without a second GET_BATCH_STARTED, as in ignite.
            if not after_restart(run, tables):
                if not field_is_none(state, sl.dataloader):
                    if not fired_quietly(tables, direct, S_GET_BATCH_STARTED):
                        stopped = run.fire_or_stop(S_GET_BATCH_STARTED)
                        if moved(run, engine, state):
                            state = current_state(run)
                        if stopped:
                            return exhausted(run)
                    if field_is_true(engine, el.signal):
                        run.phase = P_READ
                        return R_SIGNAL
            phase = P_READ
        if phase == P_READ:
            seen = peek_field(engine, el.dataloader_iter)
            # A new object gets CPython's own iterator check; the same one only
            # needs a next() slot to call (its class may have changed).
            if seen is NULL or seen is not <PyObject *>iterator:
                iterator = get_field(engine, el.dataloader_iter)
                if not PyIter_Check(iterator):  # e.g. None after a nested run: next()'s own error
                    raise TypeError(f"'{type(iterator).__name__}' object is not an iterator")
            elif not has_next(iterator):
                raise TypeError(f"'{type(iterator).__name__}' object is not an iterator")
            # No Python code can run here when next() runs none (the previous
            # batch is gone already): nothing to check.
            quiet = quiet_iterator(iterator)
            batch = next_or_exhausted(iterator)
            if not quiet and moved(run, engine, state):
                state = current_state(run)
            if batch is _EXHAUSTED:
                return exhausted(run)
            set_field(state, sl.batch, batch)
            set_field(state, sl.output, None)
            if not field_is_none(state, sl.dataloader):
                if not fired_quietly(tables, direct, S_GET_BATCH_COMPLETED):
                    stopped = run.fire_or_stop(S_GET_BATCH_COMPLETED)
                    if moved(run, engine, state):
                        state = current_state(run)
                    if stopped:
                        return exhausted(run)
                if field_is_true(engine, el.signal):
                    run.phase = P_COUNT
                    return R_SIGNAL
            phase = P_COUNT
        if phase == P_COUNT:
            run.counter += 1
            run.restarted = False
            increment_field(state, sl.iteration)
            if not fired_quietly(tables, direct, S_ITERATION_STARTED):
                run.fire_c(S_ITERATION_STARTED, (), None)
                if moved(run, engine, state):
                    state = current_state(run)
            if field_is_true(engine, el.signal):
                run.phase = P_PROCESS
                return R_SIGNAL
            phase = P_PROCESS
        if phase == P_PROCESS:
            seen = peek_field(engine, el.process_function)
            if seen is NULL or seen is not <PyObject *>process_function:
                process_function = get_field(engine, el.process_function)
            seen = peek_field(state, sl.batch)
            if seen is NULL or seen is not <PyObject *>batch:
                batch = get_field(state, sl.batch)
            call_args[1] = <PyObject *>engine
            call_args[2] = <PyObject *>batch
            output = vectorcall(process_function, &call_args[1], 2 | PY_VECTORCALL_ARGUMENTS_OFFSET)
            if moved(run, engine, state):
                state = current_state(run)
            set_field(state, sl.output, output)
            output = None  # the state holds it now, until ignite would drop it (after the next read)
            if not fired_quietly(tables, direct, S_ITERATION_COMPLETED):
                run.fire_c(S_ITERATION_COMPLETED, (), None)
                if moved(run, engine, state):
                    state = current_state(run)
            if field_is_true(engine, el.signal):
                run.phase = P_END
                return R_SIGNAL_AFTER_ITERATION
        # P_END
        if (epoch_ends(run, state) if run.counter_base is None
                else run.iter_counter == get_field(state, sl.epoch_length)):
            run.phase = P_TOP
            return R_EPOCH_END
        if not field_is_none(state, sl.max_iters):
            if get_field(state, sl.iteration) == get_field(state, sl.max_iters):
                run.phase = P_TOP
                return R_MAX_ITERS
        phase = P_TOP
