"""Deterministic runs: pytorch-ignite's ``DeterministicEngine`` and its helpers, plus
exact resume from a checkpoint taken in the middle of an epoch.

Names and signatures are ignite's (``ignite.engine.deterministic``):
:class:`DeterministicEngine`, :class:`ReproducibleBatchSampler`,
:func:`keep_random_state`, :func:`update_dataloader`.

.. rubric:: Epoch-level data-flow synchronisation (the same as ignite's)

At ``Events.STARTED`` the engine draws ``state.seed`` (from torch's global
generator, ``torch.randint(0, 10**9)``, exactly as ignite does, so a run seeded
the same way sees the same data order as under ignite).  Each time the data is
(re)started, the global generators (``random``, ``numpy.random``, torch's CPU
generator; torch also seeds its CUDA ones) are seeded with
``state.seed + p``, ``p`` being the index of the pass over the data about to
start (``iteration // len(data)``).  A ``torch.utils.data.DataLoader`` over a
map-style dataset gets its batch sampler wrapped in a
:class:`ReproducibleBatchSampler`, which draws a whole pass's batches up front, so
that a pass can be started at any batch.

.. rubric:: Exact mid-epoch resume (beyond ignite)

``state_dict()`` records, under ``"rng_states"``, the states of the global
``random``, ``numpy.random`` and torch CPU generators *at the moment it is
called*, plus the run's seed.  After ``load_state_dict(sd)``, ``run()``:

1. keeps the checkpoint's ``state.seed`` (whatever the generators hold when
   ``run()`` is called; a draw is still made, so generator use matches ignite's);
2. re-creates the data pass the checkpoint was in: seeds with ``seed + p``,
   creates the data iterator (a DataLoader iterator draws its ``base_seed`` from
   torch here, as it did in the original run), and has the
   :class:`ReproducibleBatchSampler` draw that pass's permutation *now*, starting
   at the checkpointed batch (other iterables are advanced by reading and
   dropping the batches already used);
3. only then puts back the generator states saved in the checkpoint.

So the next batch, and every random number the run draws after it (dropout,
augmentation done in the main process, ``random``/``numpy`` use in handlers),
are those of a run that was never interrupted: model and optimizer end bitwise
identical, given they are checkpointed together with ``engine.state_dict()``.
ignite 0.5.5 gets step 3 before the permutation draw for a single-process
DataLoader (the sampler runs lazily, at the first batch, i.e. after the
restore): the resumed pass gets another permutation and the generators are
shifted by the sampler's draws, so the run diverges.  ignite also seeds every
resumed sized iterable with the first pass's seed; here it is the pass's own.

To keep the original and resumed runs in step, the engine makes the batch
sampler draw a pass's permutation right after the pass's iterator is created
(ignite: at its first batch).  The two orders differ only for handlers of
``GET_BATCH_STARTED`` that draw random numbers at the start of a pass.

What is restored
  - the global ``random`` state, ``numpy.random``'s global (legacy) state, torch's
    default CPU generator (``torch.get_rng_state()``), as they were when
    ``state_dict()`` was called;
  - the run's seed, hence the data order of every pass;
  - the position in the current pass (ReproducibleBatchSampler's
    ``start_iteration``; skipping for other iterables).

What is not restored
  - DataLoader worker processes (``num_workers > 0``): workers are started anew
    with the pass's ``base_seed``, so random numbers drawn *in workers* (random
    augmentation in ``Dataset.__getitem__``) do not continue where they were;
    the batch indices are right.  Persistent workers (``persistent_workers=True``)
    do not redraw ``base_seed`` on a new pass; data order only.
  - CUDA (and other accelerator) generators: seeded at each pass start, but their
    states at checkpoint time are not saved (``torch.cuda.get_rng_state`` is not
    called); a resumed run that draws on the GPU diverges.  XLA is not seeded.
  - any generator other than the three global ones: ``numpy.random.Generator``
    / ``default_rng`` objects, ``random.Random`` instances, user-created
    ``torch.Generator`` objects, including a DataLoader's ``generator=`` and a
    sampler's own generator (whose permutations are then not synchronised
    either).  Save and restore them yourself with the checkpoint (e.g. with
    ``get_state()``/``set_state()`` in the checkpoint handler and after
    ``load_state_dict``).
  - random numbers drawn between ``state_dict()`` and the end of the
    checkpointed iteration in the original run (handlers running after the
    checkpoint handler on the same event) are drawn again from the restored state.
  - runs whose data passes do not line up with ``len(data)``: ``terminate_epoch()``,
    ``set_data``, ``state.dataloader`` replaced from a handler, data of unknown
    length that is restarted.  The resume is then ignite's approximate one.

``rng_states`` is ignite's list ``[random_state, torch_state, numpy_state]``
(``torch_state`` is None without torch; ``numpy_state`` is absent without numpy)
followed by a dict ``{"seed": ...}``.  An ignite checkpoint's ``rng_states`` loads
too (its seed then comes from the generators, as in ignite).

torch is imported when a DeterministicEngine first runs or saves its state, or
when :class:`ReproducibleBatchSampler` is first used; ``import fastignite`` and
``import fastignite.deterministic`` do not import it.  Without torch installed the
engine works on plain iterables with ``random`` and numpy.
"""

