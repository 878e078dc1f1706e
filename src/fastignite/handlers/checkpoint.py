"""Checkpointing with ignite 0.5.5's names, signatures, file names and rotation.

    from fastignite.handlers import Checkpoint, DiskSaver

    checkpoint = Checkpoint({"model": model, "optimizer": optimizer, "trainer": trainer},
                            DiskSaver("/ckpt"), n_saved=2)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    ...
    Checkpoint.load_objects({"model": model, ...}, checkpoint.last_checkpoint)

Differences from ignite, all deliberate:

* DiskSaver(atomic=True) fsyncs the data before the rename and the directory
  after it, so a crash (even SIGKILL or power loss) leaves either the previous
  file or the complete new one under the final name.  Its temporary files are
  named ``.fastignite-tmp-*.part``: they never end with the checkpoint
  extension, so require_empty, rotation and loading never mistake one for a
  checkpoint.  A crash can leave one behind; it is safe to delete.
* Without torch, DiskSaver writes with pickle, extension ``.pkl``; loading tells
  the formats apart by their first bytes, not by the name.  Pickles are read
  with an unpickler that only builds containers and plain values (the analogue
  of torch.load's default weights_only=True).
* A checkpoint file that cannot be read raises CheckpointError (a ValueError)
  naming the file and the reason, instead of torch's or pickle's own errors.
* Arguments are checked when the handler is built (ignite accepts e.g.
  ``n_saved=1.5`` or ``score_function=3`` and fails, or not, later).
* ``reload_objects(to_load)`` with no filename components loads the
  last checkpoint (ignite raises).

``import fastignite.handlers.checkpoint`` does not import torch: it is imported
when a DiskSaver is built or a file is loaded.
"""

from __future__ import annotations

import numbers
import os
import pickle
import sys
import tempfile
from abc import ABCMeta, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from .. import distributed
from .._signature import bind_error
from ..events import EventEnum, Events

__all__ = [
    "BaseSaveHandler",
    "Checkpoint",
    "CheckpointError",
    "CheckpointEvents",
    "DiskSaver",
    "ModelCheckpoint",
    "global_step_from_engine",
]

# Temporary files of atomic writes: a name no loader or rotation looks at.
TMP_PREFIX = ".fastignite-tmp-"
TMP_SUFFIX = ".part"

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
# What torch's legacy (pre-1.6) format pickles first: such a file is torch's, not ours.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded: truncated, corrupt, or not a checkpoint."""


class CheckpointEvents(EventEnum):
    """Fired by Checkpoint on the engine after each file it saves."""

    SAVED_CHECKPOINT = "saved_checkpoint"


def _import_torch() -> Any:
    # The one place torch is imported; tests replace it to simulate a machine without torch.
    import torch

    return torch


def _torch_or_none() -> Any:
    try:
        return _import_torch()
    except ImportError:
        return None


_get_rank = distributed.get_rank


def _is_torch_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _unwrap_parallel(obj: Any) -> Any:
    # A (Distributed)DataParallel wrapper's state dict prefixes every key with "module.";
    # ignite saves and loads the wrapped module, so checkpoints stay portable.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
        return obj.module
    return obj


def _is_int(value: object) -> bool:
    # A helper, not an inline isinstance: typeshed does not make int a
    # numbers.Integral, and mypy would take the rest of a check on one as unreachable.
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def _check_objects(objs: Any, attr: str, arg_name: str) -> None:
    if not isinstance(objs, Mapping):
        raise TypeError(f"Argument `{arg_name}` should be a dictionary, but given {type(objs)}")
    for key, obj in objs.items():
        if not callable(getattr(obj, attr, None)):
            raise TypeError(f"Object {type(obj)} should have `{attr}` method (key {key!r} of `{arg_name}`)")


