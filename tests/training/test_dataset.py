"""Training datasets: NVIDIA's folder/zip + dataset.json format, validation, fingerprint, prepare."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.dataset import DatasetError, ImageFolderDataset, PreparedDataset, prepare_dataset

# Square crops among the shared test photographs (side in pixels), for real-data round trips.
REAL_CROPS = {
    "faces/open/astronaut_eileen_collins.png": 512,
    "faces/open/grace_hopper_128px.jpg": 128,
    "faces/closed/cew_closed_eye_0172.jpg": 383,
    "faces/closed/cew_closed_eye_0267.jpg": 356,
}


def pixels(seed: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path, format="PNG")
    return path


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def truncated_png(path: Path, size: int = 32) -> Path:
    """A PNG whose header reads but whose pixel data stops halfway."""
    data = png_bytes(pixels(99, size))
    path.write_bytes(data[: len(data) // 2])
    return path


def make_source(root: Path, count: int = 3, size: int = 8) -> dict[str, np.ndarray]:
    arrays = {f"face{i}.png": pixels(i, size) for i in range(count)}
    for name, array in arrays.items():
        write_png(root / name, array)
    return arrays


def items(dataset: ImageFolderDataset) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [dataset[i] for i in range(len(dataset))]


def as_chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).permute(2, 0, 1)


def assert_names_file(exc: pytest.ExceptionInfo[DatasetError], name: str) -> None:
    assert name in str(exc.value), str(exc.value)


# -- prepare -> read round trips ----------------------------------------------------------------

def test_prepare_folder_round_trip_keeps_pixels_and_uses_nvidia_names(tmp_path: Path) -> None:
    arrays = make_source(tmp_path / "src")
    prepared = prepare_dataset(tmp_path / "src", tmp_path / "ds", resolution=8)

    assert prepared == PreparedDataset(dest=tmp_path / "ds", count=3, resolution=8,
                                       fingerprint=prepared.fingerprint)
    written = sorted(p.relative_to(tmp_path / "ds").as_posix() for p in (tmp_path / "ds").rglob("*.*"))
    assert written == ["00000/img00000000.png", "00000/img00000001.png", "00000/img00000002.png"]
    dataset = ImageFolderDataset(tmp_path / "ds")
    assert (len(dataset), dataset.resolution, dataset.num_channels, dataset.name) == (3, 8, 3, "ds")
    assert (dataset.label_dim, dataset.has_labels) == (0, False)
    for (image, label), array in zip(items(dataset), arrays.values()):
        assert image.dtype == torch.uint8 and torch.equal(image, as_chw(array))
        assert label.dtype == torch.float32 and label.shape == (0,)
    assert dataset.fingerprint() == prepared.fingerprint


def test_prepare_zip_matches_folder(tmp_path: Path) -> None:
    make_source(tmp_path / "src")
    as_zip = prepare_dataset(tmp_path / "src", tmp_path / "faces.zip", resolution=8, labels=None)
    as_folder = prepare_dataset(tmp_path / "src", tmp_path / "faces", resolution=8)

    with zipfile.ZipFile(tmp_path / "faces.zip") as archive:
        assert archive.namelist() == [f"00000/img0000000{i}.png" for i in range(3)]
    zipped, folder = ImageFolderDataset(tmp_path / "faces.zip"), ImageFolderDataset(tmp_path / "faces")
    assert zipped.name == "faces"
    for (a, _), (b, _) in zip(items(zipped), items(folder), strict=True):
        assert torch.equal(a, b)
    assert as_zip.fingerprint == as_folder.fingerprint == zipped.fingerprint() == folder.fingerprint()
    zipped.close()


def test_prepare_resizes_with_lanczos_and_converts_to_rgb(tmp_path: Path) -> None:
    source = pixels(5, 16)
    write_png(tmp_path / "src/grey.png", source, "L")
    write_png(tmp_path / "src/rgba.png", source, "RGBA")
    Image.fromarray(source).save(tmp_path / "src/photo.jpg", quality=95)
    prepare_dataset(tmp_path / "src", tmp_path / "ds", resolution=8)

    dataset = ImageFolderDataset(tmp_path / "ds")
    for (image, _), name in zip(items(dataset), ["grey.png", "photo.jpg", "rgba.png"], strict=True):
        with Image.open(tmp_path / "src" / name) as original:
            expected = original.convert("RGB").resize((8, 8), Image.Resampling.LANCZOS)
        assert torch.equal(image, as_chw(np.asarray(expected))), name


def test_prepare_reports_progress(tmp_path: Path) -> None:
    make_source(tmp_path / "src")
    calls: list[tuple[int, int, str]] = []
    prepare_dataset(tmp_path / "src", tmp_path / "ds", resolution=8, progress=lambda *a: calls.append(a))
    assert calls == [(1, 3, "face0.png"), (2, 3, "face1.png"), (3, 3, "face2.png")]


def test_real_face_crops_round_trip(tmp_path: Path, testdata_dir: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    links = {relative.replace("/", "_"): relative for relative in REAL_CROPS}
    for link, relative in links.items():  # linked, not copied: the photographs stay shared
        (src / link).symlink_to(testdata_dir / relative)
    prepared = prepare_dataset(src, tmp_path / "real.zip", resolution=64)

    dataset = ImageFolderDataset(tmp_path / "real.zip")
    assert (len(dataset), dataset.resolution, prepared.count) == (4, 64, 4)
    for (image, _), name in zip(items(dataset), sorted(links), strict=True):
        with Image.open(src / name) as original:
            assert original.size == (REAL_CROPS[links[name]],) * 2
            source_mean = np.asarray(original.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
        # Lanczos resizing keeps each image's mean colour (to within rounding and ringing).
        assert np.abs(image.double().mean(dim=(1, 2)).numpy() - source_mean).max() < 2.0, name
    dataset.close()


def test_real_non_square_photo_is_refused_by_name(tmp_path: Path, testdata_dir: Path) -> None:
    with pytest.raises(DatasetError) as exc:
        prepare_dataset(testdata_dir / "faces/open", tmp_path / "ds", resolution=64)
    assert_names_file(exc, "biden_oval_office.jpg")
    assert "not square" in str(exc.value)
    assert not (tmp_path / "ds").exists()


# -- labels -------------------------------------------------------------------------------------

def test_int_labels_are_served_one_hot_and_written_as_nvidia_json(tmp_path: Path) -> None:
    make_source(tmp_path / "src")
    prepare_dataset(tmp_path / "src", tmp_path / "ds", resolution=8,
                    labels={"face0.png": 0, "face1.png": 2, "face2.png": 1})

    assert json.loads((tmp_path / "ds/dataset.json").read_text()) == {"labels": [
        ["00000/img00000000.png", 0], ["00000/img00000001.png", 2], ["00000/img00000002.png", 1]]}
    dataset = ImageFolderDataset(tmp_path / "ds")
    assert (dataset.label_dim, dataset.has_labels) == (3, True)
    assert torch.equal(torch.stack([label for _, label in items(dataset)]),
                       torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 1, 0]]))
    assert torch.equal(dataset.get_label(1), torch.tensor([0.0, 0.0, 1.0]))


def test_vector_labels_are_served_as_given(tmp_path: Path) -> None:
    make_source(tmp_path / "src", count=2)
    prepare_dataset(tmp_path / "src", tmp_path / "ds.zip", resolution=8,
                    labels={"face0.png": [0.25, -1.5], "face1.png": [3, 0.5]})
    dataset = ImageFolderDataset(tmp_path / "ds.zip")
    assert dataset.label_dim == 2
    assert torch.equal(dataset[0][1], torch.tensor([0.25, -1.5]))
    assert torch.equal(dataset.get_label(1), torch.tensor([3.0, 0.5]))


def test_reads_a_dataset_json_written_as_nvidia_documents_it(tmp_path: Path) -> None:
    root = tmp_path / "nvidia"
    for i in range(2):
        write_png(root / f"00000/img0000000{i}.png", pixels(i))
    (root / "dataset.json").write_text(
        '{\n  "labels": [\n    ["00000/img00000000.png",6],\n    ["00000/img00000001.png",9]\n  ]\n}\n')

    dataset = ImageFolderDataset(root)
    assert dataset.label_dim == 10
    assert dataset.get_label(0).argmax().item() == 6 and dataset.get_label(0).sum().item() == 1
    assert dataset.get_label(1).argmax().item() == 9
    assert ImageFolderDataset(root, use_labels=False).label_dim == 0


def test_null_labels_and_windows_separators(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_png(root / "00000/img00000000.png", pixels(0))
    (root / "dataset.json").write_text('{"labels": null}')
    assert ImageFolderDataset(root).has_labels is False
    (root / "dataset.json").write_text('{"labels": [["00000\\\\img00000000.png", [1.0]]]}')
    assert torch.equal(ImageFolderDataset(root).get_label(0), torch.tensor([1.0]))


# -- subsets and mirrored copies ----------------------------------------------------------------

def test_max_size_is_a_fixed_subset_and_xflip_appends_mirrors(tmp_path: Path) -> None:
    make_source(tmp_path / "src", count=5)
    prepare_dataset(tmp_path / "src", tmp_path / "ds", resolution=8)
    full = items(ImageFolderDataset(tmp_path / "ds"))

    subset = ImageFolderDataset(tmp_path / "ds", max_size=3)
    again = ImageFolderDataset(tmp_path / "ds", max_size=3)
    assert len(subset) == 3 and subset.fingerprint() == again.fingerprint()
    assert all(any(torch.equal(img, f) for f, _ in full) for img, _ in items(subset))
    assert subset.fingerprint() != ImageFolderDataset(tmp_path / "ds").fingerprint()

    mirrored = ImageFolderDataset(tmp_path / "ds", xflip=True)
    assert len(mirrored) == 10
    assert torch.equal(mirrored[7][0], full[2][0].flip(-1)) and torch.equal(mirrored[2][0], full[2][0])
    with pytest.raises(IndexError):
        mirrored[10]


# -- validation on open -------------------------------------------------------------------------

def _labels(root: Path, entries: object) -> None:
    (root / "dataset.json").write_text(json.dumps({"labels": entries}))


def _case_mixed_sizes(root: Path) -> str:
    write_png(root / "a.png", pixels(0, 8))
    write_png(root / "b.png", pixels(1, 16))
    return "b.png"


def _case_not_square(root: Path) -> str:
    write_png(root / "a.png", np.zeros((8, 16, 3), np.uint8))
    return "a.png"


def _case_not_power_of_two(root: Path) -> str:
    write_png(root / "a.png", pixels(0, 12))
    return "a.png"


def _case_too_small(root: Path) -> str:
    write_png(root / "tiny.png", pixels(0, 2))
    return "tiny.png"


def _case_label_for_missing_file(root: Path) -> str:
    write_png(root / "a.png", pixels(0))
    _labels(root, [["a.png", 0], ["gone.png", 1]])
    return "gone.png"


def _case_image_without_label(root: Path) -> str:
    write_png(root / "a.png", pixels(0))
    write_png(root / "sub/b.png", pixels(1))
    _labels(root, [["a.png", 0]])
    return "sub/b.png"


def _case_mixed_label_kinds(root: Path) -> str:
    write_png(root / "a.png", pixels(0))
    write_png(root / "b.png", pixels(1))
    _labels(root, [["a.png", 0], ["b.png", [0.5, 0.5]]])
    return "b.png"


def _case_vectors_of_two_lengths(root: Path) -> str:
    write_png(root / "a.png", pixels(0))
    write_png(root / "b.png", pixels(1))
    _labels(root, [["a.png", [1.0]], ["b.png", [0.5, 0.5]]])
    return "b.png"


def _case_jpeg_in_dataset(root: Path) -> str:
    write_png(root / "a.png", pixels(0))
    Image.fromarray(pixels(1)).save(root / "b.jpg")
    return "b.jpg"


def _case_corrupt_png(root: Path) -> str:
    write_png(root / "a.png", pixels(0))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png at all")
    return "broken.png"


def _case_jpeg_named_png(root: Path) -> str:
    Image.fromarray(pixels(0)).save(root / "a.png", format="JPEG")
    return "a.png"


def _case_16_bit_grey(root: Path) -> str:
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(root / "deep.png")
    return "deep.png"


def _case_bad_json(root: Path) -> str:
    write_png(root / "a.png", pixels(0))
    (root / "dataset.json").write_text('{"labels": [["a.png", 0],]}')
    return "dataset.json"


def _case_negative_class(root: Path) -> str:
    write_png(root / "a.png", pixels(0))
    _labels(root, [["a.png", -1]])
    return "a.png"


def _case_empty(root: Path) -> str:
    (root / "README.txt").write_text("no images here")
    return str(root)


@pytest.mark.parametrize("case", [
    _case_empty, _case_mixed_sizes, _case_not_square, _case_not_power_of_two, _case_too_small,
    _case_label_for_missing_file, _case_image_without_label, _case_mixed_label_kinds,
    _case_vectors_of_two_lengths, _case_jpeg_in_dataset, _case_corrupt_png, _case_jpeg_named_png,
    _case_16_bit_grey, _case_bad_json, _case_negative_class,
], ids=lambda case: case.__name__.removeprefix("_case_"))
@pytest.mark.parametrize("container", ["folder", "zip"])
def test_invalid_datasets_are_refused_naming_the_file(tmp_path: Path, case, container: str) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    named = case(root)
    path = root
    if container == "zip":
        path = tmp_path / "ds.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for file in sorted(root.rglob("*")):
                if file.is_file():
                    archive.write(file, file.relative_to(root).as_posix())
        named = named.replace(str(root), str(path))
    with pytest.raises(DatasetError) as exc:
        ImageFolderDataset(path)
    assert_names_file(exc, named)
    assert exc.value.hint, "every dataset error says what to do"


def test_other_files_are_ignored(tmp_path: Path) -> None:
    write_png(tmp_path / "ds/a.png", pixels(0))
    (tmp_path / "ds/README.md").write_text("faces")
    (tmp_path / "ds/notes/meta.json").parent.mkdir()
    (tmp_path / "ds/notes/meta.json").write_text("{}")
    write_png(tmp_path / "ds/.trash/old.png", pixels(1, 16))  # hidden: not part of the dataset
    dataset = ImageFolderDataset(tmp_path / "ds")
    assert len(dataset) == 1 and dataset.resolution == 8


def test_damaged_pixel_data_fails_when_read_naming_the_file(tmp_path: Path) -> None:
    write_png(tmp_path / "ds/a.png", pixels(0, 32))
    truncated_png(tmp_path / "ds/b.png")
    dataset = ImageFolderDataset(tmp_path / "ds")  # headers are fine: opening stays cheap
    assert dataset[0][0].shape == (3, 32, 32)
    with pytest.raises(DatasetError) as exc:
        dataset[1]
    assert_names_file(exc, "b.png")


# -- fingerprint --------------------------------------------------------------------------------

def test_fingerprint_is_stable_and_follows_pixels_and_labels(tmp_path: Path) -> None:
    arrays = make_source(tmp_path / "src")
    first = prepare_dataset(tmp_path / "src", tmp_path / "one", resolution=8)
    second = prepare_dataset(tmp_path / "src", tmp_path / "two.zip", resolution=8)
    assert first.fingerprint == second.fingerprint == ImageFolderDataset(tmp_path / "one").fingerprint()
    assert len(first.fingerprint) == 64

    labelled = prepare_dataset(tmp_path / "src", tmp_path / "labelled", resolution=8,
                               labels={name: 0 for name in arrays})
    relabelled = prepare_dataset(tmp_path / "src", tmp_path / "relabelled", resolution=8,
                                 labels={name: i for i, name in enumerate(arrays)})
    assert len({first.fingerprint, labelled.fingerprint, relabelled.fingerprint}) == 3
    assert ImageFolderDataset(tmp_path / "labelled", use_labels=False).fingerprint() == first.fingerprint

    changed = arrays["face1.png"].copy()
    changed[3, 4, 0] ^= 1
    write_png(tmp_path / "src/face1.png", changed)
    assert prepare_dataset(tmp_path / "src", tmp_path / "three", resolution=8).fingerprint != first.fingerprint


# -- DataLoader workers -------------------------------------------------------------------------

def test_zip_dataset_works_with_dataloader_workers(tmp_path: Path) -> None:
    make_source(tmp_path / "src", count=6)
    prepare_dataset(tmp_path / "src", tmp_path / "ds.zip", resolution=8,
                    labels={f"face{i}.png": i % 3 for i in range(6)})
    dataset = ImageFolderDataset(tmp_path / "ds.zip")
    expected = items(dataset)  # the zip is now open in this process; workers must open their own
    restored = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(restored[5][0], expected[5][0])

    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 3
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert torch.equal(images, torch.stack([e[0] for e in expected]))
    assert torch.equal(labels, torch.stack([e[1] for e in expected]))
    dataset.close()


# -- prepare: refusals and atomicity ------------------------------------------------------------

@pytest.mark.parametrize("dest_name", ["ds", "ds.zip"])
def test_failed_prepare_leaves_nothing_at_dest(tmp_path: Path, dest_name: str) -> None:
    make_source(tmp_path / "src", count=3, size=32)
    truncated_png(tmp_path / "src/zz_last.png")  # sorted last: fails after the others are written
    with pytest.raises(DatasetError) as exc:
        prepare_dataset(tmp_path / "src", tmp_path / dest_name, resolution=32)
    assert_names_file(exc, "zz_last.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_prepare_refuses_to_overwrite(tmp_path: Path) -> None:
    make_source(tmp_path / "src")
    prepare_dataset(tmp_path / "src", tmp_path / "ds.zip", resolution=8)
    with pytest.raises(DatasetError) as exc:
        prepare_dataset(tmp_path / "src", tmp_path / "ds.zip", resolution=8)
    assert_names_file(exc, "ds.zip")
    (tmp_path / "full").mkdir()
    (tmp_path / "full/keep.txt").write_text("mine")
    with pytest.raises(DatasetError):
        prepare_dataset(tmp_path / "src", tmp_path / "full", resolution=8)
    assert (tmp_path / "full/keep.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert prepare_dataset(tmp_path / "src", tmp_path / "empty", resolution=8).count == 3
    assert len(ImageFolderDataset(tmp_path / "empty")) == 3
    assert prepare_dataset(tmp_path / "src", tmp_path / "new/parents/ds.zip", resolution=8).count == 3


def test_prepare_refuses_bad_requests(tmp_path: Path) -> None:
    make_source(tmp_path / "src", size=16)
    for resolution in (12, 2):
        with pytest.raises(DatasetError, match=f"resolution {resolution} is not a power of two"):
            prepare_dataset(tmp_path / "src", tmp_path / "ds", resolution=resolution)
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing/notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="no images"):
        prepare_dataset(tmp_path / "nothing", tmp_path / "ds", resolution=8)
    with pytest.raises(DatasetError) as exc:
        prepare_dataset(tmp_path / "src", tmp_path / "ds", resolution=32)
    assert_names_file(exc, "face0.png")
    assert "smaller than the resolution 32" in str(exc.value)
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(tmp_path / "src/zz_deep.png")
    with pytest.raises(DatasetError) as exc:
        prepare_dataset(tmp_path / "src", tmp_path / "ds", resolution=8)
    assert_names_file(exc, "zz_deep.png")
    (tmp_path / "src/zz_deep.png").unlink()
    with pytest.raises(DatasetError) as exc:
        prepare_dataset(tmp_path / "src", tmp_path / "ds", resolution=8, labels={"face0.png": 0, "face1.png": 1})
    assert_names_file(exc, "face2.png")
    with pytest.raises(DatasetError) as exc:
        prepare_dataset(tmp_path / "src", tmp_path / "ds", resolution=8,
                        labels={"face0.png": 0, "face1.png": 1, "face2.png": [1.0]})
    assert_names_file(exc, "face2.png")
    assert not (tmp_path / "ds").exists()
