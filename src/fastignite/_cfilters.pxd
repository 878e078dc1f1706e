# The compiled filters (_cfilters.pyx): the library's own filter types as C,
# and the integer arithmetic of due counts.

from libc.stdint cimport int64_t
from cpython.long cimport PyLong_AsLongLongAndOverflow

from ._capi cimport small_int
from ._numbers cimport LIMIT


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


cdef class CFilter:
    cdef int kind
    cdef object obj            # the filter this was compiled from
    cdef bint opaque           # filters.is_opaque(obj)
    cdef bint event_filter     # obj is a filters.EventFilter (has next_due / gate_due)
    cdef int64_t *values       # K_EVERY: periods; K_ONCE: the counts, ascending
    cdef Py_ssize_t n_values
    cdef int64_t before, after, every  # K_WINDOW (before NEVER: no bound; every 0: none)
    cdef tuple parts           # K_ALL / K_ANY: CFilters, in evaluation order

    cdef int passes(self, object engine, int64_t count, object count_obj) except -1
    cdef int64_t next_due(self, int64_t count, object count_obj) except? -1
    cdef int64_t gate_due(self, int64_t count, object count_obj) except? -1
    cdef int64_t next_due_of(self, int64_t count, object count_obj) except? -1
    cdef int64_t gate_due_of(self, int64_t count, object count_obj) except? -1


cdef CFilter compile_filter(object f)
cdef int64_t as_due(object due, object f, str method) except? -1


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