# -- reading checkpoint files ---------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Builds containers and plain values only: a state dict written without torch
    needs nothing else, and a pickle naming any other callable is refused instead
    of executing it."""

    _ALLOWED = {
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("builtins", "slice"),
        ("builtins", "range"),
        ("builtins", "bytearray"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only containers and plain values are allowed")


def _load_file(path: str | os.PathLike[str]) -> Any:
    """The object stored in a checkpoint file; CheckpointError if the file cannot be one."""
    path = Path(path)
    with open(path, "rb") as f:  # a missing file stays FileNotFoundError, as in ignite
        head = f.read(len(_ZIP_MAGIC))
        if not head:
            raise CheckpointError(f"checkpoint file '{path}' is truncated or corrupt: it is empty")
        if head == _ZIP_MAGIC:
            obj = _torch_load(path)
        elif head[:1] == b"\x80":  # pickle protocol >= 2
            f.seek(0)
            try:
                obj = _PlainUnpickler(f).load()
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
                raise CheckpointError(f"checkpoint file '{path}' is truncated or corrupt: {e}") from e
            if obj == _TORCH_LEGACY_MAGIC:
                obj = _torch_load(path)
            elif f.read(1):
                # Not ours: our writer puts nothing after the pickle.
                raise CheckpointError(f"checkpoint file '{path}' is corrupt: unexpected data after the pickle")
        else:
            raise CheckpointError(
                f"checkpoint file '{path}' is not a checkpoint: it starts with {head!r}, "
                "neither a torch.save archive nor a pickle"
            )
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"checkpoint file '{path}' is not a checkpoint: it holds a {type(obj).__name__}, "
            "not a dictionary of state dicts"
        )
    return obj


def _torch_load(path: Path) -> Any:
    torch = _torch_or_none()
    if torch is None:
        raise CheckpointError(f"checkpoint file '{path}' was written by torch.save, and torch is not importable")
    try:
        return torch.load(path)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            # Intact, but holds objects torch.load's default refuses to rebuild.
            raise CheckpointError(
                f"checkpoint file '{path}' holds objects that torch.load(weights_only=True) refuses: {e}"
            ) from e
        raise CheckpointError(f"checkpoint file '{path}' is truncated or corrupt: {e}") from e
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise CheckpointError(f"checkpoint file '{path}' is truncated or corrupt: {e}") from e


# -- save handlers --------------------------------------------------------------------


class BaseSaveHandler(metaclass=ABCMeta):
    """What Checkpoint needs of a storage: ``__call__`` writes, ``remove`` deletes."""

    @abstractmethod
    def __call__(self, checkpoint: Mapping[str, Any], filename: str, metadata: Mapping[str, Any] | None = None) -> None:
        pass

    @abstractmethod
    def remove(self, filename: str) -> None:
        pass


def _fsync_dir(dirname: Path) -> None:
    # Makes the rename itself durable; directories cannot be opened on Windows.
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class DiskSaver(BaseSaveHandler):
    """Writes checkpoints to ``dirname``, with torch.save (``.pt``) or, when torch
    is not importable, pickle (``.pkl``).  ``**kwargs`` go to torch.save."""

    def __init__(
        self,
        dirname: str | Path,
        atomic: bool = True,
        create_dir: bool = True,
        require_empty: bool = True,
        save_on_rank: int = 0,
        **kwargs: Any,
    ) -> None:
        self.dirname = Path(dirname).expanduser()
        self._atomic = atomic
        self.save_on_rank = save_on_rank
        self.kwargs = kwargs
        self._use_torch = _torch_or_none() is not None
        self.ext = "pt" if self._use_torch else "pkl"
        if not self._use_torch and kwargs:
            raise TypeError(
                f"DiskSaver: keyword arguments {sorted(kwargs)} are for torch.save, and torch is not importable"
            )
        # mkstemp creates 0600 files; checkpoints get the permissions open() would give.
        self._file_mode = 0o666 & ~_current_umask()
        if _get_rank() == save_on_rank:
            self._check_and_setup(create_dir, require_empty)

    def _check_and_setup(self, create_dir: bool, require_empty: bool) -> None:
        if create_dir and not self.dirname.exists():
            os.makedirs(self.dirname, exist_ok=True)
        if not self.dirname.exists():
            raise ValueError(f"Directory path '{self.dirname}' is not found")
        if require_empty:
            matched = sorted(name for name in os.listdir(self.dirname) if name.endswith(f".{self.ext}"))
            if matched:
                raise ValueError(
                    f"Files {matched} with extension '.{self.ext}' are already present in the directory "
                    f"{self.dirname}. If you want to use this directory anyway, pass `require_empty=False`."
                )

    def _dump(self, checkpoint: Mapping[str, Any], f: Any) -> None:
        if self._use_torch:
            _import_torch().save(checkpoint, f, **self.kwargs)
        else:
            pickle.dump(checkpoint, f, protocol=pickle.HIGHEST_PROTOCOL)

    def __call__(self, checkpoint: Mapping[str, Any], filename: str, metadata: Mapping[str, Any] | None = None) -> None:
        if _get_rank() != self.save_on_rank:
            return
        path = self.dirname / filename
        if not self._atomic:
            with open(path, "wb") as f:
                self._dump(checkpoint, f)
            return
        # Same directory as the target, so os.replace is a rename within one file system.
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=self.dirname)
        try:
            with os.fdopen(fd, "wb") as f:
                self._dump(checkpoint, f)
                f.flush()
                # Data on disk before the rename: otherwise a power loss can expose
                # the final name with no (or partial) content.
                os.fsync(f.fileno())
            os.chmod(tmp_name, self._file_mode)
            os.replace(tmp_name, path)
        except BaseException:
            try:
                os.remove(tmp_name)
            except OSError:
                pass
            raise
        _fsync_dir(self.dirname)

    def remove(self, filename: str) -> None:
        if _get_rank() != self.save_on_rank:
            return
        os.remove(self.dirname / filename)


# -- Checkpoint ---------------------------------------------------------------------------


class Checkpoint:
    """Saves the state dicts of ``to_save`` when called with the engine, keeping
    the ``n_saved`` best files by score (the latest ones without a score)."""

    class Item(NamedTuple):
        priority: float  # the score, or the global step
        filename: str

    SAVED_CHECKPOINT = CheckpointEvents.SAVED_CHECKPOINT

    _state_dict_all_req_keys = ("_saved",)
    _state_dict_one_of_opt_keys = ()

    def __init__(
        self,
        to_save: Mapping[str, Any],
        save_handler: str | Path | Callable[..., Any] | BaseSaveHandler,
        filename_prefix: str = "",
        score_function: Callable[[Any], Any] | None = None,
        score_name: str | None = None,
        n_saved: int | None = 1,
        global_step_transform: Callable[[Any, Any], Any] | None = None,
        filename_pattern: str | None = None,
        include_self: bool = False,
        greater_or_equal: bool = False,
        save_on_rank: int = 0,
    ) -> None:
        _check_objects(to_save, "state_dict", "to_save")
        if include_self and "checkpointer" in to_save:
            raise ValueError(f"Cannot have key 'checkpointer' if `include_self` is True: {to_save}")
        if isinstance(save_handler, (str, Path)):
            save_handler = DiskSaver(save_handler, create_dir=True, save_on_rank=save_on_rank)
        elif not (callable(save_handler) or isinstance(save_handler, BaseSaveHandler)):
            raise TypeError(
                "Argument `save_handler` should be a string or Path object or callable or inherit from "
                f"BaseSaveHandler, but given {type(save_handler)}"
            )
        if not isinstance(filename_prefix, str):
            raise TypeError(f"Argument `filename_prefix` should be a string, but given {type(filename_prefix)}")
        if score_function is not None and not callable(score_function):
            raise TypeError(f"score_function should be a function, got {type(score_function)} instead.")
        if score_function is None and score_name is not None:
            raise ValueError("If `score_name` is provided, then `score_function` should be also provided.")
        if global_step_transform is not None and not callable(global_step_transform):
            raise TypeError(f"global_step_transform should be a function, got {type(global_step_transform)} instead.")
        if n_saved is not None:
            if not _is_int(n_saved):
                raise TypeError(f"n_saved must be a positive integer or None, got {n_saved!r}")
            if n_saved < 1:
                raise ValueError(f"n_saved must be a positive integer or None, got {n_saved}")
        if filename_pattern is not None and not isinstance(filename_pattern, str):
            raise TypeError(f"Argument `filename_pattern` should be a string, but given {type(filename_pattern)}")

        self.to_save = to_save
        self.save_handler = save_handler
        self.filename_prefix = filename_prefix
        self.score_function = score_function
        self.score_name = score_name
        self.n_saved = n_saved
        self.global_step_transform = global_step_transform
        self.filename_pattern = filename_pattern
        self.include_self = include_self
        self.greater_or_equal = greater_or_equal
        self.save_on_rank = save_on_rank
        self.ext = getattr(save_handler, "ext", "pt") if isinstance(save_handler, DiskSaver) else "pt"
        self._saved: list[Checkpoint.Item] = []

    # -- what is kept ---------------------------------------------------------------

    def _check_lt_n_saved(self, or_equal: bool = False) -> bool:
        if self.n_saved is None:
            return True
        return len(self._saved) < self.n_saved + int(or_equal)

    def _compare_fn(self, new: float) -> bool:
        # Equal scores: the older file is kept unless greater_or_equal (ignite's rule).
        if self.greater_or_equal:
            return new >= self._saved[0].priority
        return new > self._saved[0].priority

    @property
    def last_checkpoint(self) -> str | Path | None:
        """The file with the highest priority (the newest one without a score):
        a Path under the DiskSaver's directory, or the filename for other handlers."""
        if not self._saved:
            return None
        if isinstance(self.save_handler, DiskSaver):
            return self.save_handler.dirname / self._saved[-1].filename
        return self._saved[-1].filename

    def _can_remove(self) -> bool:
        handler = self.save_handler
        return isinstance(handler, BaseSaveHandler) or callable(getattr(handler, "remove", None))

    def _setup_checkpoint(self) -> dict[str, Any]:
        checkpoint = {}
        if self.to_save is not None:
            for key, obj in self.to_save.items():
                checkpoint[key] = _unwrap_parallel(obj).state_dict()
        return checkpoint

    @staticmethod
    def setup_filename_pattern(
        with_prefix: bool = True, with_score: bool = True, with_score_name: bool = True, with_global_step: bool = True
    ) -> str:
        """The default file name format, e.g. ``{filename_prefix}_{name}_{global_step}_{score_name}={score}.{ext}``
        with the parts not asked for left out."""
        if not (with_global_step or with_score):
            raise ValueError("At least one of with_score and with_global_step should be True.")
        if with_score_name and not with_score:
            raise ValueError("If with_score_name is True, with_score should be also True")
        pattern = "{name}"
        if with_global_step:
            pattern += "_{global_step}"
        if with_score_name:
            pattern += "_{score_name}={score}"
        elif with_score:
            pattern += "_{score}"
        pattern += ".{ext}"
        if with_prefix:
            pattern = "{filename_prefix}_" + pattern
        return pattern

    def __call__(self, engine: Any) -> None:
        if hasattr(engine, "has_registered_events") and not engine.has_registered_events(self.SAVED_CHECKPOINT):
            engine.register_events(*CheckpointEvents)

        global_step = None
        if self.global_step_transform is not None:
            global_step = self.global_step_transform(engine, engine.last_event_name)

        if self.score_function is not None:
            score_function = self.score_function

            def score() -> Any:
                value = score_function(engine)
                if not isinstance(value, numbers.Number):
                    raise ValueError(f"Output of score_function should be a number, got {type(value)}")
                return value

            # Every rank keeps the same files only if it decides on the same
            # score; a score function failing on one rank fails them all.
            priority = distributed._reduced_score_of(score)
        else:
            if global_step is None:
                global_step = engine.state.get_event_attrib_value(Events.ITERATION_COMPLETED)
            priority = global_step

        if not (self._check_lt_n_saved() or self._compare_fn(priority)):
            return

        priority_str = f"{priority}" if isinstance(priority, numbers.Integral) else f"{priority:.4f}"
        checkpoint = self._setup_checkpoint()
        name = "checkpoint"
        if len(checkpoint) == 1:
            # One object: the file is that object's state dict itself, named after its key.
            (name,) = checkpoint
            checkpoint = checkpoint[name]

        pattern = self.filename_pattern
        if pattern is None:
            pattern = self.setup_filename_pattern(
                with_prefix=len(self.filename_prefix) > 0,
                with_score=self.score_function is not None,
                with_score_name=self.score_name is not None,
                with_global_step=global_step is not None,
            )
        filename = pattern.format(
            filename_prefix=self.filename_prefix,
            ext=self.ext,
            name=name,
            score_name=self.score_name,
            score=priority_str if self.score_function is not None else None,
            global_step=global_step,
        )
        metadata = {
            "basename": f"{self.filename_prefix}{'_' * int(len(self.filename_prefix) > 0)}{name}",
            "score_name": self.score_name,
            "priority": priority,
        }

        # The same name again is overwritten in place; otherwise the lowest priority
        # goes once the list is full.  The list and the disk change only after the
        # new file is written: a save that fails (or a crash) keeps the old one.
        saved = list(self._saved)
        index = next((i for i, item in enumerate(saved) if item.filename == filename), None)
        if index is None and not self._check_lt_n_saved():
            index = 0
        evicted = saved.pop(index) if index is not None else None
        saved.append(Checkpoint.Item(priority, filename))
        saved.sort(key=lambda it: it[0])

        if self.include_self:
            checkpoint["checkpointer"] = self._state_dict_of(saved)

        kept = self._saved
        try:
            # ignite also accepts a two-argument handler (checkpoint, filename); decided
            # from its signature, so a TypeError raised inside it is not mistaken for one.
            if bind_error(self.save_handler, checkpoint, filename, metadata) is None:
                self.save_handler(checkpoint, filename, metadata)
            else:
                self.save_handler(checkpoint, filename)

            self._saved = saved
            # Not for a re-save under the same name: the new write has replaced the file.
            if evicted is not None and evicted.filename != filename and self._can_remove():
                self.save_handler.remove(evicted.filename)  # type: ignore[union-attr]  # _can_remove: it has one
        except Exception as error:
            # The other ranks are at the barrier below: they learn of it there
            # (a RankFailedError) instead of waiting for this rank.
            distributed._meet(error)
            raise
        # One rank writes; no rank goes on (and reads last_checkpoint) before
        # the file is complete and the evicted one gone.
        try:
            distributed.barrier()
        except distributed.RankFailedError:
            self._saved = kept  # as on the rank whose save failed
            raise

        if hasattr(engine, "fire_event") and engine.has_registered_events(self.SAVED_CHECKPOINT):
            engine.fire_event(self.SAVED_CHECKPOINT)

    # -- loading -----------------------------------------------------------------------

    @staticmethod
    def load_objects(to_load: Mapping[str, Any], checkpoint: str | Path | Mapping[str, Any], **kwargs: Any) -> None:
        """Load ``to_load``'s objects from a checkpoint (a file path or a loaded dict).

        With a single object, a checkpoint that is that object's state dict itself
        (what Checkpoint writes for one object) is loaded as such.  ``kwargs``
        (e.g. ``strict=False``) go to torch modules' ``load_state_dict``.
        """
        if isinstance(checkpoint, (str, os.PathLike)):
            checkpoint_obj = _load_file(checkpoint)
        elif isinstance(checkpoint, Mapping):
            checkpoint_obj = checkpoint
        else:
            raise TypeError(
                f"Argument checkpoint should be a string or a dictionary (or a Path), but given {type(checkpoint)}"
            )
        _check_objects(to_load, "load_state_dict", "to_load")

        def load(obj: Any, state: Any) -> None:
            obj = _unwrap_parallel(obj)
            if _is_torch_module(obj):
                obj.load_state_dict(state, **kwargs)
            else:
                obj.load_state_dict(state)

        if len(to_load) == 1:
            ((key, obj),) = to_load.items()
            if key not in checkpoint_obj:
                load(obj, checkpoint_obj)
                return
        missing = [key for key in to_load if key not in checkpoint_obj]
        if missing:
            where = f"'{checkpoint}'" if isinstance(checkpoint, (str, os.PathLike)) else "the checkpoint"
            raise ValueError(
                f"Object labeled by {missing[0]!r} from `to_load` is not found in {where}: "
                f"it has keys {list(checkpoint_obj.keys())}"
            )
        # All keys checked first, so a checkpoint missing one changes nothing.
        for key, obj in to_load.items():
            load(obj, checkpoint_obj[key])

    def reload_objects(
        self, to_load: Mapping[str, Any], load_kwargs: dict[str, Any] | None = None, **filename_components: Any
    ) -> None:
        """Load ``to_load`` from one of this Checkpoint's files: the file the
        ``filename_components`` (e.g. ``global_step=3``) name, else ``last_checkpoint``."""
        if not isinstance(self.save_handler, DiskSaver):
            raise AttributeError(
                f"Checkpoint's `save_handler` should be of type `DiskSaver`, given {type(self.save_handler)}"
            )
        if not filename_components:
            path = self.last_checkpoint
            if path is None:
                raise ValueError("No checkpoint has been saved yet: pass filename components or save first")
        else:
            components: dict[str, Any] = {
                "filename_prefix": self.filename_prefix,
                "ext": self.ext,
                "name": (
                    next(iter(self.to_save)) if self.to_save is not None and len(self.to_save) == 1 else "checkpoint"
                ),
                "score_name": self.score_name,
                "score": None,
                "global_step": None,
            }
            components.update(filename_components)
            pattern = self.filename_pattern
            if pattern is None:
                pattern = self.setup_filename_pattern(
                    with_prefix=len(components["filename_prefix"]) > 0,
                    with_score=self.score_function is not None or components["score"] is not None,
                    with_score_name=components["score_name"] is not None,
                    with_global_step=components["global_step"] is not None,
                )
            path = self.save_handler.dirname / pattern.format(**components)
        Checkpoint.load_objects(to_load, path, **(load_kwargs or {}))

    # -- its own state ------------------------------------------------------------------

    def state_dict(self) -> OrderedDict[str, Any]:
        """The kept files, ``[(priority, filename), ...]``: resuming a run with it
        keeps rotating the files of the run before."""
        return self._state_dict_of(self._saved)

    @staticmethod
    def _state_dict_of(saved: list[Checkpoint.Item]) -> OrderedDict[str, Any]:
        return OrderedDict([("_saved", [(p, f) for p, f in saved])])

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Argument state_dict should be a dictionary, but given {type(state_dict)}")
        if "_saved" not in state_dict:
            raise ValueError(
                f"Required state attribute '_saved' is absent in provided state_dict '{state_dict.keys()}'"
            )
        saved = []
        for entry in state_dict["_saved"]:
            try:
                priority, filename = entry
            except (TypeError, ValueError):
                raise ValueError(f"state_dict's _saved should hold (priority, filename) pairs, got {entry!r}") from None
            saved.append(Checkpoint.Item(priority, filename))
        self._saved = saved

    def reset(self) -> None:
        """Forget the kept files (they stay on disk), e.g. before a new run."""
        self._saved = []

    @staticmethod
    def get_default_score_fn(metric_name: str, score_sign: float = 1.0) -> Callable[[Any], float]:
        """A score_function returning ``score_sign * engine.state.metrics[metric_name]``
        (``score_sign=-1.0`` for a metric where lower is better, e.g. a loss)."""
        if score_sign not in (1.0, -1.0):
            raise ValueError("Argument score_sign should be 1 or -1")

        def wrapper(engine: Any) -> float:
            score: float = score_sign * engine.state.metrics[metric_name]
            return score

        return wrapper


