"""Scenarios: a small language of engine runs, their execution with everything a user can observe
recorded in a trace, and the comparison of two traces.

Two differential tests run each scenario on two implementations and require equal traces:

* ``test_differential.py``: pytorch-ignite 0.5.5 against fastignite, with
  ``execute(api, scenario, versus_ignite=True)``: what fastignite does differently by design is
  masked ("deviation N" refers to the list in that file's docstring), and only what ignite has too
  is recorded;
* ``test_twins.py``: fastignite's pure twin against its compiled twin, with ``versus_ignite=False``:
  nothing is masked, and fastignite's log lines and handler registry are recorded too.

Reading order, top-down:

1. The language: a ``Scenario`` is plain frozen data: what to run (``RunSpec``, then
   ``ResumeSpec``s), with handlers (``HandlerSpec``) on events (``EventSpec``) that perform actions
   at given calls.  The actions and the filters are closed sets, listed where they are defined.
2. Records: the namedtuples a trace is made of.
3. ``execute``: builds the engines, runs them, returns the trace.  ``_Execution`` holds what one
   execution builds and records; a ``_Handler`` records its calls and performs its actions (one
   short function each, in ``ACTIONS``); ``FILTERS`` and ``DATA`` make filters and data objects.
4. ``assert_same_traces``, and queries on traces for the checks of hand-written scenarios.

The hypothesis strategies that generate scenarios are in ``_strategies.py``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import operator
import re
import warnings
import weakref
from collections import namedtuple
from dataclasses import dataclass, field

import pytest

import fastignite
from fastignite.filters import EventFilter, Every

# ============================================================================================
# 1. The language


EVENT_NAMES = (
    "STARTED",
    "EPOCH_STARTED",
    "GET_BATCH_STARTED",
    "GET_BATCH_COMPLETED",
    "ITERATION_STARTED",
    "ITERATION_COMPLETED",
    "DATALOADER_STOP_ITERATION",
    "TERMINATE",
    "TERMINATE_SINGLE_EPOCH",
    "INTERRUPT",
    "EPOCH_COMPLETED",
    "COMPLETED",
    "EXCEPTION_RAISED",
)
# Every engine registers an EventEnum with members PING (mapped by State.event_to_attr to the state
# attribute ``ping_count``) and PONG (unmapped), then the string event "tick".
CUSTOM_EVENT_NAMES = ("PING", "PONG", "tick")


@dataclass(frozen=True)
class EventSpec:
    """``Events.<name>``, or a custom event, maybe filtered.

    ``filter``: keyword arguments of ``Events.<name>(...)`` (every, once, before, after,
    event_filter), where ``event_filter`` is ``(kind, *params)``, a kind of ``FILTERS``.
    ``conj`` (fastignite only): ``&`` terms applied in order, each ``(members, on_left)``: members
    are filters (None: the event unfiltered), joined with ``|`` when there are several; on_left puts
    the term on the left of ``&`` (so an EventsList is the left operand too)."""

    name: str
    filter: dict | None = None
    conj: tuple = ()


def ev(name: str, conj: tuple = (), **event_filter) -> EventSpec:
    """``ev("ITERATION_COMPLETED", every=2)`` for ``Events.ITERATION_COMPLETED(every=2)``."""
    return EventSpec(name, event_filter or None, conj)


@dataclass(frozen=True)
class HandlerSpec:
    """A handler of one event, or of several joined with ``|`` into an EventsList.

    Without the engine, it takes exactly the positional arguments registration passes.  ``actions``
    maps a call number (1-based, counted per handler and engine) to an action ``(kind, *params)``:

    ("terminate", skip_completed)              engine.terminate()
    ("terminate_epoch", skip_epoch_completed)  engine.terminate_epoch()
    ("interrupt",)                             engine.interrupt()
    ("raise",)                                 raise ScenarioError
    ("remove", index | None, "fn" | "handle")  remove handler ``index`` (None: itself), by
                                               remove_event_handler or by its handle
    ("add", [EventSpec, ...])                  attach a new recording handler
    ("fire", event name)                       fire_event(), nested in the current firing
    -- fastignite only (test_twins) --
    ("move", attr | "own", delta)              add delta to a state count ("own": the
                                               one the event being fired is filtered on)
    ("set", attr, value)                       store any value in a state count
    ("edit", how)                              edit engine._event_handlers in place (EDITS)
    ("set_data", data kind, size)              engine.set_data()
    ("nested_run",)                            engine.run() from inside the run
    """

    events: list
    takes_engine: bool = True
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    actions: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    data: tuple  # (kind, size), a kind of DATA, or ("none",)
    limit: tuple | None = None  # ("max_epochs", n) or ("max_iters", n); None: the default
    epoch_length: int | None = None

    def kwargs(self) -> dict:
        kwargs = {} if self.limit is None else {self.limit[0]: self.limit[1]}
        if self.epoch_length is not None:
            kwargs["epoch_length"] = self.epoch_length
        return kwargs


@dataclass(frozen=True)
class ResumeSpec:
    # False: call run() again on the same engine; True: load its state_dict() into a new engine.
    fresh_engine: bool = False
    # True: pass the first run's limits and epoch_length again; False: pass only the data.
    pass_limits: bool = True
    # True: a new, equal data object; False: the object of the previous run (maybe exhausted).
    new_data: bool = False


@dataclass(frozen=True)
class Scenario:
    run: RunSpec
    handlers: list = field(default_factory=list)
    # (process call number, "raise" | "terminate") or None
    process_action: tuple | None = None
    resumes: list = field(default_factory=list)
    # Register first a handler recording every event but EXCEPTION_RAISED (a handler there would
    # swallow exceptions), so that every firing is visible in the trace.
    spy: bool = False
    # Process call number -> custom event names the process function fires, in order, before
    # its process_action.
    process_fires: dict = field(default_factory=dict)
    # "plain": the API's Engine.  fastignite only: "fire_override", a subclass overriding
    # _fire_event (every firing is routed through it, and recorded); "legacy", a subclass with
    # interrupt_resume_enabled = False.
    engine_kind: str = "plain"


# ============================================================================================
# 2. Records: a trace is a list of these (namedtuples, so that failure reports name the fields)

# The engine's state and termination flags, in every Call, Process, FilterCall and Result.
# ``types``: of iteration, epoch and ping_count (the twins must keep them; 6 and 6.0 differ).
# ``counters`` (fastignite's state.counters) is None in the comparison with ignite.
Observed = namedtuple(
    "Observed",
    "iteration epoch epoch_length max_epochs max_iters batch output should_terminate "
    "should_terminate_single_epoch should_interrupt last_event ping_count counters types",
)
RegisterEvents = namedtuple("RegisterEvents", "outcome")
Register = namedtuple("Register", "hid outcome")
Run = namedtuple("Run", "engine data kwargs")
Process = namedtuple("Process", "engine batch observed")
Call = namedtuple("Call", "hid event args kwargs observed")
# An iter() ("iter") or next() (the item, or "end") on the data object with this index.
DataRead = namedtuple("DataRead", "data what")
# registrations: has_event_handler for each handler, per event and for any event.
Result = namedtuple("Result", "outcome warnings observed dataloader last_event_name state_dict registrations")
LoadStateDict = namedtuple("LoadStateDict", "outcome")
# Recorded on fastignite only (test_twins):
FilterCall = namedtuple("FilterCall", "fid engine count observed")  # a user filter's call
ClockRead = namedtuple("ClockRead", "fid now")  # a time filter's fake clock
Wrapped = namedtuple("Wrapped", "wid args kwargs")  # a wrapper put into the registry by "edit"
Fired = namedtuple("Fired", "engine event args kwargs")  # _fire_event of the "fire_override" engine
NestedRun = namedtuple("NestedRun", "hid outcome")
Log = namedtuple("Log", "level message")
Registry = namedtuple("Registry", "engine entries")  # engine._event_handlers after each run()


# ============================================================================================
# 3. Execution

# ignite loops forever when epochs stop making progress (e.g. an exhausted one-shot iterator under
# max_iters), so every observable step counts against this budget.
STEP_BUDGET = 3000


class ScenarioError(Exception):
    """Raised by a scenario's handler or process function."""


