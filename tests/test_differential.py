"""Differential test: fastignite must be indistinguishable from pytorch-ignite 0.5.5.

A scenario (data, run limits, handlers with filters and side effects, resumes) is plain data.
``_Interpreter`` executes it against one engine implementation -- ``ignite.engine`` or
``fastignite``, which expose the same names -- and records everything a user can observe:
every handler and process-function call (with the arguments received, the state and the
termination flags at that moment), and, for each ``run()``: its return value or exception, the
warnings it emitted, the final state and flags, ``state.dataloader``, ``last_event_name``,
``state_dict()`` and ``has_event_handler`` for every handler.  Both recordings must be equal.
``state.times`` is wall-clock and is never recorded.

Custom events are used in the ignite-compatible way: every engine registers an ``EventEnum``
with members PING (mapped by ``event_to_attr`` to the state attribute ``ping_count``, which the
process function increments before it fires PING) and PONG (unmapped), and the string event
"tick".  The process function and handler actions fire them.

Deliberate deviations of fastignite from ignite are kept out of the generated scenarios:

1. A filtered handler on an event that has no ``State.event_to_attr`` entry: ignite raises
   ``RuntimeError("Unknown event name ...")`` when the event fires, fastignite filters on its own
   firing counter.  Filters are only put on the eight built-in events that have a state
   attribute and on PING; PONG and "tick" have none, nor do the other five built-ins
   (DATALOADER_STOP_ITERATION, TERMINATE, TERMINATE_SINGLE_EPOCH, INTERRUPT, EXCEPTION_RAISED),
   so they only get unfiltered handlers.
2. After an EXCEPTION_RAISED handler is added and then removed, ignite still swallows exceptions
   (the event stays a key of its handler dict); fastignite re-raises.  Handlers attached to
   EXCEPTION_RAISED are therefore never removal targets.
3. TERMINATE_SINGLE_EPOCH handlers are signature-checked with one extra positional argument but
   called with an ``iter_counter`` keyword instead.  Every generated handler takes ``**kwargs``
   and gives its positional parameters defaults, so both conventions bind.
4. ignite warns "Data iterator can not provide data anymore ..." when a restarted data iterator
   is still empty; warnings are recorded and compared like everything else.
5. After a ``run()`` that raised out of the engine, ignite's next ``run()`` on that engine returns
   None without running (it keeps the dead run generator); fastignite runs.  A scenario ends at
   an uncaught exception.
6. A ``run()`` rejected by its set-up checks (e.g. a changed ``epoch_length``) has already stored
   the new ``max_epochs`` in ignite; fastignite leaves the state as it was.  The state after such
   a ``run()`` is not compared, and the scenario ends there.
7. ``load_state_dict`` with ``epoch_length`` 0: ignite fails with ZeroDivisionError after setting
   part of the state, fastignite refuses it with a ValueError naming ``epoch_length``.  Both count
   as the same refusal, and the scenario ends there.
8. Error messages are compared with whitespace removed: fastignite puts spaces where ignite's
   concatenated strings run sentences together ("EPOCH_STARTED.If").
"""

from __future__ import annotations

import functools
import gc
import operator
import re
import warnings
from collections import namedtuple
from dataclasses import dataclass, field, replace

import pytest

