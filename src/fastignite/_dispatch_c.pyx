"""The hot path, compiled: dispatch tables, firing counters, the run loop.

The compiled twin of ``_dispatch_py.py``, which is the specification: the same
names, the same algorithm, the same calls in the same order.  Read that module
first; the comments here are about what differs in C:

* Handler records, filter groups and the due-count heap are C arrays.  A table
  is never changed after it is built; the firing that walks it holds a
  reference to it, so a handler that changes the registry (which marks the
  table stale) or fires the same event again cannot free or corrupt the arrays
  under the walk.
* Filters of the library's own types (every, once, before/after, ``&``, ``|``,
  throttle, timeout) are compiled into ``CFilter`` trees and evaluated in C.
  Anything else (a user's callable, a subclass) is called from C as Python.
* Firing counters are C integers.
* The loop reads and writes the engine's and the state's slots in place
  (``_fields.pxd``), because getattr/setattr would cost more than everything
  else an iteration does.

Counts are C ``int64``; a count that is not an ``int`` within +-2**62 (a user
can store anything in ``state.iteration``) makes a firing evaluate every filter
through Python, without the due-count schedule.
"""

cimport cython

from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject, PyObject_GenericSetAttr, PyTypeObject, Py_TYPE
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.ref cimport Py_INCREF, Py_REFCNT
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t
from libc.stdlib cimport free, malloc, qsort, realloc
from libc.string cimport memset

from ._capi cimport (
    current_version, fastignite_exhausted, has_next, next_or_exhausted, small_int, stack_exhausted, type_lookup,
    type_version, vectorcall,
)
from ._fields cimport (
    field_is, field_is_none, field_is_true, field_of, get_field, increment_field, peek_field, set_field,
)

import itertools
import math
import time
import warnings

from . import _driver
from ._driver import NOT_LOOP_TABLES, STALE, call_entries, fire_event_overridden, fire_through, group_records, record
from .events import Events, State
from .filters import AllOf, AnyOf, EventFilter, Every, Once, Throttle, Timeout, Window, is_opaque
from .filters import NEVER as _PY_NEVER, as_due as _py_as_due

__all__ = ["BACKEND", "Loop", "Tables", "fire_event"]

BACKEND = "compiled"

# Record shapes and loop slots: _driver's numbers (checked below).
cdef enum:
    NO_ARGS = 0
    ENGINE_ONLY = 1
    PLAIN = 2
    ENGINE = 3
    WEAKREF = 4

cdef enum:
    S_EPOCH_STARTED = 0
    S_EPOCH_COMPLETED = 1
    S_STARTED = 2
    S_COMPLETED = 3
    S_ITERATION_STARTED = 4
    S_ITERATION_COMPLETED = 5
    S_GET_BATCH_STARTED = 7
    S_GET_BATCH_COMPLETED = 8
    S_DATALOADER_STOP_ITERATION = 9
    S_TERMINATE = 10
    S_TERMINATE_SINGLE_EPOCH = 11
    S_INTERRUPT = 12


# What Loop.iterate returns to _driver.run_epoch.
cdef enum:
    R_SIGNAL = 1
    R_EXHAUSTED = 2
    R_EPOCH_END = 3
    R_MAX_ITERS = 4


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
        "SCHEDULED": LIMIT,
    }  # fmt: skip
    import fastignite.filters

    wrong = [name for name, value in mine.items()
             if getattr(_driver, name, getattr(fastignite.filters, name, None)) != value]
    if wrong:
        raise ImportError(f"fastignite's compiled twin disagrees with _driver on {wrong}: rebuild it")


# NEVER and BEFORE_ALL stand for the pure twin's +inf and -inf.  Counts the C
# schedule handles stay within +-LIMIT, so no arithmetic on them overflows.
cdef int64_t NEVER = INT64_MAX
cdef int64_t BEFORE_ALL = INT64_MIN
cdef int64_t LIMIT = (<int64_t>1) << 62
_check_numbers()

# How a table reads the count its filters test.
cdef enum:
    ATTR_COUNTER = 0    # no state attribute: the engine's firing counter
    ATTR_ITERATION = 1
    ATTR_EPOCH = 2
    ATTR_OTHER = 3

# Kinds of CFilter.
cdef enum:
    K_CALL = 0          # called as Python: filter(engine, count)
    K_EVERY = 1
    K_ONCE = 2
    K_WINDOW = 3
    K_ALL = 4
    K_ANY = 5
    K_THROTTLE = 6
    K_TIMEOUT = 7

cdef extern from "Python.h":
    PyObject *item "PyList_GET_ITEM"(PyObject *list, Py_ssize_t index)  # borrowed, no check
    size_t PY_VECTORCALL_ARGUMENTS_OFFSET
    bint PyIter_Check(object obj)


cdef extern from "Python.h":
    int Py_EnterRecursiveCall(const char *where)
    void Py_LeaveRecursiveCall()


cdef inline int enter_firing() except -1:
    """Count a firing that calls handlers as a level of recursion (undone by
    Py_LeaveRecursiveCall).  A handler that fires its own event from C, such
    as functools.partial(engine.fire_event, event), makes no Python frame:
    without this the recursion would overflow the C stack instead of raising
    RecursionError, as ignite's pure-Python firing does."""
    if stack_exhausted():  # see _capi.pxd
        raise RecursionError("maximum recursion depth exceeded while firing an event (the C stack is nearly full)")
    if Py_EnterRecursiveCall(" while firing an event") != 0:
        return -1
    return 0


