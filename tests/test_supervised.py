"""fastignite's supervised factories against pytorch-ignite 0.5.5's, run side by side.

Every comparison builds the same seeded model / optimizer / data twice, once for
ignite and once for fastignite, and requires bitwise-equal results: per-iteration
outputs, final parameters, metrics, and the type (and message) of every error.
"""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
import warnings
from collections import namedtuple

import pytest

# Every test but one compares with ignite, and torch objects appear in the parameters
# themselves; that one (import fastignite imports no torch) is also test_import.py's.
torch = pytest.importorskip("torch", reason="needs torch")
ignite_engine = pytest.importorskip("ignite.engine", reason="needs pytorch-ignite 0.5.5")

from ignite.metrics import Accuracy, Loss, MeanSquaredError  # noqa: E402

import fastignite  # noqa: E402
import fastignite.supervised as fsup  # noqa: E402

NAMES = (
    "create_supervised_trainer",
    "create_supervised_evaluator",
    "supervised_training_step",
    "supervised_training_step_amp",
    "supervised_training_step_apex",
    "supervised_training_step_tpu",
    "supervised_evaluation_step",
    "supervised_evaluation_step_amp",
)

HAS_APEX = importlib.util.find_spec("apex") is not None
HAS_XLA = importlib.util.find_spec("torch_xla") is not None


# -- helpers -------------------------------------------------------------------


def _setup(seed=0, momentum=0.9, n=24, batch=4):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(8, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=momentum)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, 5, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    data = [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]
    return model, optimizer, data


def _run_trainer(lib, seed=0, max_epochs=2, run_seed=123, **kwargs):
    """Losses per iteration and final parameters of a trainer built by ``lib``."""
    model, optimizer, data = _setup(seed)
    trainer = lib.create_supervised_trainer(model, optimizer, torch.nn.functional.cross_entropy, **kwargs)
    outputs = []
    trainer.add_event_handler(ignite_engine.Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output))
    torch.manual_seed(run_seed)  # dropout draws
    trainer.run(data, max_epochs=max_epochs)
    params = [p.detach().clone() for p in model.parameters()]
    return trainer, outputs, params


