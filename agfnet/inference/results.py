"""What a prediction returns: the probabilities with their certainty (`Prediction`,
`Uncertainty`) and the heatmaps of an explained prediction (`Explanation`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from agfnet.data.manifest.display import DEFAULT_MODALITY_NAMES

__all__ = [
    "CERTAINTY_THRESHOLDS",
    "Explanation",
    "Prediction",
    "Uncertainty",
    "summarize_uncertainty",
]

#: (lowest max probability, level), best first; below the last threshold the certainty is
#: "low". After temperature scaling the max probability estimates how often the top class
#: is right, so "high" means about 4 in 5 such predictions or more are correct on data like
#: the calibration set. These are reading aids, not clinically validated cut-offs.
CERTAINTY_THRESHOLDS: tuple[tuple[float, str], ...] = ((0.8, "high"), (0.5, "moderate"))


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
        tasks: task -> {"prediction": class, "probabilities": {class: p}} of each task
            head (`data.tasks`, e.g. the seven criteria), softmax of its logits (no
            temperature: it calibrates the diagnosis only), from one deterministic pass;
            {} for a model without task heads.
        seven_point_score: the seven-point checklist's score of the predicted criteria
            (`agfnet.evaluation.checklist`), when the tasks are the seven criteria; else None.
        checklist_melanoma: whether that score reaches the checklist's threshold (>= 3);
            None without the score.
        metadata_missing: the metadata fields the model uses that were not given (blank
            or left out; the model has a learned embedding for missing); None for a
            model without metadata.
        metadata_unknown: the categorical fields given a value unseen in training (read
            as "unknown"); None for a model without metadata.
    """

    probabilities: dict[str, float]
    prediction: str
    uncertainty: Uncertainty
    modalities: dict[str, bool]
    logits: tuple[float, ...]
    spread: dict[str, Any] | None = None
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    seven_point_score: int | None = None
    checklist_melanoma: bool | None = None
    metadata_missing: list[str] | None = None
    metadata_unknown: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `agfnet predict --json` and of the web API.

        Returns:
            {"probabilities": {class: p}, "prediction": class, "uncertainty": {entropy,
            normalized_entropy, max_probability, certainty}, "modalities": {clinical: bool,
            ultrasound: bool}}, plus "spread" (see the attribute) with several passes,
            "tasks" with task heads, "seven_point_score" and "checklist_melanoma" when
            the tasks are the seven criteria, and "metadata_missing" and
            "metadata_unknown" for a model that uses metadata (each only then).
        """
        out = {
            "probabilities": dict(self.probabilities),
            "prediction": self.prediction,
            "uncertainty": self.uncertainty.to_dict(),
            "modalities": dict(self.modalities),
        }
        if self.spread is not None:
            out["spread"] = {**self.spread, "std": dict(self.spread["std"])}
        if self.tasks:
            out["tasks"] = {
                name: {"prediction": t["prediction"], "probabilities": dict(t["probabilities"])}
                for name, t in self.tasks.items()
            }
        if self.seven_point_score is not None:
            out["seven_point_score"] = self.seven_point_score
            out["checklist_melanoma"] = self.checklist_melanoma
        if self.metadata_missing is not None:
            out["metadata_missing"] = list(self.metadata_missing)
            out["metadata_unknown"] = list(self.metadata_unknown or [])
        return out


@dataclass(frozen=True)
class Explanation:
    """A prediction and the class activation map of each image it used.

    Attributes:
        prediction: the `Prediction`.
        method: the CAM method ("layercam", "gradcam", "gradcam++").
        target: the class explained (the predicted one).
        maps: modality -> float32 (S, S) map in [0, 1] at the model's input size, for
            the modalities the prediction used.
        images: modality -> the RGB input image at its own size, for the same modalities.
        names: modality -> how outputs name its image (`PredictorBase.modality_names`).
        layers: modality -> the target layers the maps come from (dotted names).
    """

    prediction: Prediction
    method: str
    target: str
    maps: dict[str, np.ndarray]
    images: dict[str, Image.Image]
    names: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MODALITY_NAMES))
    layers: dict[str, list[str]] = field(default_factory=dict)

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
        from agfnet.fileio import atomic_file, write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for m, overlay in self.overlays().items():
            path = folder / f"{m}_cam.png"
            with atomic_file(path, "wb") as f:
                overlay.save(f, format="PNG")
            files[m] = path
        files["explanation"] = folder / "explanation.json"
        write_json(
            files["explanation"],
            {
                **self.prediction.to_dict(),
                "cam": {
                    "method": self.method,
                    "target": self.target,
                    "layers": {m: list(v) for m, v in self.layers.items() if m in self.maps},
                    "files": {m: p.name for m, p in files.items() if m in self.maps},
                    "titles": {m: self.names[m] for m in self.maps},
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
