"""Where the engine and the state keep the attributes the compiled loop
touches: a layout per type, resolved from its ``__slots__`` and checked
against the type's version tag (see _fields.pxd)."""

from cpython.object cimport PyTypeObject, Py_TYPE

from ._capi cimport current_version, type_version


# Attribute names: module constants, so the Fields' borrowed pointers stay valid.
cdef str A_STATE = "state", A_SIGNAL = "_signal", A_ITER = "_dataloader_iter"
cdef str A_PROCESS = "_process_function", A_TABLES = "_tables"
cdef str A_ITERATION = "iteration", A_EPOCH = "epoch", A_BATCH = "batch", A_OUTPUT = "output"
cdef str A_DATALOADER = "dataloader", A_EPOCH_LENGTH = "epoch_length", A_MAX_ITERS = "max_iters"


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
