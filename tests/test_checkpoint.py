"""fastignite.handlers.checkpoint: ignite's file names and rotation, round trips,
crash safety of DiskSaver, and clear errors on unreadable files.

The file-name comparisons run ignite's own Checkpoint (on ignite's Engine) side by
side with ours in twin directories: they are skipped without pytorch-ignite.
The tests that save torch objects skip without torch; the ones "without torch"
(the pickle fallback) run anywhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastignite import Engine, Events
from fastignite.handlers import checkpoint as ck
from fastignite.handlers.checkpoint import (
    Checkpoint,
    CheckpointError,
    DiskSaver,
    ModelCheckpoint,
    global_step_from_engine,
)

try:
    import torch
except ImportError:  # the tests "without torch" at the end still run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")


def _engine() -> Engine:
    return Engine(lambda engine, batch: None)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def _listing(path: Path) -> list[str]:
    return sorted(os.listdir(path))


# -- file names: ignite as the oracle -----------------------------------------------

SEQ = [0.3, 0.7, 0.7, 0.1, 0.9, 0.9, 0.5]

CONFIGS = {
    "default": dict(),
    "prefix_n2": dict(filename_prefix="pre", n_saved=2),
    "score_named": dict(score_function=lambda e: SEQ[e.state.epoch - 1], score_name="acc", n_saved=2),
    "score_unnamed": dict(score_function=lambda e: SEQ[e.state.epoch - 1], n_saved=3),
    "score_int": dict(score_function=lambda e: e.state.epoch % 3, n_saved=2),
    "score_ties_ge": dict(score_function=lambda e: SEQ[e.state.epoch - 1], n_saved=2, greater_or_equal=True),
    "score_step": dict(
        score_function=lambda e: SEQ[e.state.epoch - 1],
        score_name="acc",
        global_step_transform=lambda e, ev: e.state.epoch,
        filename_prefix="best",
        n_saved=2,
    ),
    "step_transform_all": dict(global_step_transform=lambda e, ev: e.state.epoch * 10, n_saved=None),
    "pattern": dict(filename_pattern="{filename_prefix}x{name}-{global_step}-{score_name}-{score}.{ext}"),
    "pattern_score": dict(
        filename_pattern="{name}--{score}.{ext}", score_function=lambda e: SEQ[e.state.epoch - 1], n_saved=2
    ),
    "same_name": dict(filename_pattern="{name}.{ext}", n_saved=2),
    "include_self": dict(include_self=True, n_saved=2),
}


def _to_save(kind: str, engine):
    model = _model()
    if kind == "one":
        return {"model": model}
    return {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1), "trainer": engine}


def _run(engine_cls, events, checkpoint_cls, saver_cls, dirname: Path, kind: str, kwargs: dict):
    engine = engine_cls(lambda e, b: None)
    checkpoint = checkpoint_cls(_to_save(kind, engine), saver_cls(dirname), **kwargs)
    engine.add_event_handler(events.EPOCH_COMPLETED, checkpoint)
    engine.run([0, 1, 2], max_epochs=len(SEQ))
    return checkpoint


@needs_torch
@pytest.mark.parametrize("kind", ["one", "many"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_file_names_match_ignite(tmp_path, config, kind):
    ignite_engine = pytest.importorskip("ignite.engine", reason="needs pytorch-ignite 0.5.5")
    ignite_handlers = pytest.importorskip("ignite.handlers", reason="needs pytorch-ignite 0.5.5")
    kwargs = CONFIGS[config]
    theirs = _run(
        ignite_engine.Engine,
        ignite_engine.Events,
        ignite_handlers.Checkpoint,
        ignite_handlers.DiskSaver,
        tmp_path / "ignite",
        kind,
        kwargs,
    )
    ours = _run(Engine, Events, Checkpoint, DiskSaver, tmp_path / "ours", kind, kwargs)
    assert _listing(tmp_path / "ours") == _listing(tmp_path / "ignite")
    assert ours.state_dict() == theirs.state_dict()
    assert ours.last_checkpoint.name == theirs.last_checkpoint.name
    if config == "include_self":
        for name in _listing(tmp_path / "ours"):
            mine = torch.load(tmp_path / "ours" / name)["checkpointer"]
            assert mine == torch.load(tmp_path / "ignite" / name)["checkpointer"]


@needs_torch
def test_model_checkpoint_names_match_ignite(tmp_path):
    ignite_engine = pytest.importorskip("ignite.engine", reason="needs pytorch-ignite 0.5.5")
    ignite_handlers = pytest.importorskip("ignite.handlers", reason="needs pytorch-ignite 0.5.5")
    for engine_cls, events, mc_cls, sub in [
        (ignite_engine.Engine, ignite_engine.Events, ignite_handlers.ModelCheckpoint, "ignite"),
        (Engine, Events, ModelCheckpoint, "ours"),
    ]:
        engine = engine_cls(lambda e, b: None)
        mc = mc_cls(tmp_path / sub, "run", n_saved=2, score_function=lambda e: -e.state.epoch % 4, score_name="s")
        model = _model()
        engine.add_event_handler(
            events.EPOCH_COMPLETED, mc, {"model": model, "opt": torch.optim.SGD(model.parameters(), 0.1)}
        )
        engine.run([0, 1], max_epochs=6)
    assert _listing(tmp_path / "ours") == _listing(tmp_path / "ignite")


def test_setup_filename_pattern_matches_ignite():
    ignite_handlers = pytest.importorskip("ignite.handlers", reason="needs pytorch-ignite 0.5.5")
    import itertools

    for flags in itertools.product([True, False], repeat=4):
        try:
            expected = ignite_handlers.Checkpoint.setup_filename_pattern(*flags)
        except ValueError:
            with pytest.raises(ValueError):
                Checkpoint.setup_filename_pattern(*flags)
        else:
            assert Checkpoint.setup_filename_pattern(*flags) == expected


# -- rotation, scores, last_checkpoint ----------------------------------------------


@needs_torch
def test_rotation_keeps_last_n_saved(tmp_path):
    engine = _engine()
    checkpoint = Checkpoint({"model": _model()}, DiskSaver(tmp_path), n_saved=2)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    engine.run([0, 1], max_epochs=5)
    assert _listing(tmp_path) == ["model_10.pt", "model_8.pt"]
    assert checkpoint.last_checkpoint == tmp_path / "model_10.pt"


@needs_torch
def test_n_saved_none_keeps_all(tmp_path):
    engine = _engine()
    engine.add_event_handler(Events.EPOCH_COMPLETED, Checkpoint({"m": _model()}, tmp_path, n_saved=None))
    engine.run([0], max_epochs=4)
    assert _listing(tmp_path) == ["m_1.pt", "m_2.pt", "m_3.pt", "m_4.pt"]


@needs_torch
def test_best_by_score_kept(tmp_path):
    scores = [0.5, 0.9, 0.2, 0.95, 0.1]
    engine = _engine()
    checkpoint = Checkpoint(
        {"model": _model()},
        DiskSaver(tmp_path),
        n_saved=2,
        score_function=lambda e: scores[e.state.epoch - 1],
        score_name="acc",
    )
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    engine.run([0], max_epochs=len(scores))
    assert _listing(tmp_path) == ["model_acc=0.9000.pt", "model_acc=0.9500.pt"]
    # ignite's last_checkpoint: the highest priority, not the most recent write
    assert checkpoint.last_checkpoint == tmp_path / "model_acc=0.9500.pt"


@needs_torch
@pytest.mark.parametrize("greater_or_equal, kept", [(False, "m_1_0.5000.pt"), (True, "m_3_0.5000.pt")])
def test_score_ties(tmp_path, greater_or_equal, kept):
    engine = _engine()
    engine.add_event_handler(
        Events.EPOCH_COMPLETED,
        Checkpoint(
            {"m": _model()},
            tmp_path,
            score_function=lambda e: 0.5,
            greater_or_equal=greater_or_equal,
            global_step_transform=lambda e, ev: e.state.epoch,
        ),
    )
    engine.run([0], max_epochs=3)
    assert _listing(tmp_path) == [kept]


@needs_torch
def test_custom_save_handler_gets_metadata_and_remove(tmp_path):
    calls, removed = [], []

    class Handler(ck.BaseSaveHandler):
        def __call__(self, checkpoint, filename, metadata=None):
            calls.append((sorted(checkpoint), filename, metadata))

        def remove(self, filename):
            removed.append(filename)

    checkpoint = Checkpoint(
        {"a": _model(), "b": _model()},
        Handler(),
        filename_prefix="p",
        score_function=lambda e: e.state.epoch,
        score_name="ep",
    )
    engine = _engine()
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    engine.run([0], max_epochs=2)
    assert calls[-1] == (
        ["a", "b"],
        "p_checkpoint_ep=2.pt",
        {"basename": "p_checkpoint", "score_name": "ep", "priority": 2},
    )
    assert removed == ["p_checkpoint_ep=1.pt"]
    assert checkpoint.last_checkpoint == "p_checkpoint_ep=2.pt"


@needs_torch
def test_saved_checkpoint_event_fires(tmp_path):
    engine = _engine()
    checkpoint = Checkpoint({"m": _model()}, tmp_path, score_function=lambda e: e.state.epoch % 2)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    engine.register_events(*ck.CheckpointEvents)
    fired = []
    engine.add_event_handler(Checkpoint.SAVED_CHECKPOINT, lambda e: fired.append(e.state.epoch))
    engine.run([0], max_epochs=4)
    assert fired == [1]  # later epochs score 0 or tie at 1: not saved, not fired


@needs_torch
def test_state_dict_and_reset(tmp_path):
    engine = _engine()
    checkpoint = Checkpoint({"m": _model()}, tmp_path, n_saved=2)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    engine.run([0], max_epochs=3)
    sd = checkpoint.state_dict()
    assert sd == {"_saved": [(2, "m_2.pt"), (3, "m_3.pt")]}

    # a resumed checkpointer keeps rotating the earlier run's files
    resumed = Checkpoint({"m": _model()}, DiskSaver(tmp_path, require_empty=False), n_saved=2)
    resumed.load_state_dict(sd)
    engine2 = _engine()
    engine2.add_event_handler(Events.EPOCH_COMPLETED, resumed)
    engine2.load_state_dict({"epoch": 3, "epoch_length": 1, "max_epochs": 3})
    engine2.run([0], max_epochs=4)
    assert _listing(tmp_path) == ["m_3.pt", "m_4.pt"]

    resumed.reset()
    assert resumed.last_checkpoint is None and resumed.state_dict() == {"_saved": []}
    with pytest.raises(ValueError, match="_saved"):
        resumed.load_state_dict({"x": 1})
    with pytest.raises(TypeError):
        resumed.load_state_dict([1])


def test_get_default_score_fn():
    engine = _engine()
    engine.state.metrics = {"loss": 0.25}
    assert Checkpoint.get_default_score_fn("loss", -1.0)(engine) == -0.25
    assert Checkpoint.get_default_score_fn("loss")(engine) == 0.25
    with pytest.raises(ValueError, match="score_sign"):
        Checkpoint.get_default_score_fn("loss", 2.0)


@needs_torch
def test_global_step_from_engine(tmp_path):
    trainer = _engine()
    trainer.state.epoch, trainer.state.iteration = 7, 70
    assert global_step_from_engine(trainer)(None, Events.EPOCH_COMPLETED) == 7
    assert global_step_from_engine(trainer)(None, Events.ITERATION_COMPLETED) == 70
    assert global_step_from_engine(trainer, Events.ITERATION_COMPLETED)(None, Events.EPOCH_COMPLETED) == 70
    # used on an evaluator: files are named after the trainer's epoch
    evaluator = _engine()
    evaluator.add_event_handler(
        Events.COMPLETED,
        Checkpoint(
            {"m": _model()},
            tmp_path,
            score_function=lambda e: 1.0,
            score_name="s",
            global_step_transform=global_step_from_engine(trainer),
        ),
    )
    evaluator.run([0], max_epochs=1)
    assert _listing(tmp_path) == ["m_7_s=1.0000.pt"]


# -- load_objects --------------------------------------------------------------------


def _train(engine, batch):
    model, opt = engine.state.objects
    opt.zero_grad()
    loss = model(torch.full((4, 3), float(batch))).pow(2).mean()
    loss.backward()
    opt.step()


def _make_run(seed):
    model = _model(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    trainer = Engine(_train)
    trainer.state.objects = (model, opt)
    return model, opt, trainer


@needs_torch
def test_load_objects_round_trip_resumes_same_state(tmp_path):
    data = [1, 2, 3, 4]
    # Reference: 4 epochs straight.
    ref_model, _, ref_trainer = _make_run(0)
    ref_trainer.run(data, max_epochs=4)

    # Interrupted run: 2 epochs, checkpointed.
    model, opt, trainer = _make_run(0)
    checkpoint = Checkpoint({"model": model, "optimizer": opt, "trainer": trainer}, tmp_path, n_saved=1)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    trainer.run(data, max_epochs=2)
    path = checkpoint.last_checkpoint
    assert path == tmp_path / "checkpoint_8.pt"

    # Fresh objects with other weights, resumed from the file.
    model2, opt2, trainer2 = _make_run(1)
    to_load = {"model": model2, "optimizer": opt2, "trainer": trainer2}
    Checkpoint.load_objects(to_load, str(path))
    assert trainer2.state.epoch == 2 and trainer2.state.iteration == 8
    assert opt2.state_dict()["state"][0]["step"] == 8
    trainer2.run(data, max_epochs=4)
    for a, b in zip(model2.parameters(), ref_model.parameters()):
        assert torch.equal(a, b)

    # Path objects and already loaded dicts work too.
    Checkpoint.load_objects({"model": model2}, torch.load(path))
    Checkpoint.load_objects(to_load, path)


@needs_torch
def test_load_objects_single_object_state_dict(tmp_path):
    source, target = _model(0), _model(1)
    engine = _engine()
    checkpoint = Checkpoint({"model": source}, tmp_path)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    engine.run([0], max_epochs=1)
    # The file holds the model's own state dict; any single key loads it.
    Checkpoint.load_objects({"net": target}, checkpoint.last_checkpoint)
    assert torch.equal(source.weight, target.weight)
    # kwargs reach nn.Module.load_state_dict
    other = _model(2)
    Checkpoint.load_objects({"x": other}, {"weight": source.weight.detach()}, strict=False)
    assert torch.equal(other.weight, source.weight)


@needs_torch
def test_include_self_and_engine_in_to_save(tmp_path):
    engine = _engine()
    checkpoint = Checkpoint({"trainer": engine, "model": _model()}, tmp_path, include_self=True, n_saved=2)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    engine.run([0, 1], max_epochs=3)
    saved = torch.load(checkpoint.last_checkpoint)
    assert saved["checkpointer"] == {"_saved": [(4, "checkpoint_4.pt"), (6, "checkpoint_6.pt")]}
    restored = Checkpoint(
        {"trainer": _engine(), "model": _model()},
        DiskSaver(tmp_path, require_empty=False),
        include_self=True,
        n_saved=2,
    )
    trainer = _engine()
    Checkpoint.load_objects({"trainer": trainer, "checkpointer": restored}, checkpoint.last_checkpoint)
    assert restored.state_dict() == checkpoint.state_dict()
    assert (trainer.state.epoch, trainer.state.iteration) == (3, 6)


@needs_torch
def test_load_objects_missing_key_names_it(tmp_path):
    m, target = _model(0), _model(5)
    ckpt = {"model": m.state_dict(), "other": {}}
    before = target.weight.detach().clone()
    with pytest.raises(ValueError, match="'optimizer'"):
        Checkpoint.load_objects({"model": target, "optimizer": torch.optim.SGD(m.parameters(), 0.1)}, ckpt)
    assert torch.equal(target.weight, before)  # keys are checked before anything loads
    with pytest.raises(TypeError, match="checkpoint"):
        Checkpoint.load_objects({"model": m}, 5)
    with pytest.raises(TypeError, match="load_state_dict"):
        Checkpoint.load_objects({"model": 1}, ckpt)


@needs_torch
def test_reload_objects(tmp_path):
    model = _model(0)
    engine = _engine()
    checkpoint = Checkpoint({"m": model}, tmp_path, n_saved=2, filename_prefix="p")
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    engine.run([0], max_epochs=3)
    target = _model(1)
    checkpoint.reload_objects({"m": target}, global_step=2)
    assert torch.equal(target.weight, model.weight)
    checkpoint.reload_objects({"m": _model(1)})  # no components: the last checkpoint
    with pytest.raises(FileNotFoundError):
        checkpoint.reload_objects({"m": target}, global_step=1)


# -- model checkpoint ------------------------------------------------------------------


@needs_torch
def test_model_checkpoint(tmp_path):
    engine = _engine()
    mc = ModelCheckpoint(tmp_path, "run", n_saved=2)
    model = _model()
    engine.add_event_handler(Events.EPOCH_COMPLETED, mc, {"model": model})
    engine.run([0, 1], max_epochs=3)
    assert _listing(tmp_path) == ["run_model_4.pt", "run_model_6.pt"]
    assert mc.last_checkpoint == tmp_path / "run_model_6.pt"
    with pytest.raises(RuntimeError, match="No objects"):
        mc(engine, {})
    with pytest.raises(TypeError, match="state_dict"):
        mc(engine, {"x": 1})
    with pytest.raises(ValueError, match="require_empty"):
        ModelCheckpoint(tmp_path, "run")


# -- argument validation ---------------------------------------------------------------


@needs_torch
def test_argument_validation(tmp_path):
    m = _model()
    with pytest.raises(TypeError, match="to_save"):
        Checkpoint([m], tmp_path)
    with pytest.raises(TypeError, match="state_dict"):
        Checkpoint({"a": 1}, tmp_path)
    with pytest.raises(TypeError, match="save_handler"):
        Checkpoint({"a": m}, 5)
    with pytest.raises(ValueError, match="score_function"):
        Checkpoint({"a": m}, tmp_path, score_name="acc")
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n_saved must be a positive integer or None"):
            Checkpoint({"a": m}, tmp_path, n_saved=bad)
    for bad in ("x", 1.5, True):
        with pytest.raises(TypeError, match="n_saved"):
            Checkpoint({"a": m}, tmp_path, n_saved=bad)
    with pytest.raises(TypeError, match="global_step_transform"):
        Checkpoint({"a": m}, tmp_path, global_step_transform=3)
    with pytest.raises(ValueError, match="checkpointer"):
        Checkpoint({"checkpointer": m}, tmp_path, include_self=True)

    engine = _engine()
    engine.add_event_handler(Events.EPOCH_COMPLETED, Checkpoint({"a": m}, tmp_path, score_function=lambda e: "high"))
    with pytest.raises(ValueError, match="score_function should be a number"):
        engine.run([0], max_epochs=1)


# -- DiskSaver ---------------------------------------------------------------------------


@needs_torch
def test_require_empty(tmp_path):
    (tmp_path / "old.pt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / f"{ck.TMP_PREFIX}abc{ck.TMP_SUFFIX}").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\['old.pt'\] with extension '.pt'.*require_empty=False"):
        DiskSaver(tmp_path)
    DiskSaver(tmp_path, require_empty=False)
    os.remove(tmp_path / "old.pt")
    DiskSaver(tmp_path)  # a leftover temp file and other files do not count


def test_create_dir(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        DiskSaver(tmp_path / "missing", create_dir=False)
    DiskSaver(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


@needs_torch
@pytest.mark.parametrize("atomic", [True, False])
def test_disk_saver_writes_and_removes(tmp_path, atomic):
    saver = DiskSaver(tmp_path, atomic=atomic)
    saver({"a": 1}, "x.pt")
    assert torch.load(tmp_path / "x.pt") == {"a": 1}
    assert _listing(tmp_path) == ["x.pt"]  # no temp file left
    mode = os.stat(tmp_path / "x.pt").st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    saver.remove("x.pt")
    assert _listing(tmp_path) == []


def _save_epochs(tmp_path, epochs):
    model = _model()
    engine = _engine()
    checkpoint = Checkpoint({"model": model}, DiskSaver(tmp_path, require_empty=False), n_saved=2)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    engine.run([0], max_epochs=epochs)
    return checkpoint, model


@needs_torch
def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    checkpoint, model = _save_epochs(tmp_path, 1)
    good = tmp_path / "model_1.pt"
    good_bytes = good.read_bytes()

    real_save = torch.save

    def torn_save(obj, f, **kwargs):
        import io

        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    engine = _engine()
    engine.load_state_dict({"epoch": 1, "epoch_length": 1, "max_epochs": 1})
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    with pytest.raises(OSError, match="disk full"):
        engine.run([0], max_epochs=2)
    assert _listing(tmp_path) == ["model_1.pt"]  # neither model_2.pt nor a temp file
    assert good.read_bytes() == good_bytes
    Checkpoint.load_objects({"model": _model(3)}, good)


@needs_torch
def test_crash_overwriting_same_name_keeps_old_file(tmp_path, monkeypatch):
    saver = DiskSaver(tmp_path)
    saver({"v": 1}, "ck.pt")
    monkeypatch.setattr(torch, "save", lambda obj, f, **kw: (f.write(b"PK\x03\x04half"), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        saver({"v": 2}, "ck.pt")
    assert torch.load(tmp_path / "ck.pt") == {"v": 1}


@needs_torch
def test_sigkill_mid_write_leaves_no_torn_file(tmp_path):
    """A process killed (SIGKILL: no cleanup runs) half way through writing epoch 2."""
    script = textwrap.dedent(
        f"""
        import io, os, signal, torch
        from fastignite import Engine, Events
        from fastignite.handlers.checkpoint import Checkpoint, DiskSaver

        model = torch.nn.Linear(300, 300)
        engine = Engine(lambda e, b: None)
        checkpoint = Checkpoint({{"model": model}}, DiskSaver({str(tmp_path)!r}), n_saved=2)
        engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
        real_save = torch.save

        def dying_save(obj, f, **kw):
            if engine.state.epoch < 2:
                return real_save(obj, f, **kw)
            buf = io.BytesIO()
            real_save(obj, buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        torch.save = dying_save
        engine.run([0], max_epochs=3)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    names = _listing(tmp_path)
    finals = [n for n in names if n.endswith(".pt")]
    assert finals == ["model_1.pt"]
    # the torn write is only under a temp name, which no loader or require_empty picks up
    assert all(n.startswith(ck.TMP_PREFIX) and n.endswith(ck.TMP_SUFFIX) for n in set(names) - {"model_1.pt"})
    assert len(names) == 2
    Checkpoint.load_objects({"model": torch.nn.Linear(300, 300)}, tmp_path / "model_1.pt")
    with pytest.raises(ValueError, match="require_empty"):
        DiskSaver(tmp_path)
    os.remove(tmp_path / "model_1.pt")
    DiskSaver(tmp_path)


# -- unreadable files ----------------------------------------------------------------------


def _one_checkpoint(tmp_path):
    checkpoint, _ = _save_epochs(tmp_path, 1)
    return checkpoint.last_checkpoint


@needs_torch
@pytest.mark.parametrize("keep", [0.5, 0.99, 0.1])
def test_truncated_file_raises_checkpoint_error(tmp_path, keep):
    path = _one_checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=f"checkpoint file '{path}' is truncated or corrupt"):
        Checkpoint.load_objects({"model": _model()}, path)


