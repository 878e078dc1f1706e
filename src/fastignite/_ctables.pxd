# The compiled dispatch tables (_ctables.pyx): one engine's slots, firing
# counters and per-event handler tables, laid out for C.  The algorithm is
# the pure twin's (_dispatch_py.Table and Tables).

from cpython.object cimport PyObject
from libc.stdint cimport int64_t

from ._capi cimport PY_VECTORCALL_ARGUMENTS_OFFSET, Py_EnterRecursiveCall, stack_exhausted, vectorcall
from ._cfilters cimport CFilter


cdef struct Record:
    # One registered handler, as the firing calls it.  The pointers are
    # borrowed: the Table's `owned` list holds every object they point to.
    PyObject *handler
    PyObject *filter       # the Python filter; NULL when the handler has none
    PyObject *cfilter      # its CFilter; NULL when the handler has none
    PyObject *args         # tuple, without the engine's weak reference
    PyObject *kwargs       # dict (ignite's, updated in place by event kwargs)
    int shape              # NO_ARGS, ENGINE_ONLY, PLAIN, ENGINE or WEAKREF
    Py_ssize_t index       # position in the registry list
    Py_ssize_t group       # -1 no filter; -2 evaluated at every firing; >= 0 filter group


cdef class Table:
    cdef readonly object entries  # the registry list (a HandlerList) this table is a snapshot of
    cdef readonly object attr     # the state attribute filters read (None: the firing counter)
    cdef int attr_kind            # ATTR_COUNTER, ATTR_ITERATION, ATTR_EPOCH or ATTR_OTHER
    cdef list owned               # keeps every object a Record points to alive
    cdef Record *records
    cdef Py_ssize_t n_records
    cdef Py_ssize_t *hot          # records with group < 0, in order
    cdef Py_ssize_t n_hot
    cdef tuple groups             # group -> CFilter
    cdef char *shared             # group -> evaluated once per firing for all its records
    cdef Py_ssize_t *member_start # group g's records: members[member_start[g]:member_start[g+1]]
    cdef Py_ssize_t *members
    cdef Py_ssize_t n_groups
    cdef int64_t *heap_due        # a binary heap of (due, group), least first
    cdef Py_ssize_t *heap_group
    cdef Py_ssize_t heap_len, heap_cap
    cdef int64_t next_due, last_count
    cdef bint watch_count         # a handler moving the count invalidates the firing's filter results
    cdef bint engine_only         # only unfiltered handler(engine) records

    cdef int heap_push(self, int64_t due, Py_ssize_t group) except -1
    cdef Py_ssize_t heap_pop(self)
    cdef int fire(self, Tables tables, object engine, Py_ssize_t slot, tuple event_args, object event_kwargs) except -1
    cdef int walk(self, Tables tables, object engine, Py_ssize_t slot, Py_ssize_t *selected, Py_ssize_t n_sel,
                  signed char *results, int64_t count, bint exact, object count_obj, bint simple,
                  tuple event_args, object event_kwargs) except -1
    cdef int evaluate(self, Record *r, object engine, int64_t count, bint exact, object count_obj) except -1
    cdef PyObject *peek_count(self, object engine) noexcept
    cdef object read_count(self, object engine)
    cdef bint count_moved(self, object engine, object count_obj) except -1


cdef class Tables:
    cdef dict slots               # event -> slot (events compare by name); private: slots index C arrays
    cdef readonly list events     # slot -> the event object registered first
    cdef list tables              # slot -> None | STALE | Table
    cdef int64_t *counts          # slot -> firings since the run started
    cdef Py_ssize_t n_slots, cap
    cdef PyObject **id_keys       # registered event objects (borrowed), for lookups by identity
    cdef Py_ssize_t *id_slots
    cdef Py_ssize_t n_ids, id_cap
    cdef list id_objects          # owns what id_keys points to
    cdef Py_ssize_t last_slot     # engine.last_event_name: the event of this slot, or
    cdef object last_other        # when last_slot is -1, this object (set by assignment)
    cdef public bint check_allowed  # fire_event checks engine._allowed_events (edited by hand)
    cdef set fired_before         # slots fired in an earlier run (see fired_ever)
    cdef object __weakref__

    cdef int remember(self, object event, Py_ssize_t slot) except -1
    cdef Py_ssize_t find(self, object event) except -2
    cdef object count_obj(self, object engine, Py_ssize_t slot)
    cdef int check_slot(self, Py_ssize_t slot) except -1
    cdef Table build_c(self, object engine, Py_ssize_t slot)
    cdef int fire_c(self, object engine, Py_ssize_t slot, tuple event_args, object event_kwargs) except -1
    cdef int fire_event_c(self, object engine, object event_name) except -1
    cdef int fire_table(self, object engine, Py_ssize_t slot, tuple event_args, object event_kwargs) except -1


cdef bint fire_event_overridden(object engine) except -1


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