from __future__ import annotations

import random
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # typing.ParamSpec is 3.10's
    from typing import ParamSpec

    _P = ParamSpec("_P")

from .engine import Engine
from .events import Events

# ReproducibleBatchSampler is made on first use (module __getattr__), which ruff cannot see.
__all__ = ["update_dataloader", "keep_random_state", "ReproducibleBatchSampler", "DeterministicEngine"]  # noqa: F822

_SEED_HIGH = int(1e9)
_R = TypeVar("_R")


# -- optional dependencies -----------------------------------------------------------


def _torch() -> Any:
    """torch, imported now if need be; None when it is not installed."""
    module = sys.modules.get("torch")
    if module is not None:
        return module
    try:
        import torch
    except ImportError:
        return None
    return torch


def _numpy() -> Any:
    # Imported on every call (cheap once loaded): a caller may hide numpy by
    # putting None in sys.modules, and must then get None here.
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def _dataloader_class() -> Any:
    """torch's DataLoader if torch.utils.data is loaded (data can only be a
    DataLoader if it is)."""
    module = sys.modules.get("torch.utils.data")
    return getattr(module, "DataLoader", None)


# -- generator states -----------------------------------------------------------------


def _manual_seed(seed: int) -> None:
    """Seed the global generators: random, torch (CPU and CUDA) and numpy."""
    random.seed(seed)
    torch = _torch()
    if torch is not None:
        torch.manual_seed(seed)
    np = _numpy()
    if np is not None:
        np.random.seed(seed)


def _get_rng_states() -> list[Any]:
    """``[random state, torch CPU state or None, numpy state]`` (the last one only
    if numpy can be imported)."""
    torch = _torch()
    states: list[Any] = [random.getstate(), torch.get_rng_state() if torch is not None else None]
    np = _numpy()
    if np is not None:
        # Plain values, not the ndarray get_state() gives: a checkpoint holding it
        # loads with torch.load's default weights_only=True and with the
        # Checkpoint's safe unpickler; set_state takes either form.
        kind, key, pos, has_gauss, cached_gaussian = np.random.get_state()
        states.append((kind, key.tolist(), int(pos), int(has_gauss), float(cached_gaussian)))
    return states


def _set_rng_states(rng_states: list[Any]) -> None:
    """Put back states from :func:`_get_rng_states` (a trailing dict is ignored).
    A torch state held on another device is moved to the CPU in the list."""
    random.setstate(rng_states[0])
    if len(rng_states) > 1 and rng_states[1] is not None and not isinstance(rng_states[1], dict):
        torch = _torch()
        if torch is None:
            raise RuntimeError("rng_states holds a torch generator state, but torch cannot be imported")
        if rng_states[1].device.type != "cpu":
            rng_states[1] = rng_states[1].cpu()
        torch.set_rng_state(rng_states[1])
    if len(rng_states) > 2 and rng_states[2] is not None and not isinstance(rng_states[2], dict):
        np = _numpy()
        if np is not None:
            np.random.set_state(rng_states[2])


def _repr_rng_state(rng_states: list[Any]) -> str:
    """A short fingerprint of generator states, for debugging."""
    from hashlib import md5

    parts = []
    for state in rng_states:
        text = (
            repr(sorted(state.items())) if isinstance(state, dict) else str(list(state) if state is not None else None)
        )
        parts.append(md5(text.encode("utf-8")).hexdigest())
    return " ".join(parts)