ignite_engine = pytest.importorskip("ignite.engine")
pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

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
                _observe(engine),
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
            added = _Handler(self.context, f"{self.hid}.add{self.calls}", HandlerSpec(action[1]))
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
        self.engine = interpreter.api.Engine(self.process)
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
        interpreter.trace.append(Process(self.describe(engine), batch, _observe(engine)))
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
    """Executes one Scenario against one engine API and records the observable behaviour."""

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

    def tick(self) -> None:
        self.steps += 1
        if self.steps > STEP_BUDGET:
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

    def make_data(self):
        kind, *size = self.scenario.run.data
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
                spy = _Handler(context, "spy", HandlerSpec(events))
                context.added.append(spy)
                self.trace.append(Register(spy.hid, _capture(spy.register)))
        for index, spec in enumerate(self.scenario.handlers):
            handler = _Handler(context, f"h{index}", spec)
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
        rejected_by_set_up = outcome[0] == "raised" and outcome[1] == "ValueError" and len(self.trace) == records_before
        # Deviations 5 and 6: nothing after an uncaught exception is comparable.
        self.stopped = outcome[0] == "raised"
        self.trace.append(
            Result(
                outcome,
                [(w.category.__name__, str(w.message)) for w in caught],
                None if rejected_by_set_up else _observe(engine),
                self.data_index(engine.state.dataloader),
                _event_name(engine.last_event_name),
                None if rejected_by_set_up else _capture(lambda: list(engine.state_dict().items())),
                _capture(lambda: [h.registration(engine) for h in context.added + context.handlers]),
            )
        )

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
                loaded = _load_outcome(_capture(lambda: context.engine.load_state_dict(previous.engine.state_dict())))
                self.trace.append(LoadStateDict(loaded))
                if loaded[0] == "raised":
                    break
            self.run(context, data, resume.pass_limits)
        self.finished = True
        return self.trace


def execute(api, scenario: Scenario) -> list:
    return _Interpreter(api, scenario).execute()


def _assert_same_behaviour(scenario: Scenario, api) -> list:
    """Runs ``scenario`` on ignite and on ``api``; fails at the first differing record.
    Returns ignite's trace."""
    expected = execute(ignite_engine, scenario)
    actual = execute(api, scenario)
    if expected != actual:
        pairs = enumerate(zip(expected, actual))
        first = next((i for i, (e, a) in pairs if e != a), min(len(expected), len(actual)))
        window = slice(max(0, first - 4), first + 3)
        lines = [f"first difference at record {first} (of {len(expected)} vs {len(actual)})", "ignite:"]
        lines += [f"  {i}: {r!r}" for i, r in enumerate(expected[window], start=window.start)]
        lines.append("fastignite:")
        lines += [f"  {i}: {r!r}" for i, r in enumerate(actual[window], start=window.start)]
        pytest.fail("\n".join(lines))
    return expected


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


def _resolve_removals(scenario: Scenario) -> Scenario:
    """Points every removal at an existing handler, and drops those aimed at a handler attached
    to EXCEPTION_RAISED (deviation 2).  Strategies stay static: building them per example would
    cost more than running the scenario."""
    handlers = scenario.handlers

    def removable(index: int) -> bool:
        return all(e.name != "EXCEPTION_RAISED" for e in handlers[index].events)

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


# --------------------------------------------------------------------------------------------
# Tests

# An ignite engine left mid-run (interrupted) and its run generator reference each other, so the
# cycle collector frees them, clearing the engine's weak references first; finalising the generator
# then fires EXCEPTION_RAISED, which fails with "Engine reference not resolved".  That is ignite's
# noise after the recording ended: collect it at teardown, where this filter applies.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <generator object Engine._internal_run_as_gen"
    ":pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture(autouse=True)
def _collect_abandoned_ignite_runs():
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def _forget_ping_mapping():
    """register_events puts PING into State.event_to_attr, which is class-level: take it out again,
    so that tests elsewhere, which use unmapped events named PING, do not depend on test order."""
    yield
    import fastignite

    for state_class in (ignite_engine.State, fastignite.State):
        state_class.event_to_attr.pop("PING", None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios)
def test_random_scenarios_match_ignite(backend, scenario):
    import fastignite

    _assert_same_behaviour(scenario, fastignite)


def _ev(name: str, **event_filter) -> EventSpec:
    return EventSpec(name, event_filter or None)


def _calls(trace: list, hid: str) -> list:
    return [r for r in trace if isinstance(r, Call) and r.hid == hid]


def _results(trace: list) -> list:
    return [r for r in trace if isinstance(r, Result)]


