"""Diagnose lesions with a trained model: images in, calibrated class probabilities out.

`Predictor` is the one place a prediction is made (the CLI, batch prediction and the web
app all call it): it reads a checkpoint safely, preprocesses exactly as the checkpoint's
evaluation transform, refuses a missing image the model was not trained to do without,
applies the checkpoint's temperature and summarises the uncertainty. `PredictorBase`
holds everything but the network call, so the ONNX-Runtime predictor
(`agfnet.inference.onnx_runtime.OnnxPredictor`) gives the same output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from agfnet.constants import MODALITIES
from agfnet.data.manifest.display import config_modality_names
from agfnet.fileio import atomic_write_text
from agfnet.inference.base import ImageInput, PredictorBase, read_pair, to_pil
from agfnet.inference.results import (
    CERTAINTY_THRESHOLDS,
    Explanation,
    Prediction,
    Uncertainty,
    summarize_uncertainty,
)

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
    "to_pil",
    "write_predictions_csv",
]


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Any]:
    """`agfnet.runtime.checkpoint.load_model` (the one checkpoint loader), by its
    inference name: (model in eval mode on `device`, its `CheckpointInfo`)."""
    from agfnet.runtime.checkpoint import load_model

    return load_model(path, map_location=device)


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
        compile: `torch.compile` the network (`agfnet.runtime.compile`): "auto" (on for
            CUDA, off on the CPU), True or False. The first prediction of each batch size
            then compiles (minutes on a cold cache, seconds on a warm one).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        info: Any,
        device: torch.device,
        *,
        compile: bool | str = "auto",
    ) -> None:
        from agfnet.runtime.compile import maybe_compile

        self.model = maybe_compile(model.to(device).eval(), compile, device)
        self.info = info
        self.device = device
        self.classes = list(info.classes)
        self.model_name = str(info.build_spec["name"])
        self.temperature = float(info.temperature)
        self.transform_config = dict(info.transform)
        self.reads = tuple(getattr(model.encoders, "modalities", MODALITIES))
        self.supports_missing = bool(model.supports_missing)
        self.source = str(info.path)
        self.modality_names = config_modality_names(info.config)
        self.tasks = info.tasks
        self.metadata_spec = info.metadata_spec()
        self._setup()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        *,
        compile: bool | str = "auto",
    ) -> Predictor:
        """Load a checkpoint safely (weights_only) and build its predictor.

        Args:
            path: a best.ckpt / last.ckpt of `agfnet train`.
            device: "cpu", "cuda", "cuda:1"; None picks the GPU when there is one.
            compile: "auto" (on for CUDA, off on the CPU), True or False (see `Predictor`).

        Returns:
            The `Predictor`.

        Raises:
            UserError: unsafe, missing, corrupt or incomplete checkpoint; unavailable device.
        """
        from agfnet.runtime.device import resolve_device

        resolved = resolve_device(device)
        model, info = load_checkpoint(path, device=resolved)
        return cls(model, info, resolved, compile=compile)

    def explain(
        self,
        clinical: ImageInput = None,
        ultrasound: ImageInput = None,
        method: str = "layercam",
        metadata: dict[str, Any] | None = None,
    ) -> Explanation:
        """Predict one pair and map, per image, where the predicted class's evidence lies.

        The maps come from `agfnet.explain.cam.explain_pair` (Layer-CAM by default, on
        the stride-8 and stride-16 stages of each modality's encoder), for the predicted
        class. The
        prediction uses `metadata`; the maps are of the images alone (the CAM runs the
        network's plain forward, where every metadata field is missing).

        Args:
            clinical: as for `predict`.
            ultrasound: as for `predict`.
            method: "layercam" (the default, `agfnet.explain.cam.DEFAULT_METHOD`),
                "gradcam" or "gradcam++".
            metadata: as for `predict`.

        Returns:
            The `Explanation` (its `save(folder)` writes the overlays).
        """
        from agfnet.explain.cam import explain_pair, layer_names

        images = read_pair(clinical, ultrasound)
        clinical_t, ultrasound_t, present = self._transform(images)
        prediction = self.predict_tensors(
            clinical_t[None], ultrasound_t[None], present[None], metadata=[metadata]
        )[0]
        layers = layer_names(self.model)
        # Grad-CAM hooks layers and swaps a method: a compiled network runs it eagerly.
        with torch.compiler.set_stance("force_eager"):
            maps = explain_pair(
                self.model,
                clinical_t,
                ultrasound_t,
                method=method,
                target=self.classes.index(prediction.prediction),
                layers=layers,
                present=present[None],
            )
        used = [m for m in MODALITIES if prediction.modalities[m]]
        return Explanation(
            prediction=prediction,
            method=method,
            target=prediction.prediction,
            maps={m: maps[m] for m in used},
            images={m: images[MODALITIES.index(m)] for m in used},
            names=dict(self.modality_names),
            layers={m: layers[m] for m in used if m in layers},
        )

    def mc_model(self) -> torch.nn.Module:
        """See `PredictorBase.mc_model`: the checkpoint's network."""
        return self.model

    def forward(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor,
        metadata: dict[str, torch.Tensor] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """See `PredictorBase.forward`: `agfnet.runtime.batch.forward_batch`."""
        from agfnet.runtime.batch import forward_batch

        return forward_batch(
            self.model, clinical, ultrasound, present, self.device, metadata, with_tasks=True
        )


def write_predictions_csv(
    path: str | os.PathLike, manifest: Any, predictions: Sequence[Prediction], classes: list[str]
) -> None:
    """Write batch predictions as CSV, atomically.

    Columns: row (1-based manifest row), lesion_id, prediction, prob_<class> per class,
    entropy (nats), modalities ("clinical+ultrasound", "clinical" or "ultrasound": the
    images the prediction used); with several passes (`--mc` / `--tta`) also
    mutual_information (nats) and std_prediction (the predicted class's probability's
    standard deviation over the passes); with task heads pred_<task> and
    prob_<task>_<class> per task (`agfnet.evaluation.report.task_columns`), then
    seven_point_score and checklist_melanoma (1/0) when the tasks are the seven
    criteria; with metadata, metadata_missing and metadata_unknown (the fields, joined
    by ";").

    Args:
        path: the CSV to write.
        manifest: the `Manifest` the predictions were made on.
        predictions: one per manifest row, in order.
        classes: class names (the prob_ columns, in order).
    """
    from agfnet.evaluation.report import predictions_csv

    sampled = any(pred.spread is not None for pred in predictions)
    columns: dict[str, list[Any]] = {
        "modalities": ["+".join(m for m in MODALITIES if p.modalities[m]) for p in predictions]
    }
    if sampled:
        columns["mutual_information"] = [
            None if p.spread is None else p.spread["mutual_information"] for p in predictions
        ]
        columns["std_prediction"] = [
            None if p.spread is None else p.spread["std"][p.prediction] for p in predictions
        ]
    columns.update(_extension_columns(predictions))
    text = predictions_csv(
        [row.row for row in manifest.rows],
        np.array([[p.probabilities[c] for c in classes] for p in predictions]),
        classes,
        lesion_ids=[row.lesion_id for row in manifest.rows],
        confidence=False,
        columns=columns,
    )
    atomic_write_text(path, text)


def _extension_columns(predictions: Sequence[Prediction]) -> dict[str, list[Any]]:
    """The task, checklist and metadata columns of `write_predictions_csv` ({} without)."""
    from agfnet.evaluation.report import task_columns

    columns: dict[str, list[Any]] = {}
    first = predictions[0] if predictions else None
    if first is not None and first.tasks:
        task_classes = {name: list(t["probabilities"]) for name, t in first.tasks.items()}
        probs = {
            name: np.array(
                [[p.tasks[name]["probabilities"][c] for c in classes] for p in predictions]
            )
            for name, classes in task_classes.items()
        }
        columns.update(task_columns(probs, task_classes))
        if first.seven_point_score is not None:
            columns["seven_point_score"] = [str(p.seven_point_score) for p in predictions]
            columns["checklist_melanoma"] = [
                str(int(bool(p.checklist_melanoma))) for p in predictions
            ]
    if first is not None and first.metadata_missing is not None:
        columns["metadata_missing"] = [";".join(p.metadata_missing or []) for p in predictions]
        columns["metadata_unknown"] = [";".join(p.metadata_unknown or []) for p in predictions]
    return columns
