"""The task and metadata columns a manifest is read with (config `data.tasks`, `data.metadata`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agfnet.data.manifest.header import check_classes
from agfnet.data.manifest.schema import COLUMNS, ManifestProblem
from agfnet.data.metadata import METADATA_KINDS, NUMERIC
from agfnet.errors import UserError

__all__ = ["ColumnSpec"]


def _names_list(names: Sequence[str], key: str) -> Sequence[str]:
    """`names`, refusing a plain string (which would read as its letters)."""
    if isinstance(names, str):
        raise UserError(f"{key} must be a list of names, not the string {names!r}.")
    return names


def _names(names: Sequence[str], key: str) -> list[str]:
    """The column names stripped and lower-case (as the header is read); UserError for a
    blank, repeated or reserved one."""
    out = [str(n).strip().lower() for n in _names_list(names, key)]
    dupes = sorted(n for n, k in Counter(out).items() if k > 1)
    reserved = [n for n in out if n in COLUMNS]
    if "" in out or dupes or reserved:
        why = f"repeated: {dupes}" if dupes else f"reserved: {reserved}" if reserved else "blank"
        raise UserError(
            f"{key} {list(names)!r}: give distinct, non-blank column names other than "
            f"{', '.join(COLUMNS)} ({why})."
        )
    return out


@dataclass(frozen=True)
class ColumnSpec:
    """The task and metadata columns asked for, checked and lower-case.

    Attributes:
        tasks: the task columns, in target order.
        task_classes: the fixed vocabulary of the tasks that have one (else any value).
        metadata: the metadata columns.
        kinds: the declared kind of the metadata columns that have one.
    """

    tasks: list[str] = field(default_factory=list)
    task_classes: dict[str, list[str]] = field(default_factory=dict)
    metadata: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)

    @classmethod
    def check(
        cls,
        tasks: Sequence[str] = (),
        task_classes: Mapping[str, Sequence[str]] | None = None,
        metadata: Sequence[str] = (),
        metadata_kinds: Mapping[str, str] | None = None,
    ) -> ColumnSpec:
        """The columns of `read_manifest`'s arguments, checked.

        Vocabularies and kinds of columns not asked for are ignored (a config may keep
        them while a run names fewer columns).

        Raises:
            UserError: a blank, repeated or reserved name, a name both a task and a
                metadata column, an empty or repeating vocabulary, or an unknown kind.
        """
        task_names = _names(tasks, "data.tasks")
        meta_names = _names(metadata, "data.metadata")
        both = sorted(set(task_names) & set(meta_names))
        if both:
            raise UserError(
                f"{', '.join(both)}: in both data.tasks and data.metadata; a column is either "
                "a task the model predicts or metadata it reads, not both."
            )
        vocab = {str(k).strip().lower(): v for k, v in (task_classes or {}).items()}
        fixed: dict[str, list[str]] = {}
        for name in task_names:
            if vocab.get(name) is not None:
                key = f"data.task_classes.{name}"
                fixed[name] = check_classes(_names_list(vocab[name], key), what=key) or []
        given = (metadata_kinds or {}).items()
        declared = {str(k).strip().lower(): str(v).strip().lower() for k, v in given}
        kinds = {n: declared[n] for n in meta_names if n in declared}
        bad = {n: k for n, k in kinds.items() if k not in METADATA_KINDS}
        if bad:
            raise UserError(
                "data.metadata_kinds: "
                + ", ".join(f"{n}: {k!r}" for n, k in bad.items())
                + f"; a kind is one of {', '.join(METADATA_KINDS)}."
            )
        return cls(task_names, fixed, meta_names, kinds)

    @property
    def names(self) -> list[str]:
        """Returns: the task columns, then the metadata columns."""
        return [*self.tasks, *self.metadata]

    def is_numeric(self, name: str) -> bool:
        """Returns: whether metadata column `name` is declared numeric."""
        return self.kinds.get(name) == NUMERIC

    def header_problems(self, header: Sequence[str]) -> list[ManifestProblem]:
        """One problem per column asked for that the header lacks, with the fix."""
        problems = []
        for names, key, flag in (
            (self.tasks, "data.tasks", "--tasks"),
            (self.metadata, "data.metadata", "--metadata"),
        ):
            for name in names:
                if name not in header:
                    problems.append(
                        ManifestProblem(
                            None,
                            name,
                            f"missing column named in {key} ({flag}); the header has: "
                            f"{', '.join(header)}. Add the column, or leave '{name}' out "
                            f"of {key}.",
                        )
                    )
        return problems