cdef inline object call_with_engine(object handler, object engine):
    """handler(engine), through vectorcall (Cython's generic call costs more)."""
    cdef PyObject *args[2]  # [0] is scratch the callee may use (PY_VECTORCALL_ARGUMENTS_OFFSET)
    args[1] = <PyObject *>engine
    return vectorcall(handler, &args[1], 1 | PY_VECTORCALL_ARGUMENTS_OFFSET)


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
# Integer helpers (Python's floor semantics; cdivision is on)


cdef inline int64_t floordiv(int64_t a, int64_t b):
    cdef int64_t q = a / b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef inline int64_t pymod(int64_t a, int64_t b):
    cdef int64_t r = a % b
    if r != 0 and ((r < 0) != (b < 0)):
        r += b
    return r


cdef inline bint as_count(object value, int64_t *out):
    """Whether ``value`` is an int the C schedule can handle; its value in ``out``."""
    cdef int overflow = 0
    cdef long long v
    if type(value) is not int:
        return False
    if small_int(value, out):
        return True
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v >= LIMIT or v <= -LIMIT:
        return False
    out[0] = v
    return True


cdef int64_t as_due(object due, object f, str method) except? -1:
    """A due count returned by a user's ``f.<method>``, as the pure twin's heap
    holds it (filters.as_due: an int, or +-NEVER, or the same TypeError)."""
    cdef int64_t c = 0
    if as_count(due, &c):
        return c
    due = _py_as_due(due, f, method)
    if due == _PY_NEVER:
        return NEVER
    if due == -_PY_NEVER:
        return BEFORE_ALL
    return <int64_t>due


# ---------------------------------------------------------------------------
# In-place attribute layouts (see _fields.pxd)

cdef EngineLayout _engine
cdef StateLayout _state
# Attribute names: module constants, so the Fields' borrowed pointers stay valid.
cdef str A_STATE = "state", A_SIGNAL = "_signal", A_ITER = "_dataloader_iter"
cdef str A_PROCESS = "_process_function", A_TABLES = "_tables"
cdef str A_ITERATION = "iteration", A_EPOCH = "epoch", A_BATCH = "batch", A_OUTPUT = "output"
cdef str A_DATALOADER = "dataloader", A_EPOCH_LENGTH = "epoch_length", A_MAX_ITERS = "max_iters"
cdef str A_LAST = "_last", A_FIRED = "_fired"  # filters.Throttle / Timeout running state


cdef inline EngineLayout *engine_layout(object engine):
    """The layout of the engine's type, in the module's one-entry cache."""
    check_engine(&_engine, Py_TYPE(engine))
    return &_engine


cdef inline void check_engine(EngineLayout *layout, PyTypeObject *tp) noexcept:
    """Make ``layout`` that of ``tp`` as it is now (a type and version comparison)."""
    if tp is not layout.type or current_version(tp) != layout.version:
        resolve_engine(layout, tp)


# How many times a layout was resolved: a test hook (_layout_resolutions) that
# sees a cache that never hits, e.g. when a CPython version changes how it
# keeps version tags.
cdef Py_ssize_t _resolutions = 0


def _layout_resolutions():
    """How many times an engine or state layout has been resolved in this process."""
    return _resolutions


cdef void resolve_engine(EngineLayout *layout, PyTypeObject *tp) noexcept:
    global _resolutions
    _resolutions += 1
    layout.type = tp
    layout.state = field_of(tp, A_STATE)
    layout.signal = field_of(tp, A_SIGNAL)
    layout.dataloader_iter = field_of(tp, A_ITER)
    layout.process_function = field_of(tp, A_PROCESS)
    layout.tables = field_of(tp, A_TABLES)
    # A type CPython gives no tag (0) matches no tag, and is resolved again
    # at every check: slower, never wrong.
    layout.version = type_version(tp)
    if layout.version == 0:
        layout.type = NULL


cdef inline StateLayout *state_layout(object state):
    check_state(&_state, Py_TYPE(state))
    return &_state


cdef inline void check_state(StateLayout *layout, PyTypeObject *tp) noexcept:
    if tp is not layout.type or current_version(tp) != layout.version:
        resolve_state(layout, tp)


cdef void resolve_state(StateLayout *layout, PyTypeObject *tp) noexcept:
    global _resolutions
    _resolutions += 1
    layout.type = tp
    layout.iteration = field_of(tp, A_ITERATION)
    layout.epoch = field_of(tp, A_EPOCH)
    layout.batch = field_of(tp, A_BATCH)
    layout.output = field_of(tp, A_OUTPUT)
    layout.dataloader = field_of(tp, A_DATALOADER)
    layout.epoch_length = field_of(tp, A_EPOCH_LENGTH)
    layout.max_iters = field_of(tp, A_MAX_ITERS)
    layout.version = type_version(tp)
    if layout.version == 0:
        layout.type = NULL


cdef inline object state_of(object engine):
    return get_field(engine, engine_layout(engine).state)


# ---------------------------------------------------------------------------
# Filters