class _Runaway(BaseException):
    """The step budget is exhausted.  A BaseException, so that the epoch loop's ``except Exception``
    does not swallow it and the run ends."""


def execute(api, scenario: Scenario, *, versus_ignite: bool) -> list:
    """Runs ``scenario`` on ``api`` (``ignite.engine``, ``fastignite`` or the drop-in: modules with
    the same names) and returns its trace."""
    x = _Execution(api, scenario, versus_ignite)
    try:
        with contextlib.nullcontext() if versus_ignite else _logs_recorded(x):
            context = x.new_engine(tag=0)
            data = x.make_data(scenario.run.data)
            x.run(context, data, pass_limits=True)
            for tag, resume in enumerate(scenario.resumes, start=1):
                if x.stopped:
                    break
                if resume.new_data:
                    data = x.make_data(scenario.run.data)
                if resume.fresh_engine:
                    previous, context = context, x.new_engine(tag)
                    if not x.load_state_dict(context, previous):
                        break
                x.run(context, data, resume.pass_limits)
        return x.trace
    finally:
        # Engines finalise a suspended (interrupted) run when garbage-collected, and ignite then
        # fires EXCEPTION_RAISED: ``finished`` keeps late calls out of the trace.
        x.finished = True
        # register_events put PING into the class-level State.event_to_attr (the drop-in writes
        # ignite's and fastignite's): take it out, so that other tests do not depend on test order.
        for state in (api.State, fastignite.State):
            state.event_to_attr.pop("PING", None)


