"""The plain forward exports (torch.export), as Grad-CAM and ONNX export need."""

from __future__ import annotations

import torch

from agfnet.models import create_model


def test_agfnet_tiny_exports_with_torch_export() -> None:
    model = create_model("agfnet_tiny", num_classes=3, seed=0).eval()
    x, u = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    program = torch.export.export(model, (x, u))
    # FRL parameters are lifted as graph inputs but no operation reads them.
    frl_inputs = [n for n in program.graph.nodes if n.op == "placeholder" and "frl" in n.name]
    assert frl_inputs and not any(n.users for n in frl_inputs)
    x2, u2 = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x2, u2), model(x2, u2), rtol=1e-4, atol=1e-5)
