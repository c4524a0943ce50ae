"""Diagnose lesions with a trained model: images in, calibrated class probabilities out.

`Predictor` is the one place a prediction is made (the CLI, batch prediction and the web
app all call it): it reads a checkpoint safely, preprocesses exactly as the checkpoint's
evaluation transform, refuses a missing image the model was not trained to do without,
applies the checkpoint's temperature and summarises the uncertainty. `PredictorBase`
holds everything but the network call, so the ONNX-Runtime predictor
(`agfnet.inference.onnx_runtime.OnnxPredictor`) gives the same output.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, ImageOps

from agfnet.errors import UserError

__all__ = [
    "CERTAINTY_THRESHOLDS",
    "MODALITIES",
    "Explanation",
    "ImageInput",
    "Prediction",
    "Predictor",
    "PredictorBase",
    "Uncertainty",
    "load_checkpoint",
    "summarize_uncertainty",
    "write_predictions_csv",
]

#: Column order of every (B, 2) modality mask, as in `agfnet.models.MODALITIES`.
MODALITIES: tuple[str, str] = ("clinical", "ultrasound")

#: (lowest max probability, level), best first; below the last threshold the certainty is
#: "low". After temperature scaling the max probability estimates how often the top class
#: is right, so "high" means about 4 in 5 such predictions or more are correct on data like
#: the calibration set. These are reading aids, not clinically validated cut-offs.
CERTAINTY_THRESHOLDS: tuple[tuple[float, str], ...] = ((0.8, "high"), (0.5, "moderate"))

#: What `Predictor.predict` accepts for one image: a path or binary file of any format
#: `agfnet.data.read_image` reads (DICOM included), its bytes, a PIL image, a numpy array
#: (H, W), (H, W, 3) or (H, W, 4) of uint8 or uint16, or None for a missing modality.
ImageInput = str | os.PathLike | bytes | IO[bytes] | Image.Image | np.ndarray | None

# The config key that makes a fusion model accept a missing image (docs/method.md).
DROPOUT_KEY = "model.overrides.modality_dropout"

# Metadata a checkpoint must hold under hyper_parameters/agfnet, and what each is for.
REQUIRED_METADATA = {
    "build_spec": "the model name and options",
    "classes": "the class names",
    "transform": "the preprocessing",
    "config": "the training config",
}


@dataclass(frozen=True)
class Uncertainty:
    """How sure one prediction is.

    Attributes:
        entropy: predictive entropy of the (calibrated) probabilities, nats, in [0, log K].
        normalized_entropy: entropy / log K, in [0, 1]: 0 one class certain, 1 uniform.
        max_probability: the top class's probability.
        certainty: "high", "moderate" or "low" from `max_probability` and
            `CERTAINTY_THRESHOLDS` (>= 0.8 high, >= 0.5 moderate, else low).
    """

    entropy: float
    normalized_entropy: float
    max_probability: float
    certainty: str

    def to_dict(self) -> dict[str, Any]:
        """Returns: the four fields as a JSON-ready dict."""
        return {
            "entropy": self.entropy,
            "normalized_entropy": self.normalized_entropy,
            "max_probability": self.max_probability,
            "certainty": self.certainty,
        }


@dataclass(frozen=True)
class Prediction:
    """The diagnosis of one pair.

    Attributes:
        probabilities: class name -> probability (temperature applied), in class order.
        prediction: the most probable class.
        uncertainty: entropy, normalised entropy, max probability and certainty level.
        modalities: {"clinical": bool, "ultrasound": bool}: which images the model used.
        logits: the raw logits (no temperature), in class order; with several passes,
            their mean.
        spread: with `--mc N` / `--tta N` (`PredictorBase.sampling`), how the passes
            differ: {"method", "passes", "seed", "std": {class: standard deviation of its
            probability over the passes}, "mutual_information": nats (0 when every pass
            agrees)}; None for one pass. `probabilities` are then the mean over passes.
    """

    probabilities: dict[str, float]
    prediction: str
    uncertainty: Uncertainty
    modalities: dict[str, bool]
    logits: tuple[float, ...]
    spread: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `agfnet predict --json` and of the web API.

        Returns:
            {"probabilities": {class: p}, "prediction": class, "uncertainty": {entropy,
            normalized_entropy, max_probability, certainty}, "modalities": {clinical: bool,
            ultrasound: bool}}, plus "spread" (see the attribute) with several passes.
        """
        out = {
            "probabilities": dict(self.probabilities),
            "prediction": self.prediction,
            "uncertainty": self.uncertainty.to_dict(),
            "modalities": dict(self.modalities),
        }
        if self.spread is not None:
            out["spread"] = {**self.spread, "std": dict(self.spread["std"])}
        return out


