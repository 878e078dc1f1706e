"""Scenarios as plain data, an interpreter that runs one on an engine API and records everything a
user can observe, and the hypothesis strategies that generate them.

Shared by two differential tests:

* ``test_differential.py`` runs a scenario on pytorch-ignite 0.5.5 and on fastignite.  Its
  strategies (here) stay inside what both libraries do alike; its docstring lists the deliberate
  deviations the interpreter masks (``mask_ignite_deviations``).
* ``test_twins.py`` runs a scenario on fastignite's pure twin and on its compiled twin.  It
  subclasses the interpreter (the hooks below: ``handler_class``, ``make_engine``, ``make_event``,
  ``observe``, ``after_run``) to reach what only fastignite has, and compares everything, masking
  nothing.

This module imports neither ignite nor fastignite: the API under test is handed to the
interpreter, so that the twin test runs where ignite (and torch) are not installed.  "Deviation N"
in comments refers to the list in test_differential.py's docstring.
"""

from __future__ import annotations

import functools
import operator
import re
import warnings
from collections import namedtuple
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import strategies as st

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
# Members of the scenario's EventEnum, then a string event (see _Interpreter.register_custom_events).
CUSTOM_EVENT_NAMES = ("PING", "PONG", "tick")
# Built-in events with a State.event_to_attr entry: with PING, the only ones given filters
# (deviation 1).
UNFILTERABLE_EVENT_NAMES = {"DATALOADER_STOP_ITERATION", "TERMINATE", "TERMINATE_SINGLE_EPOCH", "INTERRUPT", "EXCEPTION_RAISED"}
FILTERABLE_EVENT_NAMES = tuple(name for name in EVENT_NAMES if name not in UNFILTERABLE_EVENT_NAMES)
# Registration checks handlers of these events with one more positional argument (the exception;
# a placeholder for TERMINATE_SINGLE_EPOCH's iter_counter).
EXTRA_POSITIONAL = {"EXCEPTION_RAISED": 1, "TERMINATE_SINGLE_EPOCH": 1}

# ignite loops forever when epochs stop making progress (e.g. an exhausted one-shot iterator under
# max_iters), so every observable step counts against this budget.
STEP_BUDGET = 3000


# --------------------------------------------------------------------------------------------
# Scenario: plain data


@dataclass(frozen=True)
class EventSpec:
    name: str
    # Keyword arguments for ``Events.<name>(...)``; ``event_filter`` holds a ``_custom_filter`` spec.
    filter: dict | None = None


@dataclass(frozen=True)
class HandlerSpec:
    # One event, or several joined with ``|`` into an EventsList.
    events: list
    takes_engine: bool = True
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    # Handler call number (1-based, counted per engine) -> action, one of:
    #   ("terminate", skip_completed) ("terminate_epoch", skip_epoch_completed) ("interrupt",)
    #   ("raise",) ("remove", target handler index or None for itself, "fn" | "handle")
    #   ("add", [EventSpec, ...])  -- attach a new recording handler
    #   ("fire", custom event name)  -- fire_event(), nested in the current firing
    actions: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    data: tuple  # ("list" | "iterable" | "iterator", size) or ("none",)
    limit: tuple | None = None  # ("max_epochs", n) or ("max_iters", n); None: ignite's default
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


# --------------------------------------------------------------------------------------------
# Records: a trace is a list of these (namedtuples, so that failure reports name the fields)

# The engine's state and its public termination flags, at some moment.
Observed = namedtuple(
    "Observed",
    "iteration epoch epoch_length max_epochs max_iters batch output "
    "should_terminate should_terminate_single_epoch should_interrupt",
)
Register = namedtuple("Register", "hid outcome")
RegisterEvents = namedtuple("RegisterEvents", "outcome")
LoadStateDict = namedtuple("LoadStateDict", "outcome")
Run = namedtuple("Run", "engine data kwargs")
Call = namedtuple("Call", "hid event args kwargs observed")
Process = namedtuple("Process", "engine batch observed")
# registrations: has_event_handler for each handler, per event and for any event
Result = namedtuple(
    "Result", "outcome warnings observed dataloader last_event_name state_dict registrations"
)


