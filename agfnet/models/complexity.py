"""Model size and cost: parameter counts and FLOPs measured with FlopCounterMode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from agfnet.models.registry import create_model, get_entry

__all__ = ["count_flops", "count_params", "model_info"]


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # FlopCounterMode knows the CUDA attention kernels but not the fused CPU one that
    # F.scaled_dot_product_attention picks on CPU; the count is the same two matmuls.
    return sdpa_flop_count(query_shape, key_shape, value_shape)


CUSTOM_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop}


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared ones counted once).

    Args:
        model: any module.
        trainable_only: count only those with requires_grad.

    Returns:
        The count.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: Callable[..., Any], *inputs: torch.Tensor) -> int:
    """FLOPs of one call `model(*inputs)` under no_grad, as FlopCounterMode counts them.

    Convention: a multiply-add is 2 FLOPs; convolutions, matrix products and attention
    are counted, elementwise ops, norms and pooling are not (as in fvcore/timm reports,
    which count the same ops but as multiply-adds, half this number).

    Args:
        model: a module or any callable (a module's mode, train or eval, is used as is).
        *inputs: its positional inputs; meta tensors work and cost no compute.

    Returns:
        Total FLOPs.
    """
    counter = FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOP_FORMULAS)
    with torch.no_grad(), counter:
        model(*inputs)
    return counter.get_total_flops()


def model_info(name: str, *, img_size: int | None = None, num_classes: int = 5) -> dict[str, Any]:
    """Size and inference cost of a registered model.

    The model is built on the meta device (no memory, no compute) and measured in eval
    mode on one pair at its default size (batch 1, both inputs).

    Args:
        name: a registered name.
        img_size: input side; default: the model's `default_img_size`.
        num_classes: K of the heads (5, the synthetic benchmark's, by default).

    Returns:
        dict(params=int, gflops=float (FLOPs / 1e9, multiply-add = 2), img_size=int).
    """
    get_entry(name)
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes).eval()
        size = img_size or model.default_img_size
        x = torch.zeros(1, 3, size, size)
    return {
        "params": count_params(model),
        "gflops": count_flops(model, x, x) / 1e9,
        "img_size": size,
    }
