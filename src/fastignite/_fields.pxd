# Attribute access in place, for the compiled twin.
#
# The loop reads and writes a handful of engine and state attributes at every
# iteration.  Through PyObject_GetAttr/SetAttr each costs ~15 ns, more than the
# rest of an iteration.  Engine and State declare those attributes in
# __slots__; a slot is a pointer at a fixed offset in the object, which a
# member descriptor on the type records.  A Layout caches those offsets for one
# type and is checked against the type's version tag, which CPython changes
# whenever the type (or a base) is modified, so a class patched at run time is
# re-resolved.  Any attribute that is not a plain slot (a property, a class
# attribute, an object of another type) goes through getattr/setattr, with
# Python's exact semantics.

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF


cdef extern from "Python.h":
    PyObject *_PyType_Lookup(PyTypeObject *type, PyObject *name)  # borrowed, no error set
    PyTypeObject PyMemberDescr_Type


cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        const char *name
        int type
        Py_ssize_t offset
        int flags
    int T_OBJECT_EX
    int READONLY


cdef extern from *:
    """
    static inline PyMemberDef *fastignite_member_of(PyObject *descr) {
        return ((PyMemberDescrObject *)descr)->d_member;
    }
    /* 0 when the type has no valid tag: a layout recorded with 0 never matches. */
    static inline unsigned int fastignite_version_of(PyTypeObject *tp) {
        return PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG) ? tp->tp_version_tag : 0;
    }
    """
    PyMemberDef *fastignite_member_of(PyObject *descr)
    unsigned int version_of "fastignite_version_of"(PyTypeObject *tp)


cdef inline Py_ssize_t slot_offset(PyTypeObject *tp, str name):
    """The offset of ``name`` if ``tp`` keeps it in a writable object slot, else 0."""
    cdef PyObject *descr = _PyType_Lookup(tp, <PyObject *>name)
    cdef PyMemberDef *member
    if descr is NULL or descr.ob_type is not &PyMemberDescr_Type:
        return 0
    member = fastignite_member_of(descr)
    if member.type != T_OBJECT_EX or member.flags & READONLY:
        return 0
    return member.offset


cdef inline object get_field(object obj, Py_ssize_t offset, str name):
    cdef PyObject *value
    if offset:
        value = (<PyObject **>(<char *><PyObject *>obj + offset))[0]
        if value is not NULL:
            return <object>value
    return getattr(obj, name)  # unset slot or no slot: Python's own lookup and error


cdef inline int set_field(object obj, Py_ssize_t offset, str name, object value) except -1:
    cdef PyObject **slot
    cdef PyObject *old
    if offset:
        slot = <PyObject **>(<char *><PyObject *>obj + offset)
        old = slot[0]
        Py_INCREF(value)
        slot[0] = <PyObject *>value
        Py_XDECREF(old)  # last: a finalizer it runs sees the new value, as with setattr
        return 0
    setattr(obj, name, value)
    return 0
