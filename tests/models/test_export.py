"""The plain forward exports (torch.export), as Grad-CAM and ONNX export need; so does a
model with tasks and metadata, metadata tensors in and task logits out."""

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


class _WithMetadata(torch.nn.Module):
    """Logits and task logits from images and metadata tensors: what an export with
    metadata inputs and task outputs traces."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clinical, ultrasound, cat, num, num_present):
        meta = {"cat": cat, "num": num, "num_present": num_present}
        out = self.model.forward_output(clinical, ultrasound, metadata=meta)
        return out.logits, *out.task_logits.values()


def test_a_model_with_tasks_and_metadata_exports() -> None:
    spec = {
        "fields": [
            {"name": "site", "kind": "categorical", "vocabulary": ["arm", "leg"]},
            {"name": "age", "kind": "numeric", "vocabulary": None},
        ]
    }
    model = create_model("agfnet_tiny", 3, seed=0, tasks={"veil": 2}, metadata=spec).eval()
    x, u = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    # The plain forward exports as before, every metadata field missing.
    torch.export.export(model, (x, u))
    inputs = (
        x,
        u,
        torch.tensor([[2], [0]]),
        torch.tensor([[0.3], [0.0]]),
        torch.tensor([[True], [False]]),
    )
    wrapper = _WithMetadata(model)
    program = torch.export.export(wrapper, inputs)
    with torch.no_grad():
        for got, want in zip(program.module()(*inputs), wrapper(*inputs), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
