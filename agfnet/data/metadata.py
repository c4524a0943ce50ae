"""Patient metadata fields: their vocabularies and numeric statistics, and the model's input codes.

`fit_metadata` learns, from the training rows only, each categorical field's vocabulary
and each numeric field's mean and standard deviation (a `MetadataSpec`, stored in the
checkpoint as `to_dict()`); `MetadataSpec.encode` turns one row's raw cells into codes:

- categorical: 0 = missing (a blank cell), 1 = unknown (a value unseen in training),
  2 + i = `vocabulary[i]`; one code per categorical field, in `spec.categorical` order.
- numeric: (x - mean) / std and a present flag; 0.0 and False when blank, in
  `spec.numeric` order.

Torch is imported only by `encode_tensors`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from agfnet.data.manifest.schema import ManifestRow

__all__ = [
    "CATEGORICAL",
    "METADATA_KINDS",
    "MISSING_CODE",
    "NUMERIC",
    "UNKNOWN_CODE",
    "MetadataField",
    "MetadataSpec",
    "fit_metadata",
    "parse_number",
]

CATEGORICAL = "categorical"
NUMERIC = "numeric"
#: The kinds a metadata field may have (config `data.metadata_kinds`).
METADATA_KINDS: tuple[str, ...] = (CATEGORICAL, NUMERIC)
#: Code of a blank categorical cell.
MISSING_CODE = 0
#: Code of a categorical value not seen in the training rows.
UNKNOWN_CODE = 1


def parse_number(cell: Any) -> float | None:
    """A metadata cell as a finite number, or None when it is not one.

    Args:
        cell: the cell's text (or a number); blank cells are for the caller to handle.

    Returns:
        The value; None for text that is not a number, and for nan / inf.
    """
    try:
        value = float(str(cell).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _blank(value: Any) -> bool:
    return value is None or not str(value).strip()


@dataclass(frozen=True)
class MetadataField:
    """One metadata field as the model sees it.

    Attributes:
        name: the manifest column.
        kind: "categorical" or "numeric".
        vocabulary: a categorical field's training values, sorted (code 2 + i is
            `vocabulary[i]`); None for a numeric field.
        mean: a numeric field's training mean; None for a categorical field.
        std: its training standard deviation (1.0 where it would be 0); None likewise.
    """

    name: str
    kind: str
    vocabulary: list[str] | None = None
    mean: float | None = None
    std: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in METADATA_KINDS:
            raise ValueError(
                f"metadata field '{self.name}': kind {self.kind!r} is not one of "
                f"{', '.join(METADATA_KINDS)}"
            )
        if self.kind == CATEGORICAL and self.vocabulary is None:
            raise ValueError(f"categorical metadata field '{self.name}' needs a vocabulary")
        if self.kind == NUMERIC and (self.mean is None or not self.std or self.std <= 0):
            raise ValueError(f"numeric metadata field '{self.name}' needs a mean and a std > 0")

    def code(self, value: Any) -> int:
        """Returns: the code of a categorical cell (0 missing, 1 unknown, 2 + index)."""
        if _blank(value):
            return MISSING_CODE
        try:
            return 2 + self.vocabulary.index(str(value).strip())  # type: ignore[union-attr]
        except ValueError:
            return UNKNOWN_CODE

    def normalise(self, value: Any) -> tuple[float, bool]:
        """Returns: (normalised value, present) of a numeric cell; (0.0, False) when blank.

        Raises:
            ValueError: a non-blank cell that is not a number.
        """
        if _blank(value):
            return 0.0, False
        number = parse_number(value)
        if number is None:
            raise ValueError(
                f"metadata '{self.name}': {str(value)!r} is not a number; give a number "
                "or leave it blank for missing."
            )
        return (number - self.mean) / self.std, True  # type: ignore[operator]

    def to_dict(self) -> dict[str, Any]:
        """Returns: the field as JSON-ready data."""
        return {
            "name": self.name,
            "kind": self.kind,
            "vocabulary": None if self.vocabulary is None else list(self.vocabulary),
            "mean": self.mean,
            "std": self.std,
        }


@dataclass(frozen=True)
class MetadataSpec:
    """The metadata fields a model uses, in input order.

    Attributes:
        fields: every field; the categorical ones feed `cat`, the numeric ones `num`,
            each in this order.
    """

    fields: list[MetadataField] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Returns: every field's name, in `fields` order."""
        return [f.name for f in self.fields]

    @property
    def categorical(self) -> list[str]:
        """Returns: the categorical fields' names, in input order."""
        return [f.name for f in self.fields if f.kind == CATEGORICAL]

    @property
    def numeric(self) -> list[str]:
        """Returns: the numeric fields' names, in input order."""
        return [f.name for f in self.fields if f.kind == NUMERIC]

    @property
    def cardinalities(self) -> list[int]:
        """Returns: len(vocabulary) + 2 (missing, unknown) per categorical field."""
        return [len(f.vocabulary) + 2 for f in self.fields if f.vocabulary is not None]

    @property
    def n_numeric(self) -> int:
        """Returns: the number of numeric fields."""
        return len(self.numeric)

    def encode(self, values: Mapping[str, Any]) -> dict[str, list]:
        """One row's cells as model inputs, in plain lists.

        Args:
            values: field name -> raw cell (`ManifestRow.metadata`, a form's fields); a
                field left out, None or blank is missing.

        Returns:
            {"cat": [int] * F_cat, "num": [float] * F_num, "num_present": [bool] * F_num}.

        Raises:
            ValueError: a numeric field's cell that is not a number.
        """
        cat = [f.code(values.get(f.name)) for f in self.fields if f.kind == CATEGORICAL]
        pairs = [f.normalise(values.get(f.name)) for f in self.fields if f.kind == NUMERIC]
        return {
            "cat": cat,
            "num": [float(v) for v, _ in pairs],
            "num_present": [bool(p) for _, p in pairs],
        }

    def encode_tensors(self, values: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """`encode` as tensors: cat int64 (F_cat,), num float32 (F_num,), num_present bool
        (F_num,); shape (0,) where the spec has no field of that kind."""
        import torch

        codes = self.encode(values)
        return {
            "cat": torch.tensor(codes["cat"], dtype=torch.int64),
            "num": torch.tensor(codes["num"], dtype=torch.float32),
            "num_present": torch.tensor(codes["num_present"], dtype=torch.bool),
        }

    def to_dict(self) -> dict[str, Any]:
        """Returns: {"fields": [field.to_dict(), ...]}, JSON-ready (stored in checkpoints)."""
        return {"fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetadataSpec:
        """The spec `to_dict` wrote.

        Raises:
            ValueError: data that is not a spec (a field without name or kind, a bad kind).
        """
        try:
            fields = [
                MetadataField(
                    name=str(f["name"]),
                    kind=str(f["kind"]),
                    vocabulary=None if f.get("vocabulary") is None else list(f["vocabulary"]),
                    mean=None if f.get("mean") is None else float(f["mean"]),
                    std=None if f.get("std") is None else float(f["std"]),
                )
                for f in data["fields"]
            ]
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a metadata spec ({err!r}): {data!r}") from err
        return cls(fields)


def _infer_kind(values: Sequence[str]) -> str:
    """Numeric when there are values and every one is a number, else categorical."""
    if values and all(parse_number(v) is not None for v in values):
        return NUMERIC
    return CATEGORICAL


def fit_metadata(
    rows: Iterable[ManifestRow | Mapping[str, Any]],
    names: Sequence[str],
    kinds: Mapping[str, str] | None = None,
) -> MetadataSpec:
    """Learn the metadata fields from the training rows (never from validation or test rows).

    Args:
        rows: the training rows: `ManifestRow`s (their `metadata`) or name -> cell mappings.
        names: the fields, in input order (config `data.metadata`).
        kinds: name -> "categorical" / "numeric" (config `data.metadata_kinds`); a field
            left out is numeric when every non-blank training value is a number, else
            categorical.

    Returns:
        The `MetadataSpec`: vocabulary = the sorted distinct non-blank values; numeric
        mean and (population) standard deviation, std 1.0 where it is 0 or no value is
        given (mean 0.0 then).

    Raises:
        ValueError: a kind that is not categorical or numeric, or a non-number in a field
            declared numeric.
    """
    kinds = dict(kinds or {})
    cells: dict[str, list[str]] = {name: [] for name in names}
    for row in rows:
        values = row.metadata if hasattr(row, "metadata") else row
        for name in names:
            value = values.get(name)
            if not _blank(value):
                cells[name].append(str(value).strip())
    fields = []
    for name in names:
        kind = kinds.get(name) or _infer_kind(cells[name])
        if kind == NUMERIC:
            numbers = [parse_number(v) for v in cells[name]]
            bad = [v for v, x in zip(cells[name], numbers, strict=True) if x is None]
            if bad:
                raise ValueError(f"metadata '{name}' is numeric but has {bad[0]!r}")
            mean = math.fsum(numbers) / len(numbers) if numbers else 0.0
            var = math.fsum((x - mean) ** 2 for x in numbers) / len(numbers) if numbers else 0.0
            std = math.sqrt(var)
            fields.append(MetadataField(name, NUMERIC, mean=mean, std=std if std > 0 else 1.0))
        else:
            fields.append(MetadataField(name, kind, vocabulary=sorted(set(cells[name]))))
    return MetadataSpec(fields)