def _same_tensors(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert torch.equal(u, v), (u, v)


def _compare_trainers(**kwargs):
    t_ref, out_ref, p_ref = _run_trainer(ignite_engine, **kwargs)
    t_fi, out_fi, p_fi = _run_trainer(fastignite, **kwargs)
    assert isinstance(t_fi, fastignite.Engine)
    assert out_fi == out_ref  # floats from loss.item(): bitwise equality
    _same_tensors(p_fi, p_ref)
    return t_ref, t_fi, out_ref


def _raised(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception as e:
        return e
    raise AssertionError(f"{fn} did not raise")


def _same_error(call):
    """``call(lib)`` raises the same exception type and message for both libraries."""
    ref = _raised(call, ignite_engine)
    got = _raised(call, fastignite)
    assert type(got) is type(ref), (got, ref)
    assert str(got) == str(ref)
    return got


# -- API surface ---------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_ignite(name):
    ours = inspect.signature(getattr(fastignite, name)).parameters
    theirs = inspect.signature(getattr(ignite_engine, name)).parameters
    assert list(ours) == list(theirs)
    for p_name, p in theirs.items():
        q = ours[p_name]
        assert q.kind == p.kind
        if p.default is inspect.Parameter.empty or not callable(p.default):
            assert q.default == p.default, p_name
        else:
            assert callable(q.default), p_name


def test_lazy_names_resolve_to_supervised_module():
    for name in NAMES:
        assert getattr(fastignite, name) is getattr(fsup, name)


def test_import_fastignite_does_not_import_torch():
    code = "import sys, fastignite; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


# -- trainer -------------------------------------------------------------------


@pytest.mark.parametrize("gas", [1, 2, 3, 5])
def test_trainer_matches_ignite_bitwise(backend, gas):
    _compare_trainers(gradient_accumulation_steps=gas)


def test_trainer_defaults(backend):
    t_ref, t_fi, out = _compare_trainers()
    assert all(isinstance(o, float) for o in out)
    assert not hasattr(t_fi.state, "scaler") and not hasattr(t_ref.state, "scaler")


def test_trainer_device_cpu_and_non_blocking(backend):
    _compare_trainers(device="cpu", non_blocking=True)
    _compare_trainers(device=torch.device("cpu"))


def test_trainer_custom_callables(backend):
    calls = {"ignite": [], "fast": []}

    def make(tag):
        def prepare_batch(batch, device, non_blocking):
            calls[tag].append((device, non_blocking))
            x, y = batch
            return {"inp": x * 2.0}, y

        def model_fn(model, x):
            return (model(x["inp"]), "extra")

        def model_transform(output):
            return output[0]

        def output_transform(x, y, y_pred, loss):
            return (loss.detach().clone(), y_pred.detach().clone(), y.clone(), loss.requires_grad)

        return dict(
            prepare_batch=prepare_batch,
            model_fn=model_fn,
            model_transform=model_transform,
            output_transform=output_transform,
            device="cpu",
            non_blocking=True,
            gradient_accumulation_steps=2,
        )

    _, out_ref, p_ref = _run_trainer(ignite_engine, **make("ignite"))
    _, out_fi, p_fi = _run_trainer(fastignite, **make("fast"))
    assert calls["fast"] == calls["ignite"] == [("cpu", True)] * len(calls["fast"])
    assert len(out_fi) == len(out_ref)
    for a, b in zip(out_fi, out_ref):
        _same_tensors(a[:3], b[:3])
        assert a[3] == b[3]
    _same_tensors(p_fi, p_ref)


def test_trainer_unknown_amp_mode_falls_back_to_plain_step(backend):
    _compare_trainers(amp_mode="something")


def test_trainer_engine_state_and_model_mode(backend):
    model, optimizer, data = _setup()
    model.eval()
    trainer = fastignite.create_supervised_trainer(model, optimizer, torch.nn.functional.cross_entropy)
    modes = []
    trainer.add_event_handler(fastignite.Events.ITERATION_COMPLETED, lambda e: modes.append(model.training))
    state = trainer.run(data, max_epochs=1)
    assert all(modes) and state.iteration == len(data)


def test_step_functions_usable_directly(backend):
    ref_model, ref_opt, data = _setup()
    model, opt, _ = _setup()
    ref_update = ignite_engine.supervised_training_step(ref_model, ref_opt, torch.nn.functional.cross_entropy)
    update = fastignite.supervised_training_step(model, opt, torch.nn.functional.cross_entropy)
    ref_engine, engine = ignite_engine.Engine(ref_update), fastignite.Engine(update)
    torch.manual_seed(5)
    ref_state = ref_engine.run(data, max_epochs=3)
    torch.manual_seed(5)
    state = engine.run(data, max_epochs=3)
    assert state.output == ref_state.output
    _same_tensors(list(model.parameters()), list(ref_model.parameters()))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("scaler", [False, True, "instance"])
@pytest.mark.parametrize("gas", [1, 3])
def test_trainer_amp_on_cpu_matches_ignite(backend, scaler, gas):
    """ignite autocasts for "cuda" whatever the device: on a CPU-only machine
    autocast (and a default GradScaler) disable themselves with a warning."""

    def kwargs():
        s = torch.amp.GradScaler("cpu", enabled=False) if scaler == "instance" else scaler
        return dict(amp_mode="amp", scaler=s, gradient_accumulation_steps=gas)

    t_ref, out_ref, p_ref = _run_trainer(ignite_engine, **kwargs())
    t_fi, out_fi, p_fi = _run_trainer(fastignite, **kwargs())
    assert out_fi == out_ref
    _same_tensors(p_fi, p_ref)
    assert hasattr(t_fi.state, "scaler") == hasattr(t_ref.state, "scaler") == (scaler is True)
    if scaler is True:
        assert type(t_fi.state.scaler) is type(t_ref.state.scaler)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_amp_step_uses_scaler_instance(backend):
    class Recorder:
        def __init__(self):
            self.calls = []

        def scale(self, loss):
            self.calls.append("scale")
            return loss

        def step(self, optimizer):
            self.calls.append("step")
            optimizer.step()

        def update(self):
            self.calls.append("update")

    recs = []
    for lib in (ignite_engine, fastignite):
        model, opt, data = _setup()
        rec = Recorder()
        update = lib.supervised_training_step_amp(
            model, opt, torch.nn.functional.cross_entropy, scaler=rec, gradient_accumulation_steps=2
        )
        fastignite.Engine(update).run(data[:4], max_epochs=1)
        recs.append(rec.calls)
    assert recs[0] == recs[1] == ["scale", "scale", "step", "update"] * 2


@pytest.mark.skipif(importlib.util.find_spec("fastignite.deterministic") is None, reason="no fastignite.deterministic")
def test_trainer_deterministic(backend):
    from fastignite.deterministic import DeterministicEngine

    t_ref, t_fi, _ = _compare_trainers(deterministic=True)
    assert isinstance(t_fi, DeterministicEngine)
    assert type(t_ref).__name__ == "DeterministicEngine"


# -- evaluator -----------------------------------------------------------------


def _run_evaluator(lib, **kwargs):
    model, _, data = _setup()
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    metrics = {"acc": Accuracy(), "nll": Loss(torch.nn.functional.cross_entropy)}
    evaluator = lib.create_supervised_evaluator(model, metrics=metrics, **kwargs)
    outputs = []
    evaluator.add_event_handler(ignite_engine.Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output))
    state = evaluator.run(data)
    return evaluator, state, outputs, model, metrics


@pytest.mark.parametrize("kwargs", [{}, {"device": "cpu"}, {"device": torch.device("cpu"), "non_blocking": True}])
def test_evaluator_with_ignite_metrics_matches_ignite(backend, kwargs):
    _, ref_state, ref_out, _, _ = _run_evaluator(ignite_engine, **kwargs)
    ev, state, out, model, metrics = _run_evaluator(fastignite, **kwargs)
    assert isinstance(ev, fastignite.Engine)
    assert state.metrics == ref_state.metrics
    assert set(state.metrics) == {"acc", "nll"}
    for (yp, y), (ryp, ry) in zip(out, ref_out):
        _same_tensors([yp, y], [ryp, ry])
        assert not yp.requires_grad
    assert not model.training
    for metric in metrics.values():
        assert metric.is_attached(ev)
        metric.detach(ev)
        assert not metric.is_attached(ev)


def test_evaluator_custom_callables(backend):
    def kwargs():
        return dict(
            prepare_batch=lambda batch, device, non_blocking: (batch[0] + 1.0, batch[1]),
            model_fn=lambda model, x: [model(x)],
            model_transform=lambda out: out[0],
            output_transform=lambda x, y, y_pred: (-y_pred, y),
        )

    model, _, data = _setup()
    res = []
    for lib in (ignite_engine, fastignite):
        acc = Accuracy()
        ev = lib.create_supervised_evaluator(model, metrics={"acc": acc}, **kwargs())
        res.append(ev.run(data).metrics)
    assert res[0] == res[1]


def test_evaluator_no_metrics_and_mse(backend):
    model = torch.nn.Linear(1, 1, bias=False)
    model.weight.data.zero_()
    data = [(torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [4.0]]))]
    ev = fastignite.create_supervised_evaluator(model, metrics={"mse": MeanSquaredError()})
    assert ev.run(data).metrics["mse"] == 12.5
    ev = fastignite.create_supervised_evaluator(model)
    y_pred, y = ev.run(data).output
    assert y_pred.tolist() == [[0.0], [0.0]] and y.tolist() == [[3.0], [4.0]]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_evaluator_amp_on_cpu_matches_ignite(backend):
    _, ref_state, ref_out, _, _ = _run_evaluator(ignite_engine, amp_mode="amp")
    _, state, out, _, _ = _run_evaluator(fastignite, amp_mode="amp")
    assert state.metrics == ref_state.metrics
    for a, b in zip(out, ref_out):
        _same_tensors(list(a), list(b))


