"""Patient metadata -> one vector: an embedding per categorical field (with learned rows
for missing and unknown values) plus a linear map of the normalised numeric fields.

The model reads the metadata spec as a plain JSON dict (`MetadataSpec.to_dict()` of
`agfnet.data.metadata`, stored in the checkpoint's build_spec); the keys read are

    {"fields": [{"name": str, "kind": "categorical" | "numeric",
                 "vocabulary": [str, ...] (categorical; null for numeric)}, ...]}

(any other keys, e.g. a numeric field's "mean" and "std", are the data layer's and are
ignored here). A categorical field with vocabulary V has len(V) + 2 codes: 0 missing
(blank), 1 unknown (a value unseen in training), 2 + i = V[i]. The encoded batch follows
the order of `fields`, categorical and numeric fields each in their own tensor:

    {"cat": (B, F_cat) int64, "num": (B, F_num) float (already (x - mean) / std),
     "num_present": (B, F_num) bool}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["KINDS", "MetadataEncoder", "metadata_layout"]

#: The field kinds a metadata spec may hold.
KINDS = ("categorical", "numeric")


def metadata_layout(spec: Mapping[str, Any]) -> tuple[list[int], int]:
    """The categorical cardinalities (len(vocabulary) + 2 each) and the numeric count.

    Args:
        spec: a metadata spec dict (see the module docstring).

    Returns:
        (cardinalities in field order, F_num).

    Raises:
        ValueError: a field without a name, of another kind, or categorical without a
            vocabulary list.
    """
    cardinalities, n_numeric = [], 0
    for field in spec["fields"]:
        name, kind = field.get("name"), field.get("kind")
        if not name or kind not in KINDS:
            raise ValueError(f"metadata field {field!r}: needs a name and a kind in {KINDS}")
        if kind == "numeric":
            n_numeric += 1
        elif isinstance(field.get("vocabulary"), list):
            cardinalities.append(len(field["vocabulary"]) + 2)
        else:
            raise ValueError(f"categorical metadata field {name!r} has no vocabulary list")
    return cardinalities, n_numeric


class MetadataEncoder(nn.Module):
    """m = LN(sum_f E_f[c_f] + W [x * p; p] + b): one (B, dim) vector per patient.

    Summing one embedding per categorical field is a linear layer on their one-hot
    concatenation (the input FusionM4Net and Kawahara et al. use); a missing field reads
    its own learned row, so "not recorded" is information rather than a zero. Numeric
    values enter multiplied by their presence flag, and the flag itself, so a missing
    value is distinguishable from the training mean.
    """

    def __init__(self, spec: Mapping[str, Any], dim: int) -> None:
        """
        Args:
            spec: the metadata spec dict (module docstring); at least one field.
            dim: width of the output vector.
        """
        super().__init__()
        cardinalities, self.n_numeric = metadata_layout(spec)
        if not cardinalities and not self.n_numeric:
            raise ValueError("a MetadataEncoder needs at least one metadata field")
        self.cardinalities = cardinalities
        self.embeddings = nn.ModuleList(nn.Embedding(k, dim) for k in cardinalities)
        self.numeric = nn.Linear(2 * self.n_numeric, dim) if self.n_numeric else None
        self.norm = nn.LayerNorm(dim)
        for embedding in self.embeddings:
            nn.init.trunc_normal_(embedding.weight, std=0.02)

    def missing(self, batch: int, device: torch.device | None = None) -> dict[str, torch.Tensor]:
        """An encoded batch in which every field is missing (what `None` stands for)."""
        f_cat, f_num = len(self.cardinalities), self.n_numeric
        return {
            "cat": torch.zeros(batch, f_cat, dtype=torch.long, device=device),
            "num": torch.zeros(batch, f_num, device=device),
            "num_present": torch.zeros(batch, f_num, dtype=torch.bool, device=device),
        }

    def forward(self, metadata: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """
        Args:
            metadata: "cat" (B, F_cat) int64 codes, "num" (B, F_num) normalised values,
                "num_present" (B, F_num) bool.

        Returns:
            (B, dim).

        Raises:
            ValueError: the tensors' field counts differ from the spec's.
        """
        cat, num, present = metadata["cat"], metadata["num"], metadata["num_present"]
        if cat.shape[-1] != len(self.cardinalities) or num.shape[-1] != self.n_numeric:
            raise ValueError(
                f"metadata has {cat.shape[-1]} categorical and {num.shape[-1]} numeric "
                f"fields; the model was built for {len(self.cardinalities)} and "
                f"{self.n_numeric}"
            )
        parts = [embedding(cat[:, i]) for i, embedding in enumerate(self.embeddings)]
        if self.numeric is not None:
            flag = present.to(self.numeric.weight.dtype)
            parts.append(self.numeric(torch.cat([num.to(flag.dtype) * flag, flag], dim=1)))
        return self.norm(torch.stack(parts).sum(dim=0))
