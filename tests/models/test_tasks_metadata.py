"""Task heads and metadata in every family: shapes from a case table, gradients to every
new parameter, missing metadata, the build spec, and where each family fuses it."""

from __future__ import annotations

import pytest
import torch

from agfnet.errors import UserError
from agfnet.models import PairedClassifierLoss, create_model, list_models

TINY = list_models("_tiny")
TASKS = {"pigment_network": 3, "blue_whitish_veil": 2, "streaks": 3}
SPEC = {
    "fields": [
        {"name": "location", "kind": "categorical", "vocabulary": ["back", "face", "leg"]},
        {"name": "age", "kind": "numeric", "vocabulary": None, "mean": 50.0, "std": 15.0},
        {"name": "sex", "kind": "categorical", "vocabulary": ["female", "male"]},
    ]
}


def _metadata(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every code of each field (missing 0, unknown 1, known 2+) and absent numbers."""
    g = torch.Generator().manual_seed(seed)
    cat = torch.stack([torch.arange(batch) % 5, (torch.arange(batch) + 1) % 4], dim=1)
    present = torch.arange(batch)[:, None] % 3 != 0
    return {"cat": cat, "num": torch.randn(batch, 1, generator=g) * present, "num_present": present}


def _single_modality(name: str) -> bool:
    return name.startswith(("clinical_only", "ultrasound_only"))


# (tasks, metadata, clinical shape, ultrasound shape, classes)
CASES = [
    (TASKS, SPEC, (2, 3, 32, 32), (2, 3, 32, 32), 3),
    (TASKS, None, (3, 3, 64, 64), (3, 3, 64, 48), 7),
    (None, SPEC, (3, 3, 64, 64), (3, 3, 64, 48), 5),
    ({"one": 4}, {"fields": SPEC["fields"][1:2]}, (2, 3, 32, 32), (2, 3, 32, 32), 2),
]


@pytest.mark.parametrize(("tasks", "spec", "clinical_shape", "ultrasound_shape", "classes"), CASES)
@pytest.mark.parametrize("name", TINY)
def test_output_shapes_with_tasks_and_metadata(
    name, tasks, spec, clinical_shape, ultrasound_shape, classes
) -> None:
    model = create_model(name, num_classes=classes, seed=0, tasks=tasks, metadata=spec)
    clinical, ultrasound = torch.randn(clinical_shape), torch.randn(ultrasound_shape)
    batch = clinical_shape[0]
    metadata = _metadata(batch) if spec is SPEC else None
    if spec is not None and spec is not SPEC:
        metadata = {
            "cat": torch.zeros(batch, 0, dtype=torch.long),
            "num": torch.ones(batch, 1),
            "num_present": torch.ones(batch, 1, dtype=torch.bool),
        }
    for training in (True, False):
        model.train(training)
        with torch.set_grad_enabled(training):
            out = model.forward_output(clinical, ultrasound, metadata=metadata)
        assert out.logits.shape == (batch, classes) and torch.isfinite(out.logits).all()
        assert list(out.task_logits) == list(tasks or {})
        for task, logits in out.task_logits.items():
            assert logits.shape == (batch, tasks[task]) and torch.isfinite(logits).all()
    # The plain forward is the eval prediction with every metadata field missing.
    with torch.no_grad():
        torch.testing.assert_close(
            model(clinical, ultrasound), model.forward_output(clinical, ultrasound).logits
        )


@pytest.mark.parametrize("name", TINY)
def test_every_parameter_including_the_new_ones_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    overrides = {} if _single_modality(name) else {"modality_dropout": 0.5}
    model = create_model(name, num_classes=3, seed=0, tasks=TASKS, metadata=SPEC, **overrides)
    present = torch.ones(6, 2, dtype=torch.bool)
    if not _single_modality(name):
        present[0, 0] = present[1, 1] = False
    clinical, ultrasound = torch.randn(6, 3, 64, 64), torch.randn(6, 3, 64, 64)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    task_targets = torch.tensor(
        [[0, 1, 2], [1, 0, -1], [2, 1, 0], [-1, 0, 1], [0, -1, 2], [1, 1, 0]]
    )
    loss_fn = PairedClassifierLoss(masked_weight=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):  # one step first: see test_gradients.py (timm's zero_init_last)
        optimizer.zero_grad()
        out = model.forward_output(clinical, ultrasound, present, _metadata(6))
        loss_fn(out, target, task_targets)["loss"].backward()
        optimizer.step()

    new = [n for n, _ in model.named_parameters() if n.startswith(("metadata_", "task_", "post_"))]
    assert any(n.startswith("metadata_encoder.") for n in new)
    assert any(n.startswith("task_heads.") for n in new)
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient: {missing}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradient: {bad}"
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, f"all-zero gradient: {zero}"


@pytest.mark.parametrize("name", TINY)
def test_metadata_changes_the_prediction_and_missing_metadata_works(name: str) -> None:
    model = create_model(name, num_classes=3, seed=0, metadata=SPEC).eval()
    x, u = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        given = model.forward_output(x, u, metadata=_metadata(4)).logits
        missing = model.forward_output(x, u).logits
        explicit = model.forward_output(x, u, metadata=model.metadata_encoder.missing(4)).logits
    assert torch.isfinite(missing).all()
    torch.testing.assert_close(missing, explicit)
    assert not torch.allclose(given, missing)


@pytest.mark.parametrize("name", TINY)
def test_task_heads_leave_the_rest_of_the_model_as_it_was(name: str) -> None:
    # Heads are built last, so with the same seed the diagnosis network is the plain one:
    # a with/without-tasks comparison starts from the same weights.
    plain = create_model(name, num_classes=3, seed=0).state_dict()
    with_tasks = create_model(name, num_classes=3, seed=0, tasks=TASKS).state_dict()
    assert [k for k in with_tasks if not k.startswith("task_heads.")] == list(plain)
    assert all(torch.equal(plain[k], with_tasks[k]) for k in plain)


def test_where_each_family_fuses_the_metadata() -> None:
    agfnet = create_model("agfnet_tiny", num_classes=3, metadata=SPEC)
    # [cls, gc, gu, zc, zu, metadata]: one more AGL token.
    assert agfnet.agl.fuse.slot_embed.shape[1] == 6
    assert create_model("agfnet_no_agl_tiny", num_classes=3, metadata=SPEC).agl.fuse[
        1
    ].normalized_shape == (5 * 64,)
    late = create_model("late_concat_tiny", num_classes=3, metadata=SPEC)
    assert late.head.fc1.in_features == 3 * late.encoders.channels[-1]
    cross = create_model("cross_attn_tiny", num_classes=3, metadata=SPEC)
    assert cross.post_fusion is not None and cross.head[0].normalized_shape == (7 * 64,)
    single = create_model("clinical_only_tiny", num_classes=3, metadata=SPEC)
    assert single.head.fc.in_features == 2 * single.encoders.channels[-1]
    assert create_model("cross_attn_tiny", num_classes=3).post_fusion is None


def test_build_spec_gains_tasks_and_metadata_only_when_given_and_rebuilds() -> None:
    assert set(create_model("agfnet_tiny", num_classes=3).build_spec) == {
        "name",
        "num_classes",
        "overrides",
    }
    empty = create_model("agfnet_tiny", num_classes=3, tasks={}, metadata={"fields": []})
    assert set(empty.build_spec) == {"name", "num_classes", "overrides"}
    model = create_model("cross_attn_tiny", 3, seed=1, tasks=TASKS, metadata=SPEC, dim=32)
    spec = model.build_spec
    assert spec["tasks"] == TASKS and spec["metadata"] == SPEC
    assert spec["metadata"] is not SPEC  # a copy: the caller's dict may change
    again = create_model(
        spec["name"],
        num_classes=spec["num_classes"],
        seed=1,
        tasks=spec["tasks"],
        metadata=spec["metadata"],
        **spec["overrides"],
    )
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("tasks", "metadata", "match"),
    [
        ({"streaks": 1}, None, "tasks.streaks"),
        ({"a.b": 2}, None, "without '.'"),
        (None, {"fields": [{"name": "site", "kind": "categorical"}]}, "vocabulary"),
        (None, {"fields": [{"name": "site", "kind": "text", "vocabulary": None}]}, "kind"),
        (None, {"columns": ["site"]}, "MetadataSpec.to_dict"),
    ],
)
def test_invalid_tasks_or_metadata_name_the_option(tasks, metadata, match) -> None:
    with pytest.raises(UserError, match=match):
        create_model("late_concat_tiny", num_classes=3, tasks=tasks, metadata=metadata)
