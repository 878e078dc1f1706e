"""Events, event filters built from them, State and RemovableEventHandle.

The public names and their semantics are pytorch-ignite's (``ignite.engine.events``);
``&`` of events and the filter helpers come from Ignite.jl.
"""

from __future__ import annotations

import numbers
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from types import DynamicClassAttribute
from typing import TYPE_CHECKING, Any

from ._signature import check_signature
from ._watched import DICT_MUTATORS, report_changes
from .filters import AllOf, AnyOf, Every, FilterCallable, Once, Window, _ignite_once, every_filter

if TYPE_CHECKING:  # pragma: no cover
    from ._backend import TablesLike
    from .engine import Engine, FiringCounters

__all__ = ["CallableEventWithFilter", "EventEnum", "Events", "EventsList", "State", "RemovableEventHandle"]


def _event_name(event: Any) -> Any:
    """The name an event is known by: its ``name`` for event objects (ours or
    ignite's), the string itself for string events."""
    name = getattr(event, "_name_", None)
    return event if name is None else name


class CallableEventWithFilter:
    """An event, optionally with a filter deciding at which firings handlers run.

    ``Events.ITERATION_COMPLETED(every=10)`` is one; it equals (and hashes like)
    ``Events.ITERATION_COMPLETED``: the filter belongs to the handler, not the event.
    """

    def __init__(self, value: str, event_filter: FilterCallable | None = None, name: str | None = None) -> None:
        self.filter = event_filter
        if not hasattr(self, "_value_"):
            self._value_ = value
        if not hasattr(self, "_name_") and name is not None:
            self._name_ = name

    @DynamicClassAttribute
    def name(self) -> str:
        """The event's name, e.g. ``"ITERATION_COMPLETED"``."""
        return self._name_

    @DynamicClassAttribute
    def value(self) -> str:
        """The event's value, e.g. ``"iteration_completed"``."""
        return self._value_

    def __call__(
        self,
        event_filter: FilterCallable | None = None,
        every: int | Sequence[int] | None = None,
        once: int | Sequence[int] | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> CallableEventWithFilter:
        """This event with a filter: exactly one of ``event_filter``, ``once``, or
        ``every``/``before``/``after`` (which combine).  ``every`` may be a list of
        periods (the handler runs when any divides the count)."""
        given = (
            (event_filter is not None)
            + (once is not None)
            + (every is not None or before is not None or after is not None)
        )
        if given != 1:
            raise ValueError("Only one of the input arguments should be specified, except before, after and every")
        if event_filter is not None and not callable(event_filter):
            raise TypeError(f"Argument event_filter should be a callable, got {event_filter!r}")
        # Counts are checked as ignite 0.5.5 checks them, and a bool passes as the int it is
        # to ignite (every=True: every count, no filter; once=True: at 1; before/after=True: 1;
        # every=False raises), so that ignite code behaves the same here.  fastignite's own
        # factories, every_filter and once_filter, refuse bools; so does a list for every, a
        # fastignite extension (ignite takes no list).
        every_spec = None
        if every is not None:
            if isinstance(every, numbers.Integral):
                if not every > 0:  # type: ignore[operator]  # numbers.Real declares < and <= only
                    raise ValueError(f"Argument every should be integer and greater than zero, got {every!r}")
                every_spec = Every((every,))
            else:
                # every_filter validates lists and rejects anything else with the same wording.
                every_spec = every_filter(every)
        once_spec = _ignite_once(once) if once is not None else None
        for arg_name, arg in (("before", before), ("after", after)):
            if arg is not None and not (isinstance(arg, numbers.Integral) and arg >= 0):
                raise ValueError(f"Argument {arg_name} should be integer and greater or equal to zero, got {arg!r}")

        if before is not None or after is not None:
            if every_spec is not None and len(every_spec.periods) > 1:
                raise ValueError("Argument every should be a single integer when combined with before or after")
            period = every_spec.periods[0] if every_spec is not None else None
            event_filter = Window(before, after, None if period == 1 else period)
        elif every_spec is not None:
            # ignite: every=1 is no filter at all.
            event_filter = None if every_spec.periods == (1,) else every_spec
        elif once_spec is not None:
            event_filter = once_spec
        elif event_filter is not None:  # the one argument given
            check_signature(event_filter, "event_filter", "engine", "event")
        return CallableEventWithFilter(self.value, event_filter, self.name)

    # ignite's filter factories, kept for code that calls them directly.
    @staticmethod
    def every_event_filter(every: int) -> FilterCallable:
        return Every((every,))

    @staticmethod
    def once_event_filter(once: list[int]) -> FilterCallable:
        return Once(once)

    @staticmethod
    def before_and_after_event_filter(before: int | None = None, after: int | None = None) -> FilterCallable:
        return Window(before, after)

    @staticmethod
    def every_before_and_after_event_filter(
        every: int, before: int | None = None, after: int | None = None
    ) -> FilterCallable:
        return Window(before, after, every)

    @staticmethod
    def default_event_filter(engine: Any, event: int) -> bool:
        warnings.warn("Events.default_event_filter is deprecated and will be removed. Please, use None instead")
        return True

    def __repr__(self) -> str:
        if self.filter is None:
            return f"Events.{self.name}"
        return f"Events.{self.name}(filter={self.filter!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.name == other
        other_name: object = getattr(other, "_name_", None)
        # Any event object with a name (ours, or ignite's own) compares by name, so
        # that code mixing ignite's Events with fastignite's engine finds its handlers.
        if other_name is not None and hasattr(other, "filter"):
            return self.name == other_name
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._name_)

    def __or__(self, other: object) -> EventsList:
        return EventsList() | self | other

    def __and__(self, other: object) -> CallableEventWithFilter:
        return _conjunction(self, other)

    def __rand__(self, other: object) -> CallableEventWithFilter:
        return _conjunction(other, self)