class _Execution:
    """What one execution of a scenario builds and records (``x`` in the functions below)."""

    def __init__(self, api, scenario: Scenario, versus_ignite: bool) -> None:
        self.api = api
        self.scenario = scenario
        self.versus_ignite = versus_ignite
        self.trace = []
        self.steps = 0
        self.finished = False
        self.stopped = False  # nothing after this run() is compared
        # Every engine stays alive until the end (with its handlers: the engines hold them through
        # weak references), so that no run is finalised by the garbage collector mid-trace.
        self.contexts = []
        self.data_objects = []  # recorded by index
        self.n_objects = 0  # ids of filters and wrappers, in creation order
        self.names = {}  # id(handler function) -> its name in Registry records
        self.shared_filters = {}  # one filter object used by several handlers
        self.keep = []  # filters and wrappers, alive as long as the execution

        # Each API needs an EventEnum of its own.  A new class per scenario is harmless:
        # State.event_to_attr, shared by the engines of one library, finds members by name.
        class Custom(api.EventEnum):
            PING = "ping"
            PONG = "pong"

        self.custom_events = Custom

    def record(self, record) -> None:
        if not self.finished:
            self.trace.append(record)

    def tick(self) -> None:
        self.steps += 1
        if self.steps > STEP_BUDGET:
            raise _Runaway("step budget exhausted")

    def next_id(self, prefix: str) -> str:
        self.n_objects += 1
        return f"{prefix}{self.n_objects}"

    # -- engines, runs, resumes -------------------------------------------------------------------

    def new_engine(self, tag: int) -> _EngineContext:
        context = _EngineContext(self, tag)
        self.contexts.append(context)
        self.record(RegisterEvents(_capture(lambda: self.register_custom_events(context.engine))))
        if self.scenario.spy:
            spy_events = [EventSpec(name) for name in EVENT_NAMES + ("PING", "PONG") if name != "EXCEPTION_RAISED"]
            # ``|`` refuses a string event: "tick" gets a spy of its own.
            for events in (spy_events, [EventSpec("tick")]):
                spy = context.add_handler("spy", HandlerSpec(events))
                self.record(Register(spy.hid, _capture(spy.register)))
        for index, spec in enumerate(self.scenario.handlers):
            handler = _Handler(context, f"h{index}", spec)
            context.handlers.append(handler)
            self.record(Register(handler.hid, _capture(handler.register)))
        return context

    def register_custom_events(self, engine) -> None:
        """On every engine, before its handlers.  Mapping PING to ``ping_count`` makes it
        filterable and gives the state that attribute, at 0; PONG is deliberately left unmapped."""
        custom = self.custom_events
        engine.register_events(*custom, event_to_attr={custom.PING: "ping_count"})
        engine.register_events("tick")

    def run(self, context: _EngineContext, data, pass_limits: bool) -> None:
        engine = context.engine
        kwargs = self.scenario.run.kwargs() if pass_limits else {}
        self.record(Run(context.tag, self.data_index(data), kwargs))
        records_before = len(self.trace)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = self.returned(engine, _capture(lambda: engine.run(data, **kwargs)))
        raised = outcome[0] == "raised"
        # Deviation 6: the state after a run() its set-up checks refused is not compared.
        rejected = self.versus_ignite and raised and outcome[1] == "ValueError" and len(self.trace) == records_before
        # Deviations 5 and 6: nothing after an uncaught exception is comparable.  Without masking,
        # only an exhausted step budget ends the scenario: every step would raise again.
        self.stopped = raised and (self.versus_ignite or outcome[1] == "_Runaway")
        self.record(
            Result(
                outcome,
                [(w.category.__name__, str(w.message)) for w in caught],
                None if rejected else self.observe(engine),
                self.data_index(engine.state.dataloader),
                _event_name(engine.last_event_name),
                None if rejected else _capture(lambda: self.state_dict_items(engine)),
                _capture(lambda: [h.registration(engine) for h in context.added + context.handlers]),
            )
        )
        if not self.versus_ignite:
            self.record(Registry(context.tag, self.registry(engine)))

    def returned(self, engine, outcome: tuple) -> tuple:
        if outcome[0] == "returned":
            return ("returned", "<state>" if outcome[1] is engine.state else self.describe(outcome[1]))
        return outcome

    def state_dict_items(self, engine) -> list:
        items = list(engine.state_dict().items())
        if self.versus_ignite:
            # Deviation 9: fastignite's state_dict() adds the custom events' counters.
            items = [(k, v) for k, v in items if k != "counters"]
        return items

    def load_state_dict(self, context: _EngineContext, previous: _EngineContext) -> bool:
        """Loads the previous engine's state_dict() into a fresh one; False: the scenario ends."""
        loaded = _capture(lambda: context.engine.load_state_dict(previous.engine.state_dict()))
        if self.versus_ignite:
            loaded = _mask_load_outcome(loaded)
        self.record(LoadStateDict(loaded))
        # A refused state_dict leaves the new engine as it was: fastignite's own comparison goes
        # on with it (a run from scratch), ignite's stops (deviation 7).
        return not (self.versus_ignite and loaded[0] == "raised")

    # -- what is recorded -------------------------------------------------------------------------

    def describe(self, value):
        """A value passed to user code, as recorded: no addresses."""
        tag = next((c.tag for c in self.contexts if c.engine is value), None)
        if tag is not None:
            return f"<engine {tag}>"
        if isinstance(value, BaseException):
            return ("exception", *_summarize(value))
        if isinstance(value, weakref.ref):
            return ("weakref", self.describe(value()))
        return value

    def observe(self, engine) -> Observed:
        state = engine.state
        counters = None if self.versus_ignite else getattr(state, "counters", None)
        if counters is not None:
            counters = tuple((_event_name(e), counters[e]) for e in counters)
        ping_count = getattr(state, "ping_count", None)
        return Observed(
            state.iteration,
            state.epoch,
            state.epoch_length,
            state.max_epochs,
            state.max_iters,
            state.batch,
            state.output,
            engine.should_terminate,
            engine.should_terminate_single_epoch,
            engine.should_interrupt,
            _event_name(engine.last_event_name),
            ping_count,
            counters,
            tuple(type(v).__name__ for v in (state.iteration, state.epoch, ping_count)),
        )

    def data_index(self, data):
        if data is None:
            return None
        return next((i for i, d in enumerate(self.data_objects) if d is data), "another object")

    def registry(self, engine) -> list:
        """``engine._event_handlers``, with handlers by name."""
        return [
            (
                _event_name(event),
                [
                    (self.handler_name(h), tuple(self.describe(a) for a in args), sorted(kwargs.items()))
                    for h, args, kwargs in handlers
                ],
            )
            for event, handlers in engine._event_handlers.items()
        ]

    def handler_name(self, handler):
        parent = getattr(handler, "handler", None)
        if parent is not None and getattr(handler, "filter", None) is not None:
            return ("filtered", self.handler_name(parent))
        return self.names.get(id(handler), "?")

    def record_firing(self, engine, event, event_args, event_kwargs) -> None:
        args = tuple(self.describe(a) for a in event_args)
        kwargs = sorted((k, self.describe(v)) for k, v in event_kwargs.items())
        self.record(Fired(self.describe(engine), _event_name(event), args, kwargs))

    # -- what scenarios are made of ---------------------------------------------------------------

    def make_event(self, spec: EventSpec):
        if spec.name == "tick" and spec.filter is None and not spec.conj:
            return "tick"  # the string itself (refused by ``|``)
        if spec.name == "tick":
            # The string event takes a filter through an event object of the same name.
            base = fastignite.CallableEventWithFilter("tick", None, "tick")
        else:
            base = getattr(self.custom_events if spec.name in CUSTOM_EVENT_NAMES else self.api.Events, spec.name)
        event = self.filtered(base, spec.filter)
        for members, on_left in spec.conj:
            side = functools.reduce(operator.or_, [self.filtered(base, f) for f in members])
            event = side & event if on_left else event & side
        return event

    def filtered(self, base, event_filter: dict | None):
        if event_filter is None:
            return base
        kwargs = dict(event_filter)
        if "event_filter" in kwargs:
            kind, *params = kwargs["event_filter"]
            made = FILTERS[kind](self, self.next_id("f"), *params)
            self.keep.append(made)
            kwargs["event_filter"] = made
        return base(**kwargs)

    def make_data(self, spec: tuple):
        kind, *size = spec
        data = DATA[kind](self, *size)
        self.data_objects.append(data)
        return data


