# Attribute access in place, for the compiled twin.
#
# The loop reads and writes a handful of engine and state attributes at every
# iteration.  Through PyObject_GetAttr/SetAttr each costs ~15 ns, more than the
# rest of an iteration.  Engine and State declare those attributes in
# __slots__; a slot is a pointer at a fixed offset in the object, which a
# member descriptor on the type records (``_capi.member_offset``).  A Layout
# caches those offsets for one type and is checked against the type's version
# tag, which CPython changes whenever the type (or a base) is modified, so a
# class patched at run time is re-resolved.  Any attribute that is not a
# plain slot (a property, a class attribute, an object of another type) goes
# through getattr/setattr, with Python's exact semantics.

from cpython.object cimport PyObject, PyTypeObject
from cpython.long cimport PyLong_CheckExact, PyLong_FromLongLong
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF

from libc.stdint cimport INT64_MAX, int64_t

from ._capi cimport current_version, increment_in_place, member_offset, small_int


cdef extern from "Python.h":
    PyObject *Py_True
    PyObject *Py_False


cdef extern from *:
    """
    /* getattr / setattr out of line, so that the inline fast paths stay small. */
    #if defined(__GNUC__)
    #define FASTIGNITE_NOINLINE __attribute__((noinline))
    #elif defined(_MSC_VER)
    #define FASTIGNITE_NOINLINE __declspec(noinline)
    #else
    #define FASTIGNITE_NOINLINE
    #endif
    static CYTHON_UNUSED FASTIGNITE_NOINLINE PyObject *fastignite_get_slow(PyObject *obj, PyObject *name) {
        return PyObject_GetAttr(obj, name);
    }
    static CYTHON_UNUSED FASTIGNITE_NOINLINE int fastignite_set_slow(PyObject *obj, PyObject *name, PyObject *value) {
        return PyObject_SetAttr(obj, name, value);
    }
    """
    object get_slow "fastignite_get_slow"(object obj, str name)
    int set_slow "fastignite_set_slow"(object obj, str name, object value) except -1


cdef struct Field:
    Py_ssize_t offset   # of the attribute's object slot; 0: through getattr / setattr
    PyObject *name      # the attribute's name (a str the resolving module keeps alive)


cdef inline Field field_of(PyTypeObject *tp, str name):
    """Where ``tp`` keeps attribute ``name``: a writable object slot, or not (offset 0)."""
    cdef Field field
    field.name = <PyObject *>name
    field.offset = member_offset(tp, <PyObject *>name)
    return field


# Fields are passed by value and the fast paths touch no reference count but
# the value's: the attribute name is only needed, and only converted, on the
# slow path.

cdef inline object get_field(object obj, Field field):
    cdef PyObject *value
    if field.offset:
        value = (<PyObject **>(<char *><PyObject *>obj + field.offset))[0]
        if value is not NULL:
            return <object>value
    return get_slow(obj, <str>field.name)  # unset slot or no slot: Python's own lookup and error


cdef inline int set_field(object obj, Field field, object value) except -1:
    cdef PyObject **cell
    cdef PyObject *old
    if field.offset:
        cell = <PyObject **>(<char *><PyObject *>obj + field.offset)
        old = cell[0]
        if old is <PyObject *>value:
            return 0  # e.g. batch None again: spare the two reference-count writes
        Py_INCREF(value)
        cell[0] = <PyObject *>value
        Py_XDECREF(old)  # last: a finalizer it runs sees the new value, as with setattr
        return 0
    return set_slow(obj, <str>field.name, value)


cdef inline PyObject *peek_field(object obj, Field field) noexcept:
    """The object in the field's slot, borrowed; NULL when it is not in a
    slot (then get_field gives Python's own lookup).  Lets the loop compare a
    field with what it already holds, taking no reference when they agree."""
    if field.offset:
        return (<PyObject **>(<char *><PyObject *>obj + field.offset))[0]
    return NULL


cdef inline int increment_field(object obj, Field field) except -1:
    """``obj.<field> += 1``.  An int in its slot that nothing else holds is
    incremented in place (``_capi.increment_in_place``); another small int is
    replaced in place: the new int takes the slot's reference, and the old one
    is released last."""
    cdef PyObject **cell
    cdef PyObject *old
    cdef int64_t value
    if field.offset:
        cell = <PyObject **>(<char *><PyObject *>obj + field.offset)
        old = cell[0]
        if old is not NULL and increment_in_place(old):
            return 0
        if old is not NULL and PyLong_CheckExact(<object>old) and small_int(<object>old, &value) \
                and value < INT64_MAX:
            new = PyLong_FromLongLong(value + 1)
            Py_INCREF(new)
            cell[0] = <PyObject *>new
            Py_DECREF(<object>old)
            return 0
    return set_field(obj, field, get_field(obj, field) + 1)


# Tests of a field's value that take no reference when it is in its slot.

cdef inline bint field_is_none(object obj, Field field) except -1:
    cdef PyObject *value
    if field.offset:
        value = (<PyObject **>(<char *><PyObject *>obj + field.offset))[0]
        if value is not NULL:
            return value is <PyObject *>None
    return get_slow(obj, <str>field.name) is None


cdef inline bint field_is_true(object obj, Field field) except -1:
    cdef PyObject *value
    if field.offset:
        value = (<PyObject **>(<char *><PyObject *>obj + field.offset))[0]
        if value is Py_False:
            return False
        if value is Py_True:
            return True
    return True if get_slow(obj, <str>field.name) else False


cdef inline bint field_is(object obj, Field field, object value) except -1:
    """Whether the field holds ``value`` itself."""
    cdef PyObject *current
    if field.offset:
        current = (<PyObject **>(<char *><PyObject *>obj + field.offset))[0]
        if current is not NULL:
            return current is <PyObject *>value
    return get_slow(obj, <str>field.name) is value


# -- layouts (_fields.pyx) -------------------------------------------------------

cdef struct EngineLayout:
    # Where the engine keeps the attributes the loop touches.
    PyTypeObject *type
    unsigned int version
    Field state, signal, dataloader_iter, process_function, tables


cdef struct StateLayout:
    PyTypeObject *type
    unsigned int version
    Field iteration, epoch, batch, output, dataloader, epoch_length, max_iters


cdef void resolve_engine(EngineLayout *layout, PyTypeObject *tp) noexcept
cdef void resolve_state(StateLayout *layout, PyTypeObject *tp) noexcept


cdef inline void check_engine(EngineLayout *layout, PyTypeObject *tp) noexcept:
    """Make ``layout`` that of ``tp`` as it is now (a type and version comparison)."""
    if tp is not layout.type or current_version(tp) != layout.version:
        resolve_engine(layout, tp)


cdef inline void check_state(StateLayout *layout, PyTypeObject *tp) noexcept:
    if tp is not layout.type or current_version(tp) != layout.version:
        resolve_state(layout, tp)
