"""Training data sources: folder per class, CSV variants, dataset presets, filters and bad inputs."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.errors import DataSourceError
from ml.training.config import DataConfig
from ml.training.csvsource import CsvSpec, load_csv
from ml.training.presets import detect_preset, load_source
from ml.training.sources import SourceFilters, load_folder
from tests.helpers.dicom_factory import write_dicom
from tests.helpers.phantoms import make_phantom, write_phantom_folder


def _png(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(path)
    return path


def _dcm(path: Path, seed: int, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ph = make_phantom(64, 64, lesion=bool(seed % 2), seed=seed)
    write_dicom(path, rows=64, columns=64, bits_stored=12, pixels=ph.image.frames[0], **kw)
    return path


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


# --------------------------------------------------------------------------- folder per class


def test_folder_per_class_reads_dicom_png_recursively_case_insensitive(tmp_path: Path) -> None:
    write_phantom_folder(tmp_path, n_per_class=3, fmt="png")
    _dcm(tmp_path / "Lesion" / "deeper" / "a.dcm", 1, patient_id="P9")  # same class, other spelling
    (tmp_path / "normal" / "notes.txt").write_text("not an image")  # skipped by its extension
    data = load_folder(tmp_path)
    assert [x.casefold() for x in data.labels] == ["lesion", "normal"]  # one class, whatever the spelling
    assert data.task == "multiclass"
    assert list(data.report.per_class.values()) == [4, 3]
    dicom = next(s for s in data.samples if s.path.endswith(".dcm"))
    assert dicom.labels == [data.labels[0]] and dicom.patient_id == "P9" and dicom.view == "PA"
    assert all(len(s.sha1) == 40 for s in data.samples)


def test_unreadable_files_and_duplicates_are_reported_not_fatal(tmp_path: Path) -> None:
    write_phantom_folder(tmp_path, n_per_class=3, fmt="png")
    (tmp_path / "normal" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    shutil.copy(tmp_path / "lesion" / "lesion_000.png", tmp_path / "lesion" / "copy.png")
    data = load_folder(tmp_path)
    assert data.report.per_class == {"lesion": 3, "normal": 3}
    assert data.report.n_unreadable == 1 and data.report.unreadable[0][0].endswith("broken.png")
    assert "damaged" in data.report.unreadable[0][1]
    assert data.report.n_duplicates == 1
    assert any("duplicate" in line for line in data.report.summary_lines())


def test_covid19_radiography_layout_ignores_masks(tmp_path: Path) -> None:
    root = tmp_path / "COVID-19_Radiography_Dataset"
    for i, cls in enumerate(["COVID", "Normal", "Viral Pneumonia"]):
        for j in range(2):
            _png(root / cls / "images" / f"{cls}-{j}.png", 10 * i + j)
            _png(root / cls / "masks" / f"{cls}-{j}.png", 100 + 10 * i + j)
    (root / "COVID.metadata.xlsx").write_bytes(b"PK")
    assert detect_preset(tmp_path) == "covid19_radiography"
    data = load_source(DataConfig(path=str(tmp_path)))
    assert data.labels == ["COVID", "Normal", "Viral Pneumonia"]
    assert data.report.n_images == 6 and all("masks" not in s.path for s in data.samples)


def test_filters_lateral_min_size_and_multi_image_studies(tmp_path: Path) -> None:
    _dcm(tmp_path / "a" / "pa.dcm", 1, view_position="PA", study_uid="1.2.3")
    _dcm(tmp_path / "a" / "lat.dcm", 2, view_position="LL", study_uid="1.2.4")
    _dcm(tmp_path / "a" / "s1.dcm", 3, view_position="AP", study_uid="1.2.5")
    _dcm(tmp_path / "a" / "s2.dcm", 5, view_position="AP", study_uid="1.2.5")
    _dcm(tmp_path / "b" / "pa.dcm", 4, view_position="PA", study_uid="1.2.6")
    _png(tmp_path / "b" / "tiny.png", 7, size=(20, 20))
    data = load_folder(tmp_path, SourceFilters(frontal_only=True, single_image_studies=True, min_size=32))
    names = sorted(Path(s.path).name for s in data.samples)
    assert names == ["pa.dcm", "pa.dcm"]
    assert data.report.filtered == {
        "lateral view (frontal views only)": 1,
        "smaller than 32 pixels": 1,
        "study with more than one image": 2,
    }
    everything = load_folder(tmp_path, SourceFilters(frontal_only=False))
    assert everything.report.n_images == 6


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "is empty"),
        (lambda p: _png(p / "x.png", 1), "No class sub-folders found"),
        (lambda p: [_png(p / "NORMAL" / f"{i}.png", i) for i in range(3)], "Only one class (NORMAL)"),
        (lambda p: [(p / "a").mkdir(), (p / "b").mkdir()], "No images found"),
        (
            lambda p: [
                (p / "a" / "x.png").parent.mkdir(),
                (p / "a" / "x.png").write_bytes(b"no"),
                (p / "b").mkdir(),
                (p / "b" / "y.jpg").write_bytes(b"no"),
            ],
            "all 2 file(s) are unreadable",
        ),
    ],
)
def test_bad_folders_give_one_clear_error(tmp_path: Path, make, message: str) -> None:
    make(tmp_path)
    with pytest.raises(DataSourceError, match=None) as info:
        load_folder(tmp_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="does not exist"):
        load_source(DataConfig(path=str(tmp_path / "nope")))


# --------------------------------------------------------------------------- CSV


@pytest.fixture
def three_images(tmp_path: Path) -> list[str]:
    return [str(_png(tmp_path / "img" / f"{i}.png", i).relative_to(tmp_path)) for i in range(4)]


def test_csv_label_column(tmp_path: Path, three_images: list[str]) -> None:
    path = _write_csv(
        tmp_path / "d.csv",
        ["path", "label", "patient"],
        [[p, "pos" if i % 2 else "neg", f"P{i}"] for i, p in enumerate(three_images)],
    )
    data = load_csv(path)
    assert data.task == "multiclass" and data.labels == ["neg", "pos"]
    assert [s.patient_id for s in data.samples] == ["P0", "P1", "P2", "P3"]


def test_csv_onehot_columns_with_uncertain_policy(tmp_path: Path, three_images: list[str]) -> None:
    rows = [
        [three_images[0], 1, 0],
        [three_images[1], 0, -1],
        [three_images[2], 1, 1],
        [three_images[3], "", 0],
    ]
    path = _write_csv(tmp_path / "d.csv", ["Path", "Edema", "Effusion"], rows)
    data = load_csv(path)
    assert data.task == "multilabel" and data.labels == ["Edema", "Effusion"]
    assert [s.labels for s in data.samples] == [["Edema"], [], ["Edema", "Effusion"], []]
    assert data.samples[1].ignore == ["Effusion"]
    ones = load_csv(path, CsvSpec(uncertain="ones"))
    assert ones.samples[1].labels == ["Effusion"]


def test_csv_pipe_separated_labels(tmp_path: Path, three_images: list[str]) -> None:
    rows = [
        [three_images[0], "Mass|Nodule"],
        [three_images[1], "No Finding"],
        [three_images[2], "Nodule"],
        [three_images[3], "Mass"],
    ]
    data = load_csv(_write_csv(tmp_path / "d.csv", ["image", "labels"], rows))
    assert data.task == "multilabel" and data.labels == ["Mass", "Nodule"]
    assert data.samples[0].labels == ["Mass", "Nodule"] and data.samples[1].labels == []


def test_csv_errors(tmp_path: Path, three_images: list[str]) -> None:
    no_path = _write_csv(tmp_path / "a.csv", ["file_name_x", "label"], [[three_images[0], "a"]])
    with pytest.raises(DataSourceError, match="has no path column"):
        load_csv(no_path)
    rows = [[p, "a" if i % 2 else "b"] for i, p in enumerate(three_images)] + [["img/missing.png", "a"]]
    missing = load_csv(_write_csv(tmp_path / "b.csv", ["path", "label"], rows))
    assert missing.report.n_unreadable == 1 and missing.report.unreadable[0][1] == "file not found"
    with pytest.raises(DataSourceError, match="Unknown label 'b'"):
        load_source(DataConfig(path=str(tmp_path / "b.csv"), labels=["a", "c"]))
    all_missing = _write_csv(tmp_path / "c.csv", ["path", "label"], [["x.png", "a"], ["y.png", "b"]])
    with pytest.raises(DataSourceError, match="unreadable"):
        load_csv(all_missing)


# --------------------------------------------------------------------------- presets


def test_pediatric_pneumonia_preset_keeps_its_split(tmp_path: Path) -> None:
    root = tmp_path / "chest_xray"
    n = 0
    for split in ("train", "val", "test"):
        for cls in ("NORMAL", "PNEUMONIA"):
            for j in range(2):
                name = f"person{n}_bacteria_{j}.jpeg" if cls == "PNEUMONIA" else f"IM-{n:04d}-000{j}.jpeg"
                _png(root / split / cls / name, n * 10 + j)
            n += 1
    assert detect_preset(tmp_path) == "pediatric_pneumonia"
    data = load_source(DataConfig(path=str(tmp_path)))
    assert data.labels == ["NORMAL", "PNEUMONIA"]
    assert sorted({s.predefined_split for s in data.samples}) == ["test", "train", "val"]


def test_nih_preset(tmp_path: Path) -> None:
    names = []
    for i, folder in enumerate(["images_001", "images_001", "images_002", "images_002"]):
        name = f"0000000{i // 2 + 1}_00{i % 2}.png"
        _png(tmp_path / folder / "images" / name, i)
        names.append(name)
    findings = ["Cardiomegaly", "Cardiomegaly|Effusion", "No Finding", "Hernia"]
    views = ["PA", "AP", "PA", "LL"]
    header = [
        "Image Index",
        "Finding Labels",
        "Follow-up #",
        "Patient ID",
        "Patient Age",
        "Patient Gender",
        "View Position",
        "OriginalImage[Width",
        "Height]",
        "OriginalImagePixelSpacing[x",
        "y]",
    ]
    _write_csv(
        tmp_path / "Data_Entry_2017.csv",
        header,
        [
            [n, f, 0, n[:8], 50, "M", v, 48, 40, 0.14, 0.14]
            for n, f, v in zip(names, findings, views, strict=True)
        ],
    )
    (tmp_path / "train_val_list.txt").write_text("\n".join(names[:2]) + "\n")
    (tmp_path / "test_list.txt").write_text("\n".join(names[2:]) + "\n")
    assert detect_preset(tmp_path) == "nih_chestxray14"
    data = load_source(DataConfig(path=str(tmp_path)))
    assert data.task == "multilabel" and len(data.labels) == 14
    assert data.report.filtered == {"lateral view (frontal views only)": 1}
    by = {Path(s.path).name: s for s in data.samples}
    assert by[names[1]].labels == ["Cardiomegaly", "Effusion"] and by[names[2]].labels == []
    assert by[names[0]].patient_id == "00000001" and by[names[2]].predefined_split == "test"


@pytest.mark.parametrize(
    ("policy", "expected"), [("ignore", ([], ["Edema"])), ("zeros", ([], [])), ("ones", (["Edema"], []))]
)
def test_chexpert_preset_uncertainty_policy(tmp_path: Path, policy: str, expected) -> None:
    root = tmp_path / "CheXpert-v1.0-small"
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Cardiomegaly", "Edema"]
    rows = []
    for i in range(4):
        rel = f"CheXpert-v1.0-small/train/patient0000{i}/study1/view1_frontal.jpg"
        _png(tmp_path / rel, i)
        rows.append(
            [rel, "F", 60, "Frontal", "AP", "", "1.0" if i % 2 else "0.0", "-1.0" if i == 0 else "0.0"]
        )
    lat = "CheXpert-v1.0-small/train/patient00000/study1/view2_lateral.jpg"
    _png(tmp_path / lat, 9)
    rows.append([lat, "F", 60, "Lateral", "", "", "1.0", ""])
    _write_csv(root / "train.csv", header, rows)
    assert detect_preset(root) == "chexpert"
    data = load_source(DataConfig(path=str(root), chexpert_uncertain=policy))
    assert data.task == "multilabel" and data.labels == ["Cardiomegaly", "Edema"]
    first = next(s for s in data.samples if "patient00000" in s.path)
    assert (first.labels, first.ignore) == expected
    assert first.patient_id == "patient00000" and data.report.n_images == 4


@pytest.mark.parametrize(
    ("task", "labels"),
    [("binary", ["negative", "positive"]), ("4class", ["negative", "typical", "indeterminate", "atypical"])],
)
def test_siim_preset(tmp_path: Path, task: str, labels: list[str]) -> None:
    header = [
        "id",
        "Negative for Pneumonia",
        "Typical Appearance",
        "Indeterminate Appearance",
        "Atypical Appearance",
    ]
    rows = []
    for i in range(4):
        study = f"s{i:03d}"
        _dcm(tmp_path / "train" / study / "ser1" / f"img{i}.dcm", i, patient_id=f"P{i}")
        onehot = [0, 0, 0, 0]
        onehot[i] = 1
        rows.append([f"{study}_study", *onehot])
    _write_csv(tmp_path / "train_study_level.csv", header, rows)
    assert detect_preset(tmp_path) == "siim_covid19"
    data = load_source(DataConfig(path=str(tmp_path), siim_task=task))
    assert data.labels == labels
    counts = data.report.per_class
    assert sum(counts.values()) == 4 and counts["negative"] == 1


# --------------------------------------------------------------------------- patient-ID patterns (issue 10 item 7)

KERMANY_VAL = Path("/work/shared/data/cxr/kermany-val")


def _kermany_like(tmp_path: Path, normal: int = 2, pneumonia: int = 4) -> Path:
    """NORMAL/NORMAL2-IM-...jpeg and PNEUMONIA/personN_bacteria_M.jpeg, copied from the shared set."""
    if not KERMANY_VAL.is_dir():
        pytest.skip("shared kermany-val data not available")
    root = tmp_path / "kermany"
    for label, n in (("NORMAL", normal), ("PNEUMONIA", pneumonia)):
        (root / label).mkdir(parents=True)
        for f in sorted((KERMANY_VAL / label).iterdir())[:n]:
            shutil.copy(f, root / label / f.name)
    return root


def test_file_name_pattern_is_matched_against_the_file_name_not_the_path(tmp_path: Path) -> None:
    from ml.training.splits import resolve_patient_ids

    root = _kermany_like(tmp_path, normal=1, pneumonia=4)
    normal = next((root / "NORMAL").iterdir())
    normal.rename(root / "NORMAL" / "person7_normal_1.jpeg")  # both classes named personN_... here
    data = load_folder(root, SourceFilters(frontal_only=False), labels=["NORMAL", "PNEUMONIA"])
    ids, level, source = resolve_patient_ids(data.samples, r"regex:^(person\d+)_")
    names = {Path(s.path).name: pid for s, pid in zip(data.samples, ids, strict=True)}
    assert level == "patient" and "file name" in source
    assert names["person7_normal_1.jpeg"] == "person7"
    assert names["person1946_bacteria_4874.jpeg"] == names["person1946_bacteria_4875.jpeg"] == "person1946"
    assert names["person1947_bacteria_4876.jpeg"] == "person1947"
    # a relative-path pattern sees the class folder
    ids, _, _ = resolve_patient_ids(data.samples, r"path-regex:^[A-Z]+/(person\d+)_")
    assert ids.count("person1946") == 2 and "person7" in ids


def test_pattern_misses_say_what_was_matched_and_show_each_kind(tmp_path: Path) -> None:
    from ml.training.splits import resolve_patient_ids

    root = _kermany_like(tmp_path, normal=2, pneumonia=3)
    data = load_folder(root, SourceFilters(frontal_only=False), labels=["NORMAL", "PNEUMONIA"])
    with pytest.raises(DataSourceError) as err:
        resolve_patient_ids(data.samples, r"regex:^(person\d+)_")
    msg = str(err.value)
    assert "matched against each file name" in msg and "matches 3 of 5" in msg
    assert "2 whose file name it does not match, e.g. NORMAL2-IM-" in msg
    assert "person" not in msg.split("misses", 1)[1]  # the files that matched are not named as misses
    # a file-name pattern written for the path: the other kind of miss, with the fix
    with pytest.raises(DataSourceError) as err:
        resolve_patient_ids(data.samples, r"regex:^PNEUMONIA/(person\d+)_")
    msg = str(err.value)
    assert "3 whose file name it does not match although the relative path would" in msg
    assert "use path-regex:" in msg and "e.g. person1946_bacteria_4874.jpeg" in msg
    assert "2 whose file name it does not match, e.g. NORMAL2-IM-" in msg
