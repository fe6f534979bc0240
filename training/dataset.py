"""Training datasets: a folder or a .zip of square PNG images with an optional `dataset.json`.

The format is the one NVIDIA's StyleGAN2-ADA `train.py` reads, so our exports train with their
tools and their datasets train with ours:

* every image is a PNG, square, with a power-of-two side >= 4, all of one size;
* `dataset.json` at the root, if present, is ``{"labels": [["00000/img00000000.png", 6], ...]}``
  (paths relative to the root, forward slashes) or ``{"labels": null}``. A label is either an
  int class index (served one-hot, `label_dim` = largest index + 1) or a list of floats (served
  as is). Every image needs a label when the list is not null, and every label an image.

Decisions (stricter or wider than NVIDIA's reader, never incompatible with its datasets):

* Greyscale, palette and RGBA PNGs are accepted and converted to RGB (alpha is dropped), so
  `num_channels` is always 3. 16-bit greyscale PNGs are refused: their conversion clips.
* Files with another image extension (.jpg, .webp, ...) are an error, not skipped: a dataset
  that silently loses half its pictures trains on the wrong data. Other files (README, .txt,
  nested .json) and hidden files are ignored. `prepare_dataset` converts any source to PNG.
* Opening checks every image header (size, format, mode) but decodes nothing; a PNG whose data
  is damaged behind a valid header fails when that image is read, naming the file.
* `max_size` keeps a fixed pseudo-random subset (seed 0), so a smaller run still sees every
  class; `xflip` appends mirrored copies (the dataset doubles).
* `fingerprint()` covers what the instance serves: the chosen images' names and bytes and, when
  labels are in use, their labels. It does not depend on the container (folder or zip).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import random
import shutil
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from likeness.errors import InvalidInput
from likeness.files import fsync_dir
from likeness.progress import ProgressFn

__all__ = ["DatasetError", "ImageFolderDataset", "PreparedDataset", "prepare_dataset", "write_dataset"]

log = logging.getLogger(__name__)

LABELS_FILE = "dataset.json"
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
RGB_CONVERTIBLE_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})
MIN_RESOLUTION = 4

Label = int | tuple[float, ...]


class DatasetError(InvalidInput):
    """A dataset or a prepare source cannot be used; the message names the file."""


# ---- Where the files live: a folder or a zip (opened lazily, once per process). ---------------

class _Files(Protocol):
    def names(self) -> list[str]: ...
    def open(self, name: str) -> BinaryIO: ...
    def read(self, name: str) -> bytes: ...
    def close(self) -> None: ...


def _visible(name: str) -> bool:
    """Hidden files and macOS resource forks are not dataset content."""
    return not any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(name).parts)


class _FolderFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> list[str]:
        names = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(n for n in names if _visible(n))

    def open(self, name: str) -> BinaryIO:
        return open(self.root / name, "rb")

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def close(self) -> None:
        pass


class _ZipFiles:
    """A zip read by name. The handle is opened on first use in each process and never pickled:
    DataLoader workers (forked or spawned) each open their own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1

    def _handle(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DatasetError(f"{self.path}: not a readable zip ({exc})",
                                   hint="rebuild it with prepare_dataset") from exc
            self._pid = os.getpid()
        return self._zip

    def names(self) -> list[str]:
        return sorted(n for n in self._handle().namelist() if not n.endswith("/") and _visible(n))

    def open(self, name: str) -> BinaryIO:
        return self._handle().open(name)  # type: ignore[return-value]

    def read(self, name: str) -> bytes:
        return self._handle().read(name)

    def close(self) -> None:
        if self._zip is not None and self._pid == os.getpid():
            self._zip.close()
        self._zip = None

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path, "_zip": None, "_pid": -1}