class _EngineContext:
    """One engine with its process function and handlers."""

    def __init__(self, execution: _Execution, tag: int) -> None:
        self.execution = execution
        self.tag = tag
        self.process_calls = 0
        kind = execution.scenario.engine_kind
        self.engine = (execution.api.Engine if kind == "plain" else FASTIGNITE_ENGINES[kind])(self.process)
        self.engine._scenario_execution = execution  # for _FireRecordingEngine
        self.handlers = []  # the scenario's handlers, by index
        self.added = []  # the spy and handlers added by actions

    def process(self, engine, batch):
        x = self.execution
        x.tick()
        self.process_calls += 1
        x.record(Process(x.describe(engine), batch, x.observe(engine)))
        for name in x.scenario.process_fires.get(self.process_calls, ()):
            if name == "PING":
                # The attribute PING's filters read.  Only the process function counts, so that a
                # handler re-firing PING makes it differ from the number of firings.
                engine.state.ping_count += 1
            self.fire(name)
        action = x.scenario.process_action
        if action is not None and action[0] == self.process_calls:
            if action[1] == "raise":
                raise ScenarioError(f"process call {self.process_calls}")
            engine.terminate()
        return (batch, engine.state.iteration)

    def fire(self, name: str) -> None:
        self.engine.fire_event(self.execution.make_event(EventSpec(name)))

    def add_handler(self, hid: str, spec: HandlerSpec) -> _Handler:
        handler = _Handler(self, hid, spec)
        self.added.append(handler)
        return handler