@cython.final
cdef class CFilter:
    """A filter of the library's own types, compiled; K_CALL for any other."""

    def __dealloc__(self):
        free(self.values)

    cdef int passes(self, object engine, int64_t count, object count_obj) except -1:
        cdef Py_ssize_t i
        cdef CFilter part
        cdef int64_t after
        kind = self.kind
        if kind == K_EVERY:
            for i in range(self.n_values):
                if pymod(count, self.values[i]) == 0:
                    return True
            return False
        if kind == K_ONCE:
            for i in range(self.n_values):
                if self.values[i] >= count:
                    return self.values[i] == count
            return False
        if kind == K_WINDOW:
            after = self.after
            if not (after < count and count < self.before):
                return False
            return self.every == 0 or pymod(count - after - 1, self.every) == 0
        if kind == K_ALL:
            for part in self.parts:
                if not part.passes(engine, count, count_obj):
                    return False
            return True
        if kind == K_ANY:
            for part in self.parts:
                if part.passes(engine, count, count_obj):
                    return True
            return False
        f = self.obj
        # The running state is stored as filters.py does (object.__setattr__):
        # past the snapshot's __setattr__ check, with no Python frame.
        if kind == K_THROTTLE:  # filters.Throttle.__call__, minus the Python frame
            now = f.clock()
            if now - f._last >= f.seconds:
                PyObject_GenericSetAttr(f, A_LAST, now)
                return True
            return False
        if kind == K_TIMEOUT:  # filters.Timeout.__call__
            if f._fired or f.clock() - f._start < f.seconds:
                return False
            if f.once:
                PyObject_GenericSetAttr(f, A_FIRED, True)
            return True
        if count_obj is None:
            count_obj = count
        return True if f(engine, count_obj) else False

    cdef int64_t next_due(self, int64_t count, object count_obj) except? -1:
        cdef Py_ssize_t i
        cdef CFilter part
        cdef int64_t due, n
        kind = self.kind
        if kind == K_EVERY:
            due = NEVER
            for i in range(self.n_values):
                due = min(due, (floordiv(count, self.values[i]) + 1) * self.values[i])
            return due
        if kind == K_ONCE:
            for i in range(self.n_values):
                if self.values[i] > count:
                    return self.values[i]
            return NEVER
        if kind == K_WINDOW:
            n = max(count + 1, self.after + 1)
            if self.every:
                n += pymod(-(n - self.after - 1), self.every)
            return n if n < self.before else NEVER
        if kind == K_ALL:
            due = BEFORE_ALL
            for part in self.parts:
                due = max(due, part.next_due_of(count, count_obj))
            return due
        if kind == K_ANY:
            due = NEVER
            for part in self.parts:
                due = min(due, part.next_due_of(count, count_obj))
            return due
        if kind == K_CALL:
            return as_due(self.obj.next_due(count if count_obj is None else count_obj), self.obj, "next_due")
        return count + 1  # throttle, timeout: EventFilter.next_due

    cdef int64_t next_due_of(self, int64_t count, object count_obj) except? -1:
        """filters._next_due_of: a user's callable may pass at any count."""
        if self.event_filter:
            return scheduled(self.next_due(count, count_obj))
        return count + 1

    cdef int64_t gate_due(self, int64_t count, object count_obj) except? -1:
        cdef CFilter part
        cdef int64_t due
        kind = self.kind
        if kind == K_ALL:
            # Parts run in order: the leading count tests gate the first opaque one.
            due = count + 1
            for part in self.parts:
                if part.opaque:
                    return max(due, part.gate_due_of(count, count_obj))
                due = max(due, part.next_due_of(count, count_obj))
            return due
        if kind == K_ANY:
            due = NEVER
            for part in self.parts:
                due = min(due, part.gate_due_of(count, count_obj))
            return due
        if kind == K_CALL:
            if not self.event_filter:
                return count + 1
            return as_due(self.obj.gate_due(count if count_obj is None else count_obj), self.obj, "gate_due")
        return self.next_due(count, count_obj)

    cdef int64_t gate_due_of(self, int64_t count, object count_obj) except? -1:
        """filters._gate_due_of."""
        if self.event_filter:
            return scheduled(self.gate_due(count, count_obj))
        return count + 1


cdef inline int64_t scheduled(int64_t due) noexcept:
    """A due count as filters.as_due gives it to the schedule: beyond +-LIMIT, never
    (NEVER) or at once (BEFORE_ALL), as the pure twin's +-inf (Every's and Window's
    int64 arithmetic goes past +-LIMIT near the range's ends)."""
    if due >= LIMIT:
        return NEVER
    if due <= -LIMIT:
        return BEFORE_ALL
    return due


cdef bint _fits(values) except -1:
    cdef int64_t c = 0
    for v in values:
        if not as_count(v, &c):
            return False
    return True


cdef CFilter compile_filter(object f):
    cdef CFilter c = CFilter.__new__(CFilter)
    cdef Py_ssize_t i
    c.obj = f
    c.opaque = is_opaque(f)
    c.event_filter = isinstance(f, EventFilter)
    c.kind = K_CALL
    tp = type(f)
    # Exact types only: a subclass may override __call__, so it is called.
    # A zero period never reaches a C `%` (a SIGFPE): such a filter is called
    # as Python, which raises ZeroDivisionError where ignite's does.
    if tp is Every or tp is Once:
        values = list(f.periods) if tp is Every else list(f._sorted)
        if values and _fits(values) and (tp is Once or 0 not in values):
            c.values = <int64_t *>malloc(len(values) * sizeof(int64_t))
            if c.values is NULL:
                raise MemoryError()
            for i in range(len(values)):
                c.values[i] = values[i]
            c.n_values = len(values)
            c.kind = K_EVERY if tp is Every else K_ONCE
    elif tp is Window:
        before = f.before
        every = 0 if f.every is None else f.every  # 0 in C: no every
        if (f.every is None or f.every != 0) and _fits([f.after, every]) and (before == math.inf or _fits([before])):
            c.before = NEVER if before == math.inf else before
            c.after = f.after
            c.every = every
            c.kind = K_WINDOW
    elif tp is AllOf or tp is AnyOf:
        c.parts = tuple([compile_filter(p) for p in f.parts])
        c.kind = K_ALL if tp is AllOf else K_ANY
    elif tp is Throttle:
        c.kind = K_THROTTLE
    elif tp is Timeout:
        c.kind = K_TIMEOUT
    return c