def _open_files(path: Path) -> _Files:
    if path.is_dir():
        return _FolderFiles(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        return _ZipFiles(path)
    raise DatasetError(f"{path}: no dataset here", hint="give a folder or a .zip of PNG images")


# ---- Labels: parsed, normalised (int or tuple of floats) and checked in one place. ------------

def _normalise_label(value: object, name: str, where: str) -> Label:
    if isinstance(value, bool):
        raise DatasetError(f"{where}: label of {name} is a boolean",
                           hint="use an int class index or a list of floats")
    if isinstance(value, int):
        if value < 0:
            raise DatasetError(f"{where}: label of {name} is {value}, a negative class index",
                               hint="class indices start at 0")
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return tuple(float(v) for v in value)
    raise DatasetError(f"{where}: label of {name} is {value!r}",
                       hint="use an int class index or a non-empty list of floats")


def _describe(label: Label) -> str:
    return "a class index" if isinstance(label, int) else f"a {len(label)}-vector"


def _check_labels(labels: Mapping[str, Label], images: Sequence[str], where: str) -> None:
    """Every image labelled, every label an image, and all labels of one kind and length."""
    present = set(images)
    missing = [n for n in labels if n not in present]
    if missing:
        raise DatasetError(f"{where}: labels name {len(missing)} file(s) that are not in the dataset, "
                           f"first {missing[0]}", hint="remove those entries or add the images")
    unlabelled = [n for n in images if n not in labels]
    if unlabelled:
        raise DatasetError(f"{where}: {len(unlabelled)} image(s) have no label, first {unlabelled[0]}",
                           hint='label every image, or use "labels": null for an unlabelled dataset')
    first_name, first = next(iter(labels.items()))
    for name, label in labels.items():
        if _describe(label) != _describe(first):
            raise DatasetError(f"{where}: labels are mixed: {first_name} has {_describe(first)} "
                               f"but {name} has {_describe(label)}",
                               hint="use class indices for every image or vectors of one length")


def _read_labels_json(data: bytes, where: str) -> dict[str, Label] | None:
    """Parse NVIDIA's dataset.json; None for ``"labels": null``."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{where}: not valid JSON ({exc})",
                           hint='write {"labels": [["path.png", label], ...]} or {"labels": null}') from exc
    if not isinstance(document, dict) or "labels" not in document:
        raise DatasetError(f'{where}: no "labels" key at the top level',
                           hint='write {"labels": [["path.png", label], ...]} or {"labels": null}')
    entries = document["labels"]
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise DatasetError(f'{where}: "labels" is a {type(entries).__name__}, not a list',
                           hint='write {"labels": [["path.png", label], ...]} or {"labels": null}')
    labels: dict[str, Label] = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DatasetError(f"{where}: entry {entry!r} is not a [path, label] pair",
                               hint='each entry is ["relative/path.png", label]')
        name = entry[0].replace("\\", "/")
        if name in labels:
            raise DatasetError(f"{where}: {name} is labelled twice", hint="keep one entry per image")
        labels[name] = _normalise_label(entry[1], name, where)
    return labels


def _label_matrix(labels: Sequence[Label]) -> torch.Tensor:
    """Rows as served: one-hot for class indices (width = largest index + 1), vectors as is."""
    if not labels:
        return torch.zeros(0, 0)
    if isinstance(labels[0], int):
        indices = torch.as_tensor(labels, dtype=torch.long)
        return torch.nn.functional.one_hot(indices, int(indices.max()) + 1).to(torch.float32)
    return torch.as_tensor(labels, dtype=torch.float32)


# ---- Fingerprint: one definition shared by the reader and prepare_dataset. --------------------

class _Fingerprint:
    """SHA-256 over (name, bytes, label) of each image, fed in sorted name order."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256(b"likeness-dataset-v1\0")

    def add(self, name: str, data: bytes, label: Label | None) -> None:
        self._sha.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
        if label is not None:
            self._sha.update(json.dumps(label if isinstance(label, int) else list(label)).encode() + b"\0")

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


# ---- Reading. ---------------------------------------------------------------------------------

def _check_resolution(resolution: int, where: str) -> None:
    if resolution < MIN_RESOLUTION or resolution & (resolution - 1):
        raise DatasetError(f"{where}: resolution {resolution} is not a power of two >= {MIN_RESOLUTION}",
                           hint="use 64, 128, 256, 512 or 1024")


def _reason(exc: Exception) -> str:
    """Pillow's message, without the repr of the stream it was reading."""
    return "unrecognised or damaged data" if isinstance(exc, UnidentifiedImageError) else str(exc)


def _header(source: BinaryIO | Path, where: str) -> tuple[tuple[int, int], str, str]:
    """(size, mode, format) from the image header, reading neither pixels nor the whole file."""
    try:
        with Image.open(source) as image:
            return image.size, image.mode, image.format or "unknown"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{where}: not a readable image ({_reason(exc)})",
                           hint="replace or remove the file") from exc