# --------------------------------------------------------------------------------------------
# Interpreter


class ScenarioError(Exception):
    """Raised by a scenario's handler or process function."""


class _Runaway(BaseException):
    """The step budget is exhausted.  A BaseException, so that the epoch loop's ``except Exception``
    does not swallow it and the run ends."""


_UNSET = object()
_ADDRESS = re.compile(r"<(?:cy)?function .*? at 0x[0-9a-f]+>|0x[0-9a-f]+")


def _normalize(message: str) -> str:
    # Messages embed reprs of handlers and filter functions; addresses and the implementation's
    # internal function names are not behaviour, nor is whitespace (deviation 8).
    return re.sub(r"\s+", "", _ADDRESS.sub("<address>", message))


def _load_outcome(outcome: tuple) -> tuple:
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


def _summarize(exc: BaseException) -> tuple:
    return (type(exc).__name__, _normalize(str(exc)))


def _capture(call) -> tuple:
    try:
        return ("returned", call())
    except (Exception, _Runaway) as exc:
        return ("raised", *_summarize(exc))


def _observe(engine) -> Observed:
    state = engine.state
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
    )


def _event_name(event) -> str | None:
    if event is None or isinstance(event, str):
        # A string event ("tick") is its own name.
        return event
    return event.name


def _custom_filter(spec: tuple):
    kind, *params = spec
    if kind == "mod":
        modulus, remainder = params
        return lambda engine, event: event % modulus == remainder
    # "iteration_above": depends on the engine rather than on the event's count
    (threshold,) = params
    return lambda engine, event: engine.state.iteration > threshold


def _handler_function(takes_engine: bool, n_positional: int, body):
    """A real function with the wanted signature: the engines decide from it whether to pass
    themselves.  Without the engine, the handler has exactly as many positional parameters as
    registration passes, so that binding fails once the engine is prepended."""
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


class _CountingIterable:
    """Unsized and re-iterable: each iter() starts over."""

    def __init__(self, interpreter: _Interpreter, size: int) -> None:
        self.interpreter = interpreter
        self.size = size

    def __iter__(self):
        for i in range(self.size):
            self.interpreter.tick()
            yield 100 + i


class _CountingIterator:
    """Unsized and one-shot: iter() returns itself, so a restart yields nothing."""

    def __init__(self, interpreter: _Interpreter, size: int) -> None:
        self.interpreter = interpreter
        self.remaining = iter(range(100, 100 + size))

    def __iter__(self):
        return self

    def __next__(self):
        self.interpreter.tick()
        return next(self.remaining)


