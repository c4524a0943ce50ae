"""Decode every image a manifest names, in threads, to find the unreadable ones."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agfnet.data.manifest.schema import ManifestProblem

__all__ = ["ImageChecks", "ProgressCallback"]

ProgressCallback = Callable[[int, int], None]


def _decode_error(image: Path, frame: int) -> str | None:
    """Returns: why `image` cannot be decoded, or None when it can."""
    from agfnet.data.io import ImageReadError, check_image

    try:
        check_image(image, frame=frame)
    except ImageReadError as err:
        return str(err)
    return None


@dataclass
class ImageChecks:
    """The images to decode, each once, with the (row, column) cells that name it.

    Attributes:
        uses: image -> [(row, column), ...], in the order the rows name it.
        cine: the images named in an `ultrasound` cell, decoded at the requested frame
            (photographs at frame 0).
    """

    uses: dict[Path, list[tuple[int, str]]] = field(default_factory=dict)
    cine: set[Path] = field(default_factory=set)

    def add(self, image: Path, row: int, column: str) -> None:
        """Remember that `row`'s `column` names `image`."""
        self.uses.setdefault(image, []).append((row, column))
        if column == "ultrasound":
            self.cine.add(image)

    def problems(self, frame: int, progress: ProgressCallback | None) -> list[ManifestProblem]:
        """Decode every image; one problem per cell that names an unreadable one.

        Args:
            frame: frame of multi-frame ultrasound files to decode.
            progress: called as progress(done, total) after each image.
        """
        found: list[ManifestProblem] = []
        if not self.uses:
            return found
        # Decoders release the GIL, so threads decode images in parallel.
        workers = min(8, os.cpu_count() or 1, len(self.uses))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            errors = pool.map(
                lambda image: _decode_error(image, frame if image in self.cine else 0), self.uses
            )
            for done, (error, uses) in enumerate(
                zip(errors, self.uses.values(), strict=True), start=1
            ):
                if error is not None:
                    found += [ManifestProblem(n, m, f"unreadable image: {error}") for n, m in uses]
                if progress is not None:
                    progress(done, len(self.uses))
        return found
