"""Engine: the API layer.

Everything here runs when a user configures an engine (registration, validation,
run() set-up, state_dict).  A run is ``_driver.run_as_gen``, which drives the
engine's backend twin (``fastignite._backend``): its ``Tables`` (slots,
counters, dispatch tables) and its ``Loop`` (the iterations of an epoch).
"""

from __future__ import annotations

import copy
import itertools
import logging
import numbers
import sys
import weakref
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from . import _backend, _driver, distributed
from ._registry import FilteredHandler, HandlerList, HandlerRegistry
from ._signature import bind_error, check_signature, describe_params
from .events import (
    EventEnum,
    Events,
    RemovableEventHandle,
    State,
    _events_of_list,
    _EventToAttr,
    _is_event_object,
)
from .filters import SCHEDULED as _SCHEDULED

if TYPE_CHECKING:
    from ._backend import TablesLike

__all__ = ["Engine"]

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def _check_count_arg(name: str, value: Any) -> None:
    if value is not None and not (_is_whole(value) and value >= 1):
        raise ValueError(f"Argument {name} should be a positive integer or None, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    """An integer, or a real number of integral value: ignite counts with
    whatever numbers it is given, and real code passes ``np.ceil(n / batch)``
    or a float read back from a checkpoint.  A fraction, inf or nan would count
    nothing sensible (ignite fails later, or loops for ever): refused here."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Integral):
        return True
    return isinstance(value, numbers.Real) and float(value).is_integer()


def _check_state_dict_types(sd: dict[str, Any]) -> None:
    """Wrongly typed values would otherwise fail deep in arithmetic (ignite: a bare
    TypeError).  Integral-valued reals (4.0) are taken, as ignite takes them."""
    for key in ("iteration", "epoch"):
        if key in sd and not (_is_whole(sd[key]) and sd[key] >= 0):
            raise ValueError(f"state_dict's {key} should be a non-negative integer, got {sd[key]!r}")
    for key in ("epoch_length", "max_epochs", "max_iters"):
        if sd.get(key) is not None and not _is_whole(sd[key]):
            raise ValueError(f"state_dict's {key} should be an integer or None, got {sd[key]!r}")


class _Flag:
    """An engine control flag (``should_terminate``...): a plain value to read,
    whose every assignment refreshes the engine's ``_signal``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = "_" + name

    # getattr/setattr, not engine.__dict__: touching __dict__ makes CPython
    # materialise it and lose its fast attribute access on the whole engine.
    def __get__(self, engine: Any, owner: type | None = None) -> Any:
        return self if engine is None else getattr(engine, self.attr)

    def __set__(self, engine: Any, value: Any) -> None:
        setattr(engine, self.attr, value)
        engine._update_signal()


def _no_data(_: object) -> None:
    return None


class _AllowedEvents(list[Any]):
    """``engine._allowed_events``: ignite's plain list, which ignite code may edit
    in place (or replace, see Engine._allowed_events).  Any edit other than
    register_events' makes the engine check this list at every registration
    and every fire_event, as ignite does; an engine whose list is never edited
    pays nothing for it."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine, events: Iterable[Any] = ()) -> None:
        super().__init__(events)
        self._engine = weakref.ref(engine)

    def _edited(self) -> None:
        engine = self._engine()
        if engine is not None:
            engine._tables.check_allowed = True

    def __reduce__(self) -> tuple[Any, ...]:
        return list, (list(self),)  # a copy or pickle is ignite's plain list


def _edits(name: str) -> Callable[..., Any]:
    base = getattr(list, name)

    def edit(self: _AllowedEvents, *args: Any) -> Any:
        result = base(self, *args)
        self._edited()
        return result

    edit.__name__ = name
    return edit


for _name in (
    "append", "extend", "insert", "remove", "pop", "clear", "__setitem__", "__delitem__", "__iadd__", "__imul__",
):  # fmt: skip
    setattr(_AllowedEvents, _name, _edits(_name))
del _name


# The loop events (Ignite.jl's AbstractLoopEvent): their counters are the state's
# iteration / epoch, which is what their firings count in a run that started at
# 0, and which stays right across resumes, restarted data (ignite skips one
# GET_BATCH_STARTED after DATALOADER_STOP_ITERATION) and data=None (no
# GET_BATCH_* firings at all).
_LOOP_EVENTS = frozenset((
    Events.EPOCH_STARTED, Events.EPOCH_COMPLETED, Events.ITERATION_STARTED, Events.ITERATION_COMPLETED,
    Events.GET_BATCH_STARTED, Events.GET_BATCH_COMPLETED,
))  # fmt: skip
_BUILT_IN = frozenset(Events)
_COUNTERS_KEY = "counters"  # state_dict()'s key for the custom events' counters


def _counter_name(event: Any) -> str:
    """The state_dict key of an event's counter: its name (events compare by name),
    a plain string, so that a checkpoint loads without the event classes."""
    return event if isinstance(event, str) else str(getattr(event, "name", event))


class FiringCounters(Mapping[Any, int]):
    """``state.counters`` (Ignite.jl's): for each registered event, how many
    times it fired since the run started.

    * Emptied when a run starts over, and set by ``load_state_dict`` (the custom
      events' counters a ``state_dict()`` saved; every other counter 0), so a
      resumed run makes the filter decisions of an uninterrupted one.  A run
      that resumes (interrupted, terminated, or after ``load_state_dict``) keeps
      them.
    * The loop events' counters (EPOCH_*, ITERATION_*, GET_BATCH_*) are the
      state's ``epoch`` / ``iteration`` (the counts their filters read).
    * Filters on events with no ``event_to_attr`` mapping read these counters.
    """

    __slots__ = ("_tables", "_engine")

    def __init__(self, tables: TablesLike, engine: Engine | None = None) -> None:
        self._tables = tables
        # Weak: the engine holds its state, which holds this.
        self._engine = None if engine is None else weakref.ref(engine)

    def __getitem__(self, event: Any) -> int:
        tables = self._tables
        slot = tables.slot_of(event)
        if slot is None:
            raise KeyError(event)
        registered = tables.events[slot]
        engine = None if self._engine is None else self._engine()
        if engine is not None and registered in _LOOP_EVENTS:
            attr = State.event_to_attr.get(registered)
            if attr is not None:
                count: int = getattr(engine.state, attr)
                return count
        return tables.firings(slot)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._tables.events)

    def __len__(self) -> int:
        return len(self._tables.events)

    def __repr__(self) -> str:
        pairs = ", ".join(f"{getattr(e, 'name', e)}: {self[e]}" for e in self._tables.events)
        return f"FiringCounters({{{pairs}}})"

    def __reduce__(self) -> tuple[Any, ...]:
        # A view of one engine's backend tables, which are neither copied nor
        # pickled: a copy or pickle of the state keeps the counts as a plain
        # dict.  A copy of the whole engine maps this view to the copy's own
        # (Engine.__deepcopy__).
        return dict, (dict(self),)