# Test hooks: the compiled evaluation of a filter, to check against filters.py.
def _evaluate(f, engine, count):
    cdef int64_t c = 0
    if not as_count(count, &c):
        raise ValueError(f"count should be an int within +-2**62, got {count!r}")
    return bool(compile_filter(f).passes(engine, c, count))


def _schedule(f, count):
    """(next_due, gate_due) as the compiled twin computes them (None for never)."""
    cdef int64_t c = 0
    if not as_count(count, &c):
        raise ValueError(f"count should be an int within +-2**62, got {count!r}")
    cf = compile_filter(f)
    due = (cf.next_due_of(c, count), cf.gate_due_of(c, count))
    return tuple([None if d == NEVER else d for d in due])


# ---------------------------------------------------------------------------
# Tables


cdef int _compare_indices(const void *a, const void *b) noexcept nogil:
    cdef Py_ssize_t x = (<Py_ssize_t *>a)[0], y = (<Py_ssize_t *>b)[0]
    return (x > y) - (x < y)


cdef inline bint _heap_less(int64_t da, Py_ssize_t ga, int64_t db, Py_ssize_t gb):
    # (due, group) pairs, ordered as the pure twin's heap of tuples.
    return da < db or (da == db and ga < gb)


@cython.final
cdef class Table:
    """One event's handlers, ready to call (see _dispatch_py.Table)."""

    def __dealloc__(self):
        free(self.records)
        free(self.hot)
        free(self.shared)
        free(self.member_start)
        free(self.members)
        free(self.heap_due)
        free(self.heap_group)

    cdef int heap_push(self, int64_t due, Py_ssize_t group) except -1:
        cdef Py_ssize_t i, parent, cap
        cdef int64_t *dues
        cdef Py_ssize_t *groups
        if self.heap_len == self.heap_cap:
            # Only a firing re-entered from a filter's gate_due can push more
            # entries than there are groups: grow, as the pure twin's list does.
            cap = 2 * self.heap_cap + 4
            dues = <int64_t *>realloc(self.heap_due, cap * sizeof(int64_t))
            if dues is NULL:
                raise MemoryError()
            self.heap_due = dues
            groups = <Py_ssize_t *>realloc(self.heap_group, cap * sizeof(Py_ssize_t))
            if groups is NULL:
                raise MemoryError()
            self.heap_group = groups
            self.heap_cap = cap
        i = self.heap_len
        self.heap_len += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not _heap_less(due, group, self.heap_due[parent], self.heap_group[parent]):
                break
            self.heap_due[i] = self.heap_due[parent]
            self.heap_group[i] = self.heap_group[parent]
            i = parent
        self.heap_due[i] = due
        self.heap_group[i] = group
        return 0

    cdef Py_ssize_t heap_pop(self):
        cdef Py_ssize_t top = self.heap_group[0], n, i, child
        cdef int64_t due
        cdef Py_ssize_t group
        self.heap_len -= 1
        n = self.heap_len
        if n == 0:
            return top
        due = self.heap_due[n]
        group = self.heap_group[n]
        i = 0
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and _heap_less(self.heap_due[child + 1], self.heap_group[child + 1],
                                            self.heap_due[child], self.heap_group[child]):
                child += 1
            if not _heap_less(self.heap_due[child], self.heap_group[child], due, group):
                break
            self.heap_due[i] = self.heap_due[child]
            self.heap_group[i] = self.heap_group[child]
            i = child
        self.heap_due[i] = due
        self.heap_group[i] = group
        return top

    cdef int fire(self, Tables tables, object engine, Py_ssize_t slot, tuple event_args,
                  object event_kwargs) except -1:
        cdef bint simple = not event_args and not event_kwargs
        cdef Py_ssize_t i, j, k, n_sel, n_due, g
        cdef Record *r
        cdef int64_t count = 0
        cdef bint exact = True  # the count is one the C schedule handles
        cdef int passed
        cdef Py_ssize_t *selected
        cdef Py_ssize_t *due = NULL
        cdef Py_ssize_t *merged = NULL
        cdef signed char *results = NULL
        cdef Py_ssize_t due_buffer[16]
        cdef Py_ssize_t merged_buffer[64]
        cdef signed char results_buffer[64]
        cdef object count_obj = None
        cdef PyObject *peeked

        if self.engine_only and simple:
            enter_firing()
            try:
                for i in range(self.n_records):
                    call_with_engine(<object>self.records[i].handler, engine)
                    if item(<PyObject *>tables.tables, slot) is not <PyObject *>self:
                        # The handler changed this event's handlers: finish as ignite does,
                        # with the count read the way this table reads it (its attr, fixed
                        # when it was built, as in the pure twin).
                        call_entries(engine, self.entries, i + 1, self.attr,
                                     tables.counts[slot] if self.attr is None else self.read_count(engine),
                                     event_args, event_kwargs)
                        return 0
                return 0
            finally:
                Py_LeaveRecursiveCall()

        peeked = NULL
        if self.attr_kind == ATTR_COUNTER:
            count = tables.counts[slot]
        else:
            peeked = self.peek_count(engine)
            if peeked is not NULL and not as_count(<object>peeked, &count):
                peeked = NULL
            if peeked is NULL:
                count_obj = self.read_count(engine)
                exact = as_count(count_obj, &count)

        if exact and self.last_count < count and count < self.next_due and self.n_hot == 0:
            return 0  # nothing can be due: the common case of filtered handlers
        enter_firing()
        try:
            if peeked is not NULL:
                # The int in its slot, read without a reference (no Python code ran
                # since): take one only now that the walk needs the object.
                count_obj = <object>peeked
            if exact and self.last_count < count and count < self.next_due:
                selected = self.hot
                n_sel = self.n_hot
                return self.walk(tables, engine, slot, selected, n_sel, NULL, count, exact, count_obj,
                                 simple, event_args, event_kwargs)

            try:
                if not exact:
                    # A count the schedule cannot order: every record is a candidate.
                    merged = <Py_ssize_t *>malloc((self.n_records + 1) * sizeof(Py_ssize_t))
                    results = <signed char *>malloc(self.n_groups + 1)
                    if merged is NULL or results is NULL:
                        raise MemoryError()
                    for i in range(self.n_records):
                        merged[i] = i
                    memset(results, -1, self.n_groups)
                    return self.walk(tables, engine, slot, merged, self.n_records, results, count, exact,
                                     count_obj, simple, event_args, event_kwargs)

                # Which groups are due: pop them; reschedule each from its gate_due.
                if count > self.last_count:
                    n_due = self.heap_len
                    due = &due_buffer[0] if n_due <= 16 else <Py_ssize_t *>malloc(n_due * sizeof(Py_ssize_t))
                    if due is NULL:
                        raise MemoryError()
                    n_due = 0
                    while self.heap_len and self.heap_due[0] <= count:
                        due[n_due] = self.heap_pop()
                        n_due += 1
                else:  # the count went back or repeated: every group may pass again
                    n_due = self.n_groups
                    due = &due_buffer[0] if n_due <= 16 else <Py_ssize_t *>malloc(n_due * sizeof(Py_ssize_t))
                    if due is NULL:
                        raise MemoryError()
                    for g in range(n_due):
                        due[g] = g
                    self.heap_len = 0
                self.last_count = count
                for j in range(n_due):
                    g = due[j]
                    self.heap_push((<CFilter>self.groups[g]).gate_due_of(count, count_obj), g)
                self.next_due = self.heap_due[0] if self.heap_len else NEVER

                if n_due == 0:
                    if self.n_hot == 0:
                        return 0
                    return self.walk(tables, engine, slot, self.hot, self.n_hot, NULL, count, exact, count_obj,
                                     simple, event_args, event_kwargs)
                results = &results_buffer[0] if self.n_groups <= 64 else <signed char *>malloc(self.n_groups)
                if results is NULL:
                    raise MemoryError()
                for j in range(n_due):
                    results[due[j]] = -1
                if n_due == 1 and self.n_hot == 0:
                    g = due[0]
                    return self.walk(tables, engine, slot, self.members + self.member_start[g],
                                     self.member_start[g + 1] - self.member_start[g], results, count, exact,
                                     count_obj, simple, event_args, event_kwargs)
                # The hot records and the due groups' members, in registration order.
                n_sel = self.n_hot
                for j in range(n_due):
                    g = due[j]
                    n_sel += self.member_start[g + 1] - self.member_start[g]
                merged = &merged_buffer[0] if n_sel <= 64 else <Py_ssize_t *>malloc(n_sel * sizeof(Py_ssize_t))
                if merged is NULL:
                    raise MemoryError()
                k = 0
                for i in range(self.n_hot):
                    merged[k] = self.hot[i]
                    k += 1
                for j in range(n_due):
                    g = due[j]
                    for i in range(self.member_start[g], self.member_start[g + 1]):
                        merged[k] = self.members[i]
                        k += 1
                qsort(merged, n_sel, sizeof(Py_ssize_t), _compare_indices)
                return self.walk(tables, engine, slot, merged, n_sel, results, count, exact, count_obj,
                                 simple, event_args, event_kwargs)
            finally:
                if due is not &due_buffer[0]:
                    free(due)
                if merged is not &merged_buffer[0]:
                    free(merged)
                if results is not &results_buffer[0]:
                    free(results)
        finally:
            Py_LeaveRecursiveCall()

    cdef PyObject *peek_count(self, object engine) noexcept:
        """The count when it is an object in its slot (iteration, epoch),
        borrowed: no reference is taken and no Python code runs.  NULL
        otherwise, leaving the count to read_count."""
        cdef PyObject *state
        cdef StateLayout *sl
        if self.attr_kind != ATTR_ITERATION and self.attr_kind != ATTR_EPOCH:
            return NULL
        state = peek_field(engine, engine_layout(engine).state)
        if state is NULL:
            return NULL
        sl = state_layout(<object>state)
        return peek_field(<object>state, sl.iteration if self.attr_kind == ATTR_ITERATION else sl.epoch)

    cdef object read_count(self, object engine):
        state = state_of(engine)
        if self.attr_kind == ATTR_ITERATION:
            return get_field(state, state_layout(state).iteration)
        if self.attr_kind == ATTR_EPOCH:
            return get_field(state, state_layout(state).epoch)
        return getattr(state, self.attr)

    cdef int walk(self, Tables tables, object engine, Py_ssize_t slot, Py_ssize_t *selected, Py_ssize_t n_sel,
                  signed char *results, int64_t count, bint exact, object count_obj, bint simple,
                  tuple event_args, object event_kwargs) except -1:
        """Call the selected records' handlers whose filters pass (_dispatch_py.Tables.fire's walk)."""
        cdef Py_ssize_t j, g
        cdef Record *r
        cdef int passed
        for j in range(n_sel):
            r = &self.records[selected[j]]
            g = r.group
            if g != -1:
                if g >= 0 and self.shared[g]:
                    passed = results[g]
                    if passed < 0:
                        passed = results[g] = self.evaluate(r, engine, count, exact, count_obj)
                else:
                    passed = self.evaluate(r, engine, count, exact, count_obj)
                if not passed:
                    continue
            handler = <object>r.handler
            if simple and r.shape == ENGINE_ONLY:
                call_with_engine(handler, engine)
            elif simple and r.shape == NO_ARGS:
                handler()
            else:
                if event_kwargs:
                    (<object>r.kwargs).update(event_kwargs)
                _call(engine, handler, r.shape, <object>r.args, <object>r.kwargs, event_args)
            # The handler changed this event's handlers, or the count the remaining
            # filters read: finish over the live list, as ignite's loop would.
            if item(<PyObject *>tables.tables, slot) is not <PyObject *>self or (
                self.watch_count and self.count_moved(engine, count_obj)
            ):
                call_entries(engine, self.entries, r.index + 1, self.attr,
                             count if count_obj is None else count_obj, event_args, event_kwargs)
                return 0
        return 0

    cdef int evaluate(self, Record *r, object engine, int64_t count, bint exact, object count_obj) except -1:
        if exact:
            return (<CFilter>r.cfilter).passes(engine, count, count_obj)
        return True if (<object>r.filter)(engine, count_obj) else False

    cdef bint count_moved(self, object engine, object count_obj) except -1:
        if self.peek_count(engine) is <PyObject *>count_obj:
            return False  # the count the firing read, still in its slot
        now = self.read_count(engine)
        return now is not count_obj and now != count_obj


