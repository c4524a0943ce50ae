"""The LightningDataModule: train and validation loaders over a validated manifest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler


class EpochShuffleSampler(Sampler[int]):
    """A random order that depends only on (seed, epoch).

    Unlike a `RandomSampler` fed by a running generator, the order of epoch E is the same
    whether the run went straight through or was resumed at E; Lightning calls
    `set_epoch` at the start of every epoch (under DDP it wraps this sampler in a
    distributed one that shards the order across ranks).

    Args:
        n: dataset length.
        seed: base seed.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of `epoch`."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class EpochBalancedSampler(EpochShuffleSampler):
    """Draw `len(labels)` positions with replacement, every class equally likely.

    Each position is drawn with probability proportional to 1 / (its class's count), so
    an epoch holds about as many pairs of a rare class as of a common one (rare pairs
    repeat, some common pairs are left out that epoch). The draws depend only on (seed,
    epoch), as `EpochShuffleSampler`'s order.

    Args:
        labels: the class of each dataset position.
        seed: base seed.
    """

    def __init__(self, labels: Sequence[Any], seed: int) -> None:
        super().__init__(len(labels), seed)
        counts = Counter(labels)
        self.weights = torch.tensor([1.0 / counts[label] for label in labels], dtype=torch.double)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.multinomial(self.weights, self.n, replacement=True, generator=g).tolist())


class PairedDataModule(L.LightningDataModule):
    """Loaders of `PairedLesionDataset` for the training and validation rows of a manifest.

    Args:
        manifest: a validated `agfnet.data.Manifest`.
        train_indices: positions in `manifest.rows` to train on.
        val_indices: positions to validate on.
        transform: an `agfnet.data.TransformConfig` (training augmentation on train only).
        batch_size: samples per batch and process.
        num_workers: loader worker processes.
        seed: seed of the training order.
        sampler: "shuffle" (`EpochShuffleSampler`) or "balanced" (`EpochBalancedSampler`).
        metadata_spec: the `MetadataSpec` fitted on the training rows, or None.
    """

    def __init__(
        self,
        manifest: Any,
        train_indices: Sequence[int],
        val_indices: Sequence[int],
        transform: Any,
        batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
        sampler: str = "shuffle",
        metadata_spec: Any = None,
    ) -> None:
        super().__init__()
        self.metadata_spec = metadata_spec
        self.manifest = manifest
        self.train_indices = list(train_indices)
        self.val_indices = list(val_indices)
        self.transform = transform
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        if sampler not in ("shuffle", "balanced"):
            raise ValueError(f"sampler must be 'shuffle' or 'balanced', not {sampler!r}")
        self.sampler = sampler

    def _dataset(self, indices: list[int], train: bool) -> Any:
        from agfnet.data import PairedLesionDataset, build_transforms

        return PairedLesionDataset(
            self.manifest,
            indices=indices,
            transform=build_transforms(self.transform, train=train),
            metadata_spec=self.metadata_spec,
        )

    def _train_sampler(self, indices: list[int]) -> EpochShuffleSampler:
        if self.sampler == "balanced":
            labels = [self.manifest.rows[i].label for i in indices]
            return EpochBalancedSampler(labels, self.seed)
        return EpochShuffleSampler(len(indices), self.seed)

    def _loader(self, indices: list[int], train: bool) -> DataLoader:
        dataset = self._dataset(indices, train)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=self._train_sampler(indices) if train else None,
            # A last batch of one sample breaks batch norm in training mode.
            drop_last=train and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_indices, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_indices, train=False)