def _check_counters(counters: Any) -> dict[str, int]:
    """A state_dict's ``counters``: event name -> firings, validated whole before
    anything changes (the compiled twin keeps counters as C int64)."""
    if not isinstance(counters, Mapping):
        raise ValueError(f"state_dict's {_COUNTERS_KEY} should map event names to firing counts, got {counters!r}")
    checked = {}
    for name, count in counters.items():
        if not isinstance(name, str):
            name = _counter_name(name)
        if not (_is_int(count) and 0 <= count < _SCHEDULED):
            raise ValueError(
                f"state_dict's {_COUNTERS_KEY}[{name!r}] should be a non-negative integer below 2**62, got {count!r}"
            )
        checked[name] = int(count)
    return checked


class Engine:
    """Runs ``process_function(engine, batch)`` over data for a number of epochs,
    firing events that handlers are attached to.

    The API and behaviour are pytorch-ignite's ``ignite.engine.Engine``.
    """

    # What the loop touches at every iteration lives in slots, which the compiled
    # twin reads and writes in place; everything else is in the instance __dict__.
    __slots__ = (
        "state", "_signal", "_dataloader_iter", "_process_function", "_init_iter", "_tables",
        "_should_terminate", "_should_terminate_single_epoch", "_should_interrupt", "__dict__", "__weakref__",
    )  # fmt: skip

    # The class of engine.state; the drop-in (fastignite.ignite) uses one that
    # is also ignite's State.
    _state_class: type[State] = State

    _state_dict_all_req_keys: tuple[str, ...] = ("epoch_length", "iteration")
    _state_dict_one_of_opt_keys: tuple[tuple[str, ...], ...] = (("max_epochs", "max_iters"),)
    interrupt_resume_enabled = True

    # Under torch.distributed (see fastignite.distributed): how often the ranks
    # agree on stops ("auto", an int k >= 1, or 0: never), and whether this
    # class is rank-aware at all (the drop-in keeps ignite's behaviour).
    agree_every: int | str = "auto"
    _rank_aware = True
    _agreement: distributed.Agreement | None = None  # the running distributed run's, else None

    def __init__(self, process_function: Callable[[Engine, Any], Any]) -> None:
        if process_function is None:
            raise ValueError("Engine must be given a processing function in order to run.")
        if not callable(process_function):
            raise TypeError(
                f"Argument process_function should be a callable (engine, batch) -> output, got {process_function!r}"
            )
        self._twin = _backend.twin_for_new_engines()  # the backend twin this engine runs on, for life
        self._tables = self._twin.Tables()
        cast(_EventToAttr, State.event_to_attr).listeners.add(self._tables)
        self._handler_registry = HandlerRegistry(self._tables)
        self._counters = FiringCounters(self._tables, self)
        self._pending_counters: dict[str, int] = {}  # loaded by load_state_dict for events not yet registered
        self.logger = logging.getLogger(__name__ + "." + self.__class__.__name__)
        self._process_function = process_function
        self.last_event_name: Any = None
        self._should_terminate: bool | str = False
        self._should_terminate_single_epoch: bool | str = False
        self._should_interrupt = False
        self._signal = False  # any of the three flags set: the loop checks this one
        self.state = self._state_class()
        self.state.counters = self._counters  # there before the first run, as in Ignite.jl
        self._state_dict_user_keys: list[str] = []
        self._allowed_list = _AllowedEvents(self)
        self._dataloader_iter: Iterator[Any] | None = None
        self._init_iter: int | None = None
        self._internal_run_generator: Generator[State, None, State] | None = None
        self.register_events(*Events)
        check_signature(process_function, "process_function", self, None)

    # -- control flags -------------------------------------------------------
    # Plain attributes in ignite; here each assignment also updates _signal, so
    # that the loop tests one flag per check point instead of three.

    should_terminate = _Flag()
    should_terminate_single_epoch = _Flag()
    should_interrupt = _Flag()

    # The last event fired.  The tables record it (the compiled twin as a slot
    # number, at the cost of an integer store per firing instead of two
    # reference-count updates); reading and assigning work as in ignite.
    @property
    def last_event_name(self) -> Any:
        return self._tables.last_event

    @last_event_name.setter
    def last_event_name(self, event: Any) -> None:
        self._tables.last_event = event

    # ignite's {event: [(handler, args, kwargs)]}.  ignite code may assign a whole
    # new mapping (``engine._event_handlers = defaultdict(list)``); the tables
    # were built from the old one, so the assignment copies the entries into a
    # registry that reports its changes, and marks every table stale.
    @property
    def _event_handlers(self) -> HandlerRegistry:
        return self._handler_registry

    @_event_handlers.setter
    def _event_handlers(self, handlers: Any) -> None:
        if not isinstance(handlers, Mapping):
            raise TypeError(
                "engine._event_handlers should be a mapping of event -> list of (handler, args, kwargs), "
                f"got {type(handlers).__name__}"
            )
        registry = HandlerRegistry(self._tables)
        for event, entries in handlers.items():
            dict.__setitem__(registry, event, HandlerList(event, weakref.ref(self._tables), entries))
        self._handler_registry = registry
        self._tables.invalidate_all()

    # ignite's list of the events handlers may be added to.  ignite code may
    # assign a list of its own: then, as in ignite, registration and fire_event
    # refuse the events it leaves out, and accept those it adds.
    @property
    def _allowed_events(self) -> list[Any]:
        return self._allowed_list

    @_allowed_events.setter
    def _allowed_events(self, events: Iterable[Any]) -> None:
        if not isinstance(events, Iterable):
            raise TypeError(f"engine._allowed_events should be a list of events, got {type(events).__name__}")
        self._allowed_list = _AllowedEvents(self, events)
        self._tables.check_allowed = True

    def _update_signal(self) -> None:
        self._signal = self._agreement is not None or bool(
            self._should_terminate or self._should_terminate_single_epoch or self._should_interrupt
        )

    # -- events and handlers -------------------------------------------------

    def register_events(self, *event_names: str | EventEnum, event_to_attr: dict[Any, str] | None = None) -> None:
        """Allow handlers on custom events (EventEnum members or strings).

        ``event_to_attr`` maps events to the state attribute their filters read;
        without it, filters read the engine's own firing counter of the event.
        """
        if not (event_to_attr is None or isinstance(event_to_attr, dict)):
            raise ValueError(f"Expected event_to_attr to be dictionary. Got {type(event_to_attr)}.")
        for index, e in enumerate(event_names):
            if not (isinstance(e, (str, EventEnum)) or _is_event_object(e)):
                raise TypeError(f"Value at {index} of event_names should be a str or EventEnum, but given {e!r}")
        for e in event_names:
            list.append(self._allowed_list, e)  # not an edit by hand
            self._tables.add_event(e)
            if self._pending_counters:
                self._apply_pending_counter(e)
            if event_to_attr and e in event_to_attr:
                # Shared by all engines; every engine's tables are marked stale.
                State.event_to_attr[e] = event_to_attr[e]
        self.state._update_attrs()

    def has_registered_events(self, event: Any) -> bool:
        return event in self._allowed_events

    def _assert_allowed_event(self, event_name: Any) -> None:
        tables = self._tables
        if tables.check_allowed:
            # ignite code edited _allowed_events: it is the list that decides.
            allowed = event_name in self._allowed_list
            if allowed and tables.slot_of(event_name) is None:
                tables.add_event(event_name)  # added to the list by hand
        else:
            allowed = tables.slot_of(event_name) is not None
        if not allowed:
            self.logger.error("attempt to add event handler to an invalid event %s", event_name)
            raise ValueError(
                f"Event {event_name} is not a valid event for this {self.__class__.__name__}. "
                "Register custom events with engine.register_events() first."
            )

    def add_event_handler(
        self, event_name: Any, handler: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> RemovableEventHandle:
        """Call ``handler`` on ``event_name``, with or without the engine as first
        argument (decided here, from its signature), then ``*args, **kwargs``.

        ``event_name`` may carry a filter (``Events.X(every=10)``), be an ``a | b``
        (one registration per event) or an ``a & b`` (one call iff both pass).
        """
        members = _events_of_list(event_name)
        if members is not None:
            # Check every member first so that a bad one leaves nothing half-added.
            for e in members:
                self._check_handler(e, handler, args, kwargs)
            for e in members:
                self.add_event_handler(e, handler, *args, **kwargs)
            return RemovableEventHandle(event_name, handler, self)

        takes_engine = self._check_handler(event_name, handler, args, kwargs)
        event_filter = self._filter_of(event_name)
        if event_filter is not None:
            handler = FilteredHandler(handler, event_filter, event_name, self)
        entry_args = ((weakref.ref(self),) + args) if takes_engine else args
        self._event_handlers[event_name].append((handler, entry_args, kwargs))
        self.logger.debug("Added handler for event %s", event_name)
        return RemovableEventHandle(event_name, handler, self)

    @staticmethod
    def _filter_of(event_name: Any) -> Any:
        """The filter an event object carries, or None.  The drop-in engine
        (fastignite.ignite) translates ignite's filters here."""
        return getattr(event_name, "filter", None) if _is_event_object(event_name) else None

    def _check_handler(self, event_name: Any, handler: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Validate one registration; return whether the handler takes the engine."""
        if not callable(handler):
            raise TypeError(f"Argument handler should be callable, got {handler!r} for event {event_name}")
        self._assert_allowed_event(event_name)
        if event_name == Events.EXCEPTION_RAISED:
            event_args: tuple[Any, ...] = (Exception(),)
        elif event_name == Events.TERMINATE_SINGLE_EPOCH:
            event_args = (0,)
        else:
            event_args = ()
        with_engine = bind_error(handler, self, *event_args, *args, **kwargs)
        if with_engine is None:
            return True
        without_engine = bind_error(handler, *event_args, *args, **kwargs)
        if without_engine is None:
            return False
        passed = [*event_args, *args, *kwargs]
        raise ValueError(
            f"Error adding {handler} 'handler': takes parameters {describe_params(handler)} "
            f"but will be called with {['engine', *passed]} or {passed} on event {event_name} "
            f"(with the engine: {with_engine}; without: {without_engine})."
        )

    def has_event_handler(self, handler: Callable[..., Any], event_name: Any | None = None) -> bool:
        """Whether ``handler`` is registered on ``event_name`` (on any event if None)."""
        if event_name is not None:
            if event_name not in self._event_handlers:
                return False
            events: Iterable[Any] = [event_name]
        else:
            events = list(self._event_handlers)
        for e in events:
            for registered, _, _ in self._event_handlers[e]:
                if self._compare_handlers(handler, registered):
                    return True
        return False

    @staticmethod
    def _compare_handlers(user_handler: Callable[..., Any], registered_handler: Callable[..., Any]) -> bool:
        parent = getattr(registered_handler, "_parent", None)
        if parent is not None:
            registered_handler = parent()
        return registered_handler == user_handler

    def remove_event_handler(self, handler: Callable[..., Any], event_name: Any) -> None:
        """Unregister every registration of ``handler`` on ``event_name``."""
        if event_name not in self._event_handlers:
            # ignite's registry, a defaultdict, has an entry for every event
            # that ever had a handler or fired; for any other it says this.
            slot = self._tables.slot_of(event_name)
            if slot is None or not self._tables.fired_ever(slot):
                raise ValueError(f"Input event name '{event_name}' does not exist")
            raise ValueError(f"Input handler '{handler}' is not found among registered event handlers")
        entries = self._event_handlers[event_name]
        kept = [entry for entry in entries if not self._compare_handlers(handler, entry[0])]
        if len(kept) == len(entries):
            raise ValueError(f"Input handler '{handler}' is not found among registered event handlers")
        # A new list, not an in-place edit: a firing walking the old list finishes
        # over it, as in ignite.
        self._event_handlers[event_name] = kept

    def on(self, event_name: Any, *args: Any, **kwargs: Any) -> Callable[[_Handler], _Handler]:
        """Decorator form of add_event_handler."""

        def decorator(f: _Handler) -> _Handler:
            self.add_event_handler(event_name, f, *args, **kwargs)
            return f

        return decorator

    def _fire_event(self, event_name: Any, *event_args: Any, **event_kwargs: Any) -> None:
        """Call the handlers of ``event_name`` (no validation: fire_event checks)."""
        slot = self._tables.slot_of(event_name)
        if slot is not None:
            self._tables.fire(self, slot, event_args, event_kwargs)
            return
        # Not a registered event: only handlers put into _event_handlers by hand.
        self.last_event_name = event_name
        entries = dict.get(self._event_handlers, event_name)
        if entries:
            _driver.call_entries(self, entries, 0, State.event_to_attr.get(event_name), 0, event_args, event_kwargs)

    # Fire a (registered) event now, e.g. a custom event from the process
    # function: the twin's function itself, so that the call costs no Python frame.
    if TYPE_CHECKING:  # what mypy sees: the method the function becomes on the class

        def fire_event(self, event_name: Any) -> None: ...

    else:
        fire_event = _backend.fire_event

    def _event_count(self, event: Any) -> int:
        """The count a filter on ``event`` reads now."""
        slot = self._tables.slot_of(event)
        if slot is None:
            return self.state.get_event_attrib_value(event)
        return self._tables.count(self, slot)

    # -- control ---------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop after the current check point; a later run() resumes from there."""
        if not self.interrupt_resume_enabled:
            raise RuntimeError(
                "Engine 'interrupt/resume' feature is disabled. "
                "Please, set Engine.interrupt_resume_enabled=True to enable it"
            )
        self.logger.info("interrupt signaled. Engine will interrupt the run after current iteration is finished.")
        self.should_interrupt = True

    def terminate(self, skip_completed: bool = False) -> None:
        """Stop the run at the next check point (firing TERMINATE, then COMPLETED
        unless ``skip_completed``)."""
        self.logger.info("Terminate signaled. Engine will stop after current iteration is finished.")
        self.should_terminate = "skip_completed" if skip_completed else True

    def terminate_epoch(self, skip_epoch_completed: bool = False) -> None:
        """Stop the current epoch at the next check point (firing
        TERMINATE_SINGLE_EPOCH, then EPOCH_COMPLETED unless ``skip_epoch_completed``)."""
        self.logger.info(
            "Terminate current epoch is signaled. "
            "Current epoch iteration will stop after current iteration is finished."
        )
        self.should_terminate_single_epoch = "skip_epoch_completed" if skip_epoch_completed else True

    def _handle_exception(self, e: BaseException) -> None:
        if dict.get(self._event_handlers, Events.EXCEPTION_RAISED):
            self._fire_event(Events.EXCEPTION_RAISED, e)
            return
        try:
            raise e
        finally:
            # This frame is in e's traceback: holding e too would be a cycle
            # (e -> traceback -> frame -> e) that keeps the engine until a collection.
            del e

    # -- copy ----------------------------------------------------------------------

    # The attributes Engine.__deepcopy__ builds for the copy instead of copying.
    _NOT_COPIED = frozenset(("_twin", "_tables", "_handler_registry", "_counters", "_allowed_list"))

    def __deepcopy__(self, memo: dict[int, Any]) -> Engine:
        """``copy.deepcopy(engine)``: what ignite's copy is, every attribute copied.

        The handler entries are copied as ignite's are, so handlers, their
        arguments and the weak references to the engine that handlers taking
        it are registered with are shared (a copied handler that takes the
        engine is given the original one, as in ignite).  The backend's tables
        hold no user data: the copy gets its own, with the same events
        registered, built afresh from the copied entries.  A copy made while a
        run is suspended in a generator fails as ignite's does (a generator
        cannot be copied)."""
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        twin = self._twin
        tables = twin.Tables()
        for slot, event in enumerate(self._tables.events):
            tables.add_event(event)
            tables.set_firings(slot, self._tables.firings(slot))
        object.__setattr__(new, "_twin", twin)
        object.__setattr__(new, "_tables", tables)
        cast(_EventToAttr, State.event_to_attr).listeners.add(tables)
        counters = FiringCounters(tables, new)
        memo[id(self._counters)] = counters
        object.__setattr__(new, "_counters", counters)
        registry = HandlerRegistry(tables)
        for event, entries in dict.items(self._event_handlers):
            copied = [copy.deepcopy(entry, memo) for entry in entries]
            dict.__setitem__(registry, copy.deepcopy(event, memo), HandlerList(event, weakref.ref(tables), copied))
        object.__setattr__(new, "_handler_registry", registry)
        allowed = _AllowedEvents(new, copy.deepcopy(list(self._allowed_list), memo))
        object.__setattr__(new, "_allowed_list", allowed)
        tables.check_allowed = self._tables.check_allowed
        for name in cls._copied_slots():
            if hasattr(self, name):
                object.__setattr__(new, name, copy.deepcopy(getattr(self, name), memo))
        for name, value in vars(self).items():
            if name not in Engine._NOT_COPIED:
                object.__setattr__(new, name, copy.deepcopy(value, memo))
        tables.last_event = copy.deepcopy(self._tables.last_event, memo)
        return new

    @classmethod
    def _copied_slots(cls) -> list[str]:
        names = []
        for klass in cls.__mro__:
            for name in klass.__dict__.get("__slots__", ()):
                if name not in ("__dict__", "__weakref__") and name not in Engine._NOT_COPIED:
                    names.append(name)
        return names

    # -- state_dict --------------------------------------------------------------

    @property
    def state_dict_user_keys(self) -> list[str]:
        return self._state_dict_user_keys

    def state_dict(self) -> OrderedDict[str, Any]:
        """``epoch_length``, ``iteration``, ``max_epochs`` or ``max_iters``, and the
        ``state_dict_user_keys``: what resuming a run needs.  With custom events,
        also ``counters`` (their firing counters by event name, plain ints), so
        that a resumed run's filters on them decide as an uninterrupted run's."""
        keys: tuple[str, ...] = self._state_dict_all_req_keys
        keys += ("max_iters",) if self.state.max_iters is not None else ("max_epochs",)
        keys += tuple(self._state_dict_user_keys)
        missing = [k for k in self._state_dict_user_keys if not hasattr(self.state, k)]
        if missing:
            raise AttributeError(
                f"state_dict_user_keys names {missing}, which the state does not have: "
                "set them on engine.state (e.g. in a STARTED handler) before calling state_dict()"
            )
        sd = OrderedDict((k, getattr(self.state, k)) for k in keys)
        if _COUNTERS_KEY not in sd:
            counters = self._custom_counters()
            if counters is not None:
                sd[_COUNTERS_KEY] = counters
        return sd

    def _custom_counters(self) -> dict[str, int] | None:
        """The custom events' counters by name (None without custom events: the
        state_dict then has ignite's keys only)."""
        tables = self._tables
        events = tables.events
        counters = {_counter_name(e): tables.firings(slot) for slot, e in enumerate(events) if e not in _BUILT_IN}
        for name, count in self._pending_counters.items():
            counters.setdefault(name, count)  # loaded, not registered yet: kept for the next checkpoint
        return counters or None

    def _load_counters(self, counters: dict[str, int]) -> None:
        """Every counter emptied, then the custom events' set from ``counters``
        (a name not registered yet waits for register_events)."""
        tables = self._tables
        tables.reset_counts()
        pending = {}
        for name, count in counters.items():
            slot = tables.slot_of(name)
            if slot is None:
                pending[name] = count
            elif tables.events[slot] not in _BUILT_IN:
                tables.set_firings(slot, count)
        self._pending_counters = pending

    def _apply_pending_counter(self, event: Any) -> None:
        count = self._pending_counters.pop(_counter_name(event), None)
        if count is not None:
            # register_events has just added the event: it has a slot.
            self._tables.set_firings(self._tables.slot_of(event), count)  # type: ignore[arg-type]

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Set the state from a state_dict (``iteration`` or ``epoch``).  Validated
        completely before anything changes, so a bad one leaves the state as it was.
        Every firing counter is then set as the state_dict has it: the custom
        events' from its ``counters`` (if any), all others 0."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Argument state_dict should be a dictionary, but given {type(state_dict)}")
        if "iteration" in state_dict and "epoch" in state_dict:
            raise ValueError(
                "State dictionary should contain only one of 'iteration' or 'epoch' keys. "
                f"Found both: iteration={state_dict['iteration']}, epoch={state_dict['epoch']}."
            )
        sd = dict(state_dict)
        _check_state_dict_types(sd)
        if "iteration" in sd or "epoch" in sd:
            epoch_length = sd.get("epoch_length")
            if sd.get("epoch") == 0 or sd.get("iteration") == 0:
                sd["epoch"] = sd["iteration"] = 0
            elif epoch_length is None or epoch_length <= 0:
                raise ValueError(
                    "epoch_length must be a positive integer to calculate missing 'iteration' or 'epoch' key. "
                    f"Input state_dict: {sd}"
                )
            elif "epoch" in sd:
                sd["iteration"] = sd["epoch"] * epoch_length
            else:
                sd["epoch"] = sd["iteration"] // epoch_length
            # The loop counts in ints (ignite would go on counting in 4.0, 5.0...).
            sd["iteration"], sd["epoch"] = int(sd["iteration"]), int(sd["epoch"])
        for k in self._state_dict_all_req_keys:
            if k not in sd:
                raise ValueError(f"Required state attribute '{k}' is absent in provided state_dict '{sd.keys()}'")
        for group in self._state_dict_one_of_opt_keys:
            if sum(k in sd for k in group) != 1:
                raise ValueError(f"state_dict should contain exactly one of '{group}' keys")
        for k in self._state_dict_user_keys:
            if k not in sd:
                raise ValueError(f"Required user state attribute '{k}' is absent in provided state_dict '{sd.keys()}'")
        counters: dict[str, int] = {}
        if _COUNTERS_KEY in sd and _COUNTERS_KEY not in self._state_dict_user_keys:
            counters = _check_counters(sd[_COUNTERS_KEY])
        epoch_length = sd["epoch_length"]
        if epoch_length is not None and epoch_length < 1:
            raise ValueError(f"state_dict's epoch_length should be a positive integer or None, got {epoch_length!r}")

        iteration, epoch = sd["iteration"], sd["epoch"]
        if "max_epochs" in sd:
            name, progress_name, progress = "max_epochs", "epoch", epoch
        else:
            name, progress_name, progress = "max_iters", "iteration", iteration
        self._check_termination_param(name, sd[name], progress_name, progress)

        for k in self._state_dict_user_keys:
            setattr(self.state, k, sd[k])
        self.state.epoch_length = sd["epoch_length"]
        self.state.iteration = iteration
        self.state.epoch = epoch
        self.state.max_epochs = sd.get("max_epochs")
        self.state.max_iters = sd.get("max_iters")
        # The loaded state is a run of its own: none of this engine's earlier
        # firings count (a state_dict without counters, e.g. ignite's, gives 0s).
        self._load_counters(counters)

    @staticmethod
    def _is_done(state: State) -> bool:
        if state.max_iters is not None and state.iteration >= state.max_iters:
            return True
        if state.max_epochs is None:
            return False
        if state.epoch_length is not None and state.iteration >= state.epoch_length * state.max_epochs:
            return True
        return state.epoch >= state.max_epochs

    @staticmethod
    def _check_termination_param(name: str, value: Any, progress_name: str, progress: int) -> None:
        if value is None:
            return
        if value < 1:
            raise ValueError(f"Argument {name} is invalid. Please, set a correct {name} positive value")
        if value < progress:
            raise ValueError(
                f"Argument {name} should be greater than or equal to the start {progress_name} defined in the state: "
                f"{value} vs {progress}. Please, set engine.state.{name} = None "
                "before calling engine.run() in order to restart the training from the beginning."
            )

    def _check_and_set_termination_param(self, name: str, value: Any, progress_name: str, progress: int) -> None:
        self._check_termination_param(name, value, progress_name, progress)
        if value is not None:
            setattr(self.state, name, value)

    def _check_and_set_max_epochs(self, max_epochs: int | None = None) -> None:
        self._check_and_set_termination_param("max_epochs", max_epochs, "epoch", self.state.epoch)

    def _check_and_set_max_iters(self, max_iters: int | None = None) -> None:
        self._check_and_set_termination_param("max_iters", max_iters, "iteration", self.state.iteration)

    # -- running -------------------------------------------------------------------

    def set_data(self, data: Iterable[Any]) -> None:
        """Switch to other data, from the next batch on (e.g. from a handler)."""
        if not isinstance(data, Iterable):
            raise TypeError(f"Argument data should be iterable, got {type(data).__name__}")
        self.state.dataloader = data
        self._dataloader_iter = iter(data)

    def run(
        self,
        data: Iterable[Any] | None = None,
        max_epochs: int | None = None,
        max_iters: int | None = None,
        epoch_length: int | None = None,
    ) -> State:
        """Run over ``data`` (any iterable; None with ``epoch_length`` for no data)
        until ``max_epochs`` epochs or ``max_iters`` iterations.

        A run that was interrupted, terminated, or loaded from a state_dict
        resumes where it stopped; a finished run starts over.
        """
        if data is not None and not isinstance(data, Iterable):
            raise TypeError(f"Argument data should be iterable, got {type(data).__name__}")
        distributed.check_agree_every(self.agree_every)
        _check_count_arg("max_epochs", max_epochs)
        _check_count_arg("max_iters", max_iters)
        _check_count_arg("epoch_length", epoch_length)
        if max_epochs is not None and max_iters is not None:
            raise ValueError(
                "Arguments max_iters and max_epochs are mutually exclusive. "
                "Please provide only max_epochs or max_iters."
            )
        state = self.state
        # Set-up may move max_epochs/max_iters/epoch_length before a later check
        # fails; a failed run() must leave the state as it found it.
        saved = (state.max_epochs, state.max_iters, state.epoch_length)
        try:
            self._set_up_run(data, max_epochs, max_iters, epoch_length)
        except BaseException:
            state.max_epochs, state.max_iters, state.epoch_length = saved
            raise

        if self._dataloader_iter is None:
            state.dataloader = data
        if getattr(state, "counters", None) is not self._counters:
            state.counters = self._counters
        if self.interrupt_resume_enabled:
            return self._internal_run()
        return self._internal_run_legacy()

    def _set_up_run(
        self, data: Iterable[Any] | None, max_epochs: int | None, max_iters: int | None, epoch_length: int | None
    ) -> None:
        """ignite's run() set-up: start over (a finished or never-run state) or resume."""
        state = self.state
        if max_iters is not None and state.max_epochs is not None:
            raise ValueError(
                "To switch from max_epochs to max_iters mode during resume, "
                "you must first reset by setting 'engine.state.max_epochs = None' before calling run()."
            )
        if max_epochs is not None and state.max_iters is not None:
            raise ValueError(
                "To switch from max_iters to max_epochs mode during resume, "
                "you must first reset by setting 'engine.state.max_iters = None' before calling run()."
            )
        if state.max_epochs is not None:
            self._check_and_set_max_epochs(max_epochs)
        if state.max_iters is not None:
            self._check_and_set_max_iters(max_iters)

        start_over = (state.max_epochs is None and state.max_iters is None) or (
            self._is_done(state) and self._internal_run_generator is None
        )
        if start_over:
            if data is None and epoch_length is None and state.epoch_length is None:
                raise ValueError("epoch_length should be provided if data is None")
            if epoch_length is None:
                if data is not None:
                    epoch_length = self._get_data_length(data)
                if epoch_length is None:
                    epoch_length = state.epoch_length
            if epoch_length is not None and epoch_length < 1:
                raise ValueError("Input data has zero size. Please provide non-empty data")
            if max_iters is None and max_epochs is None:
                max_epochs = 1
            state.iteration = 0
            state.epoch = 0
            state.max_epochs = max_epochs
            state.max_iters = max_iters
            state.epoch_length = epoch_length
            self._internal_run_generator = None
            self._tables.reset_counts()
            self._pending_counters = {}
            if max_iters is not None:
                self.logger.info("Engine run starting with max_iters=%s.", max_iters)
            else:
                self.logger.info("Engine run starting with max_epochs=%s.", max_epochs)
        else:
            if state.epoch_length is not None:
                if epoch_length is not None and epoch_length != state.epoch_length:
                    raise ValueError(
                        "Argument epoch_length should be same as in the state, "
                        f"but given {epoch_length} vs {state.epoch_length}"
                    )
            else:
                if epoch_length is None and data is not None:
                    epoch_length = self._get_data_length(data)
                if epoch_length is not None:
                    if epoch_length < 1:
                        raise ValueError("Input data has zero size. Please provide non-empty data")
                    state.epoch_length = epoch_length
            if state.epoch_length is None and data is None:
                raise ValueError("epoch_length should be provided if data is None")
            if state.max_iters is not None:
                self.logger.info(
                    "Engine run resuming from iteration %s, epoch %s until %s iterations",
                    state.iteration, state.epoch, state.max_iters,
                )  # fmt: skip
            else:
                self.logger.info(
                    "Engine run resuming from iteration %s, epoch %s until %s epochs",
                    state.iteration, state.epoch, state.max_epochs,
                )  # fmt: skip
            if self.should_terminate:
                # Resuming a terminated run: the rest of the terminated epoch is
                # dropped; the next epoch is a whole one.
                self._init_iter = 0

    @staticmethod
    def _get_data_length(data: Iterable[Any]) -> int | None:
        try:
            if hasattr(data, "__len__"):
                return len(data)  # type: ignore[arg-type]
        except TypeError:  # e.g. a DataLoader over an IterableDataset
            pass
        return None

    def _setup_dataloader_iter(self) -> None:
        if self.state.dataloader is None:
            if self.state.epoch_length is None:
                raise RuntimeError("Internal error, state.epoch_length is None with no data; please report it.")
            # C-level iterator: an epoch of no data costs nothing per batch.
            # repeat() takes a C-sized count only; ignite's range() takes any
            # int (an epoch length past 2**63, loaded with load_state_dict).
            length = self.state.epoch_length
            if type(length) is int and length > sys.maxsize:
                self._dataloader_iter = map(_no_data, range(length))
            else:
                self._dataloader_iter = itertools.repeat(None, length)
        else:
            self._dataloader_iter = iter(self.state.dataloader)

    def _setup_engine(self) -> None:
        self._setup_dataloader_iter()
        if self._init_iter is None:
            iteration = self.state.iteration
            if not _is_int(iteration):
                # A handler may store anything; the epoch's iteration count needs an int.
                raise TypeError(f"engine.state.iteration should be an integer, got {iteration!r}")
            if self.state.epoch_length is not None:
                iteration %= self.state.epoch_length
            self._init_iter = iteration

    def _internal_run_as_gen(self) -> Generator[State, None, State]:
        return _driver.run_as_gen(self, True)

    def _internal_run(self) -> State:
        if self._internal_run_generator is None:
            self._internal_run_generator = self._internal_run_as_gen()
        try:
            return next(self._internal_run_generator)
        except StopIteration as out:
            self._internal_run_generator = None
            state: State = out.value
            return state
        except BaseException:
            # A run that ended in an exception: ignite keeps the dead generator, so
            # its next run() returns None without running; here the engine stays
            # usable.  (A run() from inside the running one fails with "generator
            # already executing" and must leave the running generator in place.)
            # (typing's Generator has no gi_frame; run_as_gen's generator object has.)
            if self._internal_run_generator is not None and self._internal_run_generator.gi_frame is None:  # type: ignore[attr-defined]
                self._internal_run_generator = None
            raise

    def _internal_run_legacy(self) -> State:
        try:
            next(_driver.run_as_gen(self, False))
        except StopIteration as out:
            state: State = out.value
            return state
        raise RuntimeError("Internal error: a run without interrupt support yielded; please report it.")


_driver._base_fire_event = Engine._fire_event
