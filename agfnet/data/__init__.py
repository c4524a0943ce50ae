"""Data: paired manifest, metadata fields, image readers, dataset, transforms, splits, benchmarks.

Names are imported lazily (PEP 562), so `import agfnet.data.manifest` or
`agfnet.data.synth` does not pull in torch.
"""

from __future__ import annotations

from agfnet._lazy import lazy_exports

_EXPORTS = {
    "read_image": "io",
    "check_image": "io",
    "ImageReadError": "io",
    "ImageInput": "convert",
    "to_pil": "convert",
    "to_pil_pair": "convert",
    "read_manifest": "manifest",
    "validate_manifest": "manifest",
    "Manifest": "manifest",
    "ManifestRow": "manifest",
    "ManifestProblem": "manifest",
    "ValidationReport": "manifest",
    "PairedLesionDataset": "dataset",
    "MetadataField": "metadata",
    "MetadataSpec": "metadata",
    "fit_metadata": "metadata",
    "TransformConfig": "transforms",
    "PairTransform": "transforms",
    "build_transforms": "transforms",
    "assign_folds": "splits",
    "write_folds": "splits",
    "read_folds": "splits",
    "fixed_split": "splits",
    "fold_split": "splits",
    "import_derm7pt": "derm7pt",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
