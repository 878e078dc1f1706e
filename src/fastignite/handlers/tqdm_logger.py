"""ProgressBar: a tqdm progress bar over an engine's run (ignite's handler)."""

from __future__ import annotations

import importlib.util
import numbers
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import distributed
from ..events import Events, EventsList, RemovableEventHandle, State

__all__ = ["ProgressBar"]

_TQDM_MISSING = "This submodule requires tqdm to be installed. Please install it with the command: \n pip install tqdm"


def _tqdm_available() -> bool:
    if sys.modules.get("tqdm") is not None:
        return True
    try:
        return importlib.util.find_spec("tqdm") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["tqdm"] is None (import blocked)
        return False


class ProgressBar:
    """A tqdm bar advancing on ``event_name`` and closed on ``closing_event_name``,
    showing chosen metrics, the output and state attributes.

    ``bar_format=None`` is tqdm's own format; ``tqdm_kwargs`` go to tqdm (``file``,
    ``desc``, ``ncols``...).  The description is "Epoch [e/N]" (or "Iteration"
    when ``max_epochs`` is 1), or ``desc`` when given.  tqdm is imported when the
    first bar is made, not before.
    """

    _events_order: list[Events] = [
        Events.STARTED,
        Events.EPOCH_STARTED,
        Events.ITERATION_STARTED,
        Events.ITERATION_COMPLETED,
        Events.EPOCH_COMPLETED,
        Events.COMPLETED,
    ]

    def __init__(
        self,
        persist: bool = False,
        bar_format: str | None = (
            "{desc}[{n_fmt}/{total_fmt}] {percentage:3.0f}%|{bar}{postfix} [{elapsed}<{remaining}]"
        ),
        **tqdm_kwargs: Any,
    ) -> None:
        # Fail here, where the user builds the bar, rather than mid-run; find_spec
        # locates tqdm without importing it.
        if not _tqdm_available():
            raise ModuleNotFoundError(_TQDM_MISSING)
        self.pbar: Any = None
        self.persist = persist
        self.bar_format = bar_format
        self.tqdm_kwargs = tqdm_kwargs
        self._pbar_cls: Any = None

    @property
    def pbar_cls(self) -> Any:
        """tqdm's class (the notebook one in Jupyter), imported on first use."""
        if self._pbar_cls is None:
            try:
                from tqdm.autonotebook import tqdm
            except ImportError as exc:
                raise ModuleNotFoundError(_TQDM_MISSING) from exc
            self._pbar_cls = tqdm
        return self._pbar_cls

    @pbar_cls.setter
    def pbar_cls(self, cls: Any) -> None:
        self._pbar_cls = cls

    def _reset(self, pbar_total: int | None) -> None:
        kwargs = self.tqdm_kwargs
        if "disable" not in kwargs and distributed.get_rank() != 0:
            kwargs = {**kwargs, "disable": True}  # one bar per job, on rank 0, unless asked otherwise
        self.pbar = self.pbar_cls(total=pbar_total, leave=self.persist, bar_format=self.bar_format, initial=1, **kwargs)

    def _close(self, engine: Any) -> None:
        if self.pbar is not None:
            # A notebook bar closed with n < total shows as failed: fill it first.
            if self.pbar.total is not None:
                self.pbar.n = self.pbar.total
            self.pbar.close()
        self.pbar = None

    @staticmethod
    def _compare_lt(event1: Any, event2: Any) -> bool:
        order = ProgressBar._events_order
        return order.index(event1) < order.index(event2)

    def log_message(self, message: str) -> None:
        """Print ``message`` without breaking the bar's line (on rank 0 only, as the bar)."""
        from tqdm import tqdm

        if distributed.get_rank() != 0 and "disable" not in self.tqdm_kwargs:
            return

        tqdm.write(message, file=self.tqdm_kwargs.get("file", None))

    def attach(
        self,
        engine: Any,
        metric_names: str | list[str] | None = None,
        output_transform: Callable[..., Any] | None = None,
        event_name: Any = Events.ITERATION_COMPLETED,
        closing_event_name: Any = Events.EPOCH_COMPLETED,
        state_attributes: list[str] | None = None,
    ) -> None:
        """Show the bar on ``engine``: ``metric_names`` (a list, or "all") from
        ``state.metrics``, ``output_transform(output)`` (a dict, or one value named
        "output"), and ``state_attributes``; numbers, 0-d/1-d tensors and strings."""
        desc = self.tqdm_kwargs.get("desc", "")
        if event_name not in engine._allowed_events:
            raise ValueError(f"Logging event {event_name.name} is not in allowed events for this engine")
        if getattr(closing_event_name, "filter", None) is not None:
            raise ValueError("Closing Event should not be a filtered event")
        if not self._compare_lt(event_name, closing_event_name):
            raise ValueError(f"Logging event {event_name} should be called before closing event {closing_event_name}")
        log_handler = _OutputHandler(
            desc,
            metric_names,
            output_transform,
            closing_event_name=closing_event_name,
            state_attributes=state_attributes,
        )
        self._attach_handler(engine, log_handler, event_name)
        engine.add_event_handler(closing_event_name, self._close)

    def _attach_handler(self, engine: Any, log_handler: Callable[..., Any], event_name: Any) -> RemovableEventHandle:
        event_to_attr = getattr(type(engine.state), "event_to_attr", State.event_to_attr)
        events = list(event_name) if isinstance(event_name, EventsList) else [event_name]
        for e in events:
            if e not in event_to_attr:
                raise RuntimeError(f"Unknown event name '{e}'")
        if len(events) == 1 and not isinstance(event_name, EventsList):
            handle: RemovableEventHandle = engine.add_event_handler(event_name, log_handler, self, event_name)
            return handle
        for e in events:
            engine.add_event_handler(e, log_handler, self, e)
        return RemovableEventHandle(event_name, log_handler, engine)

    # ignite's BaseLogger API; a progress bar has no optimizer parameters to show.
    def attach_opt_params_handler(self, engine: Any, event_name: Any, *args: Any, **kwargs: Any) -> None:
        """Does nothing, as in ignite."""

    def attach_output_handler(self, engine: Any, event_name: Any, *args: Any, **kwargs: Any) -> RemovableEventHandle:
        return self._attach_handler(engine, _OutputHandler(*args, **kwargs), event_name)