class _Handler:
    def __init__(self, context: _EngineContext, hid: str, spec: HandlerSpec) -> None:
        self.context = context
        self.hid = hid
        self.spec = spec
        self.calls = 0
        n_positional = len(spec.args) + max(EXTRA_POSITIONAL.get(e.name, 0) for e in spec.events)
        self.fn = _handler_function(spec.takes_engine, n_positional, self.on_call)
        self.events = [context.interpreter.make_event(e) for e in spec.events]
        self.handle = None

    def register(self) -> None:
        target = functools.reduce(operator.or_, self.events)
        engine = self.context.engine
        self.handle = engine.add_event_handler(target, self.fn, *self.spec.args, **self.spec.kwargs)

    def registration(self, engine) -> tuple:
        per_event = [engine.has_event_handler(self.fn, event) for event in self.events]
        return (self.hid, per_event, engine.has_event_handler(self.fn))

    def on_call(self, args: tuple, kwargs: dict) -> None:
        interpreter = self.context.interpreter
        if interpreter.finished:
            return
        interpreter.tick()
        self.calls += 1
        engine = self.context.engine
        interpreter.trace.append(
            Call(
                self.hid,
                _event_name(engine.last_event_name),
                tuple(self.context.describe(a) for a in args if a is not _UNSET),
                sorted((k, self.context.describe(v)) for k, v in kwargs.items()),
                interpreter.observe(engine),
            )
        )
        action = self.spec.actions.get(self.calls)
        if action is not None:
            self.perform(action)

    def perform(self, action: tuple) -> None:
        engine = self.context.engine
        kind = action[0]
        if kind == "terminate":
            if action[1]:
                engine.terminate(skip_completed=True)
            else:
                engine.terminate()
        elif kind == "terminate_epoch":
            if action[1]:
                engine.terminate_epoch(skip_epoch_completed=True)
            else:
                engine.terminate_epoch()
        elif kind == "interrupt":
            engine.interrupt()
        elif kind == "raise":
            raise ScenarioError(f"{self.hid} call {self.calls}")
        elif kind == "remove":
            _, target_index, via = action
            target = self if target_index is None else self.context.handlers[target_index]
            if via == "handle":
                target.handle.remove()
            else:
                # Removing itself: from the event being fired; another handler: from its first event.
                # A custom event fired by an earlier handler of this firing is the last event now,
                # and may not be one of this handler's: then it too leaves its first event.
                fired = _event_name(engine.last_event_name)
                if target is self:
                    event = next((e for e in self.events if _event_name(e) == fired), self.events[0])
                else:
                    event = target.events[0]
                engine.remove_event_handler(target.fn, event)
        elif kind == "add":
            spec = HandlerSpec(action[1])
            added = self.context.interpreter.handler_class(self.context, f"{self.hid}.add{self.calls}", spec)
            self.context.added.append(added)
            added.register()
        else:
            # Even on the event being handled, this recursion is bounded: an action belongs to one
            # call number of one handler, so it is performed at most once per engine.
            assert kind == "fire"
            self.context.fire(action[1])


class _EngineContext:
    """One engine with its process function and handlers."""

    def __init__(self, interpreter: _Interpreter, tag: int) -> None:
        self.interpreter = interpreter
        self.tag = tag
        self.process_calls = 0
        self.engine = interpreter.make_engine(self.process)
        # The engines hold handlers through weak references (RemovableEventHandle, the parent of
        # a filtered handler's wrapper): these lists keep them alive.
        self.handlers = []  # the scenario's handlers, by index
        self.added = []  # the spy and handlers added by actions

    def describe(self, value):
        if value is self.engine:
            return "<engine>"
        if isinstance(value, BaseException):
            return ("exception", *_summarize(value))
        return value

    def process(self, engine, batch):
        interpreter = self.interpreter
        interpreter.tick()
        self.process_calls += 1
        interpreter.trace.append(Process(self.describe(engine), batch, interpreter.observe(engine)))
        for name in interpreter.scenario.process_fires.get(self.process_calls, ()):
            if name == "PING":
                # The attribute PING's filters read (State.event_to_attr).  Only the process
                # function counts, so that a handler re-firing PING makes it differ from the
                # number of firings.
                engine.state.ping_count += 1
            self.fire(name)
        action = interpreter.scenario.process_action
        if action is not None and action[0] == self.process_calls:
            if action[1] == "raise":
                raise ScenarioError(f"process call {self.process_calls}")
            engine.terminate()
        return (batch, engine.state.iteration)

    def fire(self, name: str) -> None:
        self.engine.fire_event(self.interpreter.make_event(EventSpec(name)))


