# Declarations of the compiled twin (_dispatch_c.pyx).  The algorithm is the
# pure twin's (_dispatch_py.py); these are its data laid out for C.

from cpython.object cimport PyObject, PyTypeObject
from libc.stdint cimport int64_t

from ._fields cimport Field


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


cdef struct EngineLayout:
    # Where the engine keeps the attributes the loop touches.
    PyTypeObject *type
    unsigned int version
    Field state, signal, dataloader_iter, process_function, tables


cdef struct StateLayout:
    PyTypeObject *type
    unsigned int version
    Field iteration, epoch, batch, output, dataloader, epoch_length, max_iters


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
    cdef dict slot_by_id          # id(registered event object) -> slot
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
    cdef object __weakref__

    cdef int remember(self, object event, Py_ssize_t slot) except -1
    cdef Py_ssize_t find(self, object event) except -2
    cdef object count_obj(self, object engine, Py_ssize_t slot)
    cdef int check_slot(self, Py_ssize_t slot) except -1
    cdef Table build_c(self, object engine, Py_ssize_t slot)
    cdef int fire_c(self, object engine, Py_ssize_t slot, tuple event_args, object event_kwargs) except -1
    cdef int fire_event_c(self, object engine, object event_name) except -1
    cdef int fire_table(self, object engine, Py_ssize_t slot, tuple event_args, object event_kwargs) except -1