# Registration checks handlers of these events with one more positional argument (the exception;
# a placeholder for TERMINATE_SINGLE_EPOCH's iter_counter).
EXTRA_POSITIONAL = {"EXCEPTION_RAISED": 1, "TERMINATE_SINGLE_EPOCH": 1}


class _Handler:
    """A handler of the scenario: records each call, then performs the action due at that call."""

    def __init__(self, context: _EngineContext, hid: str, spec: HandlerSpec) -> None:
        self.context = context
        self.engine = context.engine
        self.execution = context.execution
        self.hid = hid
        self.spec = spec
        self.calls = 0
        n_positional = len(spec.args) + max(EXTRA_POSITIONAL.get(e.name, 0) for e in spec.events)
        self.fn = _handler_function(spec.takes_engine, n_positional, self.on_call)
        self.execution.names[id(self.fn)] = hid
        self.events = [self.execution.make_event(e) for e in spec.events]
        self.handle = None

    def register(self) -> None:
        target = functools.reduce(operator.or_, self.events)
        self.handle = self.engine.add_event_handler(target, self.fn, *self.spec.args, **self.spec.kwargs)

    def registration(self, engine) -> tuple:
        per_event = [engine.has_event_handler(self.fn, event) for event in self.events]
        return (self.hid, per_event, engine.has_event_handler(self.fn))

    def on_call(self, args: tuple, kwargs: dict) -> None:
        x = self.execution
        if x.finished:
            return
        x.tick()
        self.calls += 1
        x.record(
            Call(
                self.hid,
                _event_name(self.engine.last_event_name),
                tuple(x.describe(a) for a in args if a is not _UNSET),
                sorted((k, x.describe(v)) for k, v in kwargs.items()),
                x.observe(self.engine),
            )
        )
        action = self.spec.actions.get(self.calls)
        if action is not None:
            ACTIONS[action[0]](self, *action[1:])


_UNSET = object()


def _handler_function(takes_engine: bool, n_positional: int, body):
    """A real function with the wanted signature: the engines decide from it whether to pass
    themselves.  Without the engine, the handler has exactly as many positional parameters as
    registration passes, so that binding fails once the engine is prepended.  They have defaults
    and every handler takes ``**kwargs``, because TERMINATE_SINGLE_EPOCH's handlers are checked
    with a positional argument but called with an ``iter_counter`` keyword (deviation 3)."""
    if takes_engine:

        def handler(engine, *args, **kwargs):
            return body((engine, *args), kwargs)

    elif n_positional == 0:

        def handler(**kwargs):
            return body((), kwargs)

    elif n_positional == 1:

        def handler(a=_UNSET, **kwargs):
            return body((a,), kwargs)

    elif n_positional == 2:

        def handler(a=_UNSET, b=_UNSET, **kwargs):
            return body((a, b), kwargs)

    else:
        assert n_positional == 3

        def handler(a=_UNSET, b=_UNSET, c=_UNSET, **kwargs):
            return body((a, b, c), kwargs)

    return handler


# -- actions: ACTIONS[kind](handler, *params) -------------------------------------------------


def _terminate(h: _Handler, skip_completed: bool) -> None:
    h.engine.terminate(skip_completed=True) if skip_completed else h.engine.terminate()


def _terminate_epoch(h: _Handler, skip_epoch_completed: bool) -> None:
    h.engine.terminate_epoch(skip_epoch_completed=True) if skip_epoch_completed else h.engine.terminate_epoch()


def _interrupt(h: _Handler) -> None:
    h.engine.interrupt()


def _raise(h: _Handler) -> None:
    raise ScenarioError(f"{h.hid} call {h.calls}")


