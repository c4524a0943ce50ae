"""FLOPs of a training step and the FLOP/s it achieves, against a large matrix product.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (a multiply-add is 2
FLOPs; convolutions, matrix products and attention are counted, elementwise ops, norms
and pooling are not) over one real training step (forward, loss, backward) on the same
batch the overhead measurement timed. Achieved FLOP/s = counted FLOPs / median step
seconds of that measurement. The reference is a square matrix product in the dtype the
step computes in (float32 on CPU, bf16 on GPU), timed in the same run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count

from agfnet.benchmark.common import (
    BARE,
    Plan,
    Reporter,
    autocast,
    build_model,
    interleave,
    make_inputs,
    make_plan,
    paired_ratio,
    prefixed,
    resolve_device,
    spread,
)
from agfnet.models.complexity import CUSTOM_FLOP_FORMULAS

__all__ = ["FLOP_RULES", "count_train_step_flops", "measure_flops", "measure_matmul"]


def _cpu_sdpa_backward_flop(
    grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs
) -> int:
    # The fused CPU attention's backward is unknown to FlopCounterMode, as its forward is
    # (agfnet.models.complexity maps that one); the count is that of the math backward.
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


FLOP_RULES = {
    **CUSTOM_FLOP_FORMULAS,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
}


def count_train_step_flops(
    model: nn.Module, clinical: torch.Tensor, ultrasound: torch.Tensor, labels: torch.Tensor
) -> int:
    """FLOPs of one training step's forward, loss and backward (the optimiser step has no
    counted ops).

    Args:
        model: a registered model in training mode.
        clinical: (B, 3, S, S).
        ultrasound: (B, 3, S, S).
        labels: (B,) class indices.

    Returns:
        Total FLOPs.
    """
    from agfnet.models import PairedClassifierLoss

    criterion = PairedClassifierLoss(aux_weight=0.5, rec_weight=1.0).to(clinical.device)
    with FlopCounterMode(display=False, custom_mapping=FLOP_RULES) as counter:
        with autocast(clinical.device):
            loss = criterion(model.forward_output(clinical, ultrasound), labels)["loss"]
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def measure_matmul(
    device: torch.device, n: int, *, repeats: int, warmup: int, report: Reporter | None = None
) -> dict[str, Any]:
    """FLOP/s of an (n, n) @ (n, n) product: float32 on CPU, bf16 on a GPU.

    Args:
        device: where it runs.
        n: matrix side.
        repeats: timed products.
        warmup: discarded products before them.
        report: progress callback.

    Returns:
        dict(n, dtype, flops (2 n^3), flops_per_s: spread).
    """
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(device=device, dtype=dtype) for _ in range(2))
    seconds = interleave(
        {"matmul": lambda: torch.mm(a, b)},
        repeats=repeats,
        warmup=warmup,
        device=device,
        report=report,
    )["matmul"]
    flops = 2 * n**3
    return {
        "n": n,
        "dtype": str(dtype).removeprefix("torch."),
        "flops": flops,
        "flops_per_s": spread([flops / s for s in seconds]),
    }


def measure_flops(
    device: str | torch.device,
    quick: bool,
    *,
    train_seconds: dict[str, list[float]],
    plan: Plan | None = None,
    report: Reporter | None = None,
) -> dict[str, Any]:
    """FLOPs and achieved FLOP/s of the `agfnet` and bare-backbone training steps.

    Args:
        device: "cpu" or "cuda".
        quick: tiny models (when `plan` is not given).
        train_seconds: family -> per-round step seconds from `measure_overhead` with the
            same plan ("agfnet" and the bare backbones at least).
        plan: sizes; default `make_plan(quick, device)`.
        report: progress callback.

    Returns:
        dict(batch, img_size, train_step_gflop: family -> GFLOP per step,
        achieved_gflop_per_s: family -> spread, matmul (see `measure_matmul`),
        of_matmul: family -> achieved / median matmul FLOP/s, efficiency_ratio: spread of
        the per-round ratio achieved(agfnet) / achieved(bare)).
    """
    device = resolve_device(device)
    plan = plan or make_plan(quick, device)
    clinical, ultrasound, labels = make_inputs(plan.train_batch, plan.img_size, device)
    flops: dict[str, int] = {}
    for family in ("agfnet", BARE):
        if report:
            report(f"count the FLOPs of a {plan.model_name(family)} training step")
        model = build_model(family, plan, device)
        flops[family] = count_train_step_flops(model, clinical, ultrasound, labels)
        del model
    achieved = {f: [flops[f] / s for s in train_seconds[f]] for f in flops}
    matmul = measure_matmul(
        device,
        plan.matmul_n,
        repeats=max(plan.repeats, 5),
        warmup=plan.warmup,
        report=prefixed(report, f"matrix product {plan.matmul_n}"),
    )
    peak = matmul["flops_per_s"]["median"]
    return {
        "batch": plan.train_batch,
        "img_size": plan.img_size,
        "counter": "torch.utils.flop_counter.FlopCounterMode (multiply-add = 2 FLOPs)",
        "train_step_gflop": {f: v / 1e9 for f, v in flops.items()},
        "flop_ratio": flops["agfnet"] / flops[BARE],
        "achieved_gflop_per_s": {f: spread([v / 1e9 for v in a]) for f, a in achieved.items()},
        "matmul": matmul,
        "of_matmul": {f: spread([v / peak for v in a]) for f, a in achieved.items()},
        "efficiency_ratio": paired_ratio(achieved["agfnet"], achieved[BARE]),
    }
