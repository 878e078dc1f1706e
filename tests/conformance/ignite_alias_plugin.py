"""pytest plugin: make pytorch-ignite's engine tests exercise fastignite instead of ignite.

Load it by bare name with this directory on PYTHONPATH (``-p ignite_alias_plugin``): the
tests run from ignite's sdist root, whose own ``tests`` package would clash with this
repo's ``tests.conformance``.

Only the public names of ignite.engine, ignite.engine.engine and ignite.engine.events are
re-pointed. Other ignite modules (ignite.metrics, ignite.handlers, ...) keep the objects they
imported, so fastignite's Engine must accept ignite's own Events members.

FASTIGNITE_CONFORMANCE_NO_ALIAS=1 skips the aliasing, so the harness runs ignite on itself;
that is how the harness is checked against ignite's reference counts.
"""

import os

from _conformance_report import report_hooks

ALIASED_NAMES = (
    "Engine",
    "Events",
    "EventEnum",
    "CallableEventWithFilter",
    "EventsList",
    "State",
    "RemovableEventHandle",
)


def _alias_ignite_to_fastignite() -> str:
    import ignite.engine
    import ignite.engine.engine
    import ignite.engine.events

    import fastignite
    import fastignite.engine
    import fastignite.events

    replacements = {name: getattr(fastignite.events, name) for name in ALIASED_NAMES if name != "Engine"}
    replacements["Engine"] = fastignite.engine.Engine
    for module in (ignite.engine, ignite.engine.engine, ignite.engine.events):
        for name, obj in replacements.items():
            if hasattr(module, name):
                setattr(module, name, obj)
    return f"{fastignite.BACKEND} (from {os.path.dirname(fastignite.__file__)})"


# Done at import time, i.e. while pytest processes `-p` options: earlier than conftest.py
# files and test modules are imported, so their `from ignite.engine import Engine, ...`
# bind fastignite's objects. A broken fastignite fails the whole run loudly, right here.
if os.environ.get("FASTIGNITE_CONFORMANCE_NO_ALIAS") == "1":
    BACKEND = "ignite (aliasing disabled by FASTIGNITE_CONFORMANCE_NO_ALIAS=1)"
else:
    BACKEND = _alias_ignite_to_fastignite()

BACKEND_LINE, pytest_report_header, pytest_terminal_summary = report_hooks(BACKEND)