class _Interpreter:
    """Executes one Scenario against one engine API and records the observable behaviour.

    Subclasses extend what a scenario can do through ``handler_class``, ``make_engine``,
    ``make_event``, ``observe`` and ``after_run``.
    """

    handler_class = _Handler
    step_budget = STEP_BUDGET
    # The comparison with ignite stops, or leaves out, what ignite and fastignite do differently by
    # design (test_differential's deviations 5 to 7); a comparison of fastignite with itself keeps
    # all of it.
    mask_ignite_deviations = True

    def __init__(self, api, scenario: Scenario) -> None:
        self.api = api
        self.scenario = scenario
        self.trace = []
        self.steps = 0
        self.data_objects = []
        # Engines finalise a suspended (interrupted) run when garbage-collected, and ignite then
        # fires EXCEPTION_RAISED with GeneratorExit.  Keeping every engine alive until the end
        # keeps that out of the trace; afterwards, ``finished`` makes late handler calls inert.
        self.contexts = []
        self.finished = False
        self.stopped = False  # the scenario went where ignite and fastignite differ by design

        # Each API needs an EventEnum of its own.  A new class per scenario is harmless:
        # State.event_to_attr, shared by the engines of one library, finds members by name.
        class Custom(api.EventEnum):
            PING = "ping"
            PONG = "pong"

        self.custom_events = Custom

    def make_engine(self, process_function):
        return self.api.Engine(process_function)

    def observe(self, engine):
        """The engine's state as recorded in every Call and Process."""
        return _observe(engine)

    def after_run(self, context: _EngineContext) -> None:
        """Called after each run()'s Result is recorded."""

    def tick(self) -> None:
        self.steps += 1
        if self.steps > self.step_budget:
            raise _Runaway("step budget exhausted")

    def make_event(self, spec: EventSpec):
        if spec.name == "tick":
            return spec.name  # a string event, never filtered
        event = getattr(self.custom_events if spec.name in CUSTOM_EVENT_NAMES else self.api.Events, spec.name)
        if spec.filter is None:
            return event
        kwargs = dict(spec.filter)
        if "event_filter" in kwargs:
            kwargs["event_filter"] = _custom_filter(kwargs["event_filter"])
        return event(**kwargs)

    def make_data(self, spec: tuple | None = None):
        """A new data object of the scenario's kind, or of ``spec`` (a RunSpec.data)."""
        kind, *size = self.scenario.run.data if spec is None else spec
        if kind == "none":
            data = None
        elif kind == "list":
            data = [100 + i for i in range(size[0])]
        elif kind == "iterable":
            data = _CountingIterable(self, size[0])
        else:
            assert kind == "iterator"
            data = _CountingIterator(self, size[0])
        self.data_objects.append(data)
        return data

    def data_index(self, data):
        if data is None:
            return None
        return next((i for i, d in enumerate(self.data_objects) if d is data), "another object")

    def new_engine(self, tag: int) -> _EngineContext:
        context = _EngineContext(self, tag)
        self.contexts.append(context)
        self.trace.append(RegisterEvents(_capture(lambda: self.register_custom_events(context.engine))))
        if self.scenario.spy:
            spy_events = [EventSpec(name) for name in EVENT_NAMES + ("PING", "PONG") if name != "EXCEPTION_RAISED"]
            # ``|`` refuses a string event: "tick" gets a spy of its own.
            for events in (spy_events, [EventSpec("tick")]):
                spy = self.handler_class(context, "spy", HandlerSpec(events))
                context.added.append(spy)
                self.trace.append(Register(spy.hid, _capture(spy.register)))
        for index, spec in enumerate(self.scenario.handlers):
            handler = self.handler_class(context, f"h{index}", spec)
            context.handlers.append(handler)
            self.trace.append(Register(handler.hid, _capture(handler.register)))
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
        self.trace.append(Run(context.tag, self.data_index(data), kwargs))
        records_before = len(self.trace)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = _capture(lambda: engine.run(data, **kwargs))
        if outcome[0] == "returned":
            outcome = ("returned", "<state>" if outcome[1] is engine.state else context.describe(outcome[1]))
        rejected_by_set_up = (
            self.mask_ignite_deviations
            and outcome[0] == "raised"
            and outcome[1] == "ValueError"
            and len(self.trace) == records_before
        )
        # Deviations 5 and 6: nothing after an uncaught exception is comparable.  Without masking,
        # only an exhausted step budget ends the scenario: every step would raise again.
        self.stopped = outcome[0] == "raised" and (self.mask_ignite_deviations or outcome[1] == "_Runaway")
        self.trace.append(
            Result(
                outcome,
                [(w.category.__name__, str(w.message)) for w in caught],
                None if rejected_by_set_up else self.observe(engine),
                self.data_index(engine.state.dataloader),
                _event_name(engine.last_event_name),
                None if rejected_by_set_up else _capture(lambda: self.state_dict_items(engine)),
                _capture(lambda: [h.registration(engine) for h in context.added + context.handlers]),
            )
        )
        self.after_run(context)

    def state_dict_items(self, engine) -> list:
        items = list(engine.state_dict().items())
        if self.mask_ignite_deviations:
            # Deviation 9: fastignite's state_dict() adds the custom events' counters.
            items = [(k, v) for k, v in items if k != "counters"]
        return items

    def execute(self) -> list:
        context = self.new_engine(tag=0)
        data = self.make_data()
        self.run(context, data, pass_limits=True)
        for tag, resume in enumerate(self.scenario.resumes, start=1):
            if self.stopped:
                break
            if resume.new_data:
                data = self.make_data()
            if resume.fresh_engine:
                previous = context
                context = self.new_engine(tag)
                loaded = _capture(lambda: context.engine.load_state_dict(previous.engine.state_dict()))
                if self.mask_ignite_deviations:
                    loaded = _load_outcome(loaded)
                self.trace.append(LoadStateDict(loaded))
                # A refused state_dict leaves the new engine as it was: fastignite's own
                # comparison goes on with it (a run from scratch), ignite's stops (deviation 7).
                if loaded[0] == "raised" and self.mask_ignite_deviations:
                    break
            self.run(context, data, resume.pass_limits)
        self.finished = True
        return self.trace


