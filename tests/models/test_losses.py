"""PairedClassifierLoss: the total is CE + beta*(aux) + lambda*rec (+ the weighted task
terms, -1 targets ignored), and reduces to plain CE."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import log_loss

from agfnet.models import AGFNetLoss, ModelOutput, PairedClassifierLoss, create_model


def _output(batch: int = 6, classes: int = 3, rec: float | None = 0.7) -> ModelOutput:
    torch.manual_seed(0)
    return ModelOutput(
        logits=torch.randn(batch, classes),
        aux_logits={
            "clinical": torch.randn(batch, classes),
            "ultrasound": torch.randn(batch, classes),
        },
        rec_loss=None if rec is None else torch.tensor(rec),
        modalities=torch.ones(batch, 2, dtype=torch.bool),
    )


def test_without_aux_and_rec_the_loss_is_cross_entropy_checked_against_sklearn() -> None:
    out = _output()
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    terms = PairedClassifierLoss(aux_weight=0.0, rec_weight=0.0)(out, target)
    probs = out.logits.double().softmax(-1).numpy()
    expected = log_loss(target.numpy(), probs, labels=[0, 1, 2])
    assert terms["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(expected, rel=1e-5)


def test_total_combines_the_terms_with_their_weights() -> None:
    out = _output()
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    terms = PairedClassifierLoss(aux_weight=0.5, rec_weight=2.0)(out, target)
    assert set(terms) == {"loss", "ce", "aux", "rec"}
    nll = torch.nn.functional.cross_entropy
    aux = nll(out.aux_logits["clinical"], target) + nll(out.aux_logits["ultrasound"], target)
    torch.testing.assert_close(terms["aux"], aux)
    assert terms["rec"].item() == pytest.approx(0.7)
    torch.testing.assert_close(terms["loss"], terms["ce"] + 0.5 * aux + 2.0 * 0.7)


def test_class_weights_follow_the_weighted_mean_formula() -> None:
    out = _output(rec=None)
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    weights = torch.tensor([1.0, 2.0, 5.0])
    terms = PairedClassifierLoss(aux_weight=0.0, class_weights=weights.tolist())(out, target)
    nll = -out.logits.log_softmax(-1)[torch.arange(6), target]
    expected = (weights[target] * nll).sum() / weights[target].sum()
    torch.testing.assert_close(terms["loss"], expected)


def test_label_smoothing_raises_the_loss_of_confident_correct_predictions() -> None:
    out = ModelOutput(
        logits=torch.tensor([[10.0, 0.0, 0.0]]), modalities=torch.ones(1, 2, dtype=torch.bool)
    )
    target = torch.tensor([0])
    plain = PairedClassifierLoss()(out, target)["loss"]
    smooth = PairedClassifierLoss(label_smoothing=0.1)(out, target)["loss"]
    assert smooth > plain + 0.5


def test_baselines_get_plain_cross_entropy_and_the_masked_term_is_opt_in() -> None:
    target = torch.tensor([0, 2])
    x = torch.randn(2, 3, 32, 32)
    base = create_model("late_concat_tiny", num_classes=3).forward_output(x, x)
    terms = PairedClassifierLoss()(base, target)
    assert terms["aux"].item() == 0 and terms["rec"].item() == 0
    torch.testing.assert_close(terms["loss"], terms["ce"])

    out = create_model("agfnet_tiny", num_classes=3, seed=0).forward_output(x, x)
    default = PairedClassifierLoss()(out, target)
    assert "masked" not in default
    weighted = PairedClassifierLoss(masked_weight=0.3)(out, target)
    torch.testing.assert_close(weighted["loss"], default["loss"] + 0.3 * weighted["masked"])


def test_the_masked_pass_has_its_own_field_and_the_old_name_still_works() -> None:
    out = _output(rec=None)
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    out.masked_logits = torch.randn(6, 3)
    terms = PairedClassifierLoss(masked_weight=0.3)(out, target)
    nll = torch.nn.functional.cross_entropy
    torch.testing.assert_close(terms["masked"], nll(out.masked_logits, target))
    assert AGFNetLoss is PairedClassifierLoss


def _task_output(batch: int = 6) -> ModelOutput:
    out = _output(batch, rec=None)
    out.task_logits = {"streaks": torch.randn(batch, 3), "veil": torch.randn(batch, 2)}
    return out


def test_task_terms_ignore_unknown_targets_and_are_weighted_into_the_total() -> None:
    out = _task_output()
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    task_targets = torch.tensor([[0, 1], [-1, 0], [2, -1], [1, 1], [-1, -1], [0, 0]])
    loss_fn = PairedClassifierLoss(task_weight=0.5, task_weights={"veil": 2.0})
    terms = loss_fn(out, target, task_targets)
    nll = torch.nn.functional.cross_entropy
    for i, name in enumerate(out.task_logits):
        keep = task_targets[:, i] >= 0
        expected = nll(out.task_logits[name][keep], task_targets[keep, i])
        torch.testing.assert_close(terms[f"task/{name}"], expected)
    torch.testing.assert_close(
        terms["tasks"], 0.5 * terms["task/streaks"] + 2.0 * terms["task/veil"]
    )
    plain = PairedClassifierLoss()(_output(rec=None), target)
    torch.testing.assert_close(terms["loss"], plain["loss"] + terms["tasks"])


def test_a_task_with_every_target_unknown_adds_zero_not_nan() -> None:
    out = _task_output()
    out.task_logits = {k: v.requires_grad_() for k, v in out.task_logits.items()}
    task_targets = torch.tensor([[0, -1]] * 6)
    terms = PairedClassifierLoss()(out, torch.zeros(6, dtype=torch.long), task_targets)
    assert terms["task/veil"].item() == 0 and torch.isfinite(terms["loss"])
    terms["loss"].backward()
    assert torch.isfinite(out.task_logits["veil"].grad).all()


def test_task_targets_are_required_and_weights_must_name_tasks() -> None:
    out, target = _task_output(), torch.zeros(6, dtype=torch.long)
    with pytest.raises(ValueError, match="pass task_targets"):
        PairedClassifierLoss()(out, target)
    with pytest.raises(ValueError, match="pass task_targets"):
        PairedClassifierLoss()(out, target, torch.zeros(6, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="streak"):
        PairedClassifierLoss(task_weights={"streak": 1.0})(out, target, torch.zeros(6, 2).long())


def test_a_model_with_tasks_trains_on_the_total() -> None:
    model = create_model("late_concat_tiny", num_classes=3, seed=0, tasks={"a": 2, "b": 4})
    x = torch.randn(2, 3, 32, 32)
    terms = PairedClassifierLoss()(
        model.forward_output(x, x), torch.tensor([0, 2]), torch.tensor([[1, 3], [0, -1]])
    )
    assert {"tasks", "task/a", "task/b"} <= set(terms)
    terms["loss"].backward()
    assert model.task_heads.heads["b"].weight.grad.abs().sum() > 0
