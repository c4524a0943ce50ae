"""`agfnet.runtime.compile`: the setting, the cache, graph breaks, agreement with eager
PyTorch, and the compile option of training, evaluation and the predictor."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from agfnet.errors import UserError
from agfnet.models import PairedClassifierLoss, create_model, list_models
from agfnet.runtime import compile as compile_mod
from agfnet.runtime.compile import (
    compile_model,
    compile_settings,
    compiler_cache_dir,
    configure_compiler,
    maybe_compile,
    resolve_compile,
)

IMG = 32
CLASSES = 3
SYNTH_CLASSES = ["BCC", "SCC", "MEL", "SK", "NEV"]  # the synthetic benchmark's
TINY_MODELS = [name for name in list_models() if name.endswith("_tiny")]

#: Graph breaks of `forward_output(..., present=mask)`, the call training and prediction
#: make: the data-dependent refusals of `ModalityEncoders._check_present` (one `int()` of
#: a tensor each, models/encoders.py). 0 once that check is skipped while compiling.
PRESENT_BREAKS = 0


@pytest.fixture(autouse=True, scope="module")
def _compile_cache(tmp_path_factory: pytest.TempPathFactory):
    """Inductor's cache in a temporary folder, not the user's ~/.cache/agfnet/inductor."""
    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("inductor"))
    yield
    if saved is None:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved


def _inputs(batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    clinical, ultrasound = (torch.randn(batch, 3, IMG, IMG, generator=gen) for _ in range(2))
    return clinical, ultrasound, torch.ones(batch, 2, dtype=torch.bool)


def _model(name: str = "agfnet_tiny", *, train: bool = False) -> torch.nn.Module:
    return create_model(name, num_classes=CLASSES, seed=0).train(train)


def _breaks(fn, *args, **kwargs) -> tuple[int, list[str]]:
    """Dynamo's graph-break count of `fn(*args, **kwargs)` and, per break, its frames."""
    import torch._dynamo

    torch._dynamo.reset()
    explained = torch._dynamo.explain(fn)(*args, **kwargs)
    frames = [
        " <- ".join(f"{Path(s.filename).name}:{s.lineno} {s.name}" for s in b.user_stack[::-1])
        for b in explained.break_reasons
    ]
    return explained.graph_break_count, frames


# The setting and the cache


def test_auto_is_off_on_the_cpu_and_false_is_off_everywhere() -> None:
    assert resolve_compile("auto", "cpu") is False
    assert resolve_compile(False, "cpu") is False
    assert resolve_compile("false", "cuda") is False


def test_auto_is_on_for_cuda_when_its_toolchain_is_there(monkeypatch) -> None:
    monkeypatch.setattr(compile_mod, "_has_toolchain", lambda device: (True, ""))
    assert resolve_compile("auto", "cuda") is True
    monkeypatch.setattr(compile_mod, "_has_toolchain", lambda device: (False, "Triton"))
    assert resolve_compile("auto", "cuda") is False


def test_true_without_a_compiler_names_what_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(compile_mod.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="C\\+\\+ compiler"):
        resolve_compile(True, "cpu")
    with pytest.raises(UserError, match="compile=true"):
        compile_model(_model(), device="cpu")


def test_unknown_settings_and_modes_are_refused() -> None:
    with pytest.raises(UserError, match="auto, true or false"):
        resolve_compile("sometimes", "cpu")
    with pytest.raises(UserError, match="reduce-overhead"):
        compile_model(_model(), mode="fastest", backend="eager")


def test_the_cache_is_kept_in_the_user_cache_folder(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compiler_cache_dir() == tmp_path / "agfnet" / "inductor"
    assert configure_compiler() == tmp_path / "agfnet" / "inductor"
    import torch._dynamo.config

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "agfnet" / "inductor")
    assert torch._dynamo.config.recompile_limit >= compile_mod.RECOMPILE_LIMIT
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert compiler_cache_dir() == tmp_path / "mine"


