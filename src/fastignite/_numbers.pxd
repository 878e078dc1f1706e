# The numbers the compiled modules share: _driver's numbers, as C constants
# (_dispatch_c checks them against _driver at import), and the bounds of the
# compiled schedule.

from libc.stdint cimport int64_t


# How a record calls its handler (_driver's NO_ARGS...).
cdef enum:
    NO_ARGS = 0
    ENGINE_ONLY = 1
    PLAIN = 2
    ENGINE = 3
    WEAKREF = 4

# The loop's events, by slot (_driver's S_*).
cdef enum:
    S_EPOCH_STARTED = 0
    S_EPOCH_COMPLETED = 1
    S_STARTED = 2
    S_COMPLETED = 3
    S_ITERATION_STARTED = 4
    S_ITERATION_COMPLETED = 5
    S_EXCEPTION_RAISED = 6
    S_GET_BATCH_STARTED = 7
    S_GET_BATCH_COMPLETED = 8
    S_DATALOADER_STOP_ITERATION = 9
    S_TERMINATE = 10
    S_TERMINATE_SINGLE_EPOCH = 11
    S_INTERRUPT = 12

# What Loop.iterate returns to _driver.run_epoch (_driver's SIGNAL...).
cdef enum:
    R_SIGNAL = 1
    R_EXHAUSTED = 2
    R_EPOCH_END = 3
    R_MAX_ITERS = 4
    R_SIGNAL_AFTER_ITERATION = 5

# NEVER and BEFORE_ALL stand for the pure twin's +inf and -inf.  Counts the C
# schedule handles stay within +-LIMIT (filters.SCHEDULED), so no arithmetic on
# them overflows.
cdef extern from *:
    """
    #define FASTIGNITE_NEVER INT64_MAX
    #define FASTIGNITE_BEFORE_ALL INT64_MIN
    #define FASTIGNITE_LIMIT (((int64_t)1) << 62)
    """
    const int64_t NEVER "FASTIGNITE_NEVER"
    const int64_t BEFORE_ALL "FASTIGNITE_BEFORE_ALL"
    const int64_t LIMIT "FASTIGNITE_LIMIT"
