"""pytest plugin: point ignite's training essentials at fastignite's own.

Loaded after ``ignite_alias_plugin`` (which re-points Engine, Events, State...),
for ignite's ``test_deterministic.py`` and ``test_create_supervised.py``: the
deterministic names (``DeterministicEngine``, ``ReproducibleBatchSampler``,
``keep_random_state``, ``update_dataloader`` and the private RNG helpers the
tests import) and the supervised factories and steps become fastignite's.

ignite's supervised tests ``mock.patch`` names such as
``ignite.engine.supervised_training_step`` and ``ignite.engine._check_arg``;
fastignite's factories look those names up in ``fastignite.supervised`` when
called.  So ``ignite.engine`` gets a module class whose assignments of those
names are mirrored into ``fastignite.supervised``: a patch reaches the code
under test, as it reaches ignite's own.

FASTIGNITE_CONFORMANCE_NO_ALIAS=1 leaves ignite alone, as the alias plugin does.
"""

import os
import types

DETERMINISTIC_NAMES = (
    "DeterministicEngine", "ReproducibleBatchSampler", "keep_random_state", "update_dataloader",
    "_set_rng_states", "_get_rng_states", "_repr_rng_state",
)  # fmt: skip
SUPERVISED_NAMES = (
    "create_supervised_trainer", "create_supervised_evaluator",
    "supervised_training_step", "supervised_training_step_amp", "supervised_training_step_apex",
    "supervised_training_step_tpu", "supervised_evaluation_step", "supervised_evaluation_step_amp",
    "_check_arg", "_prepare_batch",
)  # fmt: skip


def _alias() -> None:
    import ignite.engine
    import ignite.engine.deterministic

    import fastignite.deterministic
    import fastignite.supervised

    for name in DETERMINISTIC_NAMES:
        value = getattr(fastignite.deterministic, name)
        setattr(ignite.engine.deterministic, name, value)
        if hasattr(ignite.engine, name):
            setattr(ignite.engine, name, value)

    class _Mirrored(types.ModuleType):
        def __setattr__(self, name, value):
            super().__setattr__(name, value)
            if name in SUPERVISED_NAMES:
                setattr(fastignite.supervised, name, value)

        def __delattr__(self, name):
            super().__delattr__(name)
            if name in SUPERVISED_NAMES and hasattr(fastignite.supervised, name):
                delattr(fastignite.supervised, name)

    ignite.engine.__class__ = _Mirrored
    for name in SUPERVISED_NAMES:
        setattr(ignite.engine, name, getattr(fastignite.supervised, name))


# At import, after ignite_alias_plugin (given first on the command line).
if os.environ.get("FASTIGNITE_CONFORMANCE_NO_ALIAS") != "1":
    _alias()