def test_evaluation_step_amp_uses_torch_amp_autocast(backend, monkeypatch):
    entered = []

    class FakeAutocast:
        def __init__(self, device_type, enabled=True):
            entered.append((device_type, enabled))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.amp, "autocast", FakeAutocast)
    model, _, data = _setup()
    fastignite.Engine(fastignite.supervised_evaluation_step_amp(model)).run(data[:2])
    fastignite.Engine(fastignite.supervised_evaluation_step(model)).run(data[:2])
    assert entered == [("cuda", True)] * 2


# -- default prepare_batch -----------------------------------------------------


def test_default_prepare_batch_matches_ignite():
    Pair = namedtuple("Pair", "a b")
    t = torch.arange(3.0)
    batch = ({"a": [t, (t, "s")], "b": Pair(t, b"x")}, [t])
    for device in (None, "cpu"):
        ref = ignite_engine._prepare_batch(batch, device=device, non_blocking=False)
        got = fsup._prepare_batch(batch, device=device, non_blocking=False)
        assert type(got) is type(ref) and repr(got) == repr(ref)
        assert type(got[0]["b"]) is Pair
    bad = (t, 3)
    assert type(_raised(fsup._prepare_batch, bad)) is type(_raised(ignite_engine._prepare_batch, bad)) is TypeError
    assert type(_raised(fsup._prepare_batch, (t,))) is type(_raised(ignite_engine._prepare_batch, (t,)))


