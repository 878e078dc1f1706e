"""Signature checks done once, when a function is handed to the engine."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def _signature_of(fn: Callable[..., Any]) -> inspect.Signature:
    # A filtered handler is a wrapper; the user wrote the function it wraps.
    parent = getattr(fn, "_parent", None)
    target = parent() if parent is not None else fn
    return inspect.signature(target)


def bind_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str | None:
    """Why ``fn(*args, **kwargs)`` cannot be called, or None if it can."""
    try:
        signature = _signature_of(fn)
    except (TypeError, ValueError) as exc:  # builtins and C callables without a signature
        return f"its signature cannot be inspected ({exc})"
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return str(exc)
    return None


def describe_params(fn: Callable[..., Any]) -> list[str]:
    try:
        return list(_signature_of(fn).parameters)
    except (TypeError, ValueError):
        return ["?"]


def check_signature(fn: Callable[..., Any], fn_description: str, *args: Any, **kwargs: Any) -> None:
    """Raise ValueError if ``fn`` cannot be called with ``args``/``kwargs``."""
    reason = bind_error(fn, *args, **kwargs)
    if reason is not None:
        passed = [*args, *kwargs]
        raise ValueError(
            f"Error adding {fn} '{fn_description}': takes parameters {describe_params(fn)} "
            f"but will be called with {passed} ({reason})."
        )