def test_compiling_keeps_the_module_its_state_dict_and_is_done_once() -> None:
    model = _model()
    keys = list(model.state_dict())
    assert compile_settings(model) is None
    assert compile_model(model, backend="eager") is model
    first = model.forward_output
    assert compile_model(model, backend="inductor") is model  # already compiled: unchanged
    assert model.forward_output is first
    assert compile_settings(model) == {"mode": "default", "backend": "eager"}
    assert list(model.state_dict()) == keys  # no `_orig_mod.` prefix: checkpoints unchanged


# Graph breaks (Dynamo only, no code generation: seconds on a CPU)


def test_agfnet_has_no_graph_break_in_eval_or_in_frl_training() -> None:
    clinical, ultrasound, present = _inputs()
    assert _breaks(_model(), clinical, ultrasound) == (0, [])
    train = _model(train=True)
    assert _breaks(train.forward_output, clinical, ultrasound) == (0, [])
    count, frames = _breaks(train.forward_output, clinical, ultrasound, present=present)
    assert count <= PRESENT_BREAKS, frames
    assert all("_check_present" in f for f in frames), frames


@pytest.mark.slow
@pytest.mark.parametrize("name", TINY_MODELS)
def test_no_registered_model_breaks_the_graph(name: str) -> None:
    clinical, ultrasound, present = _inputs()
    model = _model(name)
    assert _breaks(model, clinical, ultrasound) == (0, [])
    count, frames = _breaks(model.forward_output, clinical, ultrasound, present=present)
    assert count <= PRESENT_BREAKS, frames
    assert all("_check_present" in f for f in frames), frames


# Results agree with eager PyTorch