# -- errors --------------------------------------------------------------------


def _trainer_call(**kwargs):
    def call(lib):
        model, optimizer, _ = _setup()
        return lib.create_supervised_trainer(model, optimizer, torch.nn.functional.cross_entropy, **kwargs)

    return call


def _evaluator_call(**kwargs):
    def call(lib):
        model, _, _ = _setup()
        return lib.create_supervised_evaluator(model, **kwargs)

    return call


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gradient_accumulation_steps": 0},
        {"gradient_accumulation_steps": -2},
        {"gradient_accumulation_steps": 0, "amp_mode": "amp"},
        {"scaler": True},
        {"scaler": True, "amp_mode": "apex"},
        {"amp_mode": "amp", "device": "mps"},
        {"amp_mode": "amp", "device": torch.device("mps")},
        {"device": "xla"} if not HAS_XLA else {"device": "xla", "amp_mode": "amp"},
        {"device": 0},
    ],
    ids=repr,
)
def test_trainer_argument_errors_match_ignite(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _same_error(_trainer_call(**kwargs))


@pytest.mark.parametrize(
    "kwargs",
    [{"amp_mode": "amp", "device": "mps"}, {"amp_mode": "apex", "device": "mps"}, {"device": "xla"}],
    ids=repr,
)
def test_evaluator_argument_errors_match_ignite(kwargs):
    if HAS_XLA and kwargs.get("device") == "xla":
        pytest.skip("torch_xla installed")
    _same_error(_evaluator_call(**kwargs))


@pytest.mark.skipif(HAS_APEX, reason="apex installed")
def test_apex_missing_is_a_clear_error():
    err = _same_error(_trainer_call(amp_mode="apex"))
    assert isinstance(err, ModuleNotFoundError)
    assert "apex" in str(err) and "https://github.com/nvidia/apex" in str(err)
    err = _same_error(lambda lib: lib.supervised_training_step_apex(None, None, None))
    assert isinstance(err, ModuleNotFoundError)


@pytest.mark.skipif(HAS_XLA, reason="torch_xla installed")
def test_tpu_missing_is_a_clear_error():
    err = _same_error(lambda lib: lib.supervised_training_step_tpu(model=None, optimizer=None, loss_fn=None))
    assert isinstance(err, ModuleNotFoundError) and "torch_xla" in str(err)
    err = _same_error(_trainer_call(device="xla:0"))
    assert isinstance(err, RuntimeError) and "PyTorch XLA" in str(err)


def test_missing_torch_amp_errors_match_ignite(monkeypatch):
    for mod in ("torch.amp", "torch.cuda.amp", "torch.amp.autocast_mode"):
        monkeypatch.setitem(sys.modules, mod, None)
    for call in (
        _trainer_call(amp_mode="amp"),
        _trainer_call(amp_mode="amp", gradient_accumulation_steps=0),
        _trainer_call(amp_mode="amp", scaler=True),
        _evaluator_call(amp_mode="amp"),
    ):
        assert isinstance(_same_error(call), ImportError)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_check_arg_matches_ignite():
    for on_tpu in (False, True):
        for on_mps in (False, True):
            for amp_mode in (None, "amp", "apex", "x"):
                for scaler in (None, False, True):
                    args = (on_tpu, on_mps, amp_mode, scaler)
                    try:
                        ref = ignite_engine._check_arg(*args)
                    except Exception as e:
                        got = _raised(fsup._check_arg, *args)
                        assert type(got) is type(e) and str(got) == str(e)
                        continue
                    got = fsup._check_arg(*args)
                    assert got[0] == ref[0] and type(got[1]) is type(ref[1])
