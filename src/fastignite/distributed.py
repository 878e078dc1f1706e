"""Runs on several processes: what fastignite does when torch.distributed is set up.

fastignite has no transport of its own: everything here goes through
``torch.distributed`` (c10d: the process group the user, torchrun or
``torch.multiprocessing`` initialized).  When a process group of more than one
rank is initialized, the standalone ``fastignite.Engine`` and fastignite's
handlers are rank-aware, with nothing to write beyond the DDP model and a
DistributedSampler:

* **Stops are agreed.**  ``terminate()``, ``terminate_epoch()`` and
  ``interrupt()`` asked on any rank (by EarlyStopping, TerminateOnNan, a
  handler, another thread) take effect on every rank, at the same iteration, so
  that no rank is left waiting in a collective for one that stopped.  The ranks
  agree at fixed points of the run: after STARTED, EPOCH_STARTED and
  EPOCH_COMPLETED, and after ITERATION_COMPLETED every ``engine.agree_every``
  iterations (and at every epoch's last).  A stop asked between two agreements
  waits for the next one.  ``agree_every`` is

  - ``"auto"`` (the default): runs whose data is sharded over the ranks (a
    sampler with ``num_replicas > 1``, as DistributedSampler, reachable from
    the data: every rank runs such an engine) agree, as often as keeps the
    agreements' cost near 1/32 of the loop's time; other runs do not (an
    evaluator that runs on rank 0 only over the whole data stays ignite's);
  - an int k >= 1: every run under a process group agrees, every k
    iterations (1 stops exactly where ignite would), for engines that every
    rank runs without a sampler (``data=None``, an iterable sharded by hand);
  - 0: never, as ignite.
* **Failures are named.**  An exception that ends a run on one rank is
  published in the process group's store; a rank whose run then fails (its
  collectives break when the failed process exits) raises ``RankFailedError``
  naming the rank that failed first and what it raised.
* **Shuffles differ every epoch**: a sampler with ``set_epoch`` reachable from
  the data gets ``set_epoch(epoch - 1)`` at every epoch start (resumes too).
  This is a deliberate deviation from ignite's Engine (ignite leaves it to
  ``setup_common_training_handlers``); the drop-in ``fastignite.ignite`` keeps
  ignite's behaviour in all of this.
* **Handlers agree**: EarlyStopping and Checkpoint decide on the score reduced
  over the ranks (``reduce_score``); Checkpoint writes on rank 0 and every rank
  waits until the file is complete (``barrier``); ProgressBar and the handlers'
  log lines appear on rank 0 only.

This module imports without torch; its functions look at torch.distributed
only when torch is already imported (no process group can exist otherwise).
"""

from __future__ import annotations

import atexit
import gc
import math
import os
import re
import stat
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "RankFailedError",
    "barrier",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "load_latest_checkpoint",
    "reduce_score",
    "sampler_of",
]


class RankFailedError(RuntimeError):
    """Another rank's run failed first: this rank's run stopped because of it.

    ``rank`` is the rank that failed, ``reason`` what it raised (as text: the
    exception object stays in its own process); the exception this rank saw
    (typically a broken collective) is the ``__cause__``."""

    def __init__(self, rank: int, reason: str, here: int) -> None:
        super().__init__(f"rank {rank} failed: {reason} (rank {here} stopped because of it)")
        self.rank = rank
        self.reason = reason


def _dist() -> Any:
    """torch.distributed, when a process group of more than one rank is
    initialized in this process; else None.  Never imports torch."""
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist if dist.get_world_size() > 1 else None


def is_distributed() -> bool:
    """Whether a torch.distributed process group of more than one rank is initialized."""
    return _dist() is not None


def get_rank() -> int:
    """This process's rank in the default process group (0 without one)."""
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return 0
    return int(dist.get_rank())


def get_world_size() -> int:
    """The number of ranks in the default process group (1 without one)."""
    dist = _dist()
    return 1 if dist is None else int(dist.get_world_size())


# -- fastignite's own group ----------------------------------------------------------
# Agreements, score reductions and barriers go through a group of their own,
# created once per default group, so that they never pair with a user's
# collectives (a DDP backward, a metric's all_reduce): ranks that fall out of
# step then meet in fastignite's collectives only, where the agreement's check
# of where each rank is turns the mismatch into an error instead of a hang.

