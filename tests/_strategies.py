"""The hypothesis strategies generating the scenarios of ``_scenarios.py``.

* ``ignite_scenarios`` (test_differential): only what pytorch-ignite 0.5.5 and fastignite do alike
  ("deviation N" refers to the list in test_differential.py's docstring).
* ``twin_scenarios`` (test_twins): the whole language, fastignite's own features included, weighted
  towards handlers that meet in one firing.

Sizes are small: a scenario runs in milliseconds.  Strategies are static (built once): building
them per example would cost more than running the scenario, so ``_resolve_removals`` fixes up
each drawn scenario instead.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from _scenarios import (
    CUSTOM_EVENT_NAMES,
    EDITS,
    EVENT_NAMES,
    FASTIGNITE_ENGINES,
    EventSpec,
    HandlerSpec,
    ResumeSpec,
    RunSpec,
    Scenario,
)
from hypothesis import strategies as st

# Built-in events with no State.event_to_attr entry: with PING, the only ones given filters in
# the comparison with ignite (deviation 1).
UNMAPPED = {"DATALOADER_STOP_ITERATION", "TERMINATE", "TERMINATE_SINGLE_EPOCH", "INTERRUPT", "EXCEPTION_RAISED"}
FILTERABLE_EVENT_NAMES = tuple(name for name in EVENT_NAMES if name not in UNMAPPED)


def _resolve_removals(scenario: Scenario, exception_raised_removable: bool = False) -> Scenario:
    """Points every removal at an existing handler (the drawn index modulo their number), and drops
    those aimed at a handler attached to EXCEPTION_RAISED (deviation 2) unless
    ``exception_raised_removable``."""
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


def _handler_specs(event_lists, call_numbers, actions):
    return st.builds(
        HandlerSpec,
        event_lists,
        st.booleans(),
        st.lists(st.integers(0, 9), max_size=2).map(tuple),
        st.dictionaries(st.sampled_from(["k0", "k1"]), st.integers(0, 9), max_size=2),
        st.dictionaries(call_numbers, actions, max_size=2),
    )


def _run_specs(data_kinds):
    return st.one_of(
        st.builds(
            RunSpec, st.tuples(st.sampled_from(data_kinds), st.integers(1, 7)), _limits, st.none() | st.integers(1, 8)
        ),
        # Without data, ignite requires epoch_length.
        st.builds(RunSpec, st.just(("none",)), _limits, st.integers(1, 5)),
    )


_limits = st.one_of(
    st.none(),
    st.tuples(st.just("max_epochs"), st.integers(1, 4)),
    st.tuples(st.just("max_iters"), st.integers(1, 12)),
)
_process_actions = st.none() | st.tuples(st.integers(1, 10), st.sampled_from(["raise", "terminate"]))
_resumes = st.lists(st.builds(ResumeSpec, st.booleans(), st.booleans(), st.booleans()), max_size=3)
# Process call number -> the custom events the process function fires at that call
_process_fires = st.dictionaries(
    st.integers(1, 12), st.lists(st.sampled_from(CUSTOM_EVENT_NAMES), min_size=1, max_size=3).map(tuple), max_size=12
)


# --------------------------------------------------------------------------------------------
# ignite_scenarios: what both libraries do alike

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
_event_lists = st.lists(
    st.one_of(
        st.builds(EventSpec, st.sampled_from(EVENT_NAMES + CUSTOM_EVENT_NAMES)),
        st.builds(EventSpec, st.sampled_from(FILTERABLE_EVENT_NAMES), _filters),
        st.builds(EventSpec, st.just("PING"), _filters),
    ),
    min_size=1,
    max_size=2,
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

ignite_scenarios = st.builds(
    Scenario,
    _run_specs(["list", "iterable", "iterator"]),
    st.lists(_handler_specs(_event_lists, st.integers(1, 6), _actions), max_size=8),
    _process_actions,
    _resumes,
    st.booleans(),
    _process_fires,
).map(_resolve_removals)


# --------------------------------------------------------------------------------------------
# twin_scenarios: the whole language
#
# st.one_of draws uniformly among its leaves (nested one_ofs are flattened), so _weight() wraps
# each family of choices to be drawn as one, and the choices that reach interesting paths more
# often (events that fire many times, the first calls of a handler) are listed twice.


def _weight(strategy):
    return strategy.map(lambda drawn: drawn)  # not a one_of, so not flattened into the parent


# Events fired at every iteration (or by the process function), then the rest.
FREQUENT_EVENT_NAMES = ("ITERATION_STARTED", "ITERATION_COMPLETED", "GET_BATCH_STARTED", "GET_BATCH_COMPLETED") + (
    CUSTOM_EVENT_NAMES
)
# One event per scenario (st.shared: the same draw for every use in one example) gets many of its
# handlers, so that handlers meet in one firing: filter groups shared, registration order against
# due order, one handler moving the count or editing the list the others are walked from.
_focus_event = st.shared(st.sampled_from(FREQUENT_EVENT_NAMES), key="focus event")
_event_names = st.one_of(
    _weight(_focus_event),
    _weight(_focus_event),
    _weight(st.sampled_from(FREQUENT_EVENT_NAMES)),
    _weight(st.sampled_from(EVENT_NAMES + CUSTOM_EVENT_NAMES)),
)

# Every kind of _scenarios.FILTERS.
_callable_filters = st.fixed_dictionaries(
    {
        "event_filter": st.one_of(
            st.tuples(st.just("mod"), st.integers(2, 3), st.integers(0, 2)),
            st.tuples(st.just("iteration_above"), st.integers(0, 8)),
            st.tuples(st.just("rec"), st.integers(2, 3), st.integers(0, 2)),
            st.tuples(st.just("throttle"), st.sampled_from([0, 2, 5, 11]), st.booleans()),
            st.tuples(st.just("timeout"), st.sampled_from([0, 3, 8, 20]), st.booleans()),
            st.tuples(st.just("shared_throttle"), st.sampled_from([2, 5])),
            st.tuples(st.just("every_filter"), st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple)),
            st.tuples(st.just("once_filter"), st.lists(st.integers(1, 12), min_size=1, max_size=3).map(tuple)),
            st.tuples(st.just("gated"), st.integers(2, 3), st.sampled_from([0, 3, 8])),
            st.tuples(st.just("sub_every"), st.integers(2, 3)),
            st.just(("squares",)),
        )
    }
)
# Filters that are equal as count filters (one key, one period per scenario) in the three forms a
# user can write them: handlers using them share one filter group, evaluated through whichever
# is walked first -- the plain Every, or the subclass, which must then be called.
_focus_period = st.shared(st.sampled_from([2, 3]), key="focus period")
_same_key_filters = st.one_of(
    st.fixed_dictionaries({"every": _focus_period}),
    st.fixed_dictionaries({"event_filter": st.tuples(st.just("sub_every"), _focus_period)}),
    st.fixed_dictionaries({"event_filter": st.tuples(st.just("sub_every"), _focus_period)}),
    st.fixed_dictionaries({"event_filter": st.tuples(st.just("every_filter"), _focus_period.map(lambda p: (p,)))}),
)
_twin_filters = st.one_of(
    _weight(_filters),  # every, once, before/after windows (with every), user callables
    _weight(_same_key_filters),
    _weight(_same_key_filters),
    _weight(_same_key_filters),
    _weight(
        st.fixed_dictionaries({"every": st.lists(st.integers(2, 5), min_size=2, max_size=3)})
        | st.fixed_dictionaries({"once": st.lists(st.integers(1, 12), min_size=3, max_size=4)})
    ),
    _weight(_callable_filters),
    _weight(_callable_filters),
)
_conj = st.lists(
    st.tuples(st.lists(st.none() | _twin_filters, min_size=1, max_size=2).map(tuple), st.booleans()),
    min_size=1,
    max_size=2,
).map(tuple)
# Any event may be filtered: those without a State.event_to_attr entry read their firing counter.
_twin_event_lists = st.lists(
    st.one_of(
        st.builds(EventSpec, _event_names),
        st.builds(EventSpec, _event_names, _twin_filters),
        st.builds(EventSpec, _event_names, _twin_filters),
        st.builds(EventSpec, _event_names, st.none() | _twin_filters, _conj),
    ),
    min_size=1,
    max_size=2,
)

# Values a handler may store in state.iteration / state.ping_count: the compiled twin keeps counts
# in int64 and must fall back to Python for anything outside +-2**62 or not an int.
WEIRD_COUNTS = (2**62 - 1, 2**62, 2**63 + 5, -(2**62) - 1, 6.0, 7.5, True)
try:
    import numpy
except ImportError:  # pragma: no cover - numpy is a test dependency, but the twins need none
    pass
else:
    # What a checkpoint read with numpy holds; load_state_dict accepts it (numbers.Integral).
    WEIRD_COUNTS += (numpy.int64(5), numpy.int64(2**62 - 1))

_deltas = st.sampled_from([-3, -1, 1, 2])
_twin_actions = st.one_of(
    # the actions of ignite_scenarios, with events of the whole language
    st.tuples(st.just("terminate"), st.booleans()),
    st.tuples(st.just("terminate_epoch"), st.booleans()),
    st.just(("interrupt",)),
    st.just(("raise",)),
    st.tuples(st.just("remove"), st.none() | st.integers(0, 7), st.sampled_from(["fn", "handle"])),
    st.tuples(st.just("add"), _twin_event_lists),
    st.tuples(st.just("fire"), _event_names),
    # only fastignite's
    # "own": the count read by the filters of the event being fired, so that the handlers after
    # this one in the same firing see it moved.
    st.tuples(st.just("move"), st.sampled_from(["own", "iteration", "epoch", "ping_count"]), _deltas),
    st.tuples(st.just("move"), st.just("own"), _deltas),
    st.tuples(st.just("set"), st.sampled_from(["iteration", "ping_count"]), st.sampled_from(WEIRD_COUNTS)),
    st.tuples(st.just("edit"), st.sampled_from(EDITS)),
    st.tuples(st.just("edit"), st.sampled_from(EDITS)),
    st.tuples(st.just("set_data"), st.sampled_from(["list", "sized", "iterable", "iterator"]), st.integers(1, 5)),
    st.just(("nested_run",)),
)
_twin_call_numbers = st.integers(1, 3) | st.integers(1, 6)

twin_scenarios = st.builds(
    Scenario,
    _run_specs(["list", "sized", "iterable", "iterator"]),
    st.lists(
        st.one_of(
            _weight(_handler_specs(_twin_event_lists, _twin_call_numbers, _twin_actions)),
            _weight(_handler_specs(_twin_event_lists, _twin_call_numbers, _twin_actions)),
            # A member of the focus event's filter group: with two or more in a scenario, the
            # group is evaluated once for all, through whichever member is walked first.
            _weight(
                _handler_specs(
                    st.builds(EventSpec, _focus_event, _same_key_filters).map(lambda e: [e]),
                    _twin_call_numbers,
                    _twin_actions,
                )
            ),
        ),
        min_size=2,
        max_size=8,
    ),
    _process_actions,
    _resumes,
    st.booleans(),
    _process_fires,
    st.just("plain") | st.sampled_from(["plain", *FASTIGNITE_ENGINES]),
).map(functools.partial(_resolve_removals, exception_raised_removable=True))