def _as_filter_and_name(operand: object) -> tuple[FilterCallable | None, str]:
    """(filter or None for "always", event name) of one side of ``&``."""
    if isinstance(operand, CallableEventWithFilter):
        return operand.filter, operand.name
    if isinstance(operand, EventsList):
        if len(operand) == 0:
            raise ValueError("Cannot combine an empty EventsList with &")
        parts = [_as_filter_and_name(e) for e in operand]
        names = {n for _, n in parts}
        if len(names) != 1:
            raise ValueError(
                f"Events in an EventsList combined with & must all be the same event, got {sorted(names)}: "
                "one firing is of one event"
            )
        filters = [f for f, _ in parts if f is not None]
        if len(filters) < len(parts):
            return None, names.pop()  # one unfiltered member: the disjunction always holds
        return AnyOf(*filters), names.pop()
    raise TypeError(f"Operands of & should be events (Events, CallableEventWithFilter or EventsList), got {operand!r}")


def _conjunction(left: Any, right: Any) -> CallableEventWithFilter:
    """``left & right``: one event whose handlers run iff both sides pass for the
    same firing, evaluated left to right."""
    left_filter, left_name = _as_filter_and_name(left)
    right_filter, right_name = _as_filter_and_name(right)
    if left_name != right_name:
        raise ValueError(
            f"Events.{left_name} & Events.{right_name} can never fire: both sides of & must be the same event, "
            "because one firing is of one event"
        )
    if left_filter is None:
        combined = right_filter
    elif right_filter is None:
        combined = left_filter
    else:
        combined = AllOf(left_filter, right_filter)
    base = left if isinstance(left, CallableEventWithFilter) else next(iter(left))
    return CallableEventWithFilter(base.value, combined, left_name)


class EventEnum(CallableEventWithFilter, Enum):
    """Base class for custom events: subclass it and register the members with
    ``engine.register_events(*MyEvents)``."""

    def __new__(cls, value: str) -> EventEnum:
        obj = CallableEventWithFilter.__new__(cls)
        obj._value_ = value
        return obj


class Events(EventEnum):
    """The events an Engine fires, in ignite's order and cases."""

    EPOCH_STARTED = "epoch_started"
    EPOCH_COMPLETED = "epoch_completed"
    STARTED = "started"
    COMPLETED = "completed"
    ITERATION_STARTED = "iteration_started"
    ITERATION_COMPLETED = "iteration_completed"
    EXCEPTION_RAISED = "exception_raised"
    GET_BATCH_STARTED = "get_batch_started"
    GET_BATCH_COMPLETED = "get_batch_completed"
    DATALOADER_STOP_ITERATION = "dataloader_stop_iteration"
    TERMINATE = "terminate"
    TERMINATE_SINGLE_EPOCH = "terminate_single_epoch"
    INTERRUPT = "interrupt"

    def __or__(self, other: object) -> EventsList:
        return EventsList() | self | other


