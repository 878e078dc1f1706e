"""pytest plugin: run pytorch-ignite's engine tests with fastignite.ignite installed.

Unlike ignite_alias_plugin (which re-points ignite's Events, State... at
fastignite's own), this keeps everything of ignite's but the engine classes:
``fastignite.ignite.install()`` swaps ``Engine`` and ``DeterministicEngine``,
exactly what a user of the drop-in does.  Loaded by bare name (``-p
ignite_dropin_plugin``) with this directory on PYTHONPATH, for the reason given
in ignite_alias_plugin.

FASTIGNITE_CONFORMANCE_NO_ALIAS=1 skips the install, so the harness runs
ignite on itself.
"""

import os

from _conformance_report import report_hooks


def _install() -> str:
    import fastignite
    import fastignite.ignite

    fastignite.ignite.install()
    return f"{fastignite.BACKEND} (fastignite.ignite from {os.path.dirname(fastignite.__file__)})"


# At import time, while pytest reads its -p options: before any test module binds
# `from ignite.engine import Engine`.
if os.environ.get("FASTIGNITE_CONFORMANCE_NO_ALIAS") == "1":
    BACKEND = "ignite (install() disabled by FASTIGNITE_CONFORMANCE_NO_ALIAS=1)"
else:
    BACKEND = _install()

BACKEND_LINE, pytest_report_header, pytest_terminal_summary = report_hooks(BACKEND)