class ModelCheckpoint(Checkpoint):
    """A Checkpoint writing to a DiskSaver on ``dirname``; the objects are given when
    attaching: ``engine.add_event_handler(event, model_checkpoint, {"model": model})``."""

    def __init__(
        self,
        dirname: str | Path,
        filename_prefix: str = "",
        score_function: Callable[[Any], Any] | None = None,
        score_name: str | None = None,
        n_saved: int | None = 1,
        atomic: bool = True,
        require_empty: bool = True,
        create_dir: bool = True,
        global_step_transform: Callable[[Any, Any], Any] | None = None,
        filename_pattern: str | None = None,
        include_self: bool = False,
        greater_or_equal: bool = False,
        save_on_rank: int = 0,
        **kwargs: Any,
    ) -> None:
        disk_saver = DiskSaver(
            dirname,
            atomic=atomic,
            create_dir=create_dir,
            require_empty=require_empty,
            save_on_rank=save_on_rank,
            **kwargs,
        )
        super().__init__(
            to_save={},
            save_handler=disk_saver,
            filename_prefix=filename_prefix,
            score_function=score_function,
            score_name=score_name,
            n_saved=n_saved,
            global_step_transform=global_step_transform,
            filename_pattern=filename_pattern,
            include_self=include_self,
            greater_or_equal=greater_or_equal,
            save_on_rank=save_on_rank,
        )

    def __call__(self, engine: Any, to_save: Mapping[str, Any]) -> None:  # type: ignore[override]
        if len(to_save) == 0:
            raise RuntimeError("No objects to checkpoint found.")
        _check_objects(to_save, "state_dict", "to_save")
        if self.include_self and "checkpointer" in to_save:
            raise ValueError(f"Cannot have key 'checkpointer' if `include_self` is True: {to_save}")
        self.to_save = to_save
        super().__call__(engine)


def global_step_from_engine(
    engine: Any, custom_event_name: Any = None, fallback_attr: str = "epoch"
) -> Callable[[Any, Any], int]:
    """A global_step_transform reading ``engine``'s counter (e.g. the trainer's epoch
    when checkpointing on an evaluator): the counter of the event the checkpoint
    fires on, or of ``custom_event_name``; ``engine.state.<fallback_attr>`` for an
    event with no counter."""

    def wrapper(_: Any, event_name: Any) -> int:
        if custom_event_name is not None:
            event_name = custom_event_name
        step: int
        if event_name in type(engine.state).event_to_attr:
            step = engine.state.get_event_attrib_value(event_name)
        else:
            step = getattr(engine.state, fallback_attr)
        return step

    return wrapper