class EventsList:
    """Several events for one handler (``a | b``): the handler is registered on
    each, as if added once per event."""

    def __init__(self) -> None:
        self._events: list[CallableEventWithFilter] = []

    def _append(self, event: Any) -> None:
        if not isinstance(event, CallableEventWithFilter):
            raise TypeError(f"Argument event should be Events or CallableEventWithFilter, got: {type(event)}")
        self._events.append(event)

    def __getitem__(self, item: int) -> CallableEventWithFilter:
        return self._events[item]

    def __iter__(self) -> Iterator[CallableEventWithFilter]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def __or__(self, other: Any) -> EventsList:
        if isinstance(other, EventsList):
            for e in other:
                self._append(e)
        else:
            self._append(other)
        return self

    def __and__(self, other: Any) -> CallableEventWithFilter:
        return _conjunction(self, other)

    def __rand__(self, other: Any) -> CallableEventWithFilter:
        return _conjunction(other, self)

    def __repr__(self) -> str:
        return " | ".join(map(repr, self._events)) or "EventsList()"


class _EventToAttr(dict[Any, str]):
    """``State.event_to_attr``: shared by every engine, as in ignite, which reads
    it at each filtered call.  The dispatch tables read it when they are built,
    so any change to it marks every live engine's tables stale."""

    __slots__ = ("listeners",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.listeners: weakref.WeakSet[TablesLike] = weakref.WeakSet()  # engines' Tables

    def _changed(self) -> None:
        for tables in list(self.listeners):
            tables.invalidate_all()


report_changes(_EventToAttr, dict, DICT_MUTATORS)

# Called with the new mapping whenever ``State.event_to_attr`` is replaced
# wholesale (the drop-in keeps ignite's own ``State.event_to_attr`` the same object).
_EVENT_TO_ATTR_HOOKS: list[Callable[[_EventToAttr], None]] = []


def _replace_event_to_attr(mapping: Any) -> _EventToAttr:
    """Make ``mapping`` the shared event -> attribute mapping, as ignite's code
    does by assigning ``State.event_to_attr = {...}``: every live engine keeps
    listening to it and reads it from now on."""
    if not isinstance(mapping, dict):
        raise TypeError(f"State.event_to_attr should be a dict of event -> state attribute name, got {mapping!r}")
    old = State.__dict__.get("event_to_attr")
    if isinstance(mapping, _EventToAttr):
        new = mapping
    else:
        # A plain dict reports no changes; the tables are built from this
        # mapping, so it is copied into one that does.
        new = _EventToAttr(mapping)
    if old is not None and old is not new:
        for tables in list(old.listeners):
            new.listeners.add(tables)
    type.__setattr__(State, "event_to_attr", new)
    for hook in _EVENT_TO_ATTR_HOOKS:
        hook(new)
    new._changed()  # every engine's tables were built from the old mapping
    return new


class _StateType(type):
    """State's metaclass: assigning ``event_to_attr`` on State (or a subclass,
    which ignite code does not distinguish from State) replaces the one shared
    mapping, which is what ignite's State.get_event_attrib_value reads."""

    def __setattr__(cls, name: str, value: Any) -> None:
        if name == "event_to_attr":
            _replace_event_to_attr(value)
        else:
            super().__setattr__(name, value)

    def __delattr__(cls, name: str) -> None:
        if name == "event_to_attr":
            raise AttributeError("State.event_to_attr cannot be deleted: assign a dict to it instead")
        super().__delattr__(name)


class State(metaclass=_StateType):
    """An engine's run state: ``iteration``, ``epoch``, ``epoch_length``,
    ``max_epochs``, ``max_iters``, ``output``, ``batch``, ``metrics``,
    ``dataloader``, ``seed``, ``times``, plus any attribute a user sets."""

    # Which state attribute a filter on each event reads.  Class-level and shared by
    # all engines, as in ignite (register_events(event_to_attr=...) extends it).
    event_to_attr: dict[Any, str] = _EventToAttr({
        Events.GET_BATCH_STARTED: "iteration",
        Events.GET_BATCH_COMPLETED: "iteration",
        Events.ITERATION_STARTED: "iteration",
        Events.ITERATION_COMPLETED: "iteration",
        Events.EPOCH_STARTED: "epoch",
        Events.EPOCH_COMPLETED: "epoch",
        Events.STARTED: "epoch",
        Events.COMPLETED: "epoch",
    })  # fmt: skip

    # The attributes the loop reads and writes at every iteration live in slots:
    # the compiled twin accesses them in place, at the cost of a pointer store.
    # Any other attribute goes to the instance __dict__ as usual.
    __slots__ = (
        "iteration", "epoch", "epoch_length", "max_epochs", "max_iters", "output", "batch", "metrics",
        "dataloader", "seed", "times", "__dict__", "__weakref__",
    )  # fmt: skip

    if TYPE_CHECKING:
        # Set on every engine's state (Ignite.jl's firing counters).
        counters: FiringCounters

        # Any other attribute a user or a handler sets: the state is open, as ignite's.
        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...

    def __init__(self, **kwargs: Any) -> None:
        self.iteration = 0
        self.epoch = 0
        self.epoch_length: int | None = None
        self.max_epochs: int | None = None
        self.max_iters: int | None = None
        self.output: Any = None
        self.batch: Any = None
        self.metrics: dict[str, Any] = {}
        self.dataloader: Any = None
        self.seed: int | None = None
        self.times: dict[str, float | None] = {
            Events.EPOCH_COMPLETED.name: None,
            Events.COMPLETED.name: None,
        }
        for k, v in kwargs.items():
            setattr(self, k, v)
        self._update_attrs()

    def _update_attrs(self) -> None:
        for attr in self.event_to_attr.values():
            if not hasattr(self, attr):
                setattr(self, attr, 0)

    def get_event_attrib_value(self, event_name: Any) -> int:
        """The counter a filter on ``event_name`` reads (``iteration`` or ``epoch``
        for built-in events)."""
        if event_name not in State.event_to_attr:
            raise RuntimeError(f"Unknown event name '{event_name}'")
        count: int = getattr(self, State.event_to_attr[event_name])
        return count

    def __repr__(self) -> str:
        lines = ["State:"]
        slotted = [(a, getattr(self, a)) for a in State.__slots__ if a[0] != "_" and hasattr(self, a)]
        for attr, value in [*slotted, *self.__dict__.items()]:
            if not isinstance(value, (numbers.Number, str)):
                value = type(value)
            lines.append(f"\t{attr}: {value}")
        return "\n".join(lines) + "\n"


def _is_event_object(event: Any) -> bool:
    """Ours, or an event of ignite itself (named, with a ``filter``)."""
    return isinstance(event, CallableEventWithFilter) or (
        getattr(event, "_name_", None) is not None and hasattr(event, "filter")
    )


def _events_of_list(event: Any) -> list[Any] | None:
    """The members of an ``a | b`` (ours or ignite's EventsList), else None."""
    if isinstance(event, EventsList):
        return list(event)
    if not isinstance(event, str) and not _is_event_object(event) and isinstance(getattr(event, "_events", None), list):
        return list(event._events)
    return None


class RemovableEventHandle:
    """What ``add_event_handler`` returns: ``remove()`` unregisters that one
    registration; also a context manager.  Holds only weak references, so it keeps
    neither the engine nor the handler alive."""

    def __init__(self, event_name: Any, handler: Callable[..., Any], engine: Engine) -> None:
        self.event_name = event_name
        self.handler = weakref.ref(handler)
        self.engine = weakref.ref(engine)

    def remove(self) -> None:
        """Remove the handler from the engine (a no-op if either is gone)."""
        handler = self.handler()
        engine = self.engine()
        if handler is None or engine is None:
            return
        parent = getattr(handler, "_parent", None)
        if parent is not None:
            handler = parent()
            if handler is None:  # the wrapper holds its handler strongly: cannot happen
                raise RuntimeError("Internal error: a filtered handler outlived the function it wraps")
        for e in _events_of_list(self.event_name) or (self.event_name,):
            if engine.has_event_handler(handler, e):
                engine.remove_event_handler(handler, e)

    def __enter__(self) -> RemovableEventHandle:
        return self

    def __exit__(self, *args: Any, **kwargs: Any) -> None:
        self.remove()
