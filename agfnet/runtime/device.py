"""Where a network runs: the device a user asked for, checked, or the best one present."""

from __future__ import annotations

import torch

from agfnet.errors import UserError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, checked, or the first GPU when there is one, else the CPU.

    Args:
        device: "cpu", "cuda", "cuda:1", a `torch.device`, or None (or "") to choose.

    Returns:
        The device.

    Raises:
        UserError: an unknown device name, or CUDA asked for where there is none.
    """
    if device is None or device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise UserError(f"--device {device}: {err}; use cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    return resolved