# Weak references to [the default group, fastignite's group for it], or empty.
# torch.distributed's registry keeps both alive until destroy_process_group(),
# which then lets them go: a strong reference here would keep fastignite's
# group, and its gloo worker threads, alive until the interpreter's teardown
# (where a gloo worker that needs the GIL aborts the process; see
# docs/distributed.md, "Ending a script").  The default group is compared by
# identity: a new one (after destroy_process_group and a new init) may reuse
# a freed one's address.
_own: list[weakref.ref[Any]] = []


def _group(dist: Any) -> Any:
    global _collect_at_exit
    world = dist.group.WORLD
    group = _own[1]() if _own and _own[0]() is world else None
    if group is None:
        group = dist.new_group(backend="gloo")
        _own[:] = [weakref.ref(world), weakref.ref(group)]
        if not _collect_at_exit:
            # A script that ends with destroy_process_group() leaves its groups
            # to the garbage collector when reference cycles hold them (an
            # engine's handlers holding a DDP model): collected at exit, while
            # the interpreter is whole, their gloo workers are joined before
            # the teardown, where one still freeing a collective's tensors
            # aborts the process (torch 2.13).  examples/ddp_digits.py without
            # its own gc.collect(): 5 runs in 30 aborted, none in 30 with this.
            atexit.register(gc.collect)
            _collect_at_exit = True
    return group


_collect_at_exit = False  # gc.collect is registered at exit


def barrier() -> None:
    """Wait until every rank gets here (nothing without a process group).

    If a rank got to its meeting point with :func:`_meet` and an error (a
    save that failed on the rank that writes), this raises a
    :class:`RankFailedError` naming that rank."""
    _meet(None)


def _meet(failure: BaseException | None, values: Sequence[float] = ()) -> list[list[float]]:
    """A barrier that also tells whether each rank got through the work
    before it, and gathers each rank's ``values`` (floats, the same number on
    every rank; NaN where a rank failed).  The ranks that did not fail raise a
    RankFailedError naming the first that did; a rank that failed gets the
    rows back, to re-raise its own error.  Without it a failure on one rank
    (the save of the rank that writes a checkpoint, a score function) would
    leave the others waiting for it."""
    dist = _dist()
    if dist is None:
        return [list(values)]
    rows = _gather([*values, 0.0 if failure is None else 1.0], "float64")
    failed = [rank for rank, row in enumerate(rows) if row[-1]]
    if failed:
        reasons: list[Any] = [None] * len(rows)
        mine = None if failure is None else _error_text(failure)
        dist.all_gather_object(reasons, mine, group=_group(dist))
        if failure is None:
            raise RankFailedError(failed[0], str(reasons[failed[0]]), int(dist.get_rank()))
    return [row[:-1] for row in rows]


def _gather(values: Sequence[float], dtype: str) -> list[list[Any]]:
    """Every rank's ``values`` (same length everywhere), as lists, by rank."""
    import torch

    dist = _dist()
    mine = torch.tensor(values, dtype=getattr(torch, dtype))
    out = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(out, mine, group=_group(dist))
    return [t.tolist() for t in out]


def reduce_score(score: Any) -> Any:
    """``score`` as every rank sees it: the mean over the ranks of their scores
    (``math.fsum``, the same float on every rank), or the score itself when
    every rank has the same (a metric that reduces across ranks already).
    Without a process group, the score."""
    return _reduced_score_of(lambda: score)


def _reduced_score_of(compute: Callable[[], Any]) -> Any:
    """``reduce_score(compute())``, where ``compute`` raising (or giving what
    is not a number) on one rank makes every rank raise: that rank its own
    error, the others a :class:`RankFailedError` naming it, instead of waiting
    for its score.  EarlyStopping and Checkpoint call their score functions
    through it."""
    if _dist() is None:
        return compute()
    failure: BaseException | None = None
    score: Any = None
    value = math.nan
    try:
        score = compute()
        value = float(score)
    except Exception as error:
        failure = error
    values = [row[0] for row in _meet(failure, [value])]
    if failure is not None:
        raise failure
    if all(v == values[0] for v in values) or all(math.isnan(v) for v in values):
        return score
    return math.fsum(values) / len(values)


# -- the sampler's epoch ----------------------------------------------------------------


