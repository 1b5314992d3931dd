"""The training Dataset: inputs derived exactly as inference derives them, decoded once per run.

Each image goes through :func:`ml.inference.preprocess.derive` (the same function inference uses,
with the same manifest fields), and the result (CxHxW float32 in [0, 1], before normalisation) is
stored in the run's cache as one ``.npy`` per image, keyed by the file's content hash and the
preprocessing parameters, written atomically. Later epochs (and resumed runs, and other trials of
an auto-tune) load the array instead of decoding DICOM or JPEG again. Augmentation
(:mod:`ml.training.transforms`) then normalisation (:func:`ml.models.manifest.normalise_tensor`)
follow; without augmentation the tensor equals ``preprocess.prepare`` bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from ml.errors import CxrError
from ml.models.manifest import ModelManifest, normalise_tensor
from ml.progress import CancelToken, ProgressCallback, check, report
from ml.training.sources import Sample
from ml.training.transforms import augment

CACHE_FORMAT = 1


def preprocessing_key(manifest: ModelManifest) -> dict[str, Any]:
    """Everything that changes the cached array (normalisation is applied after the cache)."""
    return {
        "format": CACHE_FORMAT,
        "input_size": manifest.input_size,
        "channels": manifest.channels,
        "derivation": asdict(manifest.input_derivation),
        "frame": 0,
    }


class DecodedCache:
    """Derived input arrays on disk, one ``<key>.npy`` per (file content, preprocessing)."""

    def __init__(self, folder: str | os.PathLike[str], manifest: ModelManifest) -> None:
        self.folder = Path(folder)
        self.manifest = manifest
        self._params = json.dumps(preprocessing_key(manifest), sort_keys=True)

    def key(self, sample: Sample) -> str:
        content = sample.sha1 or f"path:{os.path.abspath(sample.path)}"
        return hashlib.blake2b(f"{content}|{self._params}".encode(), digest_size=16).hexdigest()

    def path_for(self, sample: Sample) -> Path:
        k = self.key(sample)
        return self.folder / k[:2] / f"{k}.npy"

    def decode(self, sample: Sample) -> np.ndarray:
        from ml.imaging.read import read_image
        from ml.inference.preprocess import derive

        image = read_image(sample.path)
        arr, _ = derive(image, 0, self.manifest)
        return arr

    def get(self, sample: Sample) -> np.ndarray:
        path = self.path_for(sample)
        try:
            return np.load(path, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError, EOFError):
            pass
        arr = self.decode(sample)
        self._store(path, arr)
        return arr

    def has(self, sample: Sample) -> bool:
        return self.path_for(sample).is_file()

    @staticmethod
    def _store(path: Path, arr: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npy.part", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def encode_target(sample: Sample, labels: Sequence[str], task: str) -> torch.Tensor:
    """Multi-class: the class index (long). Multi-label: 1/0 per label, -1 where unknown (masked)."""
    if task == "multiclass":
        return torch.tensor(labels.index(sample.labels[0]), dtype=torch.long)
    t = torch.zeros(len(labels), dtype=torch.float32)
    for label in sample.labels:
        t[labels.index(label)] = 1.0
    for label in sample.ignore:
        if label in labels:
            t[labels.index(label)] = -1.0
    return t


class XrayDataset(Dataset):
    """``(input tensor, target, index)`` for each sample; augmentation fixed by (seed, epoch, index)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        labels: Sequence[str],
        task: str,
        cache: DecodedCache,
        transform: Any = None,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.labels = list(labels)
        self.task = task
        self.cache = cache
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.targets = [encode_target(s, self.labels, task) for s in self.samples]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        x = torch.from_numpy(self.cache.get(self.samples[index]))
        x = augment(self.transform, x, self.seed, self.epoch, index)
        x = normalise_tensor(x, self.cache.manifest.normalisation)
        return x, self.targets[index], index


class _DecodeOnly(Dataset):
    def __init__(self, cache: DecodedCache, samples: Sequence[Sample], indices: Sequence[int]) -> None:
        self.cache, self.samples, self.indices = cache, samples, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> tuple[int, str]:
        i = self.indices[j]
        s = self.samples[i]
        if self.cache.has(s):
            return i, ""
        try:
            self.cache.get(s)
            return i, ""
        except CxrError as exc:
            return i, str(exc).rstrip(".")
        except Exception as exc:  # noqa: BLE001 - a damaged image is reported and skipped, never a crash
            return i, f"cannot be decoded ({type(exc).__name__}: {exc})"


def warm_cache(
    cache: DecodedCache,
    samples: Sequence[Sample],
    *,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[tuple[int, str]]:
    """Decode every sample of this rank's share into the cache; ``[(index, reason)]`` of failures."""
    from torch.utils.data import DataLoader

    mine = list(range(rank, len(samples), world_size))
    loader = DataLoader(
        _DecodeOnly(cache, samples, mine), batch_size=None, num_workers=workers, collate_fn=None
    )
    failures: list[tuple[int, str]] = []
    for n, (i, error) in enumerate(loader, start=1):
        check(cancel)
        if error:
            failures.append((int(i), error))
        report(progress, n, len(mine), "decoding images into the cache")
    return failures


class ResumableSampler(DistributedSampler):
    """torch's DistributedSampler (``set_epoch`` reshuffles; shards across torchrun ranks), plus:

    * ``weights``: draw with replacement in proportion to the weights (the weighted sampler for
      class imbalance), still seeded by ``seed + epoch``;
    * ``set_start(n)``: skip this rank's first ``n`` indices of the epoch (resume mid-epoch).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self.weights = torch.as_tensor(weights, dtype=torch.double) if weights is not None else None
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = max(0, int(start))

    def epoch_indices(self) -> list[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights, n, replacement=True, generator=g).tolist()
        elif self.shuffle:
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        pad = self.total_size - len(order)
        if pad > 0:
            order += (order * math.ceil(pad / max(len(order), 1)))[:pad]
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


def class_balancing_weights(targets: Sequence[torch.Tensor], n_labels: int, task: str) -> list[float]:
    """Per-sample weights inversely proportional to the frequency of the sample's (rarest) class."""
    if task == "multiclass":
        idx = [int(t) for t in targets]
        counts = np.bincount(idx, minlength=n_labels).astype(float)
        return [1.0 / counts[i] for i in idx]
    pos = torch.stack(list(targets)).clamp(min=0).sum(0).numpy()
    out = []
    for t in targets:
        positive = [pos[j] for j in range(n_labels) if t[j] > 0]
        out.append(1.0 / min(positive) if positive else 1.0 / max(len(targets) - pos.max(), 1.0))
    return out