def _train_losses(model: torch.nn.Module, steps: int = 2) -> list[float]:
    """Losses of `steps` AdamW steps of `model` on one seeded batch (FRL's masks seeded)."""
    clinical, ultrasound, present = _inputs(4)
    labels = torch.tensor([0, 1, 2, 1])
    criterion = PairedClassifierLoss(aux_weight=0.5, rec_weight=1.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    torch.manual_seed(1)
    for _ in range(steps):
        loss = criterion(model.forward_output(clinical, ultrasound, present), labels)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _agree(backend: str) -> None:
    clinical, ultrasound, present = _inputs()
    eager = _model()
    compiled = compile_model(_model(), backend=backend)
    with torch.no_grad():
        expected = eager.forward_output(clinical, ultrasound, present).logits
        got = compiled.forward_output(clinical, ultrasound, present).logits
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(compiled(clinical, ultrasound), expected, atol=1e-4, rtol=1e-4)
    losses = _train_losses(compile_model(_model(train=True), backend=backend))
    assert losses == pytest.approx(_train_losses(_model(train=True)), abs=1e-4)


def test_compiled_results_agree_with_eager_in_eval_and_training() -> None:
    # The "eager" backend runs Dynamo's captured graphs (guards, outputs, the FRL pass)
    # with PyTorch's kernels; AOT autograd and Inductor's code take minutes: slow tests.
    _agree("eager")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_generated_code_agrees_with_eager_in_eval_and_training(backend: str) -> None:
    import torch._inductor.config

    # Inductor's own random numbers would draw other FRL masks than eager PyTorch.
    with torch._inductor.config.patch(fallback_random=True):
        _agree(backend)


# The compile option of training, evaluation and the predictor


def _module(compile_setting: object, monkeypatch) -> object:
    from agfnet.engine.config import load_config
    from agfnet.engine.module import PairedClassifierModule, build_network

    config = load_config("tiny", [f"trainer.compile={str(compile_setting).lower()}"])
    module = PairedClassifierModule(build_network(config, CLASSES), config, list("abc"), {})
    strategy = SimpleNamespace(root_device=torch.device("cpu"))
    monkeypatch.setattr(
        type(module), "trainer", property(lambda self: SimpleNamespace(strategy=strategy))
    )
    return module


@pytest.mark.parametrize(("setting", "compiled"), [("auto", False), (True, True), (False, False)])
def test_training_compiles_the_network_it_trains(setting, compiled, monkeypatch) -> None:
    module = _module(setting, monkeypatch)
    module.configure_model()  # Lightning's hook, called before fitting
    assert (compile_settings(module.model) is not None) is compiled
    assert all(not k.startswith("model._orig_mod") for k in module.state_dict())


def test_a_compiled_training_run_saves_a_plain_checkpoint(
    tiny_config, manifest_path: Path, tmp_path: Path, monkeypatch
) -> None:
    import torch._dynamo

    import agfnet.engine.module
    from agfnet.engine.train import fit
    from agfnet.runtime.checkpoint import load_model

    compiled = []

    def compile_eagerly(model, **kwargs):
        compiled.append(model)
        return compile_model(model, backend="eager", **kwargs)

    monkeypatch.setattr(agfnet.engine.module, "compile_model", compile_eagerly)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    result = fit(tiny_config("trainer.compile=true", epochs=1), manifest_path, tmp_path / "run")
    assert compiled and compile_settings(compiled[0]) == {"mode": "default", "backend": "eager"}
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it ran compiled
    model, _ = load_model(result.best_checkpoint)  # strict: the keys of the plain network
    assert compile_settings(model) is None


def test_maybe_compile_follows_the_setting() -> None:
    model = _model()
    assert compile_settings(maybe_compile(model, "auto", "cpu")) is None
    assert compile_settings(maybe_compile(model, True, "cpu")) == {
        "mode": "default",
        "backend": "inductor",
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised agfnet_tiny at 32 px, saved as `agfnet train` saves it."""
    from agfnet.engine.config import load_config
    from agfnet.engine.module import PairedClassifierModule, build_network
    from agfnet.engine.train import transform_config
    from agfnet.runtime.checkpoint import atomic_save

    config = load_config("tiny", [f"data.img_size={IMG}"])
    network = build_network(config, len(SYNTH_CLASSES))
    transform = transform_config(config, network).model_dump(mode="json")
    module = PairedClassifierModule(network, config, SYNTH_CLASSES, transform)
    path = tmp_path_factory.mktemp("compile") / "best.ckpt"
    meta = {"agfnet": module.checkpoint_metadata()}
    atomic_save({"state_dict": module.state_dict(), "hyper_parameters": meta}, path)
    return path


def test_the_predictor_compiles_when_asked(checkpoint: Path) -> None:
    from agfnet.inference import Predictor

    assert compile_settings(Predictor.from_checkpoint(checkpoint, device="cpu").model) is None
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", compile=True)
    assert compile_settings(predictor.model) is not None


def test_evaluate_passes_its_compile_option(checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    from agfnet.data.synth import generate
    from agfnet.workflows.evaluate import evaluate_checkpoint

    generate(tmp_path / "synth", n_per_class=1, size=IMG, seed=1, workers=1)
    asked = []
    monkeypatch.setattr(
        compile_mod, "maybe_compile", lambda model, setting, device: asked.append(setting)
    )
    evaluate_checkpoint(
        checkpoint,
        tmp_path / "synth" / "manifest.csv",
        tmp_path / "eval",
        split=None,
        device="cpu",
        compile=False,
    )
    assert asked == [False]


# The GPU measurement (runs on a CPU only without code generation)


def test_the_compiled_overhead_is_a_gpu_measurement() -> None:
    from agfnet.benchmark.gpu import measure_gpu_compiled

    assert "skipped" in measure_gpu_compiled("cpu", quick=True)


@pytest.mark.slow
def test_the_compiled_overhead_measures_both_batches_in_one_run() -> None:
    import dataclasses

    from agfnet.benchmark.common import make_plan
    from agfnet.benchmark.gpu import measure_gpu_compiled

    plan = make_plan(True, torch.device("cpu"), repeats=2)
    plan = dataclasses.replace(plan, img_size=IMG, warmup=0, gpu_batches=(2, 3))
    result = measure_gpu_compiled("cpu", quick=True, plan=plan, backend="eager")
    assert set(result["batches"]) == {"2", "3"}
    for batch in result["batches"].values():
        assert batch["train_overhead"]["n"] == batch["infer_overhead"]["n"] == 2
        assert set(batch["compile_seconds"]["agfnet"]) == {"train", "infer"}
    worst = max(b["train_overhead"]["median"] for b in result["batches"].values())
    assert result["train_overhead"] == worst
