"""ALL's cost is linear in image area: bounded key length, FLOPs and peak memory."""

from __future__ import annotations

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from agfnet.layers import PooledAttention
from agfnet.models import count_flops, create_model


class PeakMemory(TorchDispatchMode):
    """Peak bytes of tensor storage created while active (CPU allocations are invisible
    to tracemalloc, so storages are counted as operators create and Python frees them)."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr():
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        key = t.untyped_storage().data_ptr()
        if key not in self.refs:
            self.refs[key], self.sizes[key] = 0, t.untyped_storage().nbytes()
            self.current += self.sizes[key]
            self.peak = max(self.peak, self.current)
        self.refs[key] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if not self.refs[key]:
            del self.refs[key]
            self.current -= self.sizes.pop(key)


def _peak_bytes(model: torch.nn.Module, side: int) -> int:
    x = torch.randn(1, 3, side, side)
    with torch.no_grad(), PeakMemory() as tracker:
        model(x, x)
    return tracker.peak


@pytest.mark.parametrize("side", [32, 96, 320])
def test_keys_and_values_never_exceed_m_tokens(side: int) -> None:
    model = create_model("agfnet_tiny", num_classes=3).eval()
    limit = model.config.kv_size**2
    keys, queries = [], []
    for module in model.modules():
        if isinstance(module, PooledAttention):
            module.kv.register_forward_hook(lambda m, a, o: keys.append(a[0].shape[1]))
            module.q.register_forward_hook(lambda m, a, o: queries.append(a[0].shape[1]))
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        model(x, x)
    assert keys and max(keys) <= limit
    if side == 320:
        # The finest fused scale (stride 16 since issue 15) keeps every query token.
        assert max(queries) == 20 * 20


def _head_flops(side: int, **overrides) -> int:
    with torch.device("meta"):
        model = create_model("agfnet_tiny", num_classes=3, **overrides).eval()
        x = torch.zeros(1, 3, side, side)
    return count_flops(model, x, x) - count_flops(model.encoders, x, x)


def test_fusion_flops_grow_linearly_with_area() -> None:
    # 224 and 448 px: every fused map is at least 7 x 7, so M is at its cap at both sizes.
    ratio = _head_flops(448) / _head_flops(224)
    assert 3.5 < ratio <= 4.0
    # Without key/value pooling the same model's fusion grows much faster.
    unpooled = _head_flops(448, kv_size=1000) / _head_flops(224, kv_size=1000)
    assert unpooled > 6


def test_tiny_peak_memory_grows_linearly_with_area() -> None:
    model = create_model("agfnet_tiny", num_classes=3).eval()
    assert _peak_bytes(model, 448) <= 4.5 * _peak_bytes(model, 224)


@pytest.mark.slow
def test_paper_peak_memory_grows_linearly_with_area() -> None:
    model = create_model("agfnet_paper", num_classes=5).eval()
    small, large = _peak_bytes(model, 224), _peak_bytes(model, 448)
    assert large <= 4.5 * small
