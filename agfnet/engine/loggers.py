"""A CSV logger that survives `--resume`: it appends to the run's metrics.csv, never deletes it."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from agfnet.fileio import write_rows_csv


class _AppendingWriter(ExperimentWriter):
    """Lightning's writer deletes an existing metrics.csv; this one continues it."""

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if path.is_file():
            with open(path, newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        # A new metric appeared: rewrite the file with the wider header through a temp
        # file, so a kill during the rewrite loses nothing.
        path = Path(self.metrics_file_path)
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        write_rows_csv(path, fieldnames, rows)


class AppendingCSVLogger(CSVLogger):
    """`CSVLogger` writing `<save_dir>/<name>/<version>/metrics.csv`, appended across resumes.

    Args:
        save_dir: the run folder.
        name: sub-folder (default `logs`).
        version: sub-sub-folder (default `csv`).
    """

    def __init__(self, save_dir: str | Path, name: str = "logs", version: str = "csv") -> None:
        super().__init__(save_dir=str(save_dir), name=name, version=version)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The appending writer (created on first use; a no-op stand-in off rank 0)."""
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