cdef int _call(object engine, object handler, int shape, tuple args, object kwargs, tuple event_args) except -1:
    if shape == ENGINE or shape == ENGINE_ONLY:
        handler(engine, *event_args, *args, **kwargs)
    elif shape == PLAIN or shape == NO_ARGS:
        handler(*event_args, *args, **kwargs)
    else:
        target = args[0]()
        if target is None:
            raise RuntimeError("Engine reference not resolved. Cannot execute event handler.")
        handler(target, *event_args, *args[1:], **kwargs)
    return 0


cdef Table make_table(object entries, list records, object attr):
    """_dispatch_py.Table.__init__: group the records, compile their filters, lay them out."""
    cdef Table t = Table.__new__(Table)
    cdef Py_ssize_t i, n = len(records), n_groups, g, k
    cdef Record *r
    t.entries = entries
    t.attr = attr
    t.attr_kind = (ATTR_COUNTER if attr is None else ATTR_ITERATION if attr == "iteration"
                   else ATTR_EPOCH if attr == "epoch" else ATTR_OTHER)
    grouped, groups, shared, members = group_records(records)

    compiled = {}  # id(filter) -> CFilter: a filter object shared by many handlers is compiled once
    owned = [grouped, compiled]
    t.owned = owned
    n_groups = len(groups)
    t.n_records = n
    t.n_groups = n_groups
    t.records = <Record *>malloc((n + 1) * sizeof(Record))
    t.hot = <Py_ssize_t *>malloc((n + 1) * sizeof(Py_ssize_t))
    t.shared = <char *>malloc(n_groups + 1)
    t.member_start = <Py_ssize_t *>malloc((n_groups + 1) * sizeof(Py_ssize_t))
    t.members = <Py_ssize_t *>malloc((n + 1) * sizeof(Py_ssize_t))
    t.heap_cap = n_groups
    t.heap_due = <int64_t *>malloc((n_groups + 1) * sizeof(int64_t))
    t.heap_group = <Py_ssize_t *>malloc((n_groups + 1) * sizeof(Py_ssize_t))
    if (t.records is NULL or t.hot is NULL or t.shared is NULL or t.member_start is NULL or t.members is NULL
            or t.heap_due is NULL or t.heap_group is NULL):
        raise MemoryError()

    watch = False
    engine_only = True
    t.n_hot = 0
    for i in range(n):
        handler, event_filter, shape, args, kwargs, index, group = grouped[i]
        r = &t.records[i]
        r.handler = <PyObject *>handler
        r.filter = <PyObject *>event_filter if event_filter is not None else NULL
        r.cfilter = NULL
        if event_filter is not None:
            cf = compiled.get(id(event_filter))
            if cf is None:
                cf = compiled[id(event_filter)] = compile_filter(event_filter)
            r.cfilter = <PyObject *>cf
            watch = True
        r.args = <PyObject *>args
        r.kwargs = <PyObject *>kwargs
        r.shape = shape
        r.index = index
        r.group = group
        if group < 0:
            t.hot[t.n_hot] = i
            t.n_hot += 1
        if group != -1 or shape != ENGINE_ONLY:
            engine_only = False

    group_filters = []
    k = 0
    for g in range(n_groups):
        t.shared[g] = shared[g]
        t.member_start[g] = k
        for i in members[g]:
            t.members[k] = i
            k += 1
        group_filters.append(compiled[id(groups[g])])
        # All groups are due at the first firing.
        t.heap_due[g] = BEFORE_ALL
        t.heap_group[g] = g
    t.member_start[n_groups] = k
    t.groups = tuple(group_filters)
    t.heap_len = n_groups
    t.next_due = BEFORE_ALL if n_groups else NEVER
    t.last_count = BEFORE_ALL
    t.watch_count = attr is not None and watch
    t.engine_only = engine_only
    return t


