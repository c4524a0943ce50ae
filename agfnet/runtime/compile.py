"""Compiled networks: the one place `torch.compile` is applied, with its cache kept across runs.

`resolve_compile` turns the `compile` setting of a command ("auto", true, false) into a
yes or no for a device; `compile_model` compiles a network in place, so its state dict,
its attributes and the checkpoint it is saved to stay those of the plain network.
Inductor's caches (FX graphs, autograd graphs, Triton kernels) live under
`~/.cache/agfnet/inductor` unless TORCHINDUCTOR_CACHE_DIR says otherwise, so a second
run of the same network compiles in seconds instead of minutes.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from agfnet.errors import UserError

__all__ = [
    "MODES",
    "CompileSetting",
    "compile_model",
    "compile_settings",
    "compiler_cache_dir",
    "configure_compiler",
    "maybe_compile",
    "resolve_compile",
]

log = logging.getLogger(__name__)

#: A command's `compile` setting: "auto" (on for CUDA, off elsewhere), or on / off.
CompileSetting = Literal["auto"] | bool

#: `torch.compile` modes; "reduce-overhead" adds CUDA graphs (fixed shapes pay off).
MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: Compiled graphs kept per function before Dynamo falls back to eager: training and
#: evaluation mode, a last smaller batch, frozen then unfrozen encoders each take one.
RECOMPILE_LIMIT = 16

# Where `compile_settings` finds how a network was compiled.
_MARK = "_agfnet_compile"


def compiler_cache_dir() -> Path:
    """Inductor's cache folder: TORCHINDUCTOR_CACHE_DIR when set, else
    `$XDG_CACHE_HOME/agfnet/inductor` (`~/.cache/agfnet/inductor`)."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "agfnet" / "inductor"


def configure_compiler() -> Path:
    """Point Inductor's caches at `compiler_cache_dir` and set the Dynamo limits.

    Inductor's own default is a folder under /tmp, which a reboot (or a fresh container)
    empties: every run would then compile from scratch. Safe to call more than once.

    Returns:
        The cache folder.
    """
    folder = compiler_cache_dir()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(folder))
    import torch._dynamo.config
    import torch._functorch.config
    import torch._inductor.config

    torch._inductor.config.fx_graph_cache = True  # compiled forward graphs
    torch._functorch.config.enable_autograd_cache = True  # and their backward
    torch._dynamo.config.recompile_limit = max(
        torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT
    )
    return folder


def _has_toolchain(device: torch.device) -> tuple[bool, str]:
    """Whether Inductor can generate code for `device`, and what is missing if not."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        # Triton builds its kernel launcher with the system's C compiler.
        if not has_triton():
            return False, "Triton (pip install triton)"
        return _found("CC", "cc", "gcc", "clang"), "a C compiler (gcc or clang)"
    if device.type == "cpu":
        return _found("CXX", "g++", "c++", "clang++"), "a C++ compiler (g++ or clang++)"
    return True, ""


def _found(variable: str, *names: str) -> bool:
    """Whether the program named by environment `variable`, or one of `names`, is on PATH."""
    return any(n and shutil.which(n) for n in (os.environ.get(variable), *names))


def resolve_compile(setting: CompileSetting | str, device: str | torch.device) -> bool:
    """Whether to compile for `device`.

    Args:
        setting: "auto" (on for CUDA when Triton is installed, off on the CPU and other
            devices), True or False ("true"/"false" as typed on a command line too).
        device: where the network runs.

    Returns:
        True to compile.

    Raises:
        UserError: an unknown setting, or True where the compiler's toolchain is missing.
    """
    if isinstance(setting, str) and setting.lower() in ("true", "false"):
        setting = setting.lower() == "true"
    if setting not in ("auto", True, False):
        raise UserError(f"compile={setting!r}: use auto, true or false")
    device = torch.device(device)
    if setting is False:
        return False
    ok, missing = _has_toolchain(device)
    if setting == "auto":
        if device.type == "cuda" and not ok:
            log.warning("compile=auto: %s is missing, so the network runs uncompiled", missing)
        return device.type == "cuda" and ok
    if not ok:
        raise UserError(
            f"compile=true on {device.type}: torch.compile needs {missing}; install it "
            "or set compile=false"
        )
    return True


def compile_model(
    model: nn.Module,
    mode: str = "default",
    device: str | torch.device | None = None,
    *,
    backend: str = "inductor",
    dynamic: bool | None = None,
) -> nn.Module:
    """Compile a network in place: its `forward_output` and its `forward` (`model(...)`).

    The module itself is kept (no `torch.compile` wrapper with `_orig_mod.` keys), so
    its state dict, attributes and hooks' names are unchanged and a LightningModule
    holding it saves the same checkpoint. Compilation happens at the first call, once
    per mode (training, evaluation) and input shape; a network compiled already is
    returned as it is. Run code that registers hooks or swaps methods (Grad-CAM) under
    `torch.compiler.set_stance("force_eager")`.

    Args:
        model: an `agfnet.models` network (anything with `forward_output`), or any module.
        mode: one of `MODES`; "default" fuses kernels without CUDA graphs, which suits
            training and the varying batch sizes of prediction.
        device: where it will run (checked for the compiler's toolchain); None: the
            device of its first parameter.
        backend: `torch.compile` backend: "inductor", or "aot_eager" / "eager" (tests:
            the graph capture without code generation).
        dynamic: `torch.compile`'s `dynamic`; None marks a dimension dynamic once it
            has changed (the last batch of an epoch).

    Returns:
        `model`, compiled.

    Raises:
        UserError: an unknown mode, or Inductor without its toolchain on `device`.
    """
    if compile_settings(model) is not None:
        return model
    if mode not in MODES:
        raise UserError(f"compile mode {mode!r}: use one of {', '.join(MODES)}")
    if device is None:
        device = next(model.parameters(), torch.empty(0)).device
    if backend == "inductor":
        resolve_compile(True, device)
    configure_compiler()
    options: dict[str, Any] = {"backend": backend, "dynamic": dynamic}
    if backend == "inductor":
        options["mode"] = mode
    if hasattr(model, "forward_output"):
        # An instance attribute shadows the class's method; `forward` of the models that
        # call `self.forward_output` finds it too (Dynamo traces through it).
        model.forward_output = torch.compile(model.forward_output, **options)
    model.compile(**options)
    setattr(model, _MARK, {"mode": mode, "backend": backend})
    return model


def compile_settings(model: nn.Module) -> dict[str, str] | None:
    """How `compile_model` compiled `model` (mode, backend), or None when it did not."""
    return getattr(model, _MARK, None)


def maybe_compile(
    model: nn.Module, setting: CompileSetting | str, device: str | torch.device
) -> nn.Module:
    """`model`, compiled with `compile_model` when `resolve_compile(setting, device)`
    says so, else unchanged (the compile option of evaluate, predict and serve)."""
    if resolve_compile(setting, device):
        compile_model(model, device=device)
    return model
