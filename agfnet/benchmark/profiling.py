"""torch.profiler tables of a training step or an inference call, to find where time goes.

Usage: python -m agfnet.benchmark.profiling [--family agfnet] [--mode train|infer] [--quick]
[--threads 1] [--rows 15] [--group module|op]
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

import torch

from agfnet.benchmark.common import (
    Plan,
    build_model,
    infer,
    make_inputs,
    make_plan,
    make_train_step,
    resolve_device,
    without_kineto_lines,
)

__all__ = ["flops_by_module", "profile_ops"]


def _call(family: str, mode: str, plan: Plan, device: torch.device) -> Any:
    """A no-argument call of one training step or one inference on `plan.train_batch`."""
    model = build_model(family, plan, device)
    clinical, ultrasound, labels = make_inputs(plan.train_batch, plan.img_size, device)
    if mode == "train":
        return partial(make_train_step(model, device), clinical, ultrasound, labels)
    model.eval()
    return partial(infer, model, clinical, ultrasound)


def profile_ops(
    device: str | torch.device,
    quick: bool,
    *,
    family: str = "agfnet",
    mode: str = "train",
    rows: int = 15,
    calls: int = 3,
    plan: Plan | None = None,
) -> str:
    """The profiler's table of the ops with the most self time over `calls` calls, after
    two warm-up calls.

    Args:
        device: "cpu" or "cuda".
        quick: tiny models (when `plan` is not given).
        family: registry family, e.g. "agfnet" or "decision_mean".
        mode: "train" (one training step) or "infer" (one eval forward).
        rows: table rows.
        calls: calls profiled (their times add up in the table).
        plan: sizes; default `make_plan(quick, device)`.

    Returns:
        The table (text), sorted by self CPU (or CUDA) time.
    """
    from torch.profiler import ProfilerActivity, profile

    device = resolve_device(device)
    plan = plan or make_plan(quick, device)
    call = _call(family, mode, plan, device)
    for _ in range(2):
        call()
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with without_kineto_lines(), profile(activities=activities) as prof:
        for _ in range(calls):
            call()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def flops_by_module(
    quick: bool, *, family: str = "agfnet", depth: int = 4, img_size: int | None = None
) -> dict[str, float]:
    """Inference GFLOP per pair of each submodule down to `depth`, counted on the meta
    device (no memory, no compute).

    Args:
        quick: tiny preset rather than the paper's.
        family: registry family.
        depth: deepest module path level kept (the model itself is level 0).
        img_size: input side; default the preset's.

    Returns:
        Module path -> GFLOP per pair, largest first.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from agfnet.benchmark.flops import FLOP_RULES

    plan = make_plan(quick, torch.device("cpu"))
    with torch.device("meta"):
        model = build_model(family, plan, torch.device("meta")).eval()
        side = img_size or plan.img_size
        x = torch.zeros(1, 3, side, side)
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=FLOP_RULES) as c:
            model(x, x)
    counts = {
        name: sum(ops.values()) / 1e9
        for name, ops in c.get_flop_counts().items()
        if name != "Global" and name.count(".") <= depth
    }
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def main() -> None:
    """Print the profile table (and, with --group module, the FLOPs per module)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="agfnet")
    parser.add_argument("--mode", choices=("train", "infer"), default="train")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--group", choices=("op", "module"), default="op")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.group == "module":
        for name, gflop in flops_by_module(args.quick, family=args.family).items():
            print(f"{name:50s} {gflop:8.3f} GFLOP/pair")
        return
    print(profile_ops(args.device, args.quick, family=args.family, mode=args.mode, rows=args.rows))


if __name__ == "__main__":
    main()