def sampler_of(data: Any) -> Any:
    """The sampler with a ``set_epoch`` method reachable from ``data`` (a
    DataLoader's ``sampler``, its ``batch_sampler``, or the batch sampler's
    ``sampler``), or None."""
    if data is None:
        return None
    for holder in (data, getattr(data, "batch_sampler", None)):
        if holder is None:
            continue
        for candidate in (getattr(holder, "sampler", None), holder if holder is not data else None):
            if candidate is not None and callable(getattr(candidate, "set_epoch", None)):
                return candidate
    return None


# -- failures -------------------------------------------------------------------------

_FAILURES = "fastignite/failures"  # a counter in the store; failure n is at f"{_FAILURES}/{n}"


def _store(dist: Any) -> Any:
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:  # a private accessor: without it failures are not named
        return None


def _failures_so_far(dist: Any) -> int:
    store = _store(dist)
    try:
        return int(store.add(_FAILURES, 0)) if store is not None else 0
    except Exception:
        return 0


def _error_text(error: BaseException) -> str:
    """What another rank is told of ``error``: its type and message, cut short."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 2000 else text[:2000] + "..."


def _publish(dist: Any, error: BaseException, where: str) -> None:
    store = _store(dist)
    if store is None:
        return
    text = _error_text(error)
    try:
        n = int(store.add(_FAILURES, 1))
        store.set(f"{_FAILURES}/{n}", f"{dist.get_rank()}\n{where}\n{text}")
    except Exception:
        pass  # the store may be gone (its host failed too): nothing to tell


def _first_failure(dist: Any, since: int, wait: float) -> tuple[int, str] | None:
    """The first failure another rank published after failure number
    ``since``: (rank, text).  Waits up to ``wait`` seconds for one: the failed
    process publishes before its exit breaks this rank's collectives, but the
    store's reply can come after the broken collective's error."""
    store = _store(dist)
    if store is None:
        return None
    me = dist.get_rank()
    deadline = time.monotonic() + wait
    while True:
        try:
            count = int(store.add(_FAILURES, 0))
            for n in range(since + 1, count + 1):
                key = f"{_FAILURES}/{n}"
                if not store.check([key]):
                    continue
                rank, where, text = store.get(key).decode("utf-8", "replace").split("\n", 2)
                if int(rank) != me:
                    return int(rank), f"{text} ({where})"
        except Exception:
            return None  # the store is gone with its host
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


# -- agreement --------------------------------------------------------------------------

# Where an agreement happens: the check points after these.
STARTED, EPOCH_STARTED, ITERATION, EPOCH_COMPLETED = 1, 2, 3, 4
_POINT_NAMES = {STARTED: "STARTED", EPOCH_STARTED: "EPOCH_STARTED", ITERATION: "ITERATION_COMPLETED",
                EPOCH_COMPLETED: "EPOCH_COMPLETED"}  # fmt: skip

_FLAG_CODES = {False: 0, True: 1, "skip_completed": 2, "skip_epoch_completed": 2}
_TERMINATE_VALUES = (False, True, "skip_completed")
_EPOCH_VALUES = (False, True, "skip_epoch_completed")

# "auto": agreements take about 1/_AUTO_SHARE of the loop's time, a stop waits
# at most _AUTO_MAX_WAIT seconds (and _AUTO_MAX_EVERY iterations) for the next one.
_AUTO_SHARE = 32
_AUTO_MAX_WAIT = 0.5
_AUTO_MAX_EVERY = 4096
_TAG_MOD = 1 << 62  # counts past int64 still compare (modulo)

_runs_started = 0  # distributed runs started in this process: the same sequence on every rank


def check_agree_every(value: Any) -> None:
    """Refuse what ``engine.agree_every`` cannot be (run() checks it first)."""
    if isinstance(value, str) and value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"engine.agree_every should be 'auto', 0 (never) or an int k >= 1, got {value!r}")


class Agreement:
    """One distributed run's agreements (see the module's docstring)."""

    __slots__ = ("dist", "every", "next_at", "serial", "failures_before", "last_end", "last_iteration",
                 "last_cost", "seen")  # fmt: skip

    def __init__(self, dist: Any, every: Any) -> None:
        global _runs_started
        _runs_started += 1
        self.dist = dist
        self.every = every
        self.serial = _runs_started
        self.next_at: Any = None  # the iteration of the next agreement after ITERATION_COMPLETED; None: the next one
        self.failures_before = _failures_so_far(dist)
        self.last_end = time.monotonic()
        self.last_iteration: Any = None
        self.last_cost = 0.0
        self.seen: dict[int, BaseException] = {}  # id(error) -> what failed() made of it (the errors stay alive)

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy or pickle of an engine in the middle of a distributed run takes
        # no part in that run's agreements.
        return (_no_agreement, ())

    def due(self, state: Any, iter_counter: Any) -> bool:
        """Whether the check after this ITERATION_COMPLETED is an agreement."""
        if self.every == "auto":
            due = self.next_at is None or state.iteration >= self.next_at
        else:  # by the count, so that a resumed run agrees where the first would have
            due = state.iteration % self.every == 0
        return due or iter_counter == state.epoch_length or state.iteration == state.max_iters

    def agree(self, engine: Any, point: int) -> None:
        """Every rank's stop flags, combined: after this, every rank's engine
        has the same flags (each the strongest any rank asked for)."""
        state = engine.state
        flags = [
            _FLAG_CODES.get(engine.should_terminate, 1),
            _FLAG_CODES.get(engine.should_terminate_single_epoch, 1),
            1 if engine.should_interrupt else 0,
        ]
        tag = [self.serial, state.epoch % _TAG_MOD, state.iteration % _TAG_MOD, point]
        start = time.monotonic()
        gathered = _gather(flags + tag + [self._proposal(state, start)], "int64")
        end = time.monotonic()
        self.last_cost = end - start
        self.last_end = end
        self.last_iteration = state.iteration
        tags = [g[3:7] for g in gathered]
        if any(t != tag for t in tags):
            where = "; ".join(f"rank {r}: {self._describe(t)}" for r, t in enumerate(tags))
            raise RuntimeError(
                "fastignite: the ranks are out of step, so they cannot agree on stops: " + where + ". "
                "Every rank should run the same engines over data of the same length (a "
                "DistributedSampler pads it); set engine.agree_every = 0 on an engine that runs on some "
                "ranks only."
            )
        terminate = max(g[0] for g in gathered)
        epoch = max(g[1] for g in gathered)
        interrupt = max(g[2] for g in gathered)
        if self.every == "auto":
            self.next_at = state.iteration + max(g[7] for g in gathered)
        if terminate and not engine.should_terminate:
            engine.logger.info("Terminate asked on rank %s: every rank stops here.", _first_with(gathered, 0))
        engine.should_terminate = _TERMINATE_VALUES[terminate]
        engine.should_terminate_single_epoch = _EPOCH_VALUES[epoch]
        engine.should_interrupt = bool(interrupt)

    def _proposal(self, state: Any, now: float) -> int:
        """This rank's "auto" interval to the next agreement: long enough that
        the agreement costs about 1/_AUTO_SHARE of the loop's time."""
        if self.every != "auto" or self.last_iteration is None:
            return 1
        iterations: int = state.iteration - self.last_iteration
        if iterations <= 0:
            return 1
        per_iteration = max((now - self.last_end) / iterations, 1e-9)
        k = math.ceil(_AUTO_SHARE * self.last_cost / per_iteration)
        k = min(k, int(_AUTO_MAX_WAIT / per_iteration) or 1, _AUTO_MAX_EVERY)
        return max(k, 1)

    @staticmethod
    def _describe(tag: list[int]) -> str:
        serial, epoch, iteration, point = tag
        return f"run {serial}, after {_POINT_NAMES.get(point, point)} at epoch {epoch}, iteration {iteration}"

    def failed(self, engine: Any, error: BaseException) -> BaseException:
        """An exception is ending this rank's run: if another rank failed
        first, a RankFailedError naming it (caused by ``error``); else
        ``error``, published for the other ranks."""
        dist = self.dist
        seen = self.seen.get(id(error))
        if seen is not None:  # the epoch's handling saw it first; the run's sees it again
            return seen
        if not dist.is_initialized():
            return error
        # A communication error is most likely another rank's exit: wait a
        # little for its report.  Any other error may be this rank's own.
        is_comm = isinstance(error, RuntimeError) and not isinstance(error, RankFailedError)
        first = _first_failure(dist, self.failures_before, 2.0 if is_comm else 0.0)
        if first is not None:
            rank, reason = first
            failure = RankFailedError(rank, reason, dist.get_rank())
            failure.__cause__ = error
            self.seen[id(error)] = self.seen[id(failure)] = failure
            return failure
        if not isinstance(error, (RankFailedError, GeneratorExit)):
            state = engine.state
            _publish(dist, error, f"epoch {state.epoch}, iteration {state.iteration}")
        self.seen[id(error)] = error
        return error