def _split_rng_states(rng_states: Any) -> tuple[list[Any] | None, dict[str, Any]]:
    """(generator states or None, run info) from a state_dict's ``rng_states``."""
    if rng_states is None:
        return None, {}
    states = list(rng_states)
    info: dict[str, Any] = {}
    if states and isinstance(states[-1], dict):
        info = states.pop()
    return (states or None), info


def keep_random_state(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator: ``func`` runs, then the global ``random``, torch CPU and numpy
    generators are put back as they were before the call (also if it raises), so
    that it leaves the random streams of the rest of the program untouched.
    Returns what ``func`` returns (ignite's wrapper returns None)."""

    @wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        saved = _get_rng_states()
        try:
            return func(*args, **kwargs)
        finally:
            _set_rng_states(saved)

    return wrapper


# -- DataLoader helpers ----------------------------------------------------------------


def update_dataloader(dataloader: Any, new_batch_sampler: Any) -> Any:
    """A new DataLoader of the same class and settings as ``dataloader``, but with
    ``new_batch_sampler`` as its batch sampler (``batch_size``, ``sampler`` and
    ``drop_last`` then come from that batch sampler).

    Args:
        dataloader: a ``torch.utils.data.DataLoader`` (or subclass) to copy.
        new_batch_sampler: the batch sampler the copy uses.

    Returns:
        The new DataLoader.
    """
    dropped = {"batch_size", "sampler", "drop_last", "batch_sampler", "dataset_kind"}
    kwargs = {
        name: getattr(dataloader, name)
        for name in dataloader.__dict__
        if not name.startswith("_") and name not in dropped
    }
    kwargs["batch_sampler"] = new_batch_sampler
    return type(dataloader)(**kwargs)


_RBS_CLASS: type[Any] | None = None


def _reproducible_batch_sampler_class() -> type:
    """Build ReproducibleBatchSampler on first use: its base class is torch's."""
    global _RBS_CLASS
    if _RBS_CLASS is not None:
        return _RBS_CLASS
    from torch.utils.data.sampler import BatchSampler

    class ReproducibleBatchSampler(BatchSampler):  # type: ignore[misc]  # torch's class: Any to mypy
        """Batch sampler that reads a whole pass of an inner batch sampler when the
        pass starts, keeps its batches in ``batch_indices``, and can start a pass at
        any batch: the random draws of a pass happen in one go, at its start.

        Args:
            batch_sampler: the batch sampler to wrap, e.g. a DataLoader's
                ``batch_sampler`` (a ``torch.utils.data.sampler.BatchSampler``).
            start_iteration: batch to start the next pass at (it applies to one
                pass only); None starts at the first.

        Example: rewind a DataLoader to batch ``k`` of a pass::

            from fastignite.deterministic import ReproducibleBatchSampler, update_dataloader

            loader = update_dataloader(loader, ReproducibleBatchSampler(loader.batch_sampler))
            loader.batch_sampler.start_iteration = k
        """

        def __init__(self, batch_sampler: Any, start_iteration: int | None = None) -> None:
            if not isinstance(batch_sampler, BatchSampler):
                raise TypeError("Argument batch_sampler should be torch.utils.data.sampler.BatchSampler")
            self.batch_indices: list[list[int]] = []
            self.batch_sampler = batch_sampler
            self.start_iteration = start_iteration
            self.sampler = batch_sampler.sampler
            # Set by DeterministicEngine: the pass's batches were already drawn
            # (by setup_batch_indices) for the pass iterator just created.
            self._prepared = False
            self._pass_started = False

        def setup_batch_indices(self) -> None:
            """Draw a pass's batches from the inner batch sampler, dropping the first
            ``start_iteration`` ones (then ``start_iteration`` is reset to None)."""
            batches = list(self.batch_sampler)
            if self.start_iteration is not None:
                batches = batches[self.start_iteration :]
                self.start_iteration = None
            self.batch_indices = batches

        def __iter__(self) -> Iterator[list[int]]:
            return self._pass()

        def _pass(self) -> Iterator[list[int]]:
            self._pass_started = True
            if self._prepared:
                self._prepared = False
            else:
                self.setup_batch_indices()
            yield from self.batch_indices

        def _prepare_pass(self) -> None:
            """For an iterator created (not yet started) over this sampler: draw its
            batches now rather than at its first batch."""
            self.setup_batch_indices()
            self._prepared = True

        def __len__(self) -> int:
            return len(self.batch_sampler)

    ReproducibleBatchSampler.__module__ = __name__
    ReproducibleBatchSampler.__qualname__ = "ReproducibleBatchSampler"
    _RBS_CLASS = ReproducibleBatchSampler
    globals()["ReproducibleBatchSampler"] = ReproducibleBatchSampler
    return ReproducibleBatchSampler


def __getattr__(name: str) -> Any:
    if name == "ReproducibleBatchSampler":
        return _reproducible_batch_sampler_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the engine ----------------------------------------------------------------------------


class DeterministicEngine(Engine):
    """An :class:`~fastignite.Engine` whose data flow and random numbers can be
    replayed: the same seed gives the same data order, and a run resumed from a
    ``state_dict()`` taken at any iteration (mid-epoch included) continues exactly
    as the original run did.

    At each start of a pass over the data, the global generators are seeded with
    ``state.seed + pass index``; a DataLoader's batch sampler is wrapped in a
    :class:`ReproducibleBatchSampler`.  Roughly::

        seed = draw()                                   # Events.STARTED
        for each pass p over the data:
            manual_seed(seed + p)
            iterator = iter(data); draw the pass's permutation
            if resuming inside this pass: skip to the checkpointed batch,
                put back the generator states saved by state_dict()
            iterate

    ``state_dict()`` holds ignite's keys, ``rng_states`` included (the generator
    states when it is called, and the seed).  See the module documentation for
    exactly what a resume restores and what it does not.

    As in ignite, on a machine with CUDA, ``torch.use_deterministic_algorithms(True,
    warn_only=True)`` and ``cudnn.benchmark = False`` are set when a run starts.

    Args:
        process_function: ``(engine, batch) -> output``, called at every iteration.
    """

    def __init__(self, process_function: Callable[[Engine, Any], Any]) -> None:
        super().__init__(process_function)
        self.state_dict_user_keys.append("rng_states")
        if not hasattr(self.state, "rng_states"):
            self.state.rng_states = None
        self._dataloader_len: int | None = None
        self._run_seed: int | None = None  # the seed of the run in progress, kept across resumes
        self.add_event_handler(Events.STARTED, self._init_run)
        self.add_event_handler(Events.DATALOADER_STOP_ITERATION | Events.TERMINATE_SINGLE_EPOCH, self._setup_seed)

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> OrderedDict[str, Any]:
        sd = super().state_dict()
        states = _get_rng_states()
        states.append({"seed": self.state.seed})
        sd["rng_states"] = states
        return sd

    def load_state_dict(self, state_dict: Any) -> None:
        super().load_state_dict(state_dict)
        # The run is now the checkpoint's: its seed comes from rng_states (or, for
        # a checkpoint without one, is drawn at STARTED as ignite does).
        self._run_seed = None

    # -- run set-up ---------------------------------------------------------------------------

    def _init_run(self) -> None:
        torch = _torch()
        if torch is not None:
            drawn = int(torch.randint(0, _SEED_HIGH, (1,)).item())
        else:
            drawn = random.randrange(_SEED_HIGH)
        _, info = _split_rng_states(getattr(self.state, "rng_states", None))
        if info.get("seed") is not None:
            seed = int(info["seed"])
        elif self.state.iteration > 0 and self._run_seed is not None:
            seed = self._run_seed  # resuming this engine's own run (e.g. after terminate())
        else:
            seed = drawn
        self.state.seed = self._run_seed = seed
        if torch is not None and torch.cuda.is_available():
            if hasattr(torch, "use_deterministic_algorithms"):
                torch.use_deterministic_algorithms(True, warn_only=True)
            else:
                torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False

    def _setup_engine(self) -> None:
        data = self.state.dataloader
        if data is None:
            raise ValueError(
                "Deterministic engine does not support the option of data=None. Please, provide data as iterable"
            )
        self._dataloader_len = self._get_data_length(data)
        self._wrap_batch_sampler()

        iteration = self.state.iteration
        self._dataloader_iter = self._from_iteration(iteration)
        if self.state.epoch_length is not None:
            iteration %= self.state.epoch_length
        self._init_iter = iteration

        # Put back the generators as they were at the checkpoint, now that the data
        # pass (and its draws) has been re-created.  At a pass boundary the pass
        # seed already gives the state the original run had.
        states, _ = _split_rng_states(getattr(self.state, "rng_states", None))
        self.state.rng_states = None
        if states is not None:
            if self._dataloader_len is not None:
                in_the_middle = self.state.iteration % self._dataloader_len > 0
            else:
                in_the_middle = self.state.iteration > 0
            if in_the_middle:
                _set_rng_states(states)

    def _wrap_batch_sampler(self) -> None:
        """A DataLoader over a map-style dataset gets a ReproducibleBatchSampler."""
        data = self.state.dataloader
        loader_class = _dataloader_class()
        if loader_class is None or not isinstance(data, loader_class):
            return
        kind = getattr(data, "_dataset_kind", None)
        if kind is not None:
            from torch.utils.data.dataloader import _DatasetKind

            if kind != _DatasetKind.Map:
                return
        if self._dataloader_len is not None and hasattr(data.sampler, "epoch"):
            if self._dataloader_len != self.state.epoch_length:
                warnings.warn(
                    "When defined engine's epoch length is different of input dataloader length, "
                    "distributed sampler indices can not be setup in a reproducible manner"
                )
        rbs_class = _reproducible_batch_sampler_class()
        batch_sampler = data.batch_sampler
        if batch_sampler is not None and not isinstance(batch_sampler, rbs_class):
            self.state.dataloader = update_dataloader(data, rbs_class(batch_sampler))

    def _new_iter(self, data: Any) -> Iterator[Any]:
        """iter(data); for a DataLoader with a ReproducibleBatchSampler, the pass's
        batches are drawn now (right after the iterator's own draws), whether or not
        the iterator reads its sampler at creation (worker processes) or lazily."""
        batch_sampler = getattr(data, "batch_sampler", None)
        if _RBS_CLASS is None or not isinstance(batch_sampler, _RBS_CLASS):
            return iter(data)
        batch_sampler._prepared = False
        batch_sampler._pass_started = False
        iterator: Iterator[Any] = iter(data)
        if not batch_sampler._pass_started:
            batch_sampler._prepare_pass()
        return iterator

    def _setup_dataloader_iter(self) -> None:
        if self.state.dataloader is None:
            super()._setup_dataloader_iter()
        else:
            self._dataloader_iter = self._new_iter(self.state.dataloader)

    def _from_iteration(self, iteration: int) -> Iterator[Any]:
        data = self.state.dataloader
        if data is None:
            raise RuntimeError("Internal error, self.state.dataloader is None; please report it.")
        loader_class = _dataloader_class()
        if loader_class is not None and isinstance(data, loader_class):
            try:
                # TypeError for a DataLoader over an iterable dataset (no batch sampler)
                position = iteration % len(data.batch_sampler)
            except TypeError:
                pass
            else:
                self._setup_seed()
                if position > 0:
                    data.batch_sampler.start_iteration = position
                return self._new_iter(data)

        self.logger.info("Resuming from iteration for provided data will fetch data until required iteration ...")
        length = self._get_data_length(data)
        if length:
            # The pass that `iteration` is in, seeded as the original run seeded it.
            self._setup_seed(iteration=(iteration // length) * length, iter_counter=length)
            iteration %= length
        else:
            self._setup_seed(iteration=0)
        data_iter = self._new_iter(data)
        counter = 0
        while counter < iteration:
            try:
                next(data_iter)
                counter += 1
            except StopIteration:
                data_iter = self._new_iter(data)
        return data_iter

    def _setup_seed(self, _: Any = None, iter_counter: int | None = None, iteration: int | None = None) -> None:
        """Seed the global generators for the pass starting at ``iteration``
        (default: now): ``state.seed + iteration // pass length``."""
        if iter_counter is None:
            length = self._dataloader_len if self._dataloader_len is not None else 1
        elif not iter_counter > 0:
            raise ValueError("iter_counter should be positive value")
        else:
            length = iter_counter
        if iteration is None:
            iteration = self.state.iteration
        # The seed is drawn at STARTED, before any pass over the data.
        _manual_seed(self.state.seed + iteration // length)  # type: ignore[operator]