def _remove(h: _Handler, target_index: int | None, via: str) -> None:
    target = h if target_index is None else h.context.handlers[target_index]
    if via == "handle":
        target.handle.remove()
        return
    # Removing itself: from the event being fired; another handler: from its first event.  A
    # custom event fired by an earlier handler of this firing is the last event now, and may not be
    # one of this handler's: then it too leaves its first event.
    fired = _event_name(h.engine.last_event_name)
    if target is h:
        event = next((e for e in h.events if _event_name(e) == fired), h.events[0])
    else:
        event = target.events[0]
    h.engine.remove_event_handler(target.fn, event)


def _add(h: _Handler, event_specs: list) -> None:
    h.context.add_handler(f"{h.hid}.add{h.calls}", HandlerSpec(event_specs)).register()


def _fire(h: _Handler, name: str) -> None:
    # Even on the event being handled, this recursion is bounded: an action belongs to one call
    # number of one handler, so it is performed at most once per engine.
    h.context.fire(name)


def _move(h: _Handler, attr: str, delta: int) -> None:
    if attr == "own":
        # The count the filters of the event being fired read, if it has one.
        attr = fastignite.State.event_to_attr.get(h.engine.last_event_name)
        if attr is None:
            return
    setattr(h.engine.state, attr, getattr(h.engine.state, attr) + delta)


def _set(h: _Handler, attr: str, value) -> None:
    setattr(h.engine.state, attr, value)


def _set_data(h: _Handler, kind: str, size: int) -> None:
    h.engine.set_data(h.execution.make_data((kind, size)))


def _nested_run(h: _Handler) -> None:
    # Interruptible engines refuse ("generator already executing") and must keep the running
    # generator; a legacy engine runs a whole nested run.
    outcome = _capture(lambda: h.engine.run(h.engine.state.dataloader))
    h.execution.record(NestedRun(h.hid, h.execution.returned(h.engine, outcome)))


# -- the registry edits of action ("edit", how) ---------------------------------------------------

EDITS = ("insert_front", "append_plain", "wrap", "reverse", "pop", "replace_list", "delete")


def _edit(h: _Handler, how: str) -> None:
    """Edit the list of the event being fired in place, as ignite's profilers do."""
    registry, event = h.engine._event_handlers, h.engine.last_event_name
    if how == "delete":
        registry.pop(event, None)
    elif how == "replace_list":
        registry[event] = list(reversed(registry[event]))
    elif how == "reverse":
        registry[event].reverse()
    elif how == "pop":
        if registry[event]:
            registry[event].pop()
    elif how == "wrap":
        # HandlersTimeProfiler's way: each entry's handler replaced by a wrapper that calls it (a
        # FilteredHandler, called directly, evaluates its filter itself).
        entries = registry[event]
        for index, (inner, args, kwargs) in enumerate(list(entries)):
            entries[index] = (_wrapper(h.execution, inner), args, kwargs)
    else:  # a handler of the event inserted first (with the engine), or appended (without)
        entries = registry[event]
        front = how == "insert_front"
        spec = HandlerSpec([EventSpec(_event_name(event))], takes_engine=front)
        added = h.context.add_handler(f"{h.hid}.{how}{h.calls}", spec)
        if front:
            entries.insert(0, (added.fn, (weakref.ref(h.engine),), {}))
        else:
            entries.append((added.fn, (), {}))


def _wrapper(x: _Execution, inner):
    wid = x.next_id("w")

    def wrapped(*args, **kwargs):
        if not x.finished:
            x.tick()
            described = sorted((k, x.describe(v)) for k, v in kwargs.items())
            x.record(Wrapped(wid, tuple(x.describe(a) for a in args), described))
        return inner(*args, **kwargs)

    x.names[id(wrapped)] = wid
    x.keep.append(wrapped)
    return wrapped


ACTIONS = {
    "terminate": _terminate,
    "terminate_epoch": _terminate_epoch,
    "interrupt": _interrupt,
    "raise": _raise,
    "remove": _remove,
    "add": _add,
    "fire": _fire,
    "move": _move,
    "set": _set,
    "edit": _edit,
    "set_data": _set_data,
    "nested_run": _nested_run,
}


# -- filters: FILTERS[kind](execution, fid, *params) for ``event_filter=(kind, *params)`` --------
# "mod" and "iteration_above" are plain callables both libraries take; the rest is fastignite's
# (test_twins).  ``fid`` names the filter in FilterCall and ClockRead records.

