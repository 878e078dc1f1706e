"""Dispatch tables, compiled: the walk of one firing (see _dispatch_py.Table and Tables).

What differs from the pure twin, in C:

* Handler records, filter groups and the due-count heap are C arrays.  A table
  is never changed after it is built; the firing that walks it holds a
  reference to it, so a handler that changes the registry (which marks the
  table stale) or fires the same event again cannot free or corrupt the arrays
  under the walk.
* Filters of the library's own types are evaluated as ``CFilter`` trees
  (_cfilters.pyx); anything else is called from C as Python.
* Firing counters are C ``int64``; a count that is not an ``int`` within
  +-2**62 (a user can store anything in ``state.iteration``) makes a firing
  evaluate every filter through Python, without the due-count schedule.
"""

cimport cython

from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject, PyTypeObject, Py_TYPE
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, qsort, realloc
from libc.string cimport memset

from ._capi cimport Py_LeaveRecursiveCall, current_version, item, type_version
from ._cfilters cimport as_count, compile_filter
from ._fields cimport EngineLayout, StateLayout, check_engine, check_state, get_field, peek_field
from ._numbers cimport BEFORE_ALL, ENGINE_ONLY, LIMIT, NEVER, NO_ARGS

from ._driver import STALE, call, call_entries, group_records, record
from ._driver import fire_event_overridden as _driver_fire_event_overridden
from .events import State


# The layouts of the last engine and state types a firing met (one-entry
# caches of type pointers and offsets, checked against the types' version
# tags: no reference is kept).
cdef EngineLayout _engine
cdef StateLayout _state


cdef inline EngineLayout *engine_layout(object engine) noexcept:
    check_engine(&_engine, Py_TYPE(engine))
    return &_engine


cdef inline StateLayout *state_layout(object state) noexcept:
    check_state(&_state, Py_TYPE(state))
    return &_state


cdef inline object state_of(object engine):
    return get_field(engine, engine_layout(engine).state)


# How a table reads the count its filters test.
cdef enum:
    ATTR_COUNTER = 0    # no state attribute: the engine's firing counter
    ATTR_ITERATION = 1
    ATTR_EPOCH = 2
    ATTR_OTHER = 3


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
                call(engine, handler, r.shape, <object>r.args, <object>r.kwargs, event_args)
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
        self.events = []
        self.tables = []
        self.id_objects = []
        self.fired_before = set()

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
            if self.counts[slot]:
                self.fired_before.add(slot)
            self.counts[slot] = 0

    def fired_ever(self, Py_ssize_t slot) -> bool:
        """Whether the event of ``slot`` ever fired on this engine (see _dispatch_py)."""
        self.check_slot(slot)
        return self.counts[slot] > 0 or slot in self.fired_before

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
        if overridden(engine):
            engine._fire_event(event_name)
            return 0
        return self.fire_c(engine, slot, (), None)


# The last engine type asked about, under its version tag, and the answer
# (_driver.fire_event_overridden, asked again when the type changes).  The
# type is compared by address only: no reference is kept.
cdef PyTypeObject *_overridden_type = NULL
cdef unsigned int _overridden_version = 0
cdef bint _overridden = False


cdef inline bint overridden(object engine) except -1:
    """A subclass overriding _fire_event sees every firing, as in ignite."""
    global _overridden_type, _overridden_version, _overridden
    cdef PyTypeObject *tp = Py_TYPE(engine)
    if tp is _overridden_type and current_version(tp) == _overridden_version:
        return _overridden
    _overridden = _driver_fire_event_overridden(engine)
    _overridden_version = type_version(tp)
    _overridden_type = tp if _overridden_version != 0 else NULL  # no tag: asked again next time
    return _overridden


cdef bint fire_event_overridden(object engine) except -1:
    """The same, for the loop (once per run)."""
    return overridden(engine)


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
