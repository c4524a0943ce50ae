"""The benchmark's building blocks: spread and ratios, interleaving, peak memory, FLOPs,
targets and the command's refusals."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agfnet.benchmark.common import interleave, paired_ratio, resolve_device, spread
from agfnet.benchmark.flops import count_train_step_flops
from agfnet.benchmark.memory import peak_bytes
from agfnet.benchmark.runner import TARGETS, Target
from agfnet.cli.app import app
from agfnet.errors import UserError
from agfnet.models import count_flops, create_model

CPU = torch.device("cpu")


def test_spread_quartiles_match_numpy() -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]
    s = spread(values)
    q1, median, q3 = np.percentile(values, [25, 50, 75])  # numpy's linear = inclusive
    assert s["median"] == pytest.approx(median)
    assert (s["q1"], s["q3"]) == pytest.approx((q1, q3))
    assert s["iqr"] == pytest.approx(q3 - q1)
    assert (s["min"], s["max"], s["n"]) == (1.0, 9.0, 7)
    assert spread([2.5])["iqr"] == 0.0


def test_paired_ratio_is_taken_round_by_round() -> None:
    # Round 2 is slow for both variants: per-round ratios stay 2, a ratio of the medians
    # of unpaired samples would not have to.
    r = paired_ratio([2.0, 20.0, 4.0], [1.0, 10.0, 2.0])
    assert r["samples"] == [2.0, 2.0, 2.0] and r["iqr"] == 0.0
    with pytest.raises(ValueError):
        paired_ratio([1.0, 2.0], [1.0])


def test_interleave_alternates_order_and_discards_warmup() -> None:
    calls: list[str] = []
    times = interleave(
        {k: (lambda k=k: calls.append(k)) for k in "abc"}, repeats=3, warmup=1, device=CPU
    )
    assert "".join(calls) == "abc" + "cba" + "abc" + "cba"
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for v in times.values() for t in v)


def test_peak_bytes_counts_tensors_alive_together() -> None:
    n = 1 << 20  # float32: 4 MiB

    def work() -> torch.Tensor:
        a = torch.ones(n)
        b = torch.ones(n)  # a and b alive together: 8 MiB
        del a, b
        return torch.ones(n // 2)  # 2 MiB, kept

    peak = peak_bytes(work, CPU)
    assert 8 * 2**20 <= peak < 8.5 * 2**20


def test_peak_bytes_excludes_memory_held_before() -> None:
    held = torch.ones(4 << 20)  # 16 MiB allocated before the measurement
    peak = peak_bytes(lambda: held * 2, CPU)
    assert 16 * 2**20 <= peak < 17 * 2**20  # the product only, not `held`


def test_training_step_flops_count_the_backward() -> None:
    """Backward costs about twice the forward (input and weight gradients; the first
    convolution has no input gradient), and AGFNet's fused CPU attention backward and
    FRL decoder add to its training step only."""
    x = torch.randn(2, 3, 48, 48)
    labels = torch.tensor([0, 3])
    ratios = {}
    for name in ("decision_mean_tiny", "agfnet_tiny"):
        model = create_model(name, num_classes=5, seed=0)
        train = count_train_step_flops(model, x, x, labels)
        ratios[name] = train / count_flops(model.eval(), x, x)
    assert 2.8 <= ratios["decision_mean_tiny"] <= 3.0
    assert ratios["agfnet_tiny"] > ratios["decision_mean_tiny"]


def test_targets_compare_in_the_stated_direction() -> None:
    assert Target("<=", 1.2).met(1.2) and not Target("<=", 1.2).met(1.21)
    assert Target(">=", 1.3).met(1.3) and not Target(">=", 1.3).met(1.29)
    assert Target("<", 0.5).met(0.49) and not Target("<", 0.5).met(0.5)
    assert str(TARGETS["train_overhead"]) == "<= 1.2"
    assert str(TARGETS["int8_speedup"]) == str(TARGETS["int8_speedup_batch8"]) == ">= 2"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="--device cpu"):
        resolve_device("cuda")
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["benchmark", "--device", "cuda", "--out", str(out)])
    assert result.exit_code == 2
    assert "error: --device cuda" in result.output and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "tpu"], "use cpu or cuda"),
        (["--out", "bench.txt"], "give a .json file name"),
        (["--threads", "-1"], "--threads -1"),
    ],
)
def test_bad_options_are_refused_before_any_work(tmp_path, args, message) -> None:
    full = ["benchmark", "--quick", "--out", str(tmp_path / "b.json"), *args]
    result = CliRunner().invoke(app, full)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "b.json").exists() and not list(tmp_path.glob("*.md"))


def test_definitions_cover_every_headline() -> None:
    from agfnet.benchmark import DEFINITIONS, FIGURES, HEADLINES

    assert set(HEADLINES) <= set(DEFINITIONS)
    assert set(FIGURES) <= set(DEFINITIONS) and not set(FIGURES) & set(TARGETS)
    json.dumps(DEFINITIONS)


def test_flops_by_module_adds_up_to_the_model() -> None:
    from agfnet.benchmark.profiling import flops_by_module

    counts = flops_by_module(True, family="agfnet", depth=3, img_size=48)
    model = create_model("agfnet_tiny", num_classes=5, seed=0).eval()
    x = torch.zeros(1, 3, 48, 48)
    assert counts["AGFNet"] == pytest.approx(count_flops(model, x, x) / 1e9)
    backbones = [counts[f"AGFNet.encoders.backbones.{m}"] for m in ("clinical", "ultrasound")]
    assert sum(backbones) == pytest.approx(counts["AGFNet.encoders"])
    assert 0 < counts["AGFNet.encoders"] < counts["AGFNet"]
    assert list(counts.values()) == sorted(counts.values(), reverse=True)


def test_photographs_are_768x512_jpegs_of_a_real_photographs_size(tmp_path) -> None:
    from PIL import Image

    from agfnet.benchmark.loader import write_photographs
    from agfnet.data import read_manifest

    manifest = read_manifest(write_photographs(tmp_path, 2))
    assert len(manifest) == 2
    for row in manifest.rows:
        for path in (row.clinical, row.ultrasound):
            with Image.open(path) as image:
                assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (768, 512))
            # Real 768x512 photographs at quality 90 hold some 60-150 kB; a flat or pure-noise
            # image would be far smaller or larger and decode at another speed.
            assert 50_000 < path.stat().st_size < 250_000
    first, second = (np.asarray(Image.open(r.clinical)) for r in manifest.rows)
    assert not np.array_equal(first, second)


def test_photo_loader_times_the_default_and_the_full_decode_loader(tmp_path) -> None:
    from agfnet.benchmark.common import make_plan
    from agfnet.benchmark.loader import measure_photo_loader

    plan = dataclasses.replace(make_plan(True, CPU), loader_batches=2, loader_epochs=2)
    out = measure_photo_loader(
        CPU, True, consume_pairs_per_s=4.0, img_size=32, batch_size=2, plan=plan, workdir=tmp_path
    )
    assert out["photos"]["size"] == [768, 512] and out["photos"]["quality"] == 90
    assert out["pairs_per_epoch"] == out["full_decode"]["pairs_per_epoch"] == 4
    for figures in (out, out["full_decode"]):
        assert figures["supply_ratio"] == pytest.approx(figures["pairs_per_s"] / 4.0)
        assert figures["epoch_pairs_per_s"]["n"] == 2
    assert out["draft_speedup"]["n"] == 2 and out["draft_speedup"]["median"] > 0
    assert not list(tmp_path.iterdir()), "the photographs were left behind"