FILTERS = {
    "mod": lambda x, fid, modulus, remainder: lambda engine, count: count % modulus == remainder,
    # Depends on the engine rather than on the event's count:
    "iteration_above": lambda x, fid, threshold: lambda engine, count: engine.state.iteration > threshold,
    # "mod", recorded:
    "rec": lambda x, fid, modulus, remainder: _recorded_mod(_filter_log(x, fid), modulus, remainder),
    "throttle": lambda x, fid, seconds, first: fastignite.throttle_filter(seconds, first, clock=_clock(x, fid)),
    "timeout": lambda x, fid, seconds, once: fastignite.timeout_filter(seconds, once=once, clock=_clock(x, fid)),
    "shared_throttle": lambda x, fid, seconds: _shared_throttle(x, fid, seconds),
    "every_filter": lambda x, fid, periods: fastignite.every_filter(list(periods)),
    "once_filter": lambda x, fid, counts: fastignite.once_filter(list(counts)),
    # Filter-level ``&``: a count test first, so the throttle is consulted (and its clock read)
    # only at multiples of the period:
    "gated": lambda x, fid, period, seconds: (
        fastignite.every_filter(period) & fastignite.throttle_filter(seconds, clock=_clock(x, fid))
    ),
    "sub_every": lambda x, fid, period: LoggedEvery([period], _filter_log(x, fid)),
    "squares": lambda x, fid: Squares(_filter_log(x, fid)),
}


def _shared_throttle(x: _Execution, fid: str, seconds: int):
    """One throttle object for every handler that asks for one with these seconds."""
    if seconds not in x.shared_filters:
        x.shared_filters[seconds] = fastignite.throttle_filter(seconds, clock=_clock(x, fid))
    return x.shared_filters[seconds]


def _recorded_mod(log, modulus: int, remainder: int):
    def user_filter(engine, count):
        log(engine, count)
        return count % modulus == remainder

    return user_filter


def _clock(x: _Execution, fid: str):
    """A fake clock for one filter: the step count, so that time advances with the work done and
    is the same on both twins; each read recorded."""

    def read() -> int:
        x.record(ClockRead(fid, x.steps))
        return x.steps

    return read


def _filter_log(x: _Execution, fid: str):
    """The body of a user filter: counts as a step, and is recorded."""

    def log(engine, count) -> None:
        if not x.finished:
            x.tick()
            x.record(FilterCall(fid, x.describe(engine), count, x.observe(engine)))

    return log


class LoggedEvery(Every):
    """A user's subclass of a library filter: Every's schedule and key, its own ``__call__``.  Its
    key equals a plain Every's, so the two share a filter group; the engine must still call this
    one whenever the group is evaluated through it."""

    __slots__ = ("log",)

    def __init__(self, periods, log) -> None:
        super().__init__(periods)
        self.log = log

    def __call__(self, engine, count) -> bool:
        self.log(engine, count)
        return super().__call__(engine, count)


class Squares(EventFilter):
    """A user's EventFilter: the default schedule (any next count), no key, not opaque."""

    __slots__ = ("log",)

    def __init__(self, log) -> None:
        self.log = log

    def __call__(self, engine, count) -> bool:
        self.log(engine, count)
        return type(count) is int and count >= 0 and math.isqrt(count) ** 2 == count


# -- data: DATA[kind](execution, size); items 100, 101, ... ---------------------------------------


class _RecordedIterator:
    """Yields 100, 101, ... recording every next(); ``owner`` is the data object it reads."""

    def __init__(self, x: _Execution, owner, size: int) -> None:
        self.x = x
        self.owner = owner
        self.remaining = iter(range(100, 100 + size))

    def __iter__(self):
        self.x.record(DataRead(self.x.data_index(self.owner), "iter"))
        return self

    def __next__(self):
        self.x.tick()
        item = next(self.remaining, None)
        self.x.record(DataRead(self.x.data_index(self.owner), "end" if item is None else item))
        if item is None:
            raise StopIteration
        return item


class _RecordedOneShot(_RecordedIterator):
    """Unsized and one-shot: iter() returns itself, so a restart yields nothing."""

    def __init__(self, x: _Execution, size: int) -> None:
        super().__init__(x, self, size)


class _RecordedIterable:
    """Unsized and re-iterable: each iter() starts over."""

    def __init__(self, x: _Execution, size: int) -> None:
        self.x = x
        self.size = size

    def __iter__(self):
        self.x.record(DataRead(self.x.data_index(self), "iter"))
        return _RecordedIterator(self.x, self, self.size)


class _RecordedList(list):
    """Sized (a list), with its reads recorded."""

    def __init__(self, x: _Execution, size: int) -> None:
        super().__init__(range(100, 100 + size))
        self.x = x

    def __iter__(self):
        self.x.record(DataRead(self.x.data_index(self), "iter"))
        return _RecordedIterator(self.x, self, len(self))


DATA = {
    "none": lambda x: None,
    # A plain list's reads are not observable (the loop may take a fast path on it).
    "list": lambda x, size: [100 + i for i in range(size)],
    "sized": _RecordedList,  # fastignite only (test_twins)
    "iterable": _RecordedIterable,
    "iterator": _RecordedOneShot,
}


# -- engines of Scenario.engine_kind other than "plain" ------------------------------------------