@needs_torch
@pytest.mark.parametrize("content", [b"garbage" * 100, b"\x80garbage", b"", b"PK\x03\x04" + b"\0" * 50])
def test_garbage_file_raises_checkpoint_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"'{path}'") as info:
        Checkpoint.load_objects({"model": _model()}, str(path))
    assert isinstance(info.value, ValueError)


@needs_torch
def test_non_checkpoint_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "five.pt"
    torch.save(5, path)
    with pytest.raises(CheckpointError, match="is not a checkpoint: it holds a int"):
        Checkpoint.load_objects({"model": _model()}, path)


@needs_torch
def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        Checkpoint.load_objects({"model": _model()}, tmp_path / "nope.pt")


# -- without torch -----------------------------------------------------------------------


class _Counter:
    """A checkpointable object that is not torch's."""

    def __init__(self, n=0):
        self.n = n

    def state_dict(self):
        return {"n": self.n, "history": [self.n] * 2}

    def load_state_dict(self, sd):
        self.n = sd["n"]


@pytest.fixture
def no_torch(monkeypatch):
    def refuse():
        raise ImportError("No module named 'torch' (simulated)")

    monkeypatch.setattr(ck, "_import_torch", refuse)


def test_import_does_not_import_torch():
    code = "import sys, fastignite.handlers.checkpoint; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_pickle_fallback_round_trip(tmp_path, no_torch):
    counter, engine = _Counter(), _engine()

    @engine.on(Events.ITERATION_COMPLETED)
    def count(e):
        counter.n += 1

    checkpoint = Checkpoint({"counter": counter, "trainer": engine}, tmp_path, n_saved=2, include_self=True)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    engine.run([0, 1, 2], max_epochs=3)
    assert _listing(tmp_path) == ["checkpoint_6.pkl", "checkpoint_9.pkl"]
    assert checkpoint.last_checkpoint == tmp_path / "checkpoint_9.pkl"

    restored, trainer = _Counter(), _engine()
    Checkpoint.load_objects({"counter": restored, "trainer": trainer}, checkpoint.last_checkpoint)
    assert restored.n == 9 and trainer.state.iteration == 9 and trainer.state.epoch == 3

    with pytest.raises(ValueError, match=r"'checkpoint_6.pkl'.*'.pkl'"):
        DiskSaver(tmp_path)

    path = checkpoint.last_checkpoint
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        Checkpoint.load_objects({"counter": restored}, path)


