"""Filters of the library's own types, compiled (the compiled twin's view of filters.py).

``compile_filter(f)`` makes a ``CFilter`` tree of every, once, before/after,
``&``, ``|``, throttle and timeout filters, evaluated in C with int64
counts.  Anything else (a user's callable, a subclass, values the C
arithmetic cannot hold, a zero period) is a K_CALL node: called as Python,
so it behaves, and raises, exactly as filters.py does.
tests/test_filter_twins.py checks this module against filters.py through
``_evaluate`` and ``_schedule``.
"""

cimport cython

from cpython.object cimport PyObject_GenericSetAttr
from libc.stdlib cimport free, malloc

from ._numbers cimport BEFORE_ALL, LIMIT, NEVER

import math

from .filters import AllOf, AnyOf, EventFilter, Every, Once, Throttle, Timeout, Window, is_opaque
from .filters import NEVER as _PY_NEVER, as_due as _py_as_due

# Attribute names of filters.Throttle / Timeout running state.
cdef str A_LAST = "_last", A_FIRED = "_fired"


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
