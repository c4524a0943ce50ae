"""After a training step every trainable parameter of every tiny model gets a gradient."""

from __future__ import annotations

import pytest
import torch

from agfnet.models import PairedClassifierLoss, create_model, list_models


def _single_modality(name: str) -> bool:
    return name.startswith(("clinical_only", "ultrasound_only"))


@pytest.mark.parametrize("name", list_models("_tiny"))
def test_every_parameter_gets_a_finite_nonzero_gradient(name: str) -> None:
    torch.manual_seed(0)
    # Modality dropout on (and both kinds of missing pair in the batch) so the absent
    # embeddings are trained too: no parameter is exempt.
    overrides = {} if _single_modality(name) else {"modality_dropout": 0.5}
    model = create_model(name, num_classes=3, seed=0, **overrides)
    present = torch.ones(6, 2, dtype=torch.bool)
    if not _single_modality(name):
        present[0, 0] = present[1, 1] = False
    # 64 px: the deepest map is 2 x 2 (at 1 x 1 a softmax over one token has no gradient).
    clinical, ultrasound = torch.randn(6, 3, 64, 64), torch.randn(6, 3, 64, 64)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    loss_fn = PairedClassifierLoss(masked_weight=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    # The check follows one optimiser step: ResNets zero-initialise the last norm of each
    # block (timm's zero_init_last), so the convolution before it has no gradient until
    # that scale has moved away from zero.
    for _ in range(2):
        optimizer.zero_grad()
        out = model.forward_output(clinical, ultrasound, present)
        loss_fn(out, target)["loss"].backward()
        optimizer.step()

    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient: {missing}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradient: {bad}"
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, f"all-zero gradient: {zero}"