def execute(api, scenario: Scenario) -> list:
    return _Interpreter(api, scenario).execute()


def assert_same_traces(expected: list, actual: list, expected_label: str, actual_label: str, key=None) -> None:
    """Fails at the first differing record, showing a few records around it from each trace.
    Records are compared with ``==``, or by ``key(record)`` (e.g. ``repr``, to tell 6 from 6.0)."""
    if key is not None:
        keyed_expected, keyed_actual = [key(r) for r in expected], [key(r) for r in actual]
    else:
        keyed_expected, keyed_actual = expected, actual
    if keyed_expected == keyed_actual:
        return
    pairs = enumerate(zip(keyed_expected, keyed_actual))
    first = next((i for i, (e, a) in pairs if e != a), min(len(expected), len(actual)))
    window = slice(max(0, first - 4), first + 3)
    lines = [f"first difference at record {first} (of {len(expected)} vs {len(actual)})", f"{expected_label}:"]
    lines += [f"  {i}: {r!r}" for i, r in enumerate(expected[window], start=window.start)]
    lines.append(f"{actual_label}:")
    lines += [f"  {i}: {r!r}" for i, r in enumerate(actual[window], start=window.start)]
    pytest.fail("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Strategies (small sizes: a scenario runs in milliseconds)

_filters = st.one_of(
    st.fixed_dictionaries({"every": st.integers(1, 4)}),
    st.fixed_dictionaries({"once": st.integers(1, 12)}),
    st.fixed_dictionaries({"once": st.lists(st.integers(1, 12), min_size=2, max_size=2)}),
    st.fixed_dictionaries({"before": st.integers(0, 10)}),
    st.fixed_dictionaries({"after": st.integers(0, 10)}),
    st.fixed_dictionaries({"before": st.integers(0, 10), "after": st.integers(0, 10)}),
    st.fixed_dictionaries({"every": st.integers(2, 3), "before": st.integers(0, 10)}),
    st.fixed_dictionaries({"every": st.integers(2, 3), "after": st.integers(0, 10)}),
    st.fixed_dictionaries({"event_filter": st.tuples(st.just("mod"), st.integers(2, 3), st.integers(0, 2))}),
    st.fixed_dictionaries({"event_filter": st.tuples(st.just("iteration_above"), st.integers(0, 8))}),
)

# "tick" in a ``|`` is refused with a TypeError, by both.  PING has a branch of its own: its
# filters read an attribute only the scenario updates, unlike the built-in events'.
_event_specs = st.one_of(
    st.builds(EventSpec, st.sampled_from(EVENT_NAMES + CUSTOM_EVENT_NAMES)),
    st.builds(EventSpec, st.sampled_from(FILTERABLE_EVENT_NAMES), _filters),
    st.builds(EventSpec, st.just("PING"), _filters),
)
_event_lists = st.lists(_event_specs, min_size=1, max_size=2)


_limits = st.one_of(
    st.none(),
    st.tuples(st.just("max_epochs"), st.integers(1, 4)),
    st.tuples(st.just("max_iters"), st.integers(1, 12)),
)
_run_specs = st.one_of(
    st.builds(
        RunSpec,
        st.tuples(st.sampled_from(["list", "iterable", "iterator"]), st.integers(1, 7)),
        _limits,
        st.none() | st.integers(1, 8),
    ),
    # Without data, ignite requires epoch_length.
    st.builds(RunSpec, st.just(("none",)), _limits, st.integers(1, 5)),
)

_actions = st.one_of(
    st.tuples(st.just("terminate"), st.booleans()),
    st.tuples(st.just("terminate_epoch"), st.booleans()),
    st.just(("interrupt",)),
    st.just(("raise",)),
    st.tuples(st.just("add"), _event_lists),
    st.tuples(st.just("fire"), st.sampled_from(CUSTOM_EVENT_NAMES)),
    # The target index is taken modulo the number of handlers by _resolve_removals.
    st.tuples(st.just("remove"), st.none() | st.integers(0, 7), st.sampled_from(["fn", "handle"])),
)
_handler_specs = st.builds(
    HandlerSpec,
    _event_lists,
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=2).map(tuple),
    st.dictionaries(st.sampled_from(["k0", "k1"]), st.integers(0, 9), max_size=2),
    st.dictionaries(st.integers(1, 6), _actions, max_size=2),
)
# What the process function fires at one call
_custom_event_firings = st.lists(st.sampled_from(CUSTOM_EVENT_NAMES), min_size=1, max_size=3).map(tuple)