@cython.final
cdef class Tables:
    """Slots, counters and dispatch tables of one engine (see _dispatch_py.Tables)."""

    def __cinit__(self):
        self.last_slot = -1
        self.slots = {}
        self.slot_by_id = {}
        self.events = []
        self.tables = []
        self.id_objects = []

    def __dealloc__(self):
        free(self.counts)
        free(self.id_keys)
        free(self.id_slots)

    # -- registration (cold) -------------------------------------------------

    def add_event(self, event) -> int:
        cdef Py_ssize_t cap
        slot = self.slots.get(event)
        if slot is None:
            slot = len(self.events)
            if self.n_slots == self.cap:
                cap = 2 * self.cap + 16
                counts = <int64_t *>realloc(self.counts, cap * sizeof(int64_t))
                if counts is NULL:
                    raise MemoryError()
                self.counts = counts
                self.cap = cap
            self.counts[self.n_slots] = 0
            self.n_slots += 1
            self.slots[event] = slot
            self.events.append(event)
            self.tables.append(STALE)
        self.slot_by_id[id(event)] = slot
        self.remember(event, slot)
        return slot

    cdef int remember(self, object event, Py_ssize_t slot) except -1:
        """Index ``event`` by identity (the object is kept alive, so its address is its own)."""
        cdef Py_ssize_t i, cap
        for i in range(self.n_ids):
            if self.id_keys[i] is <PyObject *>event:
                self.id_slots[i] = slot
                return 0
        if self.n_ids == self.id_cap:
            cap = 2 * self.id_cap + 16
            keys = <PyObject **>realloc(self.id_keys, cap * sizeof(PyObject *))
            if keys is NULL:
                raise MemoryError()
            self.id_keys = keys
            slots = <Py_ssize_t *>realloc(self.id_slots, cap * sizeof(Py_ssize_t))
            if slots is NULL:
                raise MemoryError()
            self.id_slots = slots
            self.id_cap = cap
        self.id_objects.append(event)
        self.id_keys[self.n_ids] = <PyObject *>event
        self.id_slots[self.n_ids] = slot
        self.n_ids += 1
        return 0

    cdef Py_ssize_t find(self, object event) except -2:
        """The slot of ``event``, -1 if none.  By identity first: the last
        registered (custom) events are found first, with no __hash__ call."""
        cdef Py_ssize_t i = self.n_ids
        while i > 0:
            i -= 1
            if self.id_keys[i] is <PyObject *>event:
                return self.id_slots[i]
        slot = self.slots.get(event)
        return -1 if slot is None else slot

    # Slots reach C arrays and lists read without bounds checks: every method
    # Python can call checks the slot it is given, and reads `events` (a list
    # Python can reach and change) with bounds checks.

    @property
    @cython.boundscheck(True)
    def last_event(self):
        """engine.last_event_name."""
        if self.last_slot >= 0:
            return self.events[self.last_slot]
        return self.last_other

    @last_event.setter
    def last_event(self, event):
        self.last_slot = -1
        self.last_other = event

    def slot_of(self, event):
        cdef Py_ssize_t slot = self.find(event)
        return None if slot < 0 else slot

    @cython.boundscheck(True)
    def invalidate(self, event) -> None:
        slot = self.slots.get(event)
        if slot is not None:
            self.tables[slot] = STALE

    def invalidate_all(self) -> None:
        for slot in range(len(self.tables)):
            self.tables[slot] = STALE

    def reset_counts(self) -> None:
        cdef Py_ssize_t slot
        for slot in range(self.n_slots):
            self.counts[slot] = 0

    def build(self, engine, Py_ssize_t slot):
        self.check_slot(slot)
        return self.build_c(engine, slot)

    cdef int check_slot(self, Py_ssize_t slot) except -1:
        if not 0 <= slot < self.n_slots:
            raise IndexError(f"slot should be within 0..{self.n_slots - 1}, got {slot}")
        return 0

    @cython.boundscheck(True)
    cdef Table build_c(self, object engine, Py_ssize_t slot):
        event = self.events[slot]
        entries = dict.get(engine._event_handlers, event)
        table = None
        if entries:
            records = [record(engine, i, entry) for i, entry in enumerate(entries)]
            table = make_table(entries, records, State.event_to_attr.get(event))
        self.tables[slot] = table
        return table

    def firings(self, Py_ssize_t slot) -> int:
        """How many times the event of ``slot`` fired since the run started."""
        self.check_slot(slot)
        return self.counts[slot]

    def set_firings(self, Py_ssize_t slot, count) -> None:
        """_dispatch_py.Tables.set_firings."""
        self.check_slot(slot)
        if type(count) is not int or not 0 <= count < LIMIT:
            raise ValueError(f"count should be an int from 0 to 2**62 - 1, got {count!r}")
        self.counts[slot] = count

    @cython.boundscheck(True)
    cdef object count_obj(self, object engine, Py_ssize_t slot):
        attr = State.event_to_attr.get(self.events[slot])
        return self.counts[slot] if attr is None else getattr(state_of(engine), attr)

    def count(self, engine, Py_ssize_t slot):  # no `-> int`: Cython would coerce the count
        """The count filters on this slot read (see _dispatch_py.Tables.count)."""
        self.check_slot(slot)
        return self.count_obj(engine, slot)

    # -- firing (hot) --------------------------------------------------------

    def fire(self, engine, Py_ssize_t slot, tuple event_args=(), event_kwargs=None) -> None:
        self.check_slot(slot)
        self.fire_c(engine, slot, event_args, event_kwargs)

    cdef int fire_c(self, object engine, Py_ssize_t slot, tuple event_args, object event_kwargs) except -1:
        self.last_slot = slot
        self.counts[slot] += 1
        if item(<PyObject *>self.tables, slot) is <PyObject *>None:
            return 0
        return self.fire_table(engine, slot, event_args, event_kwargs)

    cdef int fire_table(self, object engine, Py_ssize_t slot, tuple event_args, object event_kwargs) except -1:
        """The handlers' part of a firing, once the slot has a table (or a stale one)."""
        # A local reference: the table outlives this firing even if a handler
        # makes the slot stale (and the list drops it) mid-walk.
        cdef Table table
        current = <object>item(<PyObject *>self.tables, slot)
        if current is None:
            return 0
        if current is STALE:
            table = self.build_c(engine, slot)
            if table is None:
                return 0
        else:
            table = <Table>current
        return table.fire(self, engine, slot, event_args, event_kwargs)

    def fire_event(self, engine, event_name) -> None:
        """Engine.fire_event for an engine on this twin."""
        self.fire_event_c(engine, event_name)

    cdef int fire_event_c(self, object engine, object event_name) except -1:
        cdef Py_ssize_t slot = self.find(event_name)
        if slot < 0 or self.check_allowed:
            engine._assert_allowed_event(event_name)  # raises, naming the event
            slot = self.find(event_name)  # an event listed by hand is added
            if slot < 0:  # a subclass's _assert_allowed_event let it through
                engine._fire_event(event_name)
                return 0
        if _fire_event_overridden(engine):
            engine._fire_event(event_name)
            return 0
        return self.fire_c(engine, slot, (), None)


