"""Patient-level splits: no patient in two splits, stratified, seeded, and leaking splits refused."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from ml.errors import DataSourceError
from ml.training.config import SplitConfig
from ml.training.sources import LabelledSet, Sample, SourceReport
from ml.training.splits import (
    Split,
    check_no_leak,
    read_split_csv,
    resolve_patient_ids,
    split_dataset,
    write_split_csv,
)


def _dataset(n_patients: int = 60, images_per_patient: int = 3, positive_every: int = 4) -> LabelledSet:
    samples = []
    for p in range(n_patients):
        label = "pneumonia" if p % positive_every == 0 else "normal"
        for k in range(images_per_patient):
            samples.append(Sample(f"/data/{p:08d}_{k:03d}.png", [label], sha1=f"{p}-{k}"))
    return LabelledSet(samples, ["normal", "pneumonia"], "multiclass", SourceReport())


def _patients_by_split(split: Split) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pid, name in zip(split.patients, split.assignment, strict=True):
        out.setdefault(name, set()).add(pid)
    return out


def test_nih_file_names_give_a_patient_level_split_without_leaks() -> None:
    data = _dataset()
    split = split_dataset(data, SplitConfig(), seed=1)
    assert split.level == "patient" and "NIH" in split.source
    by = _patients_by_split(split)
    assert not (by["train"] & by["val"]) and not (by["train"] & by["test"]) and not (by["val"] & by["test"])
    counts = Counter(split.assignment)
    assert counts["train"] == 42 * 3 and counts["val"] == 9 * 3 and counts["test"] == 9 * 3
    # stratified: the 1-in-4 positive rate holds in every split
    for name in ("train", "val", "test"):
        labels = Counter(s.labels[0] for s in split.subset(name))
        assert abs(labels["pneumonia"] / sum(labels.values()) - 0.25) < 0.1, name
    summary = split.summary()["splits"]
    assert summary["test"]["patients"] == 9 and summary["test"]["per_class"]["pneumonia"] in (6, 9)


def test_split_is_seeded() -> None:
    a = split_dataset(_dataset(), seed=3).assignment
    assert a == split_dataset(_dataset(), seed=3).assignment
    assert a != split_dataset(_dataset(), seed=4).assignment


def test_leaking_split_is_refused() -> None:
    data = _dataset(4, 2)
    split = split_dataset(data, SplitConfig(patient_id="none"))
    assert split.level == "image"
    leaky = Split(data.samples, ["train", "test"] * 4, [s.path[:14] for s in data.samples], "patient", "test")
    with pytest.raises(DataSourceError, match="refusing to train"):
        check_no_leak(leaky)


def test_patient_id_sources() -> None:
    samples = [
        Sample("/x/patient00012/study1/view1.jpg", ["a"], patient_id="D1", meta={"pid": "C1"}),
        Sample("/x/patient00013/study1/view1.jpg", ["b"], patient_id="D2", meta={"pid": "C2"}),
    ]
    assert resolve_patient_ids(samples, "dicom")[0] == ["D1", "D2"]
    assert resolve_patient_ids(samples, "column:pid")[0] == ["C1", "C2"]
    assert resolve_patient_ids(samples, r"path-regex:patient(\d+)")[0] == ["00012", "00013"]
    for s in samples:
        s.patient_id = ""
    assert resolve_patient_ids(samples, "auto")[0] == ["patient00012", "patient00013"]
    assert resolve_patient_ids(samples, "none")[1] == "image"
    with pytest.raises(DataSourceError, match="does not match"):
        resolve_patient_ids(samples, r"regex:nomatch(\d+)")
    with pytest.raises(DataSourceError, match="no patient ID"):
        resolve_patient_ids(samples, "dicom")
    with pytest.raises(DataSourceError, match="Unknown patient ID source"):
        resolve_patient_ids(samples, "guess")


def test_balanced_subset_and_max_images() -> None:
    data = _dataset(80, 1, positive_every=4)  # 60 normal, 20 pneumonia patients
    balanced = split_dataset(data, SplitConfig(balanced=True))
    counts = Counter(s.labels[0] for s in balanced.samples)
    assert counts == {"normal": 20, "pneumonia": 20}
    small = split_dataset(data, SplitConfig(max_images=40))
    assert len(small.samples) == 40
    assert Counter(s.labels[0] for s in small.samples) == {"normal": 30, "pneumonia": 10}


def test_predefined_split_is_kept_and_val_is_carved_from_train() -> None:
    data = _dataset(40, 1)
    for i, s in enumerate(data.samples):
        s.predefined_split = "test" if i >= 30 else "train"
    split = split_dataset(data, SplitConfig())
    assert {s.path for s in split.subset("test")} == {s.path for s in data.samples[30:]}
    assert len(split.subset("val")) > 0 and len(split.subset("train")) > 20


def test_split_csv_round_trip(tmp_path: Path) -> None:
    data = _dataset(10, 2)
    split = split_dataset(data)
    write_split_csv(tmp_path / "split.csv", split)
    with open(tmp_path / "split.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20 and set(rows[0]) >= {"path", "labels", "patient", "split"}
    again = read_split_csv(tmp_path / "split.csv", data)
    assert again.assignment == split.assignment and again.patients == split.patients