@dataclass(frozen=True)
class Explanation:
    """A prediction and the class activation map of each image it used.

    Attributes:
        prediction: the `Prediction`.
        method: the CAM method ("gradcam", "gradcam++", "layercam").
        target: the class explained (the predicted one).
        maps: modality -> float32 (S, S) map in [0, 1] at the model's input size, for
            the modalities the prediction used.
        images: modality -> the RGB input image at its own size, for the same modalities.
    """

    prediction: Prediction
    method: str
    target: str
    maps: dict[str, np.ndarray]
    images: dict[str, Image.Image]

    def overlays(self) -> dict[str, Image.Image]:
        """Each map, resized to its image, blended over it (jet colour map, half weight).

        Returns:
            modality -> RGB PIL image of the input's size.
        """
        from pytorch_grad_cam.utils.image import show_cam_on_image

        out = {}
        for m, cam in self.maps.items():
            image = self.images[m]
            resized = Image.fromarray(cam.astype(np.float32)).resize(
                image.size, Image.Resampling.BILINEAR
            )
            mask = np.clip(np.asarray(resized), 0.0, 1.0)
            rgb = np.asarray(image, dtype=np.float32) / 255.0
            out[m] = Image.fromarray(show_cam_on_image(rgb, mask, use_rgb=True))
        return out

    def save(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Write `<modality>_cam.png` overlays and `explanation.json`, each atomically.

        Args:
            folder: created if needed.

        Returns:
            name -> path of every file written.
        """
        from agfnet.fileio import write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for m, overlay in self.overlays().items():
            path = folder / f"{m}_cam.png"
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            overlay.save(tmp, format="PNG")
            os.replace(tmp, path)
            files[m] = path
        files["explanation"] = folder / "explanation.json"
        write_json(
            files["explanation"],
            {
                **self.prediction.to_dict(),
                "cam": {
                    "method": self.method,
                    "target": self.target,
                    "files": {m: p.name for m, p in files.items() if m in self.maps},
                },
            },
        )
        return files


def summarize_uncertainty(probs: np.ndarray) -> Uncertainty:
    """Entropy, normalised entropy, max probability and certainty level of one prediction.

    Args:
        probs: float (K,), a probability vector.

    Returns:
        The `Uncertainty`.
    """
    from agfnet.evaluation.uncertainty import predictive_entropy

    entropy = float(predictive_entropy(probs))
    top = float(np.max(probs))
    certainty = next((name for lo, name in CERTAINTY_THRESHOLDS if top >= lo), "low")
    return Uncertainty(
        entropy=entropy,
        normalized_entropy=entropy / math.log(len(probs)),
        max_probability=top,
        certainty=certainty,
    )


def _array_to_pil(array: np.ndarray, name: str) -> Image.Image:
    """An (H, W), (H, W, 3) or (H, W, 4) uint8/uint16 array as a PIL image.

    uint16 grey becomes mode I;16, which `to_rgb` scales by its actual range, as
    `read_image` does with a 16-bit grey file; uint16 colour keeps its high byte, as PIL
    reads a 16-bit colour PNG.
    """
    if array.dtype not in (np.uint8, np.uint16):
        raise UserError(
            f"{name}: a numpy image must be uint8 or uint16, got {array.dtype}; convert it "
            "(e.g. np.clip(x * 255, 0, 255).astype(np.uint8) for floats in [0, 1])"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array))
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise UserError(
            f"{name}: a numpy image must be (H, W), (H, W, 3) or (H, W, 4), channels last; "
            f"got shape {array.shape} (use np.moveaxis(x, 0, -1) for channels-first arrays)"
        )
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array), "RGB" if array.shape[2] == 3 else "RGBA")


def to_pil(image: ImageInput, name: str) -> Image.Image | None:
    """Any `ImageInput` as an 8-bit RGB PIL image, converted by the rules of `read_image`.

    Args:
        image: the input (None for a missing modality).
        name: what to call it in an error message, e.g. "clinical image".

    Returns:
        A PIL RGB image, or None.

    Raises:
        UserError: an unreadable file (the message names it) or an unsupported array.
    """
    from agfnet.data.io import read_image, to_rgb

    if image is None:
        return None
    if isinstance(image, Image.Image):
        return to_rgb(ImageOps.exif_transpose(image))
    if isinstance(image, np.ndarray):
        return to_rgb(_array_to_pil(image, name))
    if isinstance(image, (bytes, bytearray)):
        return read_image(io.BytesIO(bytes(image)))
    if isinstance(image, (str, os.PathLike)) or hasattr(image, "read"):
        return read_image(image)
    raise UserError(
        f"{name}: cannot use a {type(image).__name__}; give a file path, bytes, a PIL image "
        "or a numpy array (H, W[, 3 or 4]) of uint8 or uint16"
    )


def _read_pair(
    clinical: ImageInput, ultrasound: ImageInput
) -> tuple[Image.Image | None, Image.Image | None]:
    return to_pil(clinical, "clinical image"), to_pil(ultrasound, "ultrasound image")


def _join(items: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


class PredictorBase:
    """Preprocessing, missing-image rules, temperature and output shared by every backend.

    A subclass sets the attributes below and implements `forward`.

    Attributes:
        classes: class names, in the order of the model's outputs.
        model_name: the registry name of the network, e.g. "agfnet_tiny".
        temperature: T of the calibrated probabilities softmax(logits / T).
        transform_config: the `TransformConfig` of the evaluation preprocessing, as a dict.
        reads: the modalities the network reads.
        supports_missing: whether a pair with one image missing can be diagnosed.
        source: the checkpoint or ONNX file, for messages.
        sampling: None for one deterministic pass, or a `Sampling` (Monte-Carlo dropout
            or test-time augmentation, `agfnet.inference.stochastic`): every prediction
            is then the mean of several passes and carries their spread.
    """

    sampling: Any = None

    classes: list[str]
    model_name: str
    temperature: float
    transform_config: dict[str, Any]
    reads: tuple[str, ...]
    supports_missing: bool
    source: str

    def _setup(self) -> None:
        """Build the evaluation transform; call once the attributes are set."""
        from agfnet.data import TransformConfig, build_transforms

        try:
            config = TransformConfig(**self.transform_config)
        except (TypeError, ValueError) as err:
            raise UserError(
                f"{self.source}: its preprocessing settings are invalid ({err}); the file was "
                "not written by this version of agfnet: re-export or retrain it"
            ) from None
        self.transform = build_transforms(config, train=False)
        self.img_size = config.img_size

    def forward(
        self, clinical: torch.Tensor, ultrasound: torch.Tensor, present: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run the network.

        Args:
            clinical: float32 (B, 3, S, S), preprocessed; zeros where missing.
            ultrasound: float32 (B, 3, S, S), likewise.
            present: bool (B, 2), [clinical, ultrasound] given.

        Returns:
            logits float64 (B, K) (no temperature), and used bool (B, 2): which
            modalities the prediction used.
        """
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Returns: model name, classes, image size, temperature, modalities read,
        supports_missing and source, as a JSON-ready dict (e.g. for an /info endpoint)."""
        return {
            "model": self.model_name,
            "classes": list(self.classes),
            "img_size": self.img_size,
            "temperature": self.temperature,
            "reads": list(self.reads),
            "supports_missing": self.supports_missing,
            "source": self.source,
        }

    def check_modalities(self, present: np.ndarray, where: Sequence[str] | None = None) -> None:
        """Refuse pairs this model cannot diagnose, saying which image is missing and why.

        Args:
            present: bool (B, 2), [clinical, ultrasound] given.
            where: a label per pair for the message (e.g. "row 7"); None for one pair.

        Raises:
            UserError: a pair lacks an image the model needs.
        """
        present = np.asarray(present, dtype=bool).reshape(-1, 2)
        labels = list(where) if where is not None else [""] * len(present)

        def refuse(bad: np.ndarray, what: str, fix: str) -> None:
            if not bad.any():
                return
            rows = [labels[i] for i in np.flatnonzero(bad)]
            prefix = f"{_join(rows)}: " if where is not None else ""
            raise UserError(f"{prefix}{what}. {fix}")

        refuse(~present.any(axis=1), "no image given", "Give a clinical and an ultrasound image.")
        needed = [m for m in MODALITIES if m in self.reads]
        if len(needed) == 1:
            m = needed[0]
            refuse(
                ~present[:, MODALITIES.index(m)],
                f"the {m} image is missing, and {self.model_name} ({self.source}) reads only "
                f"the {m} image",
                f"Give the {m} image.",
            )
            return
        if self.supports_missing:
            return
        for m in MODALITIES:
            refuse(~present[:, MODALITIES.index(m)], *self.missing_refusal(m))

    def missing_refusal(self, modality: str) -> tuple[str, str]:
        """Why a pair without `modality` is refused, and the fix (both for the message).

        Args:
            modality: the missing one.

        Returns:
            (what is wrong, how to fix it).
        """
        return (
            f"the {modality} image is missing, but {self.model_name} ({self.source}) was "
            "trained without modality dropout, so it needs both images",
            f"Give the {modality} image too, or use a model trained to accept a missing "
            f"image: set the config key {DROPOUT_KEY} (e.g. `agfnet train --data M.csv "
            f"{DROPOUT_KEY}=0.2`).",
        )

    def preprocess(
        self, clinical: ImageInput, ultrasound: ImageInput
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Read and transform one pair exactly as the checkpoint's evaluation transform.

        Args:
            clinical: the photograph (any `ImageInput`), or None.
            ultrasound: the ultrasound image, or None.

        Returns:
            clinical (3, S, S) and ultrasound (3, S, S) float32, normalised (zeros where
            missing), and present bool (2,).
        """
        return self._transform(_read_pair(clinical, ultrasound))

    def _transform(
        self, images: tuple[Image.Image | None, Image.Image | None]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        present = torch.tensor([im is not None for im in images], dtype=torch.bool)
        clinical_t, ultrasound_t = self.transform(*images)
        return clinical_t, ultrasound_t, present

    def predict_tensors(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor,
        where: Sequence[str] | None = None,
    ) -> list[Prediction]:
        """Predict a preprocessed batch: check the modalities, run, calibrate, summarise.

        Args:
            clinical: float32 (B, 3, S, S), preprocessed; zeros where missing.
            ultrasound: float32 (B, 3, S, S).
            present: bool (B, 2).
            where: a label per pair for error messages.

        Returns:
            B `Prediction`s.
        """
        from agfnet.evaluation.calibration import apply_temperature

        self.check_modalities(present.numpy(), where)
        spreads: list[dict[str, Any] | None] = [None] * len(clinical)
        if self.sampling is None:
            logits, used = self.forward(clinical, ultrasound, present)
            probs = apply_temperature(logits, self.temperature)
        else:
            logits, probs, used, spreads = self._sample(clinical, ultrasound, present)
        out = []
        for z, p, u, spread in zip(logits, probs, used, spreads, strict=True):
            out.append(
                Prediction(
                    probabilities={c: float(v) for c, v in zip(self.classes, p, strict=True)},
                    prediction=self.classes[int(np.argmax(p))],
                    uncertainty=summarize_uncertainty(p),
                    modalities={m: bool(b) for m, b in zip(MODALITIES, u, strict=True)},
                    logits=tuple(float(v) for v in z),
                    spread=spread,
                )
            )
        return out

    def mc_model(self) -> torch.nn.Module | None:
        """The PyTorch network whose dropout `--mc` samples; None where there is none."""
        return None

    def _sample(
        self, clinical: torch.Tensor, ultrasound: torch.Tensor, present: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Mean logits, mean calibrated probabilities, modalities used and per-pair spread
        over the passes of `self.sampling`."""
        from agfnet.evaluation.calibration import apply_temperature
        from agfnet.evaluation.uncertainty import summarize_passes
        from agfnet.inference.stochastic import sample_logits

        used_by_pass: list[np.ndarray] = []

        def run(c: torch.Tensor, u: torch.Tensor) -> np.ndarray:
            z, used = self.forward(c, u, present)
            used_by_pass.append(used)
            return z

        stack = sample_logits(
            run,
            clinical,
            ultrasound,
            self.sampling,
            model=self.mc_model(),
            name=f"{self.model_name} ({self.source})",
        )
        summary = summarize_passes(apply_temperature(stack, self.temperature))
        head = self.sampling.to_dict()
        spreads = [
            {
                **head,
                "std": {c: float(v) for c, v in zip(self.classes, std, strict=True)},
                "mutual_information": float(mi),
            }
            for std, mi in zip(summary.std, summary.mutual_information, strict=True)
        ]
        return stack.mean(axis=0), summary.mean, used_by_pass[0], spreads

    def predict(self, clinical: ImageInput = None, ultrasound: ImageInput = None) -> Prediction:
        """Diagnose one pair.

        Args:
            clinical: the photograph: a path (any format `agfnet.data.read_image` reads,
                DICOM included), bytes, a binary file, a PIL image, a numpy array (H, W),
                (H, W, 3) or (H, W, 4) of uint8 or uint16, or None when missing.
            ultrasound: the ultrasound image, likewise.

        Returns:
            The `Prediction`.

        Raises:
            UserError: an unreadable image (named), or a missing image the model needs.
        """
        return self.predict_batch([(clinical, ultrasound)])[0]

    def predict_batch(
        self, pairs: Iterable[tuple[ImageInput, ImageInput]], batch_size: int = 32
    ) -> list[Prediction]:
        """Diagnose several pairs, `batch_size` per network call.

        Args:
            pairs: (clinical, ultrasound) inputs, as for `predict`.
            batch_size: pairs per forward pass.

        Returns:
            One `Prediction` per pair, in order.
        """
        pairs = list(pairs)
        out: list[Prediction] = []
        for start in range(0, len(pairs), batch_size):
            chunk = [self.preprocess(c, u) for c, u in pairs[start : start + batch_size]]
            where = [f"pair {start + i + 1}" for i in range(len(chunk))] if len(pairs) > 1 else None
            clinical, ultrasound, present = (torch.stack(t) for t in zip(*chunk, strict=True))
            out += self.predict_tensors(clinical, ultrasound, present, where)
        return out

    def predict_manifest(
        self,
        manifest: str | os.PathLike,
        *,
        batch_size: int = 32,
        num_workers: int = 0,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> tuple[Any, list[Prediction]]:
        """Diagnose every row of a manifest (labels optional), batched through a DataLoader.

        Every image is decoded once first, so all bad files are reported together before
        any prediction is made.

        Args:
            manifest: a manifest CSV (`clinical`, `ultrasound`, optional `label`,
                `lesion_id`, ...; a blank image cell is a missing modality).
            batch_size: pairs per forward pass.
            num_workers: DataLoader worker processes.
            progress: called as progress(stage, done, total), stage "checking images" then
                "predicting".

        Returns:
            The validated `Manifest` and one `Prediction` per row, in manifest order.

        Raises:
            ManifestError: bad rows or images (every one listed).
            UserError: rows lacking an image the model needs (row numbers listed).
        """
        from torch.utils.data import DataLoader

        from agfnet.data import PairedLesionDataset, read_manifest

        def report(stage: str) -> Callable[[int, int], None] | None:
            return None if progress is None else lambda done, total: progress(stage, done, total)

        table = read_manifest(
            manifest,
            require_labels=False,
            allow_missing_modality=True,
            progress=report("checking images"),
        )
        self.check_modalities(
            np.array([r.present for r in table.rows]), [f"row {r.row}" for r in table.rows]
        )
        loader = DataLoader(
            PairedLesionDataset(table, transform=self.transform),
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
        )
        out: list[Prediction] = []
        tick = report("predicting")
        for batch in loader:
            where = [f"row {int(r)}" for r in batch["row"]]
            out += self.predict_tensors(
                batch["clinical"], batch["ultrasound"], batch["present"], where
            )
            if tick is not None:
                tick(len(out), len(table))
        return table, out


def _check_metadata(ckpt: dict[str, Any], path: Path) -> None:
    """Name what a checkpoint lacks before anything is built from it."""
    from agfnet.engine.checkpoint import META_KEY

    meta = ckpt["hyper_parameters"][META_KEY]
    missing = [f"{k} ({why})" for k, why in REQUIRED_METADATA.items() if k not in meta]
    spec = meta.get("build_spec", {})
    if "build_spec" in meta:
        missing += [f"build_spec.{k}" for k in ("name", "num_classes") if k not in spec]
    if "transform" in meta and "img_size" not in meta["transform"]:
        missing.append("transform.img_size (the input size)")
    if not isinstance(ckpt.get("state_dict"), dict):
        missing.append("state_dict (the weights)")
    if missing:
        raise UserError(
            f"checkpoint {path} lacks {', '.join(missing)} under hyper_parameters/{META_KEY}; "
            "use a best.ckpt or last.ckpt written by `agfnet train` of this agfnet version"
        )
    if len(meta["classes"]) != spec["num_classes"]:
        raise UserError(
            f"checkpoint {path} names {len(meta['classes'])} classes but its model has "
            f"{spec['num_classes']} outputs; the file was altered: use the one `agfnet train` "
            "wrote"
        )


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Any]:
    """Rebuild a trained network from a checkpoint, refusing anything but plain data.

    The file is read with `torch.load(weights_only=True)`
    (`agfnet.engine.checkpoint.read_checkpoint`), so a crafted checkpoint cannot run
    code; one that holds pickled objects is refused as "not a safe agfnet checkpoint".

    Args:
        path: a best.ckpt / last.ckpt of `agfnet train`.
        device: where the weights go.

    Returns:
        (model in eval mode, its `CheckpointInfo`).

    Raises:
        UserError: missing, unsafe, corrupt or incomplete checkpoint (the message names
            what is wrong).
    """
    from agfnet.engine.checkpoint import CheckpointInfo, model_state_dict, read_checkpoint
    from agfnet.models import create_model

    path = Path(path)
    ckpt = read_checkpoint(path, map_location=device)
    _check_metadata(ckpt, path)
    info = CheckpointInfo.from_checkpoint(ckpt, path)
    spec = info.build_spec
    model = create_model(spec["name"], num_classes=spec["num_classes"], **spec.get("overrides", {}))
    try:
        model.load_state_dict(model_state_dict(ckpt))
    except RuntimeError as err:
        # torch lists every missing, unexpected and mis-shaped key; the first few suffice.
        detail = " ".join(line.strip() for line in str(err).splitlines()[1:])
        detail = detail[:300] + ("..." if len(detail) > 300 else "")
        raise UserError(
            f"checkpoint {path}: its weights do not fit model {spec['name']} ({detail}); the "
            "file was altered or written by another agfnet version: retrain it with this one"
        ) from None
    return model.to(device).eval(), info


def _resolve_device(device: str | torch.device | None) -> torch.device:
    from agfnet.engine.evaluate import resolve_device

    try:
        resolved = resolve_device(str(device) if device is not None else None)
    except RuntimeError as err:
        raise UserError(f"--device {device}: {err}; use cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    return resolved


class Predictor(PredictorBase):
    """PyTorch inference from an `agfnet train` checkpoint.

    Example:
        predictor = Predictor.from_checkpoint("runs/t/checkpoints/best.ckpt")
        result = predictor.predict("photo.jpg", "scan.dcm")
        result.prediction, result.probabilities, result.uncertainty.certainty

    Args:
        model: the network (eval mode) from `load_checkpoint`.
        info: its `CheckpointInfo`.
        device: where it runs.
    """

    def __init__(self, model: torch.nn.Module, info: Any, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.info = info
        self.device = device
        self.classes = list(info.classes)
        self.model_name = str(info.build_spec["name"])
        self.temperature = float(info.temperature)
        self.transform_config = dict(info.transform)
        self.reads = tuple(getattr(model.encoders, "modalities", MODALITIES))
        self.supports_missing = bool(model.supports_missing)
        self.source = str(info.path)
        self._setup()

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device | None = None
    ) -> Predictor:
        """Load a checkpoint safely (weights_only) and build its predictor.

        Args:
            path: a best.ckpt / last.ckpt of `agfnet train`.
            device: "cpu", "cuda", "cuda:1"; None picks the GPU when there is one.

        Returns:
            The `Predictor`.

        Raises:
            UserError: unsafe, missing, corrupt or incomplete checkpoint; unavailable device.
        """
        resolved = _resolve_device(device)
        model, info = load_checkpoint(path, device=resolved)
        return cls(model, info, resolved)

    def explain(
        self, clinical: ImageInput = None, ultrasound: ImageInput = None, method: str = "gradcam"
    ) -> Explanation:
        """Predict one pair and map, per image, where the predicted class's evidence lies.

        The maps come from `agfnet.explain.cam.explain_pair` (Grad-CAM family, the last
        feature stage of each modality's encoder), for the predicted class.

        Args:
            clinical: as for `predict`.
            ultrasound: as for `predict`.
            method: "gradcam", "gradcam++" or "layercam".

        Returns:
            The `Explanation` (its `save(folder)` writes the overlays).
        """
        from agfnet.explain.cam import explain_pair

        images = _read_pair(clinical, ultrasound)
        clinical_t, ultrasound_t, present = self._transform(images)
        prediction = self.predict_tensors(clinical_t[None], ultrasound_t[None], present[None])[0]
        maps = explain_pair(
            self.model,
            clinical_t,
            ultrasound_t,
            method=method,
            target=self.classes.index(prediction.prediction),
            present=present[None],
        )
        used = [m for m in MODALITIES if prediction.modalities[m]]
        return Explanation(
            prediction=prediction,
            method=method,
            target=prediction.prediction,
            maps={m: maps[m] for m in used},
            images={m: images[MODALITIES.index(m)] for m in used},
        )

    def mc_model(self) -> torch.nn.Module:
        """See `PredictorBase.mc_model`: the checkpoint's network."""
        return self.model

    @torch.no_grad()
    def forward(
        self, clinical: torch.Tensor, ultrasound: torch.Tensor, present: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        """See `PredictorBase.forward`; runs `model.forward_output` with the present mask."""
        out = self.model.forward_output(
            clinical.to(self.device), ultrasound.to(self.device), present=present.to(self.device)
        )
        return out.logits.double().cpu().numpy(), out.modalities.cpu().numpy()


def write_predictions_csv(
    path: str | os.PathLike, manifest: Any, predictions: Sequence[Prediction], classes: list[str]
) -> None:
    """Write batch predictions as CSV, atomically.

    Columns: row (1-based manifest row), lesion_id, prediction, prob_<class> per class,
    entropy (nats), modalities ("clinical+ultrasound", "clinical" or "ultrasound": the
    images the prediction used); with several passes (`--mc` / `--tta`) also
    mutual_information (nats) and std_prediction (the predicted class's probability's
    standard deviation over the passes).

    Args:
        path: the CSV to write.
        manifest: the `Manifest` the predictions were made on.
        predictions: one per manifest row, in order.
        classes: class names (the prob_ columns, in order).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            sampled = any(pred.spread is not None for pred in predictions)
            spread_columns = ["mutual_information", "std_prediction"] if sampled else []
            writer.writerow(
                [
                    "row",
                    "lesion_id",
                    "prediction",
                    *(f"prob_{c}" for c in classes),
                    "entropy",
                    "modalities",
                    *spread_columns,
                ]
            )
            for row, pred in zip(manifest.rows, predictions, strict=True):
                used = "+".join(m for m in MODALITIES if pred.modalities[m])
                spread = (
                    [
                        f"{pred.spread['mutual_information']:.6f}",
                        f"{pred.spread['std'][pred.prediction]:.6f}",
                    ]
                    if sampled and pred.spread is not None
                    else [""] * len(spread_columns)
                )
                writer.writerow(
                    [
                        row.row,
                        row.lesion_id,
                        pred.prediction,
                        *(f"{pred.probabilities[c]:.6f}" for c in classes),
                        f"{pred.uncertainty.entropy:.6f}",
                        used,
                        *spread,
                    ]
                )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