def _no_agreement() -> None:
    return None


def _first_with(gathered: list[list[Any]], column: int) -> int:
    return next(rank for rank, g in enumerate(gathered) if g[column])


def agreement_for(engine: Any) -> Agreement | None:
    """The agreement object of a run starting now, or None when the run is
    not rank-aware (no process group, the drop-in, or agree_every = 0)."""
    if not engine._rank_aware:
        return None
    every = engine.agree_every
    if every == 0:
        return None
    dist = _dist()
    if dist is None:
        return None
    if every == "auto" and not _sharded(engine.state.dataloader):
        return None  # maybe a run on some ranks only: agreeing would wait for the others for ever
    return Agreement(dist, every)


def _sharded(data: Any) -> bool:
    """Whether ``data`` is sharded over several ranks by its sampler."""
    num_replicas = getattr(sampler_of(data), "num_replicas", None)
    return isinstance(num_replicas, int) and num_replicas > 1


# -- resuming -----------------------------------------------------------------------------


def _natural(name: str) -> list[tuple[int, int, str]]:
    """A name's sort key with its numbers compared as numbers: on a file system
    whose times are coarse, step 100 is still newer than step 99."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _newest(directory: Path, pattern: str, skip_prefix: str) -> str | None:
    """The newest file in ``directory`` matching ``pattern`` (modification
    time, then the name, its numbers compared as numbers), or None.  A file
    removed while the directory is read (an old checkpoint that a running
    Checkpoint deletes) is passed over."""
    newest: tuple[Any, ...] | None = None
    for path in directory.glob(pattern):
        if path.name.startswith(skip_prefix):
            continue
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        key = (info.st_mtime_ns, _natural(path.name), str(path))
        if newest is None or key > newest:
            newest = key
    return None if newest is None else str(newest[-1])


def load_latest_checkpoint(
    to_load: Mapping[str, Any], dirname: str | Path, pattern: str = "*.pt", **load_kwargs: Any
) -> Path | None:
    """Load ``to_load``'s objects from the newest checkpoint file in ``dirname``
    that matches ``pattern``, on every rank from the same file: rank 0 chooses
    it (newest by modification time, then by name, its numbers compared as
    numbers) and tells the others.
    Returns its path, or None (nothing loaded) when there is none.

    Checkpoint's DiskSaver writes a file whole then renames it into place, so
    any file found is complete (its temporary files are never chosen, whatever
    the pattern).  When rank 0 cannot choose (an unreadable directory, say),
    every rank raises: rank 0 its own error, the others a RankFailedError
    naming it, instead of waiting for a choice that never comes."""
    from .handlers.checkpoint import TMP_PREFIX, Checkpoint

    if not isinstance(to_load, Mapping):
        raise TypeError(f"to_load should be a mapping of names to objects with load_state_dict, got {type(to_load)}")
    if not isinstance(dirname, (str, os.PathLike)):
        raise TypeError(f"dirname should be a str or a path, got {type(dirname)}")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern should be a non-empty glob pattern (a str such as '*.pt'), got {pattern!r}")
    dist = _dist()
    chosen: Any = None
    own_error: Exception | None = None
    if dist is None or dist.get_rank() == 0:
        try:
            chosen = _newest(Path(dirname), pattern, TMP_PREFIX)
        except Exception as error:
            if dist is None:
                raise
            own_error = error
    if dist is not None:
        box = [(chosen, None if own_error is None else _error_text(own_error))]
        dist.broadcast_object_list(box, src=0, group=_group(dist))
        chosen, failure = box[0]
        if own_error is not None:
            raise own_error
        if failure is not None:
            where = str(dirname)
            raise RankFailedError(0, f"choosing the checkpoint to load in {where!r}: {failure}", int(dist.get_rank()))
    if chosen is None:
        return None
    Checkpoint.load_objects(to_load, chosen, **load_kwargs)
    return Path(chosen)
