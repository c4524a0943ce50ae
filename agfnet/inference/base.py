"""`PredictorBase`: preprocessing, missing-image rules, temperature and output shared by
every inference backend (PyTorch `Predictor`, ONNX Runtime `OnnxPredictor`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from agfnet.constants import MODALITIES
from agfnet.data.convert import ImageInput, to_pil
from agfnet.data.convert import to_pil_pair as read_pair
from agfnet.data.manifest.display import DEFAULT_MODALITY_NAMES
from agfnet.errors import UserError
from agfnet.inference.heads import encode_metadata, metadata_fields, task_fields
from agfnet.inference.results import Prediction, summarize_uncertainty

__all__ = ["ImageInput", "PredictorBase", "read_pair", "to_pil"]


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
        modality_names: modality -> how outputs name its image (the training config's
            `data.modality_names`, e.g. "Dermoscopic image" for Derm7pt's second slot).
        sampling: None for one deterministic pass, or a `Sampling` (Monte-Carlo dropout
            or test-time augmentation, `agfnet.runtime.stochastic`): every prediction
            is then the mean of several passes and carries their spread.
        tasks: task -> class names of the model's task heads (`data.tasks`); {} without.
        metadata_spec: the `agfnet.data.MetadataSpec` of the metadata the model uses;
            None without.
    """

    sampling: Any = None
    tasks: dict[str, list[str]] = {}  # noqa: RUF012 (read-only default; set per instance)
    metadata_spec: Any = None

    classes: list[str]
    model_name: str
    temperature: float
    transform_config: dict[str, Any]
    reads: tuple[str, ...]
    supports_missing: bool
    source: str
    modality_names: dict[str, str] = DEFAULT_MODALITY_NAMES

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
        from agfnet.evaluation.checklist import has_checklist

        self.checklist = bool(self.tasks) and has_checklist(self.tasks)

    def forward(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor,
        metadata: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Run the network.

        Args:
            clinical: float32 (B, 3, S, S), preprocessed; zeros where missing.
            ultrasound: float32 (B, 3, S, S), likewise.
            present: bool (B, 2), [clinical, ultrasound] given.
            metadata: {"cat": int64 (B, F_cat), "num": float32 (B, F_num),
                "num_present": bool (B, F_num)} (`heads.encode_metadata`); None for a model
                without metadata.

        Returns:
            logits float64 (B, K) (no temperature), used bool (B, 2): which modalities
            the prediction used, and task -> float64 (B, k_t) task logits ({} without).
        """
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Returns: model name, classes, image size, temperature, modalities read,
        supports_missing, source and modality_names, as a JSON-ready dict (e.g. for an
        /info endpoint)."""
        return {
            "model": self.model_name,
            "classes": list(self.classes),
            "img_size": self.img_size,
            "temperature": self.temperature,
            "reads": list(self.reads),
            "supports_missing": self.supports_missing,
            "source": self.source,
            "modality_names": dict(self.modality_names),
            **self._describe_extensions(),
        }

    def _describe_extensions(self) -> dict[str, Any]:
        """The task heads and metadata fields, for `describe` (only those the model has)."""
        out: dict[str, Any] = {}
        if self.tasks:
            out["tasks"] = {name: list(c) for name, c in self.tasks.items()}
            out["seven_point_checklist"] = self.checklist
        if self.metadata_spec is not None:
            out["metadata"] = [
                {"name": f.name, "kind": f.kind, "vocabulary": f.vocabulary}
                for f in self.metadata_spec.fields
            ]
        return out

    def check_modalities(self, present: np.ndarray, where: Sequence[str] | None = None) -> None:
        """Refuse pairs this model cannot diagnose, saying which image is missing and why
        (`agfnet.runtime.selection.refuse_missing`).

        Args:
            present: bool (B, 2), [clinical, ultrasound] given.
            where: a label per pair for the message (e.g. "row 7"); None for one pair.

        Raises:
            UserError: a pair lacks an image the model needs.
        """
        from agfnet.runtime.selection import refuse_missing

        refuse_missing(
            present,
            reads=self.reads,
            supports_missing=self.supports_missing,
            name=f"{self.model_name} ({self.source})",
            where=where,
            refusal=self.missing_refusal,
            names=self.modality_names,
        )

    def missing_refusal(self, modality: str) -> tuple[str, str]:
        """Why a pair without `modality` is refused, and the fix (both for the message).

        Args:
            modality: the missing one.

        Returns:
            (what is wrong, how to fix it).
        """
        from agfnet.runtime.selection import missing_refusal

        return missing_refusal(modality, f"{self.model_name} ({self.source})", self.modality_names)

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
        return self._transform(read_pair(clinical, ultrasound))

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
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[Prediction]:
        """Predict a preprocessed batch: check the modalities, run, calibrate, summarise.

        Args:
            clinical: float32 (B, 3, S, S), preprocessed; zeros where missing.
            ultrasound: float32 (B, 3, S, S).
            present: bool (B, 2).
            where: a label per pair for error messages.
            metadata: per pair, field -> raw value (see `encode_metadata`); None: none given.

        Returns:
            B `Prediction`s.
        """
        from agfnet.evaluation.calibration import apply_temperature

        self.check_modalities(present.numpy(), where)
        name = f"{self.model_name} ({self.source})"
        inputs, reports = encode_metadata(
            self.metadata_spec, metadata or [None] * len(clinical), name
        )
        spreads: list[dict[str, Any] | None] = [None] * len(clinical)
        if self.sampling is None:
            logits, used, task_logits = self.forward(clinical, ultrasound, present, inputs)
            probs = apply_temperature(logits, self.temperature)
        else:
            logits, probs, used, spreads = self._sample(clinical, ultrasound, present, inputs)
            # Task heads run in one deterministic pass, as in `agfnet evaluate`.
            task_logits = self.forward(clinical, ultrasound, present, inputs)[2]
        tasks = task_fields(self.tasks, task_logits, len(clinical), self.checklist)
        out = []
        for i, (z, p, u, spread) in enumerate(zip(logits, probs, used, spreads, strict=True)):
            out.append(
                Prediction(
                    probabilities={c: float(v) for c, v in zip(self.classes, p, strict=True)},
                    prediction=self.classes[int(np.argmax(p))],
                    uncertainty=summarize_uncertainty(p),
                    modalities={m: bool(b) for m, b in zip(MODALITIES, u, strict=True)},
                    logits=tuple(float(v) for v in z),
                    spread=spread,
                    **tasks[i],
                    **metadata_fields(reports[i]),
                )
            )
        return out

    def mc_model(self) -> torch.nn.Module | None:
        """The PyTorch network whose dropout `--mc` samples; None where there is none."""
        return None

    def _sample(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor,
        metadata: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Mean logits, mean calibrated probabilities, modalities used and per-pair spread
        over the passes of `self.sampling`."""
        from agfnet.evaluation.calibration import apply_temperature
        from agfnet.evaluation.uncertainty import summarize_passes
        from agfnet.runtime.stochastic import sample_logits

        used_by_pass: list[np.ndarray] = []

        def run(c: torch.Tensor, u: torch.Tensor) -> np.ndarray:
            z, used, _ = self.forward(c, u, present, metadata)
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

    def predict(
        self,
        clinical: ImageInput = None,
        ultrasound: ImageInput = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Prediction:
        """Diagnose one pair.

        Args:
            clinical: the photograph: a path (any format `agfnet.data.read_image` reads,
                DICOM included), bytes, a binary file, a PIL image, a numpy array (H, W),
                (H, W, 3) or (H, W, 4) of uint8 or uint16, or None when missing.
            ultrasound: the ultrasound image, likewise.
            metadata: field -> value (e.g. {"site": "trunk", "age": "54"}) for a model
                that uses metadata (`metadata_spec`); a blank or left-out field is
                missing, a value unseen in training unknown (both reported in the
                `Prediction`). None: every field missing.

        Returns:
            The `Prediction`.

        Raises:
            UserError: an unreadable image (named), a missing image the model needs, a
                metadata field the model does not use or a numeric field that is not a
                number.
        """
        return self.predict_batch([(clinical, ultrasound)], metadata=[metadata])[0]

    def predict_batch(
        self,
        pairs: Iterable[tuple[ImageInput, ImageInput]],
        batch_size: int = 32,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[Prediction]:
        """Diagnose several pairs, `batch_size` per network call.

        Args:
            pairs: (clinical, ultrasound) inputs, as for `predict`.
            batch_size: pairs per forward pass.
            metadata: one field -> value mapping (or None) per pair, as for `predict`;
                None: none given.

        Returns:
            One `Prediction` per pair, in order.
        """
        pairs = list(pairs)
        metadata = list(metadata) if metadata is not None else [None] * len(pairs)
        if len(metadata) != len(pairs):
            raise UserError(f"{len(metadata)} metadata entries for {len(pairs)} pairs")
        out: list[Prediction] = []
        for start in range(0, len(pairs), batch_size):
            chunk = [self.preprocess(c, u) for c, u in pairs[start : start + batch_size]]
            where = [f"pair {start + i + 1}" for i in range(len(chunk))] if len(pairs) > 1 else None
            clinical, ultrasound, present = (torch.stack(t) for t in zip(*chunk, strict=True))
            values = metadata[start : start + len(chunk)]
            out += self.predict_tensors(clinical, ultrasound, present, where, values)
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

        spec = self.metadata_spec
        # Metadata columns the manifest lacks are missing in every row.
        fields = [] if spec is None else [f for f in spec.fields if f.name in _header(manifest)]
        table = read_manifest(
            manifest,
            require_labels=False,
            allow_missing_modality=True,
            progress=report("checking images"),
            metadata=[f.name for f in fields],
            metadata_kinds={f.name: f.kind for f in fields},
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
            rows = table.rows[len(out) : len(out) + len(where)]
            values = [row.metadata for row in rows] if spec is not None else None
            out += self.predict_tensors(
                batch["clinical"], batch["ultrasound"], batch["present"], where, values
            )
            if tick is not None:
                tick(len(out), len(table))
        return table, out


def _header(path: str | os.PathLike) -> list[str]:
    """The column names of a manifest CSV ([] when it cannot be read: `read_manifest` says why)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [c.strip() for c in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError):
        return []
