"""Supervised training and evaluation engines.

The factories here build fastignite ``Engine``\\ s whose process functions run one
supervised step: move the batch to a device, apply the model, compute the loss,
back-propagate and step the optimizer (trainer), or predict under ``no_grad``
(evaluator).  Arguments, defaults, errors and results are those of
pytorch-ignite 0.5.5's ``ignite.engine`` factories of the same names.

This module imports torch; ``import fastignite`` does not import this module
until one of these names is first used.

Module-level names are looked up when a factory runs (``_check_arg``, the step
factories, ``torch.amp.autocast``...), so patching them (e.g. with
``unittest.mock.patch``) changes what later factories build, as in ignite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .engine import Engine

__all__ = [
    "create_supervised_trainer",
    "create_supervised_evaluator",
    "supervised_training_step",
    "supervised_training_step_amp",
    "supervised_training_step_apex",
    "supervised_training_step_tpu",
    "supervised_evaluation_step",
    "supervised_evaluation_step_amp",
]


# -- batch preparation -------------------------------------------------------


def _move(obj: Any, device: Any, non_blocking: bool) -> Any:
    """``obj`` with every tensor in it (through mappings, namedtuples and
    sequences, rebuilt with their own type) sent to ``device``; ``device=None``
    leaves tensors where they are."""
    if isinstance(obj, torch.Tensor):
        return obj if device is None else obj.to(device=device, non_blocking=non_blocking)
    if isinstance(obj, (str, bytes)):
        return obj
    # Containers are rebuilt with their own class, which mypy knows only as the ABC.
    if isinstance(obj, Mapping):
        return type(obj)({key: _move(value, device, non_blocking) for key, value in obj.items()})  # type: ignore[call-arg]
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_move(value, device, non_blocking) for value in obj))
    if isinstance(obj, Sequence):
        return type(obj)([_move(value, device, non_blocking) for value in obj])  # type: ignore[call-arg]
    raise TypeError(
        f"Cannot move {type(obj)} to a device: a batch must be made of torch.Tensor, "
        "mappings and sequences (x must contain <class 'torch.Tensor'>, dicts or lists)"
    )


def _prepare_batch(batch: Sequence[Any], device: Any = None, non_blocking: bool = False) -> tuple[Any, Any]:
    """The default ``prepare_batch``: split ``batch`` into ``(x, y)`` and move
    both (tensors, or nested containers of them) to ``device``."""
    x, y = batch
    return _move(x, device, non_blocking), _move(y, device, non_blocking)


# -- defaults for the callables ------------------------------------------------
# (the same defaults for every factory: keep them module-level and named)


def _identity(output: Any) -> Any:
    return output


def _loss_item(x: Any, y: Any, y_pred: Any, loss: Any) -> Any:
    return loss.item()


def _pred_and_target(x: Any, y: Any, y_pred: Any) -> Any:
    return (y_pred, y)


def _call_model(model: Any, x: Any) -> Any:
    return model(x)


def _check_accumulation(gradient_accumulation_steps: int) -> None:
    if gradient_accumulation_steps <= 0:
        raise ValueError(
            "Gradient_accumulation_steps must be strictly positive. "
            "No gradient accumulation if the value set to one (default)."
        )


def _import_autocast() -> Any:
    try:
        from torch.amp import autocast
    except ImportError:
        raise ImportError("Please install torch>=1.12.0 to use amp_mode='amp'.") from None
    return autocast


# -- training steps ------------------------------------------------------------


def _make_training_step(
    model: Any,
    optimizer: Any,
    loss_fn: Any,
    device: Any,
    non_blocking: bool,
    prepare_batch: Callable[..., Any],
    model_transform: Callable[[Any], Any],
    output_transform: Callable[[Any, Any, Any, Any], Any],
    steps: int,
    model_fn: Callable[[Any, Any], Any],
    forward_context: Callable[[], Any] | None,
    backward: Callable[[Any], None],
    optimizer_step: Callable[[], None],
) -> Callable[[Engine, Any], Any]:
    """The update function shared by the training steps: they differ only in the
    context the forward pass runs in, how the loss is back-propagated and how the
    optimizer steps."""

    # optimizer.step / zero_grad and model.train are looked up at every call:
    # LR schedulers and hooks may replace them on the instance after this runs.
    def forward(x: Any, y: Any) -> tuple[Any, Any]:
        y_pred = model_transform(model_fn(model, x))
        loss = loss_fn(y_pred, y)
        if steps > 1:
            loss = loss / steps
        return y_pred, loss

    if steps == 1:

        def update(engine: Engine, batch: Any) -> Any:
            optimizer.zero_grad()
            model.train()
            x, y = prepare_batch(batch, device=device, non_blocking=non_blocking)
            if forward_context is None:
                y_pred, loss = forward(x, y)
            else:
                with forward_context():
                    y_pred, loss = forward(x, y)
            backward(loss)
            optimizer_step()
            return output_transform(x, y, y_pred, loss * 1)

    else:

        def update(engine: Engine, batch: Any) -> Any:
            iteration = engine.state.iteration
            if (iteration - 1) % steps == 0:
                optimizer.zero_grad()
            model.train()
            x, y = prepare_batch(batch, device=device, non_blocking=non_blocking)
            if forward_context is None:
                y_pred, loss = forward(x, y)
            else:
                with forward_context():
                    y_pred, loss = forward(x, y)
            backward(loss)
            if iteration % steps == 0:
                optimizer_step()
            # report the loss of this batch, not its share of the accumulated one
            return output_transform(x, y, y_pred, loss * steps)

    return update


def _plain_backward(loss: Any) -> None:
    loss.backward()


def _stepper(optimizer: Any) -> Callable[[], None]:
    def optimizer_step() -> None:
        optimizer.step()

    return optimizer_step


def supervised_training_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor] | torch.nn.Module,
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] = _prepare_batch,
    model_transform: Callable[[Any], Any] = _identity,
    output_transform: Callable[[Any, Any, Any, torch.Tensor], Any] = _loss_item,
    gradient_accumulation_steps: int = 1,
    model_fn: Callable[[torch.nn.Module, Any], Any] = _call_model,
) -> Callable[[Engine, Any], Any]:
    """An update function ``(engine, batch) -> output`` for supervised training.

    Per iteration: ``x, y = prepare_batch(batch, device=device, non_blocking=...)``,
    ``y_pred = model_transform(model_fn(model, x))``, ``loss = loss_fn(y_pred, y)``,
    back-propagation, then an optimizer step; returns
    ``output_transform(x, y, y_pred, loss)`` (``loss.item()`` by default).

    With ``gradient_accumulation_steps=n > 1`` gradients are zeroed every n
    iterations (before iterations 1, n+1, ...), the loss is divided by n before
    back-propagation and the optimizer steps at iterations n, 2n, ...; the loss
    passed to ``output_transform`` is the batch's whole loss.  ``device`` only
    moves batches: the model is not moved.

    Raises ``ValueError`` if ``gradient_accumulation_steps`` is not positive.
    """
    _check_accumulation(gradient_accumulation_steps)
    return _make_training_step(
        model, optimizer, loss_fn, device, non_blocking, prepare_batch, model_transform, output_transform,
        gradient_accumulation_steps, model_fn, None, _plain_backward, _stepper(optimizer),
    )  # fmt: skip


def supervised_training_step_amp(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor] | torch.nn.Module,
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] = _prepare_batch,
    model_transform: Callable[[Any], Any] = _identity,
    output_transform: Callable[[Any, Any, Any, torch.Tensor], Any] = _loss_item,
    scaler: Any = None,
    gradient_accumulation_steps: int = 1,
    model_fn: Callable[[torch.nn.Module, Any], Any] = _call_model,
) -> Callable[[Engine, Any], Any]:
    """:func:`supervised_training_step` with the forward pass and the loss under
    ``torch.amp.autocast("cuda")`` (as in ignite, whatever ``device`` is: on a
    machine without CUDA torch warns and autocast does nothing).

    ``scaler`` (a ``torch.amp.GradScaler``, optional) scales the loss before
    back-propagation and performs the optimizer step (``scaler.step`` then
    ``scaler.update``).

    Raises ``ImportError`` if ``torch.amp`` cannot be imported, ``ValueError`` if
    ``gradient_accumulation_steps`` is not positive.
    """
    autocast = _import_autocast()
    _check_accumulation(gradient_accumulation_steps)

    def forward_context() -> Any:
        return autocast("cuda", enabled=True)

    if scaler:

        def backward(loss: Any) -> None:
            scaler.scale(loss).backward()

        def optimizer_step() -> None:
            scaler.step(optimizer)
            scaler.update()

    else:
        backward = _plain_backward
        optimizer_step = _stepper(optimizer)

    return _make_training_step(
        model, optimizer, loss_fn, device, non_blocking, prepare_batch, model_transform, output_transform,
        gradient_accumulation_steps, model_fn, forward_context, backward, optimizer_step,
    )  # fmt: skip


def supervised_training_step_apex(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor] | torch.nn.Module,
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] = _prepare_batch,
    model_transform: Callable[[Any], Any] = _identity,
    output_transform: Callable[[Any, Any, Any, torch.Tensor], Any] = _loss_item,
    gradient_accumulation_steps: int = 1,
    model_fn: Callable[[torch.nn.Module, Any], Any] = _call_model,
) -> Callable[[Engine, Any], Any]:
    """:func:`supervised_training_step` with the loss back-propagated through
    NVIDIA apex's ``amp.scale_loss``.  The model and optimizer must already have
    gone through ``apex.amp.initialize``.

    Raises ``ModuleNotFoundError`` if apex is not installed (it is not on PyPI:
    build it from https://github.com/nvidia/apex), ``ValueError`` if
    ``gradient_accumulation_steps`` is not positive.
    """
    try:
        from apex import amp as apex_amp
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "Please install apex from https://github.com/nvidia/apex to use amp_mode='apex'."
        ) from None
    _check_accumulation(gradient_accumulation_steps)

    def backward(loss: Any) -> None:
        with apex_amp.scale_loss(loss, optimizer) as scaled_loss:
            scaled_loss.backward()

    return _make_training_step(
        model, optimizer, loss_fn, device, non_blocking, prepare_batch, model_transform, output_transform,
        gradient_accumulation_steps, model_fn, None, backward, _stepper(optimizer),
    )  # fmt: skip


def supervised_training_step_tpu(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor] | torch.nn.Module,
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] = _prepare_batch,
    model_transform: Callable[[Any], Any] = _identity,
    output_transform: Callable[[Any, Any, Any, torch.Tensor], Any] = _loss_item,
    gradient_accumulation_steps: int = 1,
    model_fn: Callable[[torch.nn.Module, Any], Any] = _call_model,
) -> Callable[[Engine, Any], Any]:
    """:func:`supervised_training_step` for XLA devices: the optimizer steps
    through ``torch_xla.core.xla_model.optimizer_step(optimizer, barrier=True)``.

    Raises ``ModuleNotFoundError`` if torch_xla (PyTorch/XLA) is not installed,
    ``ValueError`` if ``gradient_accumulation_steps`` is not positive.
    """
    try:
        import torch_xla.core.xla_model as xm
    except ModuleNotFoundError:
        raise ModuleNotFoundError("torch_xla cannot be imported, please install PyTorch XLA.") from None
    _check_accumulation(gradient_accumulation_steps)

    def optimizer_step() -> None:
        xm.optimizer_step(optimizer, barrier=True)

    return _make_training_step(
        model, optimizer, loss_fn, device, non_blocking, prepare_batch, model_transform, output_transform,
        gradient_accumulation_steps, model_fn, None, _plain_backward, optimizer_step,
    )  # fmt: skip


# -- argument checks -----------------------------------------------------------


def _has_xla_support() -> bool:
    try:
        import torch_xla.core.xla_model  # noqa: F401
    except ImportError:
        return False
    return True


def _check_arg(on_tpu: bool, on_mps: bool, amp_mode: str | None, scaler: Any) -> tuple[str | None, Any]:
    """Validate the device / ``amp_mode`` / ``scaler`` combination; returns the
    step to build ("amp", "apex", "tpu", None or whatever else ``amp_mode`` was,
    which means the plain step) and the GradScaler to use, if any (one is
    created for ``scaler=True``)."""
    if on_mps and amp_mode:
        raise ValueError("amp_mode cannot be used with mps device. Consider using amp_mode=None or device='cuda'.")
    if on_tpu and not _has_xla_support():
        raise RuntimeError("In order to run on TPU, please install PyTorch XLA")
    if amp_mode and on_tpu:
        raise ValueError("amp_mode cannot be used with xla device. Consider using amp_mode=None or device='cuda'.")
    if scaler:
        if amp_mode != "amp":
            raise ValueError(f"scaler argument is {scaler}, but amp_mode is {amp_mode}. Consider using amp_mode='amp'.")
        if isinstance(scaler, bool):
            try:
                from torch.amp import GradScaler
            except ImportError:
                raise ImportError("Please install torch>=2.3.1 to use scaler argument.") from None
            scaler = GradScaler(enabled=True)
    if on_tpu:
        return "tpu", None
    if scaler and amp_mode == "amp":
        return amp_mode, scaler
    return amp_mode, None


def _device_flags(device: Any) -> tuple[bool, bool]:
    device_type = device.type if isinstance(device, torch.device) else device
    if device_type is None:
        return False, False
    return "xla" in device_type, "mps" in device_type


# -- factories -----------------------------------------------------------------


def create_supervised_trainer(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor] | torch.nn.Module,
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] = _prepare_batch,
    model_transform: Callable[[Any], Any] = _identity,
    output_transform: Callable[[Any, Any, Any, torch.Tensor], Any] = _loss_item,
    deterministic: bool = False,
    amp_mode: str | None = None,
    scaler: Any = False,
    gradient_accumulation_steps: int = 1,
    model_fn: Callable[[torch.nn.Module, Any], Any] = _call_model,
) -> Engine:
    """A trainer: an :class:`~fastignite.Engine` (a
    :class:`~fastignite.DeterministicEngine` if ``deterministic``) running one
    supervised training step per batch; ``state.output`` is
    ``output_transform(x, y, y_pred, loss)``, the batch's loss by default.

    The step is chosen from ``device`` and ``amp_mode``: an XLA device gives
    :func:`supervised_training_step_tpu`, ``amp_mode="amp"``
    :func:`supervised_training_step_amp`, ``amp_mode="apex"``
    :func:`supervised_training_step_apex`, anything else
    :func:`supervised_training_step`.  ``scaler`` (``amp_mode="amp"`` only) is
    a ``torch.amp.GradScaler`` or ``True`` for a new one, which is then also
    stored as ``trainer.state.scaler``.  See :func:`supervised_training_step`
    for the other arguments.

    Errors: ``ValueError`` for ``amp_mode`` on an mps or xla device, for a
    ``scaler`` without ``amp_mode="amp"`` and for a non-positive
    ``gradient_accumulation_steps``; ``RuntimeError`` for an xla device without
    PyTorch/XLA; ``ModuleNotFoundError`` for ``amp_mode="apex"`` without apex.
    """
    on_tpu, on_mps = _device_flags(device)
    mode, _scaler = _check_arg(on_tpu, on_mps, amp_mode, scaler)
    common = (model, optimizer, loss_fn, device, non_blocking, prepare_batch, model_transform, output_transform)

    if mode == "amp":
        update = supervised_training_step_amp(*common, _scaler, gradient_accumulation_steps, model_fn)
    elif mode == "apex":
        update = supervised_training_step_apex(*common, gradient_accumulation_steps, model_fn)
    elif mode == "tpu":
        update = supervised_training_step_tpu(*common, gradient_accumulation_steps, model_fn)
    else:
        update = supervised_training_step(*common, gradient_accumulation_steps, model_fn)

    if deterministic:
        from .deterministic import DeterministicEngine

        trainer: Engine = DeterministicEngine(update)
    else:
        trainer = Engine(update)
    if _scaler and scaler and isinstance(scaler, bool):
        trainer.state.scaler = _scaler
    return trainer


def supervised_evaluation_step(
    model: torch.nn.Module,
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] = _prepare_batch,
    model_transform: Callable[[Any], Any] = _identity,
    output_transform: Callable[[Any, Any, Any], Any] = _pred_and_target,
    model_fn: Callable[[torch.nn.Module, Any], Any] = _call_model,
) -> Callable[[Engine, Any], Any]:
    """An inference function ``(engine, batch) -> output``: puts the model in
    eval mode and, under ``torch.no_grad()``, computes
    ``y_pred = model_transform(model_fn(model, x))`` on the prepared batch;
    returns ``output_transform(x, y, y_pred)``, ``(y_pred, y)`` by default (the
    form metrics expect)."""

    def evaluate_step(engine: Engine, batch: Any) -> Any:
        model.eval()
        with torch.no_grad():
            x, y = prepare_batch(batch, device=device, non_blocking=non_blocking)
            y_pred = model_transform(model_fn(model, x))
            return output_transform(x, y, y_pred)

    return evaluate_step


def supervised_evaluation_step_amp(
    model: torch.nn.Module,
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] = _prepare_batch,
    model_transform: Callable[[Any], Any] = _identity,
    output_transform: Callable[[Any, Any, Any], Any] = _pred_and_target,
    model_fn: Callable[[torch.nn.Module, Any], Any] = _call_model,
) -> Callable[[Engine, Any], Any]:
    """:func:`supervised_evaluation_step` with the model applied under
    ``torch.amp.autocast("cuda")``.  Raises ``ImportError`` if ``torch.amp``
    cannot be imported."""
    autocast = _import_autocast()

    def evaluate_step(engine: Engine, batch: Any) -> Any:
        model.eval()
        with torch.no_grad():
            x, y = prepare_batch(batch, device=device, non_blocking=non_blocking)
            with autocast("cuda", enabled=True):
                y_pred = model_transform(model_fn(model, x))
            return output_transform(x, y, y_pred)

    return evaluate_step


def create_supervised_evaluator(
    model: torch.nn.Module,
    metrics: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] = _prepare_batch,
    model_transform: Callable[[Any], Any] = _identity,
    output_transform: Callable[[Any, Any, Any], Any] = _pred_and_target,
    amp_mode: str | None = None,
    model_fn: Callable[[torch.nn.Module, Any], Any] = _call_model,
) -> Engine:
    """An evaluator: an :class:`~fastignite.Engine` running
    :func:`supervised_evaluation_step` (:func:`supervised_evaluation_step_amp`
    for ``amp_mode="amp"``) per batch, with each of ``metrics`` (name ->
    metric, e.g. ignite's) attached by ``metric.attach(evaluator, name)``, so
    that ``evaluator.run(data).metrics[name]`` holds its value.

    Errors as :func:`create_supervised_trainer`'s for the device and
    ``amp_mode``."""
    on_tpu, on_mps = _device_flags(device)
    mode, _ = _check_arg(on_tpu, on_mps, amp_mode, None)
    metrics = metrics or {}

    step_factory = supervised_evaluation_step_amp if mode == "amp" else supervised_evaluation_step
    evaluate_step = step_factory(
        model,
        device,
        non_blocking=non_blocking,
        prepare_batch=prepare_batch,
        model_transform=model_transform,
        output_transform=output_transform,
        model_fn=model_fn,
    )
    evaluator = Engine(evaluate_step)
    for name, metric in metrics.items():
        metric.attach(evaluator, name)
    return evaluator