def _iterations(records: list) -> list:
    return [r.observed.iteration for r in records]


# (id, scenario, check on ignite's trace proving that the scenario reaches the intended path)
_TRICKY = [
    (
        "terminate-on-get-batch-started-once-12",
        Scenario(
            RunSpec(("list", 5), ("max_epochs", 4)),
            [HandlerSpec([_ev("GET_BATCH_STARTED", once=12)], actions={1: ("terminate", False)})],
            resumes=[ResumeSpec()],
            spy=True,
        ),
        # resuming after terminate() starts the next epoch
        lambda trace: [r.observed[:2] for r in _results(trace)] == [(12, 3), (17, 4)],
    ),
    (
        "interrupt-at-iteration-completed-then-resume",
        Scenario(
            RunSpec(("list", 3), ("max_epochs", 2)),
            [HandlerSpec([_ev("ITERATION_COMPLETED", every=2)], actions={1: ("interrupt",), 2: ("interrupt",)})],
            resumes=[ResumeSpec(), ResumeSpec(pass_limits=False), ResumeSpec()],
            spy=True,
        ),
        # the last run() starts over: the previous one completed
        lambda trace: _iterations(_results(trace)) == [2, 4, 6, 6],
    ),
    (
        "remove-self-mid-firing",
        Scenario(
            RunSpec(("list", 3)),
            [
                HandlerSpec([_ev("ITERATION_COMPLETED")]),
                HandlerSpec([_ev("ITERATION_COMPLETED")], actions={2: ("remove", None, "fn")}),
                HandlerSpec([_ev("ITERATION_COMPLETED")], actions={1: ("remove", None, "handle")}),
                HandlerSpec([_ev("ITERATION_COMPLETED")]),
            ],
        ),
        # h1 leaves at its 2nd call (remove_event_handler), h2 at its 1st (its handle); each of
        # those firings goes on with the next handlers
        lambda trace: len(_calls(trace, "h1")) == 2 and len(_calls(trace, "h2")) == 1,
    ),
    (
        "remove-later-handler-mid-firing",
        Scenario(
            RunSpec(("list", 2)),
            [
                HandlerSpec([_ev("ITERATION_STARTED")], actions={1: ("remove", 1, "fn")}),
                HandlerSpec([_ev("ITERATION_STARTED"), _ev("COMPLETED")]),
                HandlerSpec([_ev("ITERATION_STARTED", every=2)], actions={1: ("remove", 3, "handle")}),
                HandlerSpec([_ev("ITERATION_STARTED", every=2), _ev("EPOCH_COMPLETED")]),
            ],
        ),
        # ignite iterates over the handler list taken when the firing began
        lambda trace: [r.event for r in _calls(trace, "h1")] == ["ITERATION_STARTED", "COMPLETED"]
        and _iterations(_calls(trace, "h3")) == [2],
    ),
    (
        "add-handler-to-same-event-mid-firing",
        Scenario(
            RunSpec(("list", 3)),
            [
                HandlerSpec([_ev("ITERATION_COMPLETED")], actions={1: ("add", [_ev("ITERATION_COMPLETED")])}),
                HandlerSpec([_ev("ITERATION_COMPLETED")]),
            ],
        ),
        # ignite appends to the list being iterated: the new handler runs in the same firing
        lambda trace: _iterations(_calls(trace, "h0.add1")) == [1, 2, 3],
    ),
    (
        "add-handler-after-removal-in-same-firing",
        Scenario(
            RunSpec(("list", 3)),
            [
                HandlerSpec([_ev("ITERATION_COMPLETED")], actions={1: ("remove", 2, "fn")}),
                HandlerSpec([_ev("ITERATION_COMPLETED")], actions={1: ("add", [_ev("ITERATION_COMPLETED")])}),
                HandlerSpec([_ev("ITERATION_COMPLETED"), _ev("EPOCH_STARTED")]),
            ],
        ),
        # the removal replaced the list being iterated, so the handler added after it waits
        lambda trace: _iterations(_calls(trace, "h1.add1")) == [2, 3],
    ),
    (
        "unsized-iterable-restarted-after-dataloader-stop-iteration",
        Scenario(
            RunSpec(("iterable", 3), ("max_epochs", 2), epoch_length=5),
            [HandlerSpec([_ev("DATALOADER_STOP_ITERATION")], takes_engine=False, args=(7,), kwargs={"k0": 1})],
            spy=True,
        ),
        # epochs of 5 over 3 items: the data restarts after iterations 3, 6 and 9
        lambda trace: len(_calls(trace, "h0")) == 3,
    ),
    (
        "exhausted-one-shot-iterator-warns",
        Scenario(RunSpec(("iterator", 3), ("max_epochs", 3), epoch_length=2), spy=True),
        # "Data iterator can not provide data anymore ..."
        lambda trace: any(r.warnings for r in _results(trace)),
    ),
    (
        "unsized-iterable-max-iters-not-multiple-of-epoch-length",
        Scenario(
            RunSpec(("iterable", 3), ("max_iters", 7)),
            spy=True,
            resumes=[ResumeSpec(fresh_engine=True, pass_limits=False)],
        ),
        # epoch_length is found at the first StopIteration; max_epochs is then derived from it
        lambda trace: _results(trace)[0].observed[:5] == (7, 3, 3, 3, 7),
    ),
    (
        "max-iters-resumed-from-state-dict",
        Scenario(
            RunSpec(("list", 3), ("max_iters", 7)),
            [HandlerSpec([_ev("ITERATION_COMPLETED", once=5)], actions={1: ("terminate", True)})],
            resumes=[ResumeSpec(fresh_engine=True), ResumeSpec(fresh_engine=True, new_data=True)],
            spy=True,
        ),
        # the second fresh engine loads a completed state_dict, so its run starts over
        lambda trace: _iterations(_results(trace)) == [5, 7, 5],
    ),
    (
        "terminate-epoch-with-iter-counter-and-skip",
        Scenario(
            RunSpec(("list", 4), ("max_epochs", 3)),
            [
                HandlerSpec([_ev("ITERATION_COMPLETED", once=[2, 7])], actions={1: ("terminate_epoch", False)}),
                HandlerSpec([_ev("GET_BATCH_COMPLETED", once=6)], actions={1: ("terminate_epoch", True)}),
                HandlerSpec([_ev("TERMINATE_SINGLE_EPOCH")], takes_engine=False, kwargs={"k1": 3}),
            ],
            spy=True,
        ),
        lambda trace: [r.kwargs for r in _calls(trace, "h2")] == [[("iter_counter", n), ("k1", 3)] for n in (2, 0)],
    ),
    (
        "terminate-epoch-on-epoch-started-raises",
        Scenario(
            RunSpec(("list", 2), ("max_epochs", 2)),
            [HandlerSpec([_ev("EPOCH_STARTED")], actions={1: ("terminate_epoch", False)})],
            resumes=[ResumeSpec()],
        ),
        lambda trace: _results(trace)[0].outcome[:2] == ("raised", "RuntimeError"),
    ),
    (
        "exception-swallowed-by-handler-then-epoch-goes-on",
        Scenario(
            RunSpec(("list", 3), ("max_epochs", 2)),
            [HandlerSpec([_ev("EXCEPTION_RAISED")], takes_engine=False, args=(1,))],
            process_action=(2, "raise"),
            spy=True,
        ),
        # the epoch ends at the exception; the run goes on with the next one
        lambda trace: _results(trace)[0].outcome == ("returned", "<state>") and len(_calls(trace, "h0")) == 1,
    ),
    (
        "run-after-uncaught-exception",
        Scenario(
            RunSpec(("none",), ("max_epochs", 2), epoch_length=2),
            [HandlerSpec([_ev("ITERATION_COMPLETED", once=3)], actions={1: ("raise",)})],
            resumes=[ResumeSpec(), ResumeSpec(fresh_engine=True)],
            spy=True,
        ),
        # deviation 5: ignite's next run() would return None without running, fastignite's
        # runs; the comparison ends at the uncaught exception
        lambda trace: [r.outcome[:2] for r in _results(trace)] == [("raised", "ScenarioError")],
    ),
    (
        "state-dict-with-zero-epoch-length",
        Scenario(
            RunSpec(("iterator", 1)),
            process_action=(1, "terminate"),
            resumes=[ResumeSpec(pass_limits=False), ResumeSpec(fresh_engine=True, pass_limits=False)],
        ),
        # terminated before the iterator ran out, the first run leaves epoch_length unknown; the
        # second meets the exhausted iterator at once and sets it to 0, which ignite's
        # load_state_dict then divides by (deviation 7: fastignite refuses it by name)
        lambda trace: [r.outcome for r in trace if isinstance(r, LoadStateDict)] == [("raised", "epoch_length refused")],
    ),
    (
        "rejected-resume-arguments-after-max-epochs-was-set",
        Scenario(
            RunSpec(("list", 1), ("max_epochs", 2), epoch_length=2),
            resumes=[ResumeSpec(pass_limits=False), ResumeSpec()],
        ),
        # ignite's run() sets the new max_epochs before it rejects the changed epoch_length
        # (deviation 6): the state after it is not compared
        lambda trace: _results(trace)[2].outcome[:2] == ("raised", "ValueError") and _results(trace)[2].observed is None,
    ),
    (
        "ping-filter-reads-ping-count-not-firings",
        Scenario(
            RunSpec(("list", 4)),
            [
                HandlerSpec([_ev("PING")], actions={1: ("fire", "PING")}),
                HandlerSpec([_ev("PING", every=2)]),
            ],
            process_fires={1: ("PING",), 2: ("PING",), 3: ("PING",)},
        ),
        # h0 re-fires PING within the first firing without counting it: by firings, every=2
        # would pass in that nested firing and at iteration 3; by ping_count, at iteration 2
        lambda trace: _iterations(_calls(trace, "h1")) == [2],
    ),
    (
        "nested-custom-event-stays-the-last-event",
        Scenario(
            RunSpec(("list", 2)),
            [
                HandlerSpec([_ev("ITERATION_COMPLETED")], actions={1: ("fire", "PONG")}),
                HandlerSpec([_ev("ITERATION_COMPLETED")], actions={1: ("remove", None, "fn")}),
                HandlerSpec([_ev("PONG")], takes_engine=False),
            ],
            spy=True,
        ),
        # after h0's nested firing, last_event_name is PONG while h1 handles ITERATION_COMPLETED
        lambda trace: [r.event for r in _calls(trace, "h1")] == ["PONG"] and len(_calls(trace, "h2")) == 1,
    ),
    (
        "string-event-with-or-refused",
        Scenario(
            RunSpec(("none",), epoch_length=2),
            [HandlerSpec([_ev("STARTED"), _ev("tick")]), HandlerSpec([_ev("tick")])],
            process_fires={2: ("tick", "tick")},
            spy=True,
        ),
        # EventsList refuses the string; alone, it takes handlers
        lambda trace: [r.outcome[:2] for r in trace if isinstance(r, Register) and r.hid == "h0"]
        == [("raised", "TypeError")]
        and len(_calls(trace, "h1")) == 2,
    ),
]


@pytest.mark.parametrize(("scenario", "check"), [pytest.param(s, c, id=i) for i, s, c in _TRICKY])
def test_tricky_scenarios_match_ignite(backend, scenario, check):
    import fastignite

    ignite_trace = _assert_same_behaviour(scenario, fastignite)
    assert check(ignite_trace), "the scenario no longer exercises what it was picked for"
