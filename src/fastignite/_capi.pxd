# Every use of CPython's internals by the compiled twin, in one place.
#
# The compiled twin is built only for CPython with a GIL (setup.py); PyPy,
# other interpreters and free-threaded CPython run the pure twin.  What is
# here is the part of CPython's C API that is not public, or not the same on
# every version, that the hot path needs.  Each function says what it reads,
# why, and on which versions; a public API is used wherever one exists, and
# every difference between versions is a PY_VERSION_HEX guard, so the file
# compiles against the headers of 3.9 to 3.14.
#
#   type_version       a type's version tag (the layout caches key on it)
#   current_version    the same, read without assigning one (the fast check)
#   member_offset        where a __slots__ attribute lives: member descriptors
#   type_lookup        an attribute as the type's MRO defines it
#   small_int          a small int's value, read in place (long digits)
#   increment_in_place an int nobody else holds, incremented in place
#   next_or_exhausted  next(it, exhausted), through tp_iternext
#   has_next           whether tp_iternext may be called (iterator checks)
#   vectorcall         a call through the callable's own vectorcall function
#   stack_exhausted    whether this thread's C stack is too deep to nest a firing

from cpython.object cimport PyObject, PyTypeObject
from libc.stdint cimport int64_t


cdef extern from *:
    """
    /* ---- type version tags ---------------------------------------------
       CPython gives a type a version tag, and a new one whenever the type or
       one of its bases changes; a type may also have none.  A layout (where a
       type keeps an attribute) stays true while the tag it was resolved
       under is the type's tag.
       3.12+: tp_version_tag is 0 exactly when the type has no valid tag
         (3.13 no longer sets Py_TPFLAGS_VALID_VERSION_TAG at all), and
         PyUnstable_Type_AssignVersionTag, public, assigns one.
       3.9-3.11: the tag is valid only while Py_TPFLAGS_VALID_VERSION_TAG is
         set (3.9 leaves the old number in place when it invalidates it),
         and only _PyType_Lookup assigns one: there is no public way. */
    static inline unsigned int fastignite_current_version(PyTypeObject *tp) {
    #if PY_VERSION_HEX >= 0x030C0000
        return tp->tp_version_tag;
    #else
        return PyType_HasFeature(tp, Py_TPFLAGS_VALID_VERSION_TAG) ? tp->tp_version_tag : 0;
    #endif
    }

    /* The type's tag, assigning one if it has none; 0 when CPython will not
       give it one (a type modified very often, or tags run out): a layout
       resolved under 0 is resolved again at every check, slower, never wrong. */
    static CYTHON_UNUSED unsigned int fastignite_type_version(PyTypeObject *tp) {
        if (fastignite_current_version(tp) == 0) {
    #if PY_VERSION_HEX >= 0x030C0000
            (void)PyUnstable_Type_AssignVersionTag(tp);
    #else
            static PyObject *any_name = NULL;  /* any str: the lookup assigns the tag first */
            if (any_name == NULL)
                any_name = PyUnicode_InternFromString("__fastignite_version__");
            if (any_name == NULL) {
                PyErr_Clear();
                return 0;
            }
            (void)_PyType_Lookup(tp, any_name);
    #endif
        }
        return fastignite_current_version(tp);
    }

    /* ---- attribute lookup on a type, through public API ----------------
       What _PyType_Lookup gives (the attribute as the MRO defines it, no
       descriptor called), without its cache: only ever called when a layout
       is resolved or a per-type answer is cached.  3.12+ keeps the dicts of
       static builtin types outside tp_dict: PyType_GetDict finds them.
       Borrowed (the class's dict holds it), or NULL with no error set. */
    static CYTHON_UNUSED PyObject *fastignite_type_lookup(PyTypeObject *tp, PyObject *name) {
        PyObject *mro = tp->tp_mro, *dict, *found = NULL;
        Py_ssize_t i, n;
        if (mro == NULL || !PyTuple_Check(mro))
            return NULL;
        n = PyTuple_GET_SIZE(mro);
        for (i = 0; i < n && found == NULL; i++) {
            PyObject *base = PyTuple_GET_ITEM(mro, i);
            if (!PyType_Check(base))
                continue;
    #if PY_VERSION_HEX >= 0x030C0000
            dict = PyType_GetDict((PyTypeObject *)base);  /* new reference */
    #else
            dict = ((PyTypeObject *)base)->tp_dict;
            Py_XINCREF(dict);
    #endif
            if (dict == NULL)
                continue;
            found = PyDict_GetItemWithError(dict, name);  /* borrowed; the class keeps its dict */
            Py_DECREF(dict);
        }
        if (found == NULL)
            PyErr_Clear();
        return found;
    }

    /* ---- member descriptors: where a __slots__ attribute lives ---------
       A __slots__ attribute is a pointer at a fixed offset in the instance,
       recorded by a member descriptor (PyMemberDescr_Type, public) in its
       PyMemberDef, which only the PyMemberDescrObject struct reaches
       (Include/cpython/descrobject.h, the same on 3.9-3.14).
       The descriptor must belong to a base of `tp` (PyDescr_TYPE): one of
       another class, stored as a class attribute, records that class's
       offset.  Only writable object slots (T_OBJECT_EX: unset raises
       AttributeError) inside the instance qualify.
       3.12 renamed structmember.h's constants into Python.h (Py_T_*) and
       added Py_RELATIVE_OFFSET, which such a descriptor never carries. */
    #if PY_VERSION_HEX >= 0x030C0000
    #define FASTIGNITE_T_OBJECT_EX Py_T_OBJECT_EX
    #define FASTIGNITE_READONLY Py_READONLY
    #define FASTIGNITE_RELATIVE_OFFSET Py_RELATIVE_OFFSET
    #else
    #include "structmember.h"
    #define FASTIGNITE_T_OBJECT_EX T_OBJECT_EX
    #define FASTIGNITE_READONLY READONLY
    #define FASTIGNITE_RELATIVE_OFFSET 0
    #endif

    /* The offset of `tp`'s writable object slot `name`, or 0 when `name` is
       not one (a property, a class attribute, nothing: getattr/setattr). */
    static CYTHON_UNUSED Py_ssize_t fastignite_member_offset(PyTypeObject *tp, PyObject *name) {
        PyObject *descr;
        PyMemberDef *member;
        /* A class that defines __getattribute__, __getattr__ or __setattr__
           (its slot functions are no longer the generic ones) sees every
           access through them, as it would see a property. */
        if (tp->tp_getattro != PyObject_GenericGetAttr || tp->tp_setattro != PyObject_GenericSetAttr)
            return 0;
        descr = fastignite_type_lookup(tp, name);
        if (descr == NULL || Py_TYPE(descr) != &PyMemberDescr_Type)
            return 0;
        if (!PyType_IsSubtype(tp, PyDescr_TYPE(descr)))
            return 0;
        member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != FASTIGNITE_T_OBJECT_EX
                || (member->flags & (FASTIGNITE_READONLY | FASTIGNITE_RELATIVE_OFFSET)))
            return 0;
        if (member->offset < (Py_ssize_t)sizeof(PyObject)
                || member->offset + (Py_ssize_t)sizeof(PyObject *) > PyDescr_TYPE(descr)->tp_basicsize)
            return 0;
        return member->offset;
    }

    /* ---- long digits ---------------------------------------------------
       The value of an int that fits one machine word, read in place; 0 for a
       larger one (then PyLong_AsLongLongAndOverflow).  Counts are almost
       always that small, and the public conversion costs a call.
       3.12+: PyUnstable_Long_IsCompact / _CompactValue (public, unstable).
       3.9-3.11: ob_size and one 30-bit digit (ob_digit). */
    static inline int fastignite_small_int(PyObject *o, int64_t *out) {
    #if PY_VERSION_HEX >= 0x030C0000
        if (!PyUnstable_Long_IsCompact((PyLongObject *)o))
            return 0;
        *out = PyUnstable_Long_CompactValue((PyLongObject *)o);
        return 1;
    #else
        Py_ssize_t size = Py_SIZE(o);
        if (size < -1 || size > 1)
            return 0;
        *out = size * (int64_t)((PyLongObject *)o)->ob_digit[0];
        return 1;
    #endif
    }

    /* An int that no one else holds, incremented in its own digit.
       `state.iteration += 1` at every iteration would allocate an int and
       free the old one: 10-20 ns here, a fifth of an empty iteration.  When
       the slot holds the only reference (refcount 1: not a cached small int,
       which is shared, or immortal on 3.12+, and seen by no other object or
       frame), the change cannot be observed, so the digit is written in
       place, as CPython itself appends to a str that nobody else holds.
       Only 256 <= value < 2**30 - 1 (one digit, never becoming a cached small
       int) and only the layouts known here: ob_size and ob_digit on 3.9-3.11,
       lv_tag (PyUnstable_Long_IsCompact) and long_value on 3.12-3.14.
       0 when not done: the caller allocates as usual. */
    #if PY_VERSION_HEX < 0x030B0000
    #include "longintrepr.h"  /* 3.9, 3.10: not included by Python.h */
    #endif
    static inline int fastignite_increment_in_place(PyObject *o) {
    #if PY_VERSION_HEX >= 0x030F0000
        (void)o;
        return 0;
    #else
        PyLongObject *number = (PyLongObject *)o;
        if (Py_REFCNT(o) != 1 || !PyLong_CheckExact(o))
            return 0;
    #if PY_VERSION_HEX >= 0x030C0000
        if (!PyUnstable_Long_IsCompact(number))
            return 0;
        Py_ssize_t value = PyUnstable_Long_CompactValue(number);
        if (value < 256 || value >= (Py_ssize_t)PyLong_MASK)
            return 0;
        number->long_value.ob_digit[0] = (digit)(value + 1);
    #else
        if (Py_SIZE(o) != 1)
            return 0;
        digit value = number->ob_digit[0];
        if (value < 256 || value >= PyLong_MASK)
            return 0;
        number->ob_digit[0] = value + 1;
    #endif
        return 1;
    #endif
    }

    /* ---- iterators -----------------------------------------------------
       PyIter_Check (public) is a call, and CPython's own test compares with
       _PyObject_NextNotImplemented, which 3.13 no longer exports.  The loop
       calls PyIter_Check when it takes a new iterator object, and at every
       iteration only tests that tp_iternext is there to call (a type's slot
       can change under the same object): _PyObject_NextNotImplemented, if it
       is the slot, raises TypeError as calling next() would. */
    static inline int fastignite_has_next(PyObject *o) {
        return Py_TYPE(o)->tp_iternext != NULL;
    }

    /* next(it, exhausted) without building the call: a new reference to the
       next item, or to `exhausted` once the iterator is done (StopIteration
       cleared, as next() with a default does); NULL with another error.
       `it` must pass fastignite_has_next. */
    static PyObject *fastignite_exhausted = NULL;  /* set once at import */
    static inline PyObject *fastignite_next(PyObject *it) {
        PyObject *item = Py_TYPE(it)->tp_iternext(it);
        if (item != NULL)
            return item;
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_StopIteration))
                return NULL;
            PyErr_Clear();
        }
        Py_INCREF(fastignite_exhausted);
        return fastignite_exhausted;
    }

    /* ---- the C stack under nested firings ------------------------------
       A handler that fires its own event nests a firing through C (the
       handler call, fire_event), which uses C stack.  Py_EnterRecursiveCall
       counts it, but against sys.getrecursionlimit() on 3.9-3.11 (a user may
       raise it far beyond the C stack) and against a fixed C recursion limit
       on 3.12 and 3.13 that assumes smaller C frames than a firing's: either
       way deep enough nesting overflows the C stack (a segfault, in a thread
       with a small stack sooner) where ignite, all Python frames, raises
       RecursionError.  So a nested firing is refused once the stack pointer
       comes within a quarter of this thread's stack of its end.  The bounds are found once per thread (pthread on
       Linux and macOS, GetCurrentThreadStackLimits on Windows); elsewhere no
       check is made. */
    #if defined(__linux__) || defined(__APPLE__) || defined(_WIN32)
    #if defined(_WIN32)
    #include <windows.h>
    #define FASTIGNITE_THREAD_LOCAL __declspec(thread)
    #else
    #include <pthread.h>
    #define FASTIGNITE_THREAD_LOCAL __thread
    #endif
    static FASTIGNITE_THREAD_LOCAL char *fastignite_stack_floor = NULL;  /* (char *)1: unknown */

    static CYTHON_UNUSED char *fastignite_find_stack_floor(void) {
        char *low = NULL;
        size_t size = 0;
    #if defined(_WIN32)
        ULONG_PTR lowest, highest;
        GetCurrentThreadStackLimits(&lowest, &highest);
        low = (char *)lowest;
        size = (size_t)(highest - lowest);
    #elif defined(__APPLE__)
        char *high = (char *)pthread_get_stackaddr_np(pthread_self());
        size = pthread_get_stacksize_np(pthread_self());
        low = high - size;
    #else
        pthread_attr_t attr;
        void *address;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            if (pthread_attr_getstack(&attr, &address, &size) == 0)
                low = (char *)address;
            pthread_attr_destroy(&attr);
        }
    #endif
        if (low == NULL || size == 0)
            return (char *)1;
        return low + size / 4;
    }

    static inline int fastignite_stack_exhausted(void) {
        char here;
        if (fastignite_stack_floor == NULL)
            fastignite_stack_floor = fastignite_find_stack_floor();
        return &here < fastignite_stack_floor;
    }
    #else
    static inline int fastignite_stack_exhausted(void) { return 0; }
    #endif

    /* ---- calls ---------------------------------------------------------
       callable(*args), through the callable's vectorcall function when it
       has one (PyVectorcall_Function, public since 3.9), as Cython's own
       fast calls do.  PyObject_Vectorcall also fetches the thread state (a
       thread-local read through libpython on 3.12+) and checks the result's
       consistency with the error indicator (a debug aid): costs a loop pays
       at every call and that Python's own calls from bytecode do not. */
    static inline PyObject *fastignite_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf) {
        vectorcallfunc func = PyVectorcall_Function(callable);
        if (func != NULL)
            return func(callable, args, nargsf, NULL);
        return PyObject_Vectorcall(callable, args, nargsf, NULL);
    }
    """
    unsigned int current_version "fastignite_current_version"(PyTypeObject *tp) noexcept
    unsigned int type_version "fastignite_type_version"(PyTypeObject *tp) noexcept
    PyObject *type_lookup "fastignite_type_lookup"(PyTypeObject *tp, PyObject *name) noexcept
    Py_ssize_t member_offset "fastignite_member_offset"(PyTypeObject *tp, PyObject *name) noexcept
    bint small_int "fastignite_small_int"(object exact_int, int64_t *out) noexcept
    bint increment_in_place "fastignite_increment_in_place"(PyObject *number) noexcept
    bint has_next "fastignite_has_next"(object obj) noexcept
    PyObject *fastignite_exhausted
    object next_or_exhausted "fastignite_next"(object iterator)
    object vectorcall "fastignite_vectorcall"(object callable, PyObject **args, size_t nargsf)
    bint stack_exhausted "fastignite_stack_exhausted"() noexcept


# The public C API the compiled modules use beyond what Cython declares.
cdef extern from "Python.h":
    PyObject *item "PyList_GET_ITEM"(PyObject *list, Py_ssize_t index)  # borrowed, no bounds check
    size_t PY_VECTORCALL_ARGUMENTS_OFFSET
    bint PyIter_Check(object obj)
    int Py_EnterRecursiveCall(const char *where)
    void Py_LeaveRecursiveCall()
    int PyErr_CheckSignals() except -1