def _resolve_removals(scenario: Scenario, exception_raised_removable: bool = False) -> Scenario:
    """Points every removal at an existing handler, and drops those aimed at a handler attached
    to EXCEPTION_RAISED (deviation 2) unless ``exception_raised_removable``.  Strategies stay
    static: building them per example would cost more than running the scenario."""
    handlers = scenario.handlers

    def removable(index: int) -> bool:
        return exception_raised_removable or all(e.name != "EXCEPTION_RAISED" for e in handlers[index].events)

    resolved = []
    for index, handler in enumerate(handlers):
        actions = {}
        for call, action in handler.actions.items():
            if action[0] == "remove":
                target = None if action[1] is None else action[1] % len(handlers)
                if not removable(index if target is None else target):
                    continue
                action = ("remove", target, action[2])
            actions[call] = action
        resolved.append(replace(handler, actions=actions))
    return replace(scenario, handlers=resolved)


scenarios = st.builds(
    Scenario,
    _run_specs,
    st.lists(_handler_specs, max_size=8),
    st.none() | st.tuples(st.integers(1, 10), st.sampled_from(["raise", "terminate"])),
    st.lists(st.builds(ResumeSpec, st.booleans(), st.booleans(), st.booleans()), max_size=3),
    st.booleans(),
    st.dictionaries(st.integers(1, 12), _custom_event_firings, max_size=12),
).map(_resolve_removals)


def _ev(name: str, **event_filter) -> EventSpec:
    return EventSpec(name, event_filter or None)


def _calls(trace: list, hid: str) -> list:
    return [r for r in trace if isinstance(r, Call) and r.hid == hid]


def _results(trace: list) -> list:
    return [r for r in trace if isinstance(r, Result)]


def _iterations(records: list) -> list:
    return [r.observed.iteration for r in records]