# The last engine type asked about, under its version tag, and the answer
# (_driver.fire_event_overridden, asked again when the type changes).  The
# type is compared by address only: no reference is kept.
cdef PyTypeObject *_overridden_type = NULL
cdef unsigned int _overridden_version = 0
cdef bint _overridden = False


cdef bint _fire_event_overridden(object engine) except -1:
    """A subclass overriding _fire_event sees every firing, as in ignite."""
    global _overridden_type, _overridden_version, _overridden
    cdef PyTypeObject *tp = Py_TYPE(engine)
    if tp is _overridden_type and current_version(tp) == _overridden_version:
        return _overridden
    _overridden = fire_event_overridden(engine)
    _overridden_version = type_version(tp)
    _overridden_type = tp if _overridden_version != 0 else NULL  # no tag: asked again next time
    return _overridden


def fire_event(engine, event_name) -> None:
    """Fire a (registered) event now, e.g. a custom event from the process function."""
    tables = get_field(engine, engine_layout(engine).tables)
    if type(tables) is Tables:
        (<Tables>tables).fire_event_c(engine, event_name)
        return None
    # An engine built on the other twin: its firing nests through this C
    # function too, so it takes the same guard.
    enter_firing()
    try:
        return tables.fire_event(engine, event_name)
    finally:
        Py_LeaveRecursiveCall()


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
    # polls, and when the last poll was (time.monotonic).
    cdef Py_ssize_t countdown, poll_every
    cdef double last_poll
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
        self.fire_through = fire_through(engine) if _fire_event_overridden(engine) else None
        self.interruptible = interruptible
        self.countdown = self.poll_every = 64
        self.last_poll = _monotonic()
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
cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1


# About every POLL_SECONDS, counted in iterations so that the clock is read rarely.
cdef double POLL_SECONDS = 0.001
cdef Py_ssize_t POLL_MAX_ITERATIONS = 1 << 16
_monotonic = time.monotonic


cdef int poll(Loop run) except -1:
    """Let the interpreter do what running bytecode would let it do.

    When the process function is C code and no handler is Python, the loop
    runs no bytecode for a whole epoch, so neither a signal handler (Ctrl-C)
    nor another thread (terminate() from a watchdog) would run until it ends.
    Every ~POLL_SECONDS this runs pending signal handlers and releases the
    GIL for a moment, which hands it to a thread waiting for it.  The number
    of iterations between polls adapts to their speed: a decrement per
    iteration and a clock read per poll."""
    cdef double now, elapsed
    PyErr_CheckSignals()  # raises what a handler raised (KeyboardInterrupt)
    with nogil:
        pass
    now = _monotonic()
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
                run.fire(S_ITERATION_STARTED)
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
                run.fire(S_ITERATION_COMPLETED)
                if moved(run, engine, state):
                    state = current_state(run)
            if field_is_true(engine, el.signal):
                run.phase = P_END
                return R_SIGNAL
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


