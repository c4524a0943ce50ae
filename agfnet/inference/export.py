"""Export a trained checkpoint to a self-describing ONNX file, checked against PyTorch.

The graph has two inputs, `clinical` and `ultrasound`, float32 (B, 3, S, S) preprocessed
as the checkpoint's evaluation transform, a dynamic batch axis, and two outputs: `logits`
(B, K), raw, and `probabilities` (B, K) = softmax(logits / T) with the checkpoint's
temperature T folded in. A model trained with metadata (`data.metadata`) has the inputs
`meta_cat` int64 (B, F_cat) (codes: 0 missing, 1 unknown, 2 + vocabulary index),
`meta_num` float32 (B, F_num) (normalised, 0 where missing) and `meta_num_present` bool
(B, F_num), each only when the model has fields of that kind (`MetadataSpec.encode`); a
model with task heads (`data.tasks`) has one more output per task, `task_<name>` (B,
k_t), its raw logits (softmax gives the probabilities; no temperature). A model with
neither exports exactly as before. The FRL reconstruction decoder only runs in training, so it is
not in the graph; `export_onnx` asserts that. The spatial size S is fixed at export (the
pooled attention's window depends on it). Missing-image handling (the `present` mask of
models trained with modality dropout) is not exported: its input check is data-dependent
Python, which torch.export cannot trace.

The exporter is torch.export-based (`torch.onnx.export(..., dynamo=True)`, onnxscript).
The TorchScript exporter (`dynamo=False`) is faster but cannot export the pooled
attention with a dynamic batch axis (its pooling window is computed from traced shapes),
so it is not offered.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agfnet.constants import MODALITIES
from agfnet.data.manifest.display import config_modality_names
from agfnet.errors import UserError

__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_TOLERANCE",
    "ExportReport",
    "export_onnx",
    "frl_parameter_names",
    "metadata_kinds",
    "sha256_file",
]

DEFAULT_OPSET = 18
# The torch.export-based exporter writes opset 18 or newer (asked for less, it tries the
# ONNX version converter, which fails on these graphs and silently keeps 18).
MIN_OPSET = 18
#: Largest allowed |ONNX - PyTorch| over logits and probabilities on the check inputs.
EXPORT_TOLERANCE = 1e-4
CHECK_BATCHES = (1, 3)
INPUTS = MODALITIES  # the ONNX input names (images)
OUTPUTS = ("logits", "probabilities")
#: The metadata inputs' names, by `forward_output(metadata=...)` key.
METADATA_INPUTS = {"cat": "meta_cat", "num": "meta_num", "num_present": "meta_num_present"}
#: Prefix of the task outputs' names: `task_<name>`.
TASK_PREFIX = "task_"
# Parameter-name fragment of the FRL module (AGFNet.frl) in ONNX initialiser and node names.
FRL_PREFIX = "frl"


@dataclass(frozen=True)
class ExportReport:
    """What `export_onnx` wrote and measured (also the JSON sidecar OUT.json).

    Attributes:
        onnx: the ONNX file.
        sha256: its SHA-256.
        checkpoint: the source checkpoint.
        model: the registry name of the network.
        classes: class names, the order of the outputs.
        img_size: S, the fixed input side.
        temperature: T folded into `probabilities`.
        inputs: graph input names.
        outputs: graph output names.
        opset: ONNX opset of the file (the default domain's).
        exporter: the exporter used.
        torch_version: torch that exported it.
        parameters: parameters of the PyTorch network (FRL decoder included).
        frl_parameters: of those, the FRL decoder's (absent from the graph).
        onnx_parameters: numbers held by the ONNX initialisers.
        max_abs_diff: batch size -> {"logits": d, "probabilities": d}, |ONNX - PyTorch|
            on seeded random inputs.
        tolerance: the largest difference accepted.
    """

    onnx: str
    sha256: str
    checkpoint: str
    model: str
    classes: list[str]
    img_size: int
    temperature: float
    inputs: list[str]
    outputs: list[str]
    opset: int
    exporter: str
    torch_version: str
    parameters: int
    frl_parameters: int
    onnx_parameters: int
    max_abs_diff: dict[str, dict[str, float]]
    tolerance: float

    @property
    def worst_diff(self) -> float:
        """Returns: the largest difference over every check batch and output."""
        return max(d for batch in self.max_abs_diff.values() for d in batch.values())

    def to_dict(self) -> dict[str, Any]:
        """Returns: every field, JSON-ready."""
        return asdict(self)


class _ExportGraph(nn.Module):
    """What the ONNX graph computes: logits, and probabilities with the temperature, then
    each task head's logits; it takes the metadata inputs of a model trained with them."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature
        self.tasks = list(getattr(model, "tasks", None) or {})
        self.metadata = metadata_kinds(model)
        self.input_names = [*INPUTS, *(METADATA_INPUTS[k] for k in self.metadata)]
        self.output_names = [*OUTPUTS, *(TASK_PREFIX + t for t in self.tasks)]

    def forward(
        self, clinical: torch.Tensor, ultrasound: torch.Tensor, *metadata: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        if not self.tasks and not self.metadata:
            logits = self.model(clinical, ultrasound)
            return logits, torch.softmax(logits / self.temperature, dim=-1)
        given = dict(zip(self.metadata, metadata, strict=True))
        if self.metadata:
            batch = clinical.shape[0]
            # A spec without numeric (or categorical) fields: that input is (B, 0).
            given.setdefault("cat", clinical.new_zeros((batch, 0), dtype=torch.int64))
            given.setdefault("num", clinical.new_zeros((batch, 0)))
            given.setdefault("num_present", clinical.new_zeros((batch, 0), dtype=torch.bool))
        out = self.model.forward_output(clinical, ultrasound, metadata=given or None)
        logits = out.logits
        tasks = [out.task_logits[t] for t in self.tasks]
        return logits, torch.softmax(logits / self.temperature, dim=-1), *tasks


def metadata_kinds(model: nn.Module) -> list[str]:
    """The `forward_output(metadata=...)` keys a model's ONNX graph takes as inputs, in
    order: "cat" with categorical fields, "num" and "num_present" with numeric ones."""
    spec = getattr(model, "metadata_spec", None)
    if not spec:
        return []
    kinds = {f["kind"] for f in spec["fields"]}
    return ["cat"] * ("categorical" in kinds) + ["num", "num_present"] * ("numeric" in kinds)


def frl_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters of the FRL reconstruction module(s), which inference skips.

    Args:
        model: an `agfnet.models` network.

    Returns:
        Parameter names (empty for models without FRL).
    """
    from agfnet.layers.reconstruction import FeatureReconstruction

    prefixes = [n for n, m in model.named_modules() if isinstance(m, FeatureReconstruction)]
    return [n for n, _ in model.named_parameters() if any(n.startswith(f"{p}.") for p in prefixes)]


def _check_inputs(
    img_size: int, batch: int, seed: int, graph: _ExportGraph | None = None
) -> dict[str, torch.Tensor]:
    """Seeded random (B, 3, S, S) inputs for both modalities, and random valid metadata
    inputs (codes, values, present flags) for a graph that takes them."""
    gen = torch.Generator().manual_seed(seed)
    out = {m: torch.randn(batch, 3, img_size, img_size, generator=gen) for m in MODALITIES}
    spec = graph.model.metadata_spec if graph is not None and graph.metadata else None
    if spec is not None:
        fields = spec["fields"]
        cards = [len(f["vocabulary"]) + 2 for f in fields if f["kind"] == "categorical"]
        n_num = sum(f["kind"] == "numeric" for f in fields)
        values = {
            "cat": torch.stack([torch.randint(0, c, (batch,), generator=gen) for c in cards], dim=1)
            if cards
            else None,
            "num": torch.randn(batch, n_num, generator=gen),
            "num_present": torch.rand(batch, n_num, generator=gen) > 0.3,
        }
        out.update({METADATA_INPUTS[k]: values[k] for k in graph.metadata})
    return out


def _export_graph(graph: _ExportGraph, tmp: Path, img_size: int, opset: int) -> None:
    example = tuple(_check_inputs(img_size, 2, seed=0, graph=graph).values())
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        # torch.export and onnxscript warn about internals the user cannot act on.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            example,
            str(tmp),
            dynamo=True,
            input_names=graph.input_names,
            output_names=graph.output_names,
            opset_version=opset,
            dynamic_shapes=_dynamic_shapes(graph, batch),
            external_data=False,
            verbose=False,
        )


def _dynamic_shapes(graph: _ExportGraph, batch: Any) -> Any:
    """The batch axis of every input: a dict by name as before for the two images, a tuple
    (clinical, ultrasound, the metadata inputs as one variadic group) with metadata."""
    if not graph.metadata:
        return {n: {0: batch} for n in INPUTS}
    return ({0: batch}, {0: batch}, tuple({0: batch} for _ in graph.metadata))


def _metadata(info: Any, model: nn.Module, img_size: int) -> dict[str, str]:
    """The metadata_props that make the file self-describing (values are strings; JSON)."""
    import agfnet

    transform = {**info.transform, "img_size": img_size}
    reads = list(model.encoders.modalities)
    names = _ExportGraph(model, 1.0)
    extensions = {}
    if names.tasks:
        # task -> class names, in the order of the task_<name> outputs' columns.
        extensions["tasks"] = json.dumps({t: list(info.tasks[t]) for t in names.tasks})
    if names.metadata:
        extensions["metadata"] = json.dumps(model.metadata_spec)
    return {
        "agfnet_version": agfnet.__version__,
        "model_name": str(info.build_spec["name"]),
        "build_spec": json.dumps(info.build_spec),
        "classes": json.dumps(list(info.classes)),
        "img_size": str(img_size),
        "normalization": json.dumps(
            {
                m: {"mean": list(transform[f"{m}_mean"]), "std": list(transform[f"{m}_std"])}
                for m in INPUTS
            }
        ),
        "transform": json.dumps(transform),
        "temperature": repr(float(info.temperature)),
        "reads": json.dumps(reads),
        # The graph ignores the input a single-modality model does not read; it cannot
        # replace a missing image of a fusion model (see the module docstring).
        "supports_missing": json.dumps(len(reads) == 1),
        "modality_dropout": json.dumps(bool(model.supports_missing) and len(reads) == 2),
        "inputs": json.dumps(names.input_names),
        "outputs": json.dumps(names.output_names),
        "probabilities": "softmax(logits / temperature)",
        # How outputs name each input's image (the training config's data.modality_names).
        "modality_names": json.dumps(config_modality_names(info.config)),
        **extensions,
    }


def _check_no_frl(proto: Any, model: nn.Module) -> tuple[int, int, int]:
    """Assert the graph holds no FRL decoder: no such names, and no more numbers than the
    network without it (norm folding and the unused auxiliary heads only remove more).

    Returns:
        (parameters of the network, of its FRL decoder, numbers in the ONNX initialisers).
    """
    frl = set(frl_parameter_names(model))
    leaked = [i.name for i in proto.graph.initializer if FRL_PREFIX in i.name.split(".")]
    leaked += [
        n.name for n in proto.graph.node if FRL_PREFIX in n.name.replace("/", ".").split(".")
    ]
    onnx_params = sum(int(np.prod(i.dims)) for i in proto.graph.initializer)
    total = sum(p.numel() for p in model.parameters())
    frl_count = sum(p.numel() for n, p in model.named_parameters() if n in frl)
    if leaked or onnx_params > total - frl_count:
        raise RuntimeError(
            f"the exported graph contains the FRL decoder ({leaked[:3]}, {onnx_params} "
            f"numbers vs {total - frl_count} without it); this is a bug in agfnet"
        )
    return total, frl_count, onnx_params


def _compare(graph: _ExportGraph, path: Path, img_size: int) -> dict[str, dict[str, float]]:
    """max |ONNX - PyTorch| of each output on seeded random inputs, per check batch size."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diffs: dict[str, dict[str, float]] = {}
    for batch in CHECK_BATCHES:
        inputs = _check_inputs(img_size, batch, seed=batch, graph=graph)
        with torch.no_grad():
            expected = [t.numpy() for t in graph(*inputs.values())]
        got = session.run(graph.output_names, {k: v.numpy() for k, v in inputs.items()})
        diffs[str(batch)] = {
            name: float(np.max(np.abs(g - e)))
            for name, g, e in zip(graph.output_names, got, expected, strict=True)
        }
    return diffs


def sha256_file(path: str | os.PathLike) -> str:
    """Returns: the SHA-256 of the file at `path`, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_onnx(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    img_size: int | None = None,
) -> ExportReport:
    """Export a checkpoint to ONNX, validate it, compare it with PyTorch, write the sidecar.

    Writes OUT (the ONNX file; metadata_props agfnet_version, model_name, build_spec,
    classes, img_size, normalization, transform, temperature, reads, supports_missing,
    modality_dropout, inputs, outputs, probabilities, modality_names, and tasks and
    metadata for a model with them) and OUT.json (the
    `ExportReport`), each atomically, and only after onnx.checker, the no-FRL check and
    the comparison with PyTorch at batch sizes 1 and 3 passed.

    Args:
        checkpoint: a best.ckpt / last.ckpt of `agfnet train` (read with weights_only).
        out: the ONNX file to write.
        opset: ONNX opset version (18 or newer).
        img_size: input side S; None: the checkpoint's preprocessing size.

    Returns:
        The `ExportReport`.

    Raises:
        UserError: bad checkpoint or option, or an export that differs from PyTorch by
            more than `EXPORT_TOLERANCE` (nothing is written then).
    """
    import onnx

    from agfnet.fileio import atomic_path, write_json
    from agfnet.runtime.checkpoint import load_model

    out = Path(out)
    if opset < MIN_OPSET:
        raise UserError(f"--opset {opset}: the exporter needs opset {MIN_OPSET} or newer")
    model, info = load_model(checkpoint)
    img_size = int(img_size or info.transform["img_size"])
    if img_size < 16:
        raise UserError(f"--img-size {img_size} is too small; use at least 16 pixels")
    graph = _ExportGraph(model, float(info.temperature)).eval()

    with atomic_path(out) as tmp:
        _export_graph(graph, tmp, img_size, opset)
        proto = onnx.load(str(tmp))
        for key, value in _metadata(info, model, img_size).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        total, frl_count, onnx_params = _check_no_frl(proto, model)
        report = ExportReport(
            onnx=str(out),
            sha256=sha256_file(tmp),
            checkpoint=str(checkpoint),
            model=str(info.build_spec["name"]),
            classes=list(info.classes),
            img_size=img_size,
            temperature=float(info.temperature),
            inputs=[i.name for i in proto.graph.input],
            outputs=[o.name for o in proto.graph.output],
            opset=next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
            exporter="torch.onnx.export(dynamo=True)",
            torch_version=torch.__version__,
            parameters=total,
            frl_parameters=frl_count,
            onnx_parameters=onnx_params,
            max_abs_diff=_compare(graph, tmp, img_size),
            tolerance=EXPORT_TOLERANCE,
        )
        if report.worst_diff > EXPORT_TOLERANCE:
            raise UserError(
                f"the ONNX export of {checkpoint} differs from PyTorch by {report.worst_diff:.3g} "
                f"(> {EXPORT_TOLERANCE:g}); nothing was written. Try another --opset"
            )
    write_json(out.with_name(out.name + ".json"), report.to_dict())
    return report
