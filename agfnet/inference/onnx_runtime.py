"""`OnnxPredictor`: the `Predictor` interface and output on an exported ONNX file (onnxruntime).

Everything it needs comes from the file's metadata (written by `export_onnx`): classes,
preprocessing, temperature, which modalities the model reads and whether it accepts a
missing one, and how outputs name each image. No checkpoint and no model code are used;
preprocessing is the same `agfnet.data` evaluation transform.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agfnet.constants import MODALITIES
from agfnet.data.manifest.display import image_noun, modality_names
from agfnet.data.metadata import MetadataSpec
from agfnet.errors import UserError
from agfnet.inference.base import PredictorBase
from agfnet.inference.export import METADATA_INPUTS, TASK_PREFIX

__all__ = ["OnnxPredictor"]

# onnxruntime's input type names -> the numpy dtype fed.
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}

# metadata_props every agfnet ONNX file carries (see `agfnet.inference.export`).
REQUIRED_KEYS = ("model_name", "classes", "transform", "temperature", "reads", "supports_missing")


class OnnxPredictor(PredictorBase):
    """Predict with an ONNX file from `agfnet export`, on onnxruntime's CPU provider.

    Example:
        predictor = OnnxPredictor.from_file("model.onnx")
        predictor.predict("photo.jpg", "scan.png").to_dict()

    Args:
        session: an `onnxruntime.InferenceSession` of the file.
        metadata: its metadata_props.
        source: the file, for messages.
    """

    def __init__(self, session: Any, metadata: dict[str, str], source: str) -> None:
        missing = [k for k in REQUIRED_KEYS if k not in metadata]
        if missing:
            raise UserError(
                f"{source} lacks the agfnet metadata {', '.join(missing)}; it was not written "
                "by `agfnet export`: export the checkpoint again"
            )
        self.session = session
        self.info = dict(metadata)
        self.source = source
        self.model_name = metadata["model_name"]
        try:
            self.classes = list(json.loads(metadata["classes"]))
            self.temperature = float(metadata["temperature"])
            self.transform_config = json.loads(metadata["transform"])
            self.reads = tuple(json.loads(metadata["reads"]))
            self.supports_missing = bool(json.loads(metadata["supports_missing"]))
            self.modality_dropout = bool(json.loads(metadata.get("modality_dropout", "false")))
            # Absent from files exported before the setting: the default names.
            self.modality_names = modality_names(json.loads(metadata.get("modality_names", "{}")))
            # Present only in exports of models with task heads / metadata.
            self.tasks = {k: list(v) for k, v in json.loads(metadata.get("tasks", "{}")).items()}
            spec = json.loads(metadata.get("metadata", "null"))
            self.metadata_spec = None if not spec else MetadataSpec.from_dict(spec)
        except ValueError as err:
            raise UserError(
                f"{source}: its agfnet metadata is malformed ({err}); export the checkpoint "
                "again with `agfnet export`"
            ) from None
        self.inputs = [i.name for i in session.get_inputs()]
        self._dtypes = {i.name: _NUMPY_TYPES.get(i.type, np.float32) for i in session.get_inputs()}
        self._setup()

    def missing_refusal(self, modality: str) -> tuple[str, str]:
        """See `PredictorBase.missing_refusal`; an export of a model trained with modality
        dropout still needs both images, as missing-image handling is not exported."""
        if not self.modality_dropout:
            return super().missing_refusal(modality)
        noun = image_noun(modality, self.modality_names)
        return (
            f"the {noun} is missing, and the ONNX export {self.source} takes both "
            "images (missing-image handling is not exported)",
            f"Give the {noun} too, or predict with the checkpoint "
            "(`agfnet predict --checkpoint`), whose model was trained with modality dropout.",
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> OnnxPredictor:
        """Open an ONNX file written by `agfnet export`.

        Args:
            path: the .onnx file.

        Returns:
            The `OnnxPredictor`.

        Raises:
            UserError: a missing or unreadable file, or one without agfnet metadata.
        """
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise UserError(f"ONNX file {path} does not exist; write one with `agfnet export`")
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise UserError(
                f"{path} is not a readable ONNX model ({type(err).__name__}: {err}); export "
                "the checkpoint again with `agfnet export`"
            ) from None
        return cls(session, session.get_modelmeta().custom_metadata_map, str(path))

    def forward(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor,
        metadata: dict[str, torch.Tensor] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """See `PredictorBase.forward`; `used` is `present` restricted to what the model reads
        (as the PyTorch models compute it)."""
        inputs = {"clinical": clinical.numpy(), "ultrasound": ultrasound.numpy()}
        if metadata is not None:
            inputs.update({METADATA_INPUTS[k]: v.numpy() for k, v in metadata.items()})
        out = self.run_raw(inputs)
        reads = np.array([m in self.reads for m in MODALITIES])
        tasks = {name: out[TASK_PREFIX + name].astype(np.float64) for name in self.tasks}
        return out["logits"].astype(np.float64), present.numpy().astype(bool) & reads, tasks

    def run_raw(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph on preprocessed arrays and return every output.

        Args:
            inputs: "clinical" and "ultrasound", float32 (B, 3, S, S), preprocessed; and
                for a model with metadata the graph's metadata inputs (`meta_cat`,
                `meta_num`, `meta_num_present`, see `agfnet.inference.export`).

        Returns:
            {"logits": (B, K), "probabilities": (B, K)}, float32, and `task_<name>` (B,
            k_t) task logits for a model with task heads.
        """
        feeds = {k: np.ascontiguousarray(inputs[k], dtype=self._dtypes[k]) for k in self.inputs}
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feeds), strict=True))