def _tensor_type() -> Any:
    torch = sys.modules.get("torch")  # a tensor can only exist if torch is loaded
    return None if torch is None else torch.Tensor


class _OutputHandler:
    """Sets the bar's description and postfix and advances it, at each firing."""

    def __init__(
        self,
        description: str,
        metric_names: str | list[str] | None = None,
        output_transform: Callable[..., Any] | None = None,
        closing_event_name: Any = Events.EPOCH_COMPLETED,
        state_attributes: list[str] | None = None,
    ) -> None:
        if metric_names is None and output_transform is None:
            metric_names = []  # a bar with nothing but the count is fine
        if metric_names is not None and not (isinstance(metric_names, list) or metric_names == "all"):
            raise TypeError(f"metric_names should be either a list or equal 'all', got {type(metric_names)} instead.")
        if output_transform is not None and not callable(output_transform):
            raise TypeError(f"output_transform should be a function, got {type(output_transform)} instead.")
        self.tag = description
        self.metric_names = metric_names
        self.output_transform = output_transform
        self.closing_event_name = closing_event_name
        self.state_attributes = state_attributes

    @staticmethod
    def get_max_number_events(event_name: Any, engine: Any) -> int | None:
        total: int | None = 1
        if event_name in (Events.ITERATION_STARTED, Events.ITERATION_COMPLETED):
            total = engine.state.epoch_length
        elif event_name in (Events.EPOCH_STARTED, Events.EPOCH_COMPLETED):
            total = engine.state.max_epochs
        return total

    def _values(self, engine: Any) -> OrderedDict[str, Any]:
        """name -> value to show, nested containers flattened to ``name_i``."""
        values: OrderedDict[str, Any] = OrderedDict()
        metrics = engine.state.metrics
        if self.metric_names == "all":
            values.update(metrics)
        elif self.metric_names is not None:
            for name in self.metric_names:
                if name not in metrics:
                    warnings.warn(
                        f"Provided metric name '{name}' is missing in engine's state metrics: {list(metrics.keys())}"
                    )
                    continue
                values[name] = metrics[name]
        if self.output_transform is not None:
            output = self.output_transform(engine.state.output)
            values.update(output if isinstance(output, dict) else {"output": output})
        if self.state_attributes is not None:
            values.update({name: getattr(engine.state, name, None) for name in self.state_attributes})
        flat: OrderedDict[str, Any] = OrderedDict()
        _flatten(values, (), flat, _tensor_type())
        return flat

    def __call__(self, engine: Any, logger: ProgressBar, event_name: Any) -> None:
        pbar_total = self.get_max_number_events(event_name, engine)
        if logger.pbar is None:
            logger._reset(pbar_total=pbar_total)
        desc = self.tag or ("Iteration" if engine.state.max_epochs == 1 else "Epoch")
        max_closing = self.get_max_number_events(self.closing_event_name, engine)
        if max_closing and max_closing > 1:
            desc += f" [{engine.state.get_event_attrib_value(self.closing_event_name)}/{max_closing}]"
        logger.pbar.set_description(desc)
        metrics = self._values(engine)
        if metrics:
            logger.pbar.set_postfix(metrics)
        step = engine.state.get_event_attrib_value(event_name)
        if pbar_total is not None:
            step = (step - 1) % pbar_total + 1
        logger.pbar.update(step - logger.pbar.n)


def _flatten(values: Mapping[str, Any], prefix: tuple[str, ...], out: OrderedDict[str, Any], tensor: Any) -> None:
    for key, value in values.items():
        path = prefix + (key,)
        if isinstance(value, Mapping):
            _flatten(value, path, out, tensor)
        elif not isinstance(value, str) and isinstance(value, Sequence):
            _flatten({str(i): v for i, v in enumerate(value)}, path, out, tensor)
        elif tensor is not None and isinstance(value, tensor) and value.ndimension() == 1:
            _flatten({str(i): v.item() for i, v in enumerate(value)}, path, out, tensor)
        else:
            shown = _shown(value, tensor)
            if shown is not None:
                out["_".join(path)] = shown


def _shown(value: Any, tensor: Any) -> Any:
    if isinstance(value, (numbers.Number, str)):
        return value
    if tensor is not None and isinstance(value, tensor) and value.ndimension() == 0:
        return value.item()
    warnings.warn(f"Logger output_handler can not log metrics value type {type(value)}")
    return None