class ImageFolderDataset(torch.utils.data.Dataset):
    """Square RGB images as uint8 [3, R, R] tensors with float32 label vectors [label_dim]."""

    def __init__(self, path: str | Path, *, use_labels: bool = True, max_size: int | None = None,
                 xflip: bool = False) -> None:
        self.path = Path(path)
        self.name = self.path.stem if self.path.suffix.lower() == ".zip" else self.path.name
        self.num_channels = 3
        self.xflip = xflip
        if max_size is not None and (not isinstance(max_size, int) or max_size < 1):
            raise DatasetError(f"{self.path}: max_size must be a positive int, got {max_size!r}")
        self._files = _open_files(self.path)
        try:
            files = self._files.names()
            names = self._image_names(files)
            self.resolution = self._check_headers(names)
            labels = self._read_labels(names) if use_labels and LABELS_FILE in files else None
        finally:
            self._files.close()
        keep = _subset(len(names), max_size)
        self._names = [names[i] for i in keep]
        self._labels = [labels[n] for n in self._names] if labels is not None else None
        matrix = _label_matrix([labels[n] for n in names]) if labels is not None else torch.zeros(len(names), 0)
        self._label_rows = matrix[keep]
        self.label_dim = int(self._label_rows.shape[1])
        self.has_labels = self.label_dim > 0
        self._fingerprint: str | None = None
        log.info("dataset %s: %d images at %dx%d, label_dim %d", self.path, len(self._names),
                 self.resolution, self.resolution, self.label_dim)

    def _where(self, name: str) -> str:
        return f"{self.path}: {name}"

    def _image_names(self, names: list[str]) -> list[str]:
        images = []
        for name in names:
            suffix = PurePosixPath(name).suffix.lower()
            if suffix == ".png":
                images.append(name)
            elif suffix in IMAGE_EXTENSIONS:
                raise DatasetError(f"{self._where(name)} is not a PNG; datasets hold PNG images only",
                                   hint="convert the source with prepare_dataset")
        if not images:
            raise DatasetError(f"{self.path}: no PNG images", hint="build the dataset with prepare_dataset")
        return images

    def _check_headers(self, names: list[str]) -> int:
        """Check every header; returns the common resolution."""
        first: tuple[str, tuple[int, int]] | None = None
        for name in names:
            with self._files.open(name) as stream:
                size, mode, fmt = _header(stream, self._where(name))
            if fmt != "PNG":
                raise DatasetError(f"{self._where(name)} holds a {fmt} image behind a .png name",
                                   hint="convert it to PNG or rebuild with prepare_dataset")
            if mode not in RGB_CONVERTIBLE_MODES:
                raise DatasetError(f"{self._where(name)} has pixel mode {mode}, which has no lossless RGB form",
                                   hint="save it as 8-bit RGB")
            if size[0] != size[1]:
                raise DatasetError(f"{self._where(name)} is {size[0]}x{size[1]}, not square",
                                   hint="crop it square or rebuild with prepare_dataset")
            if first is None:
                first = (name, size)
            elif size != first[1]:
                raise DatasetError(f"{self._where(name)} is {size[0]}x{size[1]} but {first[0]} is "
                                   f"{first[1][0]}x{first[1][1]}; all images must share one size",
                                   hint="rebuild with prepare_dataset at one resolution")
        assert first is not None  # _image_names refuses an empty list
        _check_resolution(first[1][0], f"{self.path} ({first[0]} is {first[1][0]}x{first[1][1]})")
        return first[1][0]

    def _read_labels(self, names: list[str]) -> dict[str, Label] | None:
        where = self._where(LABELS_FILE)
        labels = _read_labels_json(self._files.read(LABELS_FILE), where)
        if labels is not None:
            _check_labels(labels, names, where)
        return labels

    def __len__(self) -> int:
        return len(self._names) * (2 if self.xflip else 1)

    def _index(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} images")
        return i % len(self._names)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self._index(i)
        image = self._load(self._names[index])
        if i % len(self) >= len(self._names):
            image = image.flip(-1)
        return image, self._label_rows[index].clone()

    def get_label(self, i: int) -> torch.Tensor:
        """The label vector of item i (float32 [label_dim]; empty without labels)."""
        return self._label_rows[self._index(i)].clone()

    def _load(self, name: str) -> torch.Tensor:
        try:
            with Image.open(io.BytesIO(self._files.read(name))) as image:
                pixels = np.array(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DatasetError(f"{self._where(name)}: damaged PNG ({_reason(exc)})",
                               hint="replace the file or rebuild the dataset") from exc
        if pixels.shape != (self.resolution, self.resolution, 3):
            raise DatasetError(f"{self._where(name)} changed since the dataset was opened",
                               hint="reopen the dataset")
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()

    def fingerprint(self) -> str:
        """SHA-256 of the served images (names, bytes) and labels; record it with a run."""
        if self._fingerprint is None:
            digest = _Fingerprint()
            labels: Sequence[Label | None] = self._labels or [None] * len(self._names)
            for name, label in zip(self._names, labels):
                digest.add(name, self._files.read(name), label)
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def close(self) -> None:
        """Release the zip handle (reading again reopens it)."""
        self._files.close()

    def __enter__(self) -> ImageFolderDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _subset(count: int, max_size: int | None) -> list[int]:
    """All indices, or a fixed pseudo-random sorted sample of max_size of them."""
    if max_size is None or max_size >= count:
        return list(range(count))
    return sorted(random.Random(0).sample(range(count), max_size))


# ---- Preparing a dataset from aligned face crops. ---------------------------------------------

@dataclasses.dataclass(frozen=True)
class PreparedDataset:
    """What prepare_dataset built; the fingerprint equals ImageFolderDataset(dest).fingerprint()."""

    dest: Path
    count: int
    resolution: int
    fingerprint: str


class _Writer(Protocol):
    def write(self, name: str, data: bytes) -> None: ...
    def close(self) -> None: ...


class _FolderWriter:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()

    def write(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        pass


class _ZipWriter:
    """PNGs are stored, not deflated (already compressed), with fixed dates so equal content
    gives equal zips."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED)

    def write(self, name: str, data: bytes) -> None:
        self._zip.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)

    def close(self) -> None:
        self._zip.close()
        with open(self.path, "rb+") as f:
            os.fsync(f.fileno())


def _source_images(src: Path) -> list[str]:
    if not src.is_dir():
        raise DatasetError(f"{src}: not a folder", hint="give the folder of aligned face crops")
    names = _FolderFiles(src).names()
    images = [n for n in names if PurePosixPath(n).suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise DatasetError(f"{src}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})",
                           hint="give the folder of aligned face crops")
    return images


def _check_dest(dest: Path) -> None:
    """Only a missing path or an empty folder (for a folder dataset) may become the dataset."""
    if dest.exists() and not (dest.is_dir() and dest.suffix.lower() != ".zip" and not any(dest.iterdir())):
        raise DatasetError(f"{dest}: already exists", hint="choose a new path or delete the old dataset")


def _check_source_headers(src: Path, images: list[str], resolution: int) -> None:
    """Cheap checks before anything is written: readable header, square, large enough."""
    for name in images:
        (width, height), mode, _ = _header(src / name, f"{src / name}")
        if mode.split(";")[0] in {"I", "F"}:
            raise DatasetError(f"{src / name} has 16- or 32-bit pixels (mode {mode}), which RGB would clip",
                               hint="export it as 8-bit RGB")
        if width != height:
            raise DatasetError(f"{src / name} is {width}x{height}, not square",
                               hint="use the aligned square crop of the face")
        if width < resolution:
            raise DatasetError(f"{src / name} is {width}x{height}, smaller than the resolution {resolution}; "
                               "upscaled faces train the model to draw blur",
                               hint="use a larger crop or a lower resolution")


def _encode(image_source: ImageSource, resolution: int, where: str) -> bytes:
    """Decode, orient upright, convert to RGB, Lanczos-resize and encode as PNG."""
    where = str(image_source) if isinstance(image_source, Path) else where
    try:
        with (open(image_source, "rb") if isinstance(image_source, Path) else image_source()) as handle, \
                Image.open(handle) as image:
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{where}: damaged image ({_reason(exc)})", hint="replace or remove the file") from exc
    if rgb.size != (resolution, resolution):
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    return buffer.getvalue()


def output_name(index: int) -> str:
    """NVIDIA dataset_tool layout: 1000 images per folder, 00000/img00000000.png."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def prepare_dataset(src: Path, dest: Path, *, resolution: int,
                    labels: Mapping[str, int | Sequence[float]] | None = None,
                    progress: ProgressFn | None = None) -> PreparedDataset:
    """Build a training dataset (folder, or zip when dest ends in .zip) from square face crops.

    `labels` maps each source image's path relative to `src` (forward slashes) to its label.
    `progress` hears (done, total, source path relative to `src`) after each image.
    The dataset is built in a hidden sibling of `dest` and renamed into place at the end, so an
    interrupted run never leaves a partial dataset at `dest`.
    """
    src, dest = Path(src), Path(dest)
    _check_resolution(resolution, f"prepare {dest}")
    _check_dest(dest)
    images = _source_images(src)
    normalised = None
    if labels is not None:
        normalised = {k.replace("\\", "/"): _normalise_label(v, k, f"labels for {src}") for k, v in labels.items()}
        _check_labels(normalised, images, f"labels for {src}")
    _check_source_headers(src, images, resolution)
    sources = [(name, src / name) for name in images]
    return write_dataset(sources, dest, resolution=resolution,
                         labels=None if normalised is None else [normalised[name] for name in images], progress=progress)


ImageSource = Path | Callable[[], BinaryIO]


def write_dataset(sources: Sequence[tuple[str, ImageSource]], dest: Path, *, resolution: int,
                  labels: Sequence[Label] | None = None, extra_files: Mapping[str, bytes] | None = None,
                  progress: ProgressFn | None = None) -> PreparedDataset:
    """Write (name, image file or opener) sources as a dataset at `dest` (a folder, or a zip),
    in order, each Lanczos-resized to `resolution`, with `labels` (one per source) in dataset.json
    and `extra_files` (a manifest, say) at the root. Built beside `dest` and renamed into place:
    an interrupted write never leaves a partial dataset at `dest`."""
    dest = Path(dest)
    _check_resolution(resolution, f"write {dest}")
    _check_dest(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:12]}")
    digest = _Fingerprint()
    try:
        writer: _Writer = _ZipWriter(partial) if dest.suffix.lower() == ".zip" else _FolderWriter(partial)
        try:
            _write_images(sources, resolution, labels, writer, digest, progress)
            for name, data in (extra_files or {}).items():
                writer.write(name, data)
        finally:
            writer.close()
        if dest.is_dir():
            dest.rmdir()  # empty, checked above
        os.replace(partial, dest)
        fsync_dir(dest.parent)
    except BaseException:
        _remove(partial)
        raise
    log.info("wrote %s: %d images at %dx%d", dest, len(sources), resolution, resolution)
    return PreparedDataset(dest=dest, count=len(sources), resolution=resolution, fingerprint=digest.hexdigest())


def _write_images(sources: Sequence[tuple[str, ImageSource]], resolution: int, labels: Sequence[Label] | None,
                  writer: _Writer, digest: _Fingerprint, progress: ProgressFn | None) -> None:
    entries: list[list[object]] = []
    for index, (source, image) in enumerate(sources):
        name, data = output_name(index), _encode(image, resolution, source)
        label = labels[index] if labels is not None else None
        writer.write(name, data)
        digest.add(name, data, label)
        if label is not None:
            entries.append([name, label if isinstance(label, int) else list(label)])
        if progress is not None:
            progress(index + 1, len(sources), source)
    if labels is not None:
        writer.write(LABELS_FILE, json.dumps({"labels": entries}).encode())


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()