def test_pickle_fallback_refuses_code(tmp_path, no_torch):
    import pickle

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": os.system}, protocol=4))
    with pytest.raises(CheckpointError, match="refusing to load"):
        Checkpoint.load_objects({"x": _Counter()}, path)


@needs_torch
def test_torch_file_without_torch(tmp_path, no_torch):
    path = tmp_path / "t.pt"
    torch.save({"n": 1}, path)
    with pytest.raises(CheckpointError, match="torch is not importable"):
        Checkpoint.load_objects({"n": _Counter()}, path)


class _SecondSaveFails:
    """A checkpointable object whose second state dict cannot be saved."""

    def __init__(self) -> None:
        self.calls = 0

    def state_dict(self) -> dict:
        self.calls += 1
        return {"f": (lambda: 0)} if self.calls == 2 else {"v": self.calls}

    def load_state_dict(self, state_dict: dict) -> None:
        pass


@needs_torch
def test_a_failed_save_keeps_the_previous_checkpoint_and_list(tmp_path):
    checkpoint = Checkpoint({"m": _SecondSaveFails()}, DiskSaver(str(tmp_path)), n_saved=1)
    engine = _engine()
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    # A lambda cannot be pickled: whatever the format's own error is, the save fails.
    with pytest.raises(Exception):  # noqa: B017
        engine.run([0], max_epochs=2)
    assert _listing(tmp_path) == ["m_1.pt"]
    assert [item.filename for item in checkpoint._saved] == ["m_1.pt"]
    assert os.path.exists(checkpoint.last_checkpoint)


@needs_torch
def test_a_type_error_inside_a_three_argument_saver_is_not_retried(tmp_path):
    calls = []

    def saver(checkpoint, filename, metadata):
        calls.append(filename)
        raise TypeError("the saver's own bug")

    checkpoint = Checkpoint({"m": _model()}, saver)
    engine = _engine()
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    with pytest.raises(TypeError, match="the saver's own bug"):
        engine.run([0], max_epochs=1)
    assert len(calls) == 1 and checkpoint._saved == []