class _FireRecordingEngine(fastignite.Engine):
    """ignite's tests record events this way: every firing goes through the override."""

    def _fire_event(self, event_name, *event_args, **event_kwargs):
        self._scenario_execution.record_firing(self, event_name, event_args, event_kwargs)
        return super()._fire_event(event_name, *event_args, **event_kwargs)


class _LegacyEngine(fastignite.Engine):
    interrupt_resume_enabled = False


FASTIGNITE_ENGINES = {"fire_override": _FireRecordingEngine, "legacy": _LegacyEngine}


# -- fastignite's log lines ---------------------------------------------------------------------

_TIME_TAKEN = re.compile(r"\d+:\d\d:\d\d\.\d+")


@contextlib.contextmanager
def _logs_recorded(x: _Execution):
    """Records the "fastignite" logger's lines, times masked, instead of passing them on."""

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            x.record(Log(record.levelname, _normalize(_TIME_TAKEN.sub("<time>", record.getMessage()))))

    logger = logging.getLogger("fastignite")
    recorder = Recorder(logging.INFO)
    saved = logger.level, logger.propagate
    logger.addHandler(recorder)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the records are in the trace; pytest need not keep them
    try:
        yield
    finally:
        logger.removeHandler(recorder)
        logger.level, logger.propagate = saved


# -- outcomes and messages ----------------------------------------------------------------------

_ADDRESS = re.compile(r"<(?:cy)?function .*? at 0x[0-9a-f]+>|0x[0-9a-f]+")


def _normalize(message: str) -> str:
    # Messages embed reprs of handlers and filter functions; addresses and the implementation's
    # internal function names are not behaviour, nor is whitespace (deviation 8).
    return re.sub(r"\s+", "", _ADDRESS.sub("<address>", message))


def _summarize(exc: BaseException) -> tuple:
    return (type(exc).__name__, _normalize(str(exc)))


def _capture(call) -> tuple:
    try:
        return ("returned", call())
    except (Exception, _Runaway) as exc:
        return ("raised", *_summarize(exc))


def _mask_load_outcome(outcome: tuple) -> tuple:
    """Deviation 7: ignite's ZeroDivisionError and fastignite's ValueError on a zero epoch_length
    are the same refusal."""
    if outcome[0] == "raised" and (
        outcome[1] == "ZeroDivisionError" or (outcome[1] == "ValueError" and "epoch_lengthshouldbe" in outcome[2])
    ):
        return ("raised", "epoch_length refused")
    if outcome[0] == "raised" and len(outcome) > 2:
        # Deviation 9: a message quoting the state_dict quotes fastignite's counters too.
        outcome = (*outcome[:2], re.sub(r",'counters':\{[^{}]*\}", "", outcome[2]), *outcome[3:])
    return outcome


def _event_name(event) -> str | None:
    if event is None or isinstance(event, str):
        # A string event ("tick") is its own name.
        return event
    return event.name


# ============================================================================================
# 4. Comparison


def assert_same_traces(expected: list, actual: list, expected_label: str, actual_label: str) -> None:
    """Fails at the first differing record, showing a few records around it from each trace.
    Records are compared by ``repr``: equality would let 6 pass for 6.0, or an int for numpy's
    int64, where the user code receiving them would see the difference."""
    expected_reprs, actual_reprs = [repr(r) for r in expected], [repr(r) for r in actual]
    if expected_reprs == actual_reprs:
        return
    pairs = enumerate(zip(expected_reprs, actual_reprs))
    first = next((i for i, (e, a) in pairs if e != a), min(len(expected), len(actual)))
    window = slice(max(0, first - 4), first + 3)
    lines = [f"first difference at record {first} (of {len(expected)} vs {len(actual)})", f"{expected_label}:"]
    lines += [f"  {i}: {r}" for i, r in enumerate(expected_reprs[window], start=window.start)]
    lines.append(f"{actual_label}:")
    lines += [f"  {i}: {r}" for i, r in enumerate(actual_reprs[window], start=window.start)]
    pytest.fail("\n".join(lines))


# Queries for the checks of hand-written scenarios.


def records(trace: list, kind: type) -> list:
    return [r for r in trace if isinstance(r, kind)]


def calls(trace: list, hid: str) -> list:
    return [r for r in trace if isinstance(r, Call) and r.hid == hid]


def results(trace: list) -> list:
    return records(trace, Result)


def iterations(recorded: list) -> list:
    return [r.observed.iteration for r in recorded]


def filter_counts(trace: list, fid: str) -> list:
    return [r.count for r in trace if isinstance(r, FilterCall) and r.fid == fid]


def clock_reads(trace: list, fid: str) -> list:
    return [r.now for r in trace if isinstance(r, ClockRead) and r.fid == fid]
