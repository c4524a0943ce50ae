"""`Predictor`: output fields, temperature, inputs of every kind, missing images, safe loading."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.special import softmax
from scipy.stats import entropy as scipy_entropy

from agfnet.errors import UserError
from agfnet.inference import Predictor
from agfnet.inference.predictor import CERTAINTY_THRESHOLDS, summarize_uncertainty


@pytest.fixture(scope="module")
def fusion(fusion_ckpt: Path) -> Predictor:
    return Predictor.from_checkpoint(fusion_ckpt, device="cpu")


@pytest.fixture(scope="module")
def dropout(dropout_ckpt: Path) -> Predictor:
    return Predictor.from_checkpoint(dropout_ckpt, device="cpu")


def test_prediction_fields_follow_the_probabilities(fusion: Predictor, pair) -> None:
    result = fusion.predict(*pair)
    d = result.to_dict()
    assert set(d) == {"probabilities", "prediction", "uncertainty", "modalities"}
    assert list(d["probabilities"]) == fusion.classes
    probs = np.array(list(d["probabilities"].values()))
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert d["prediction"] == fusion.classes[int(probs.argmax())]
    assert d["modalities"] == {"clinical": True, "ultrasound": True}
    u = d["uncertainty"]
    assert u["entropy"] == pytest.approx(scipy_entropy(probs), rel=1e-9)
    assert u["normalized_entropy"] == pytest.approx(scipy_entropy(probs) / math.log(5), rel=1e-9)
    assert u["max_probability"] == pytest.approx(probs.max())
    assert fusion.model_name == "agfnet_tiny" and fusion.info.temperature == 1.0


@pytest.mark.parametrize(
    ("probs", "level"),
    [
        ([0.9, 0.05, 0.05], "high"),
        ([0.8, 0.1, 0.1], "high"),
        ([0.6, 0.3, 0.1], "moderate"),
        ([0.5, 0.25, 0.25], "moderate"),
        ([0.4, 0.35, 0.25], "low"),
    ],
)
def test_certainty_levels_follow_the_documented_thresholds(probs: list[float], level: str) -> None:
    assert [t for t, _ in CERTAINTY_THRESHOLDS] == [0.8, 0.5]
    u = summarize_uncertainty(np.array(probs))
    assert u.certainty == level
    assert u.normalized_entropy == pytest.approx(scipy_entropy(probs) / math.log(3))


def test_probabilities_are_the_temperature_scaled_softmax(dropout: Predictor, pair) -> None:
    assert dropout.temperature == 1.5
    result = dropout.predict(*pair)
    expected = softmax(np.array(result.logits) / 1.5)
    np.testing.assert_allclose(list(result.probabilities.values()), expected, atol=1e-12)


def test_a_higher_temperature_gives_flatter_probabilities(
    make_checkpoint: Callable[..., Path], pair
) -> None:
    cold = Predictor.from_checkpoint(make_checkpoint("t1", temperature=1.0, seed=5), "cpu")
    warm = Predictor.from_checkpoint(make_checkpoint("t2", temperature=2.0, seed=5), "cpu")
    a, b = cold.predict(*pair), warm.predict(*pair)
    assert a.logits == b.logits  # same weights: only the temperature differs
    assert b.uncertainty.entropy > a.uncertainty.entropy
    assert b.uncertainty.max_probability < a.uncertainty.max_probability
    assert a.prediction == b.prediction


def test_path_bytes_pil_and_numpy_inputs_agree(fusion: Predictor, pair) -> None:
    clinical, ultrasound = pair
    by_path = fusion.predict(clinical, ultrasound)
    by_str = fusion.predict(str(clinical), str(ultrasound))
    by_bytes = fusion.predict(clinical.read_bytes(), io.BytesIO(ultrasound.read_bytes()))
    by_pil = fusion.predict(Image.open(clinical), Image.open(ultrasound))
    by_array = fusion.predict(np.asarray(Image.open(clinical)), np.asarray(Image.open(ultrasound)))
    for other in (by_str, by_bytes, by_pil, by_array):
        assert other.logits == by_path.logits
        assert other.to_dict() == by_path.to_dict()


def _grey16(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(1000, 40000, (40, 36), dtype=np.uint16)


@pytest.mark.parametrize(
    ("make", "mode"),
    [
        (lambda rng: rng.integers(0, 256, (40, 36), dtype=np.uint8), "L"),
        (_grey16, "I;16"),
        (lambda rng: rng.integers(0, 256, (40, 36, 3), dtype=np.uint8), "RGB"),
        (lambda rng: rng.integers(0, 256, (40, 36, 4), dtype=np.uint8), "RGBA"),
    ],
    ids=["grey8", "grey16", "rgb", "rgba"],
)
def test_numpy_arrays_read_like_the_same_image_file(
    fusion: Predictor, pair, tmp_path: Path, make, mode: str
) -> None:
    array = make(np.random.default_rng(0))
    path = tmp_path / "image.png"
    Image.fromarray(array).save(path)
    assert Image.open(path).mode == mode
    by_file = fusion.predict(pair[0], path)
    by_array = fusion.predict(pair[0], array)
    assert by_array.logits == by_file.logits


def test_uint16_colour_keeps_the_high_byte(fusion: Predictor, pair) -> None:
    rgb8 = np.random.default_rng(1).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    low = np.random.default_rng(2).integers(0, 256, rgb8.shape, dtype=np.uint16)
    rgb16 = rgb8.astype(np.uint16) * 256 + low
    assert fusion.predict(pair[0], rgb16).logits == fusion.predict(pair[0], rgb8).logits


def test_a_dicom_file_is_accepted(fusion: Predictor, pair, tmp_path: Path) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    grey = np.asarray(Image.open(pair[1]).convert("L"))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # ultrasound image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "u.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = grey.tobytes()
    ds.save_as(tmp_path / "u.dcm", enforce_file_format=True)
    by_dicom = fusion.predict(pair[0], tmp_path / "u.dcm")
    # The grey image spans its full range, so DICOM min-max scaling leaves it unchanged.
    expected = fusion.predict(
        pair[0], ((grey - grey.min()) * (255.0 / np.ptp(grey))).round().astype(np.uint8)
    )
    assert by_dicom.logits == expected.logits


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((8, 8, 3), np.float32), "uint8 or uint16"),
        (np.zeros((3, 8, 8), np.uint8), "channels"),
    ],
)
def test_unusable_arrays_are_refused(fusion: Predictor, pair, array, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        fusion.predict(pair[0], array)


def test_a_bad_image_file_is_named(fusion: Predictor, pair, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(UserError, match=r"broken.png"):
        fusion.predict(pair[0], bad)
    with pytest.raises(UserError, match=r"nothere.png.*not found"):
        fusion.predict(tmp_path / "nothere.png", pair[1])


def test_predict_batch_equals_one_by_one(fusion: Predictor, synth_dir: Path) -> None:
    clinical = sorted((synth_dir / "images" / "clinical").glob("*.png"))[:3]
    ultrasound = sorted((synth_dir / "images" / "ultrasound").glob("*.png"))[:3]
    pairs = list(zip(clinical, ultrasound, strict=True))
    batch = fusion.predict_batch(pairs, batch_size=2)
    single = [fusion.predict(c, u) for c, u in pairs]
    assert len(batch) == 3
    for a, b in zip(batch, single, strict=True):
        np.testing.assert_allclose(a.logits, b.logits, atol=1e-5)
        assert a.prediction == b.prediction


def test_a_missing_image_is_refused_without_modality_dropout(fusion: Predictor, pair) -> None:
    with pytest.raises(UserError) as err:
        fusion.predict(pair[0], None)
    message = str(err.value)
    assert "ultrasound image is missing" in message
    assert "without modality dropout" in message
    assert "model.overrides.modality_dropout" in message
    with pytest.raises(UserError, match=r"clinical image is missing"):
        fusion.predict(None, pair[1])
    with pytest.raises(UserError, match=r"no image given"):
        fusion.predict(None, None)
    with pytest.raises(UserError, match=r"pair 2: the ultrasound image is missing"):
        fusion.predict_batch([pair, (pair[0], None)])


def test_a_missing_image_is_allowed_with_modality_dropout(dropout: Predictor, pair) -> None:
    assert dropout.supports_missing
    both = dropout.predict(*pair)
    clinical_only = dropout.predict(pair[0], None)
    ultrasound_only = dropout.predict(None, pair[1])
    assert clinical_only.modalities == {"clinical": True, "ultrasound": False}
    assert ultrasound_only.modalities == {"clinical": False, "ultrasound": True}
    # The absent embedding replaces the missing image's features: the logits change.
    assert clinical_only.logits != both.logits != ultrasound_only.logits
    assert sum(clinical_only.probabilities.values()) == pytest.approx(1.0)


def test_a_single_modality_model_needs_only_its_own_image(
    make_checkpoint: Callable[..., Path], pair
) -> None:
    single = Predictor.from_checkpoint(make_checkpoint("conly", model="clinical_only_tiny"), "cpu")
    alone = single.predict(pair[0], None)
    assert alone.modalities == {"clinical": True, "ultrasound": False}
    assert single.predict(*pair).logits == alone.logits  # the ultrasound is never read
    with pytest.raises(UserError, match=r"clinical image is missing.*reads only the clinical"):
        single.predict(None, pair[1])


def test_a_malicious_checkpoint_is_refused_and_runs_nothing(
    tmp_path: Path, write_malicious_checkpoint: Callable[[Path, Path], Path]
) -> None:
    # Sanity: an unsafe load of such a file really does run the payload.
    probe = write_malicious_checkpoint(tmp_path / "probe.ckpt", tmp_path / "probe-ran")
    torch.load(probe, weights_only=False)
    assert (tmp_path / "probe-ran").exists()

    marker = tmp_path / "payload-ran"
    evil = write_malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UserError, match=r"not a safe agfnet checkpoint") as err:
        Predictor.from_checkpoint(evil, device="cpu")
    assert "evil.ckpt" in str(err.value)
    assert not marker.exists()


def test_a_checkpoint_without_preprocessing_names_what_is_missing(
    fusion_ckpt: Path, tmp_path: Path
) -> None:
    ckpt = torch.load(fusion_ckpt, weights_only=True)
    del ckpt["hyper_parameters"]["agfnet"]["transform"]
    torch.save(ckpt, tmp_path / "incomplete.ckpt")
    with pytest.raises(UserError, match=r"incomplete.ckpt lacks transform \(the preprocessing\)"):
        Predictor.from_checkpoint(tmp_path / "incomplete.ckpt", device="cpu")


def test_a_missing_checkpoint_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope.ckpt does not exist"):
        Predictor.from_checkpoint(tmp_path / "nope.ckpt", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_asking_for_cuda_without_a_gpu_is_a_user_error(fusion_ckpt: Path) -> None:
    with pytest.raises(UserError, match=r"no CUDA GPU"):
        Predictor.from_checkpoint(fusion_ckpt, device="cuda")


def test_importing_agfnet_inference_is_lazy() -> None:
    code = "import sys, agfnet.inference\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    import agfnet.inference

    assert agfnet.inference.Predictor is Predictor
    assert set(agfnet.inference.__all__) <= set(dir(agfnet.inference))
