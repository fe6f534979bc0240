"""DNG writer and sample shoot: files must decode like real camera RAWs."""

from __future__ import annotations

import csv
import io
import tomllib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import exifread
import numpy as np
import pytest
import rawpy
import tifffile
from PIL import Image
from skimage import data as skdata

from samples.dng import BLACK_LEVEL, WHITE_LEVEL, write_dng
from samples.releases import write_release_document
from samples.shoot import SampleShoot, build_sample_shoot

SHOOT_DAY = datetime(2026, 11, 20, 10, 30, 15)


def _decode(path: Path, **kwargs) -> np.ndarray:
    params: dict[str, Any] = {"use_camera_wb": True, "output_bps": 8, "no_auto_bright": True}
    params.update(kwargs)
    with rawpy.imread(str(path)) as raw:
        return raw.postprocess(**params)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


def _exif(path: Path) -> dict[str, str]:
    with open(path, "rb") as fh:
        return {k: str(v) for k, v in exifread.process_file(fh, details=False).items()}


def _faces(rgb: np.ndarray) -> list[tuple[float, int]]:
    """(score, box width in px) for each face mediapipe finds."""
    import mediapipe as mp
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as fd:
        result = fd.process(np.ascontiguousarray(rgb))
    return [
        (d.score[0], round(d.location_data.relative_bounding_box.width * rgb.shape[1]))
        for d in (result.detections or [])
    ]


# ---------------------------------------------------------------------------
# write_dng
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_round_trip_through_libraw_restores_the_photograph(tmp_path: Path, name: str) -> None:
    src = getattr(skdata, name)()
    path = tmp_path / f"{name}.dng"
    write_dng(path, src, capture_time=SHOOT_DAY)

    # Odd sizes (chelsea is 451 wide) lose one column to whole Bayer quads.
    h, w = src.shape[0] & ~1, src.shape[1] & ~1
    src = src[:h, :w]

    # With the sRGB tone curve the decode reproduces the source closely.
    out = _decode(path, gamma=(2.4, 12.92))
    assert out.shape == (h, w, 3)
    mean_diff = np.abs(out.reshape(-1, 3).mean(0) - src.reshape(-1, 3).mean(0))
    assert np.all(mean_diff < 3), mean_diff
    assert np.abs(out.astype(np.int16) - src).mean() < 5
    corr = np.corrcoef(_luma(out).ravel(), _luma(src).ravel())[0, 1]
    assert corr > 0.98

    # LibRaw's default curve is BT.709 (2.222, 4.5): a little darker than
    # sRGB in the mid-tones, but the same picture.
    out = _decode(path)
    assert out.shape == (h, w, 3)
    mean_diff = np.abs(out.reshape(-1, 3).mean(0) - src.reshape(-1, 3).mean(0))
    assert np.all(mean_diff < 20), mean_diff
    corr = np.corrcoef(_luma(out).ravel(), _luma(src).ravel())[0, 1]
    assert corr > 0.95


def test_linear_output_matches_linearised_source(tmp_path: Path) -> None:
    src = skdata.astronaut()
    path = tmp_path / "lin.dng"
    write_dng(path, src)
    lin = _decode(path, gamma=(1, 1), output_bps=16).astype(np.float64) / 65535
    codes = src.astype(np.float64) / 255
    expected = np.where(codes <= 0.04045, codes / 12.92, ((codes + 0.055) / 1.055) ** 2.4)
    assert np.allclose(lin.reshape(-1, 3).mean(0), expected.reshape(-1, 3).mean(0), atol=0.01)


def test_raw_structure_is_a_bayer_cfa(tmp_path: Path) -> None:
    src = skdata.astronaut()
    path = tmp_path / "cfa.dng"
    write_dng(path, src, preview_size=128)
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_type == rawpy.RawType.Flat
        assert raw.num_colors == 3
        assert raw.color_desc == b"RGBG"
        assert cast(np.ndarray, raw.raw_pattern).tolist() == [[0, 1], [3, 2]]  # RGGB
        assert raw.black_level_per_channel == [BLACK_LEVEL] * 4
        assert raw.white_level == WHITE_LEVEL
        assert raw.sizes.raw_width == 512 and raw.sizes.raw_height == 512
        cfa = raw.raw_image.copy()  # a view into LibRaw's buffer, which closing the file frees
        assert cfa.shape == (512, 512)
        assert cfa.min() >= BLACK_LEVEL and cfa.max() <= WHITE_LEVEL
        assert raw.camera_whitebalance[:3] == pytest.approx([2.0, 1.0, 1.5], rel=1e-3)

    # Generic TIFF readers see a preview in IFD0 and the CFA in its SubIFD.
    with tifffile.TiffFile(path) as tif:
        page = cast(tifffile.TiffPage, tif.pages[0])
        assert page.tags["NewSubfileType"].value == 1
        assert page.compression == 7
        assert bytes(page.tags["DNGVersion"].value) == b"\x01\x04\x00\x00"
        sub = cast(tifffile.TiffPage, cast(tifffile.TiffPages, page.pages)[0])
        assert sub.tags["NewSubfileType"].value == 0
        assert sub.photometric == 32803
        assert sub.shape == (512, 512)
        assert np.array_equal(sub.asarray(), cfa)


def test_metadata_is_readable_by_exifread_and_libraw(tmp_path: Path) -> None:
    path = tmp_path / "meta.dng"
    write_dng(
        path,
        skdata.astronaut(),
        make="Likeness",
        model="Studio Simulator",
        capture_time=SHOOT_DAY,
        iso=200,
        exposure_time=(1, 160),
        f_number=5.6,
        focal_length=85.0,
        serial="LKS-1234",
    )
    tags = _exif(path)
    assert tags["Image Make"] == "Likeness"
    assert tags["Image Model"] == "Studio Simulator"
    assert tags["EXIF DateTimeOriginal"] == "2026:11:20 10:30:15"
    assert tags["EXIF ISOSpeedRatings"] == "200"
    assert tags["EXIF ExposureTime"] == "1/160"
    assert tags["EXIF FNumber"] == "28/5"
    assert tags["EXIF FocalLength"] == "85"
    assert tags["EXIF BodySerialNumber"] == "LKS-1234"
    assert tags["Image Orientation"] == "Horizontal (normal)"

    with rawpy.imread(str(path)) as raw:
        other = getattr(raw, "other", None)
        if other is not None:
            assert other.iso_speed == pytest.approx(200)
            assert other.aperture == pytest.approx(5.6, rel=1e-3)
            assert other.shutter_speed == pytest.approx(1 / 160, rel=1e-3)
            assert other.focal_length == pytest.approx(85)
            assert other.timestamp.replace(tzinfo=None) == SHOOT_DAY


def test_timezone_aware_capture_time_records_offset(tmp_path: Path) -> None:
    path = tmp_path / "tz.dng"
    when = SHOOT_DAY.replace(tzinfo=timezone(timedelta(hours=-5)))
    write_dng(path, skdata.astronaut(), capture_time=when, preview_size=None)
    tags = _exif(path)
    assert tags["EXIF DateTimeOriginal"] == "2026:11:20 10:30:15"
    assert tags["EXIF OffsetTimeOriginal"] == "-05:00"


@pytest.mark.parametrize(("orientation", "flip", "k"), [(6, 6, 1), (8, 5, -1), (3, 3, 2)])
def test_orientation_is_applied_by_libraw(tmp_path: Path, orientation: int, flip: int, k: int) -> None:
    display = skdata.chelsea()[:300, :450]  # landscape, as it should be seen
    stored = np.ascontiguousarray(np.rot90(display, k=k))
    path = tmp_path / f"o{orientation}.dng"
    write_dng(path, stored, orientation=orientation, preview_size=None)
    with rawpy.imread(str(path)) as raw:
        assert raw.sizes.flip == flip
        assert raw.raw_image.shape == stored.shape[:2]
        out = raw.postprocess(use_camera_wb=True, output_bps=8, no_auto_bright=True)
    assert out.shape[:2] == display.shape[:2]
    if orientation in (6, 8):
        assert out.shape[:2] == stored.shape[1::-1]  # H and W swap
    corr = np.corrcoef(_luma(out).ravel(), _luma(display).ravel())[0, 1]
    assert corr > 0.95


def test_embedded_preview_is_a_reduced_jpeg(tmp_path: Path) -> None:
    src = skdata.chelsea()[:300, :450]
    path = tmp_path / "thumb.dng"
    write_dng(path, src, preview_size=200)
    with rawpy.imread(str(path)) as raw:
        thumb = raw.extract_thumb()
    assert thumb.format == rawpy.ThumbFormat.JPEG
    preview = Image.open(io.BytesIO(cast(bytes, thumb.data)))
    assert preview.format == "JPEG"
    assert preview.size == (200, 133)
    # The preview is the developed (white-balanced) frame, not the raw.
    small = np.asarray(Image.fromarray(src).resize(preview.size, Image.Resampling.BILINEAR))
    assert np.abs(np.asarray(preview).astype(float).mean((0, 1)) - small.mean((0, 1))).max() < 6


def test_preview_is_capped_at_the_image_size(tmp_path: Path) -> None:
    path = tmp_path / "cap.dng"
    write_dng(path, skdata.astronaut(), preview_size=1024)
    with rawpy.imread(str(path)) as raw:
        thumb = raw.extract_thumb()
        # LibRaw still picks the full raw, not the equally large preview.
        assert raw.raw_image.shape == (512, 512)
    assert thumb.format == rawpy.ThumbFormat.JPEG
    assert Image.open(io.BytesIO(cast(bytes, thumb.data))).size == (512, 512)


def test_no_preview_means_no_thumbnail(tmp_path: Path) -> None:
    path = tmp_path / "nothumb.dng"
    write_dng(path, skdata.astronaut(), preview_size=None, capture_time=SHOOT_DAY)
    with rawpy.imread(str(path)) as raw:
        with pytest.raises(rawpy.LibRawNoThumbnailError):
            raw.extract_thumb()
        assert raw.raw_image.shape == (512, 512)
    tags = _exif(path)
    assert tags["Image Make"] == "Likeness"
    assert tags["EXIF DateTimeOriginal"] == "2026:11:20 10:30:15"
    assert _decode(path).shape == (512, 512, 3)


def test_camera_white_balance_neutralises_grey(tmp_path: Path) -> None:
    grey = np.full((128, 192, 3), 128, dtype=np.uint8)
    path = tmp_path / "wb.dng"
    write_dng(path, grey, white_balance=(3.0, 1.0, 2.5), preview_size=None)

    with rawpy.imread(str(path)) as raw:
        cfa = raw.raw_image.astype(np.float64) - BLACK_LEVEL
        r, g, b = cfa[0::2, 0::2].mean(), cfa[0::2, 1::2].mean(), cfa[1::2, 1::2].mean()
    # The sensor saw a strongly tinted scene...
    assert r / g == pytest.approx(1 / 3.0, rel=0.01)
    assert b / g == pytest.approx(1 / 2.5, rel=0.01)

    # ...which the as-shot white balance turns back into neutral grey.
    out = _decode(path, gamma=(2.4, 12.92))[8:-8, 8:-8].reshape(-1, 3).mean(0)
    assert out.max() - out.min() < 3, out
    assert abs(out.mean() - 128) < 4

    cast = _decode(path, use_camera_wb=False)[8:-8, 8:-8].reshape(-1, 3).mean(0)
    assert cast.max() - cast.min() > 40, cast


def test_exposure_scales_linear_light(tmp_path: Path) -> None:
    src = np.full((64, 64, 3), 80, dtype=np.uint8)
    means = {}
    for ev in (-1.0, 0.0, 1.0):
        path = tmp_path / f"ev{ev}.dng"
        write_dng(path, src, exposure_ev=ev, preview_size=None)
        means[ev] = _decode(path, gamma=(1, 1), output_bps=16)[8:-8, 8:-8].mean()
    assert means[1.0] / means[0.0] == pytest.approx(2.0, rel=0.03)
    assert means[0.0] / means[-1.0] == pytest.approx(2.0, rel=0.03)


def test_odd_sizes_are_cropped_to_whole_bayer_quads(tmp_path: Path) -> None:
    path = tmp_path / "odd.dng"
    write_dng(path, np.full((101, 151, 3), 90, dtype=np.uint8), preview_size=None)
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_image.shape == (100, 150)


@pytest.mark.parametrize(
    ("rgb", "kwargs", "match"),
    [
        (np.zeros((64, 64), np.uint8), {}, "shape"),
        (np.zeros((64, 64, 4), np.uint8), {}, "shape"),
        (np.zeros((64, 64, 3), np.float32), {}, "uint8"),
        (np.zeros((16, 64, 3), np.uint8), {}, "too small"),
        (np.zeros((64, 6002, 3), np.uint8), {}, "too large"),
        (np.zeros((64, 64, 3), np.uint8), {"orientation": 5}, "orientation"),
        (np.zeros((64, 64, 3), np.uint8), {"white_balance": (2.0, 0.0, 1.5)}, "white_balance"),
        (np.zeros((64, 64, 3), np.uint8), {"white_balance": (2.0, 1.0)}, "white_balance"),
        (np.zeros((64, 64, 3), np.uint8), {"exposure_ev": float("nan")}, "exposure_ev"),
        (np.zeros((64, 64, 3), np.uint8), {"iso": 0}, "iso"),
        (np.zeros((64, 64, 3), np.uint8), {"exposure_time": (1, 0)}, "exposure_time"),
        (np.zeros((64, 64, 3), np.uint8), {"f_number": -2.0}, "f_number"),
        (np.zeros((64, 64, 3), np.uint8), {"focal_length": "long"}, "focal_length"),
        (np.zeros((64, 64, 3), np.uint8), {"capture_time": "2026-11-20"}, "capture_time"),
        (np.zeros((64, 64, 3), np.uint8), {"make": ""}, "make"),
        (np.zeros((64, 64, 3), np.uint8), {"serial": "N\u00b01"}, "serial"),
        (np.zeros((64, 64, 3), np.uint8), {"preview_size": 0}, "preview_size"),
    ],
)
def test_invalid_inputs_raise_value_error(tmp_path: Path, rgb, kwargs, match) -> None:
    path = tmp_path / "bad.dng"
    with pytest.raises(ValueError, match=match):
        write_dng(path, rgb, **kwargs)
    assert not path.exists()


def test_full_size_frame_round_trips(tmp_path: Path) -> None:
    src = np.asarray(Image.fromarray(skdata.astronaut()).resize((6000, 4000), Image.Resampling.BILINEAR))
    path = tmp_path / "full.dng"
    write_dng(path, src, capture_time=SHOOT_DAY)
    assert path.stat().st_size > 6000 * 4000 * 2
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_image.shape == (4000, 6000)
        thumb = raw.extract_thumb()
    assert thumb.format == rawpy.ThumbFormat.JPEG
    assert Image.open(io.BytesIO(cast(bytes, thumb.data))).size == (1024, 683)


# ---------------------------------------------------------------------------
# sample shoot
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> SampleShoot:
    return build_sample_shoot(tmp_path_factory.mktemp("shoot") / "demo")


def test_sample_shoot_layout(shoot: SampleShoot) -> None:
    root = shoot.path
    assert (root / "shoot.toml").is_file()
    assert (root / "frames.csv").is_file()
    assert len(shoot.good_frames) == 6
    assert len(shoot.no_face_frames) == 1
    assert sorted(shoot.bad_files.values()) == ["empty", "not_an_image", "truncated"]
    assert len(shoot.duplicates) == 1
    assert len(shoot.unknown_sitter_frames) == 1
    listed = (
        shoot.good_frames
        + shoot.no_face_frames
        + list(shoot.bad_files)
        + shoot.duplicates
        + shoot.unknown_sitter_frames
    )
    assert len(set(listed)) == len(listed)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.dng")}
    assert on_disk == set(listed)
    assert not list(root.rglob("*.part"))

    empty = next(k for k, v in shoot.bad_files.items() if v == "empty")
    assert (root / empty).stat().st_size == 0
    assert Path(empty).name == "empty.dng"
    notes = next(k for k, v in shoot.bad_files.items() if v == "not_an_image")
    assert Path(notes).name == "notes.dng"
    assert b"\x00" not in (root / notes).read_bytes()


def test_shoot_toml_parses(shoot: SampleShoot) -> None:
    with open(shoot.path / "shoot.toml", "rb") as fh:
        meta = tomllib.load(fh)
    assert meta["name"] == "demo-shoot"
    assert meta["date"] == date(2026, 11, 20)
    assert meta["studio"] == "Studio A"
    assert meta["photographer"] == "demo"
    assert meta["camera"] == "Likeness Studio Simulator"
    assert meta["lighting_preset"] == "butterfly-soft"
    assert meta["sitters"] == ["P0001"]
    assert meta["reference_frame"] == "P0001/frame_01.dng"
    assert meta["reference_frame"] in shoot.good_frames


def test_frames_csv_maps_only_the_sorted_unsorted_frame(shoot: SampleShoot) -> None:
    with open(shoot.path / "frames.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"file", "sitter"}
    mapping = {row["file"]: row["sitter"] for row in rows}
    unsorted_good = [f for f in shoot.good_frames if not f.startswith("P0001/")]
    assert unsorted_good and all(f.startswith("unsorted/") for f in unsorted_good)
    assert mapping == {f: "P0001" for f in unsorted_good}
    for frame in shoot.unknown_sitter_frames:
        assert frame.startswith("unsorted/")
        assert frame not in mapping


def test_good_and_no_face_frames_decode(shoot: SampleShoot) -> None:
    flips = []
    for rel in shoot.good_frames + shoot.no_face_frames + shoot.unknown_sitter_frames:
        with rawpy.imread(str(shoot.path / rel)) as raw:
            assert raw.raw_image.shape == (1024, 1536)
            flips.append(raw.sizes.flip)
            out = raw.postprocess(use_camera_wb=True, output_bps=8, half_size=True)
            assert out.std() > 10
            assert raw.extract_thumb().format == rawpy.ThumbFormat.JPEG
        tags = _exif(shoot.path / rel)
        assert tags["Image Make"] == "Likeness"
        assert tags["Image Model"] == "Studio Simulator"
        assert tags["EXIF DateTimeOriginal"].startswith("2026:11:20 ")
    assert 6 in flips  # at least one portrait frame


def test_good_frames_show_an_upright_face(shoot: SampleShoot) -> None:
    for rel in shoot.good_frames + shoot.unknown_sitter_frames:
        faces = _faces(_decode(shoot.path / rel))
        assert len(faces) == 1, rel
        assert faces[0][1] >= 200, (rel, faces)
    for rel in shoot.no_face_frames:
        assert _faces(_decode(shoot.path / rel)) == [], rel


def test_bad_files_fail_to_decode(shoot: SampleShoot) -> None:
    for rel, kind in shoot.bad_files.items():
        with pytest.raises(rawpy.LibRawError):
            with rawpy.imread(str(shoot.path / rel)) as raw:
                raw.postprocess()
        if kind == "truncated":
            # Headers survive, the pixel data does not.
            assert _exif(shoot.path / rel)["Image Make"] == "Likeness"


def test_duplicates_are_byte_identical_to_a_good_frame(shoot: SampleShoot) -> None:
    good = {(shoot.path / g).read_bytes(): g for g in shoot.good_frames}
    for dup in shoot.duplicates:
        assert (shoot.path / dup).read_bytes() in good


def test_capture_times_are_on_the_shoot_date_and_increasing(shoot: SampleShoot) -> None:
    frames = sorted(shoot.good_frames + shoot.no_face_frames + shoot.unknown_sitter_frames,
                    key=lambda f: Path(f).name)
    stamps = [_exif(shoot.path / f)["EXIF DateTimeOriginal"] for f in frames]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_sample_shoot_is_deterministic(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = dict(n_good=3, frame_size=(384, 256), seed=7)
    a = build_sample_shoot(tmp_path / "a", **kwargs)
    b = build_sample_shoot(tmp_path / "b", **kwargs)
    assert a.good_frames == b.good_frames and a.bad_files == b.bad_files
    for rel in a.good_frames + a.no_face_frames + list(a.bad_files) + a.duplicates:
        assert (a.path / rel).read_bytes() == (b.path / rel).read_bytes(), rel
    c = build_sample_shoot(tmp_path / "c", **{**kwargs, "seed": 8})
    assert (c.path / c.good_frames[1]).read_bytes() != (a.path / a.good_frames[1]).read_bytes()


def test_sample_shoot_without_bad_files(tmp_path: Path) -> None:
    s = build_sample_shoot(tmp_path / "clean", n_good=2, frame_size=(384, 256), include_bad=False,
                           sitter="S-07", date=date(2027, 1, 5))
    assert s.no_face_frames == [] and s.bad_files == {} and s.duplicates == []
    assert s.unknown_sitter_frames == []
    assert s.good_frames == ["S-07/frame_01.dng", "unsorted/frame_02.dng"]
    with open(s.path / "shoot.toml", "rb") as fh:
        meta = tomllib.load(fh)
    assert meta["date"] == date(2027, 1, 5) and meta["sitters"] == ["S-07"]
    assert _exif(s.path / s.good_frames[0])["EXIF DateTimeOriginal"].startswith("2027:01:05")
    for rel in s.good_frames:
        assert _decode(s.path / rel).shape[:2] in {(256, 384), (384, 256)}


@pytest.mark.parametrize(
    "kwargs",
    [{"sitter": "../x"}, {"sitter": ""}, {"n_good": 0}, {"frame_size": (385, 256)}, {"frame_size": (64, 64)}],
)
def test_sample_shoot_rejects_bad_arguments(tmp_path: Path, kwargs) -> None:
    with pytest.raises(ValueError):
        build_sample_shoot(tmp_path / "x", **kwargs)


def test_sample_shoot_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        build_sample_shoot(tmp_path)


# ---------------------------------------------------------------------------
# release document
# ---------------------------------------------------------------------------


def test_release_document_is_a_pdf(tmp_path: Path) -> None:
    out = write_release_document(
        tmp_path / "releases" / "P0001.pdf",
        person_code="P0001",
        signed_on=date(2026, 11, 20),
        scopes=["training", "portfolio"],
        guardian="A. Guardian",
    )
    assert out == tmp_path / "releases" / "P0001.pdf"
    blob = out.read_bytes()
    assert blob.startswith(b"%PDF-")
    assert blob.rstrip().endswith(b"%%EOF")
    assert blob.count(b"/Type /Page\n") + blob.count(b"/Type /Page>") + blob.count(b"/Type /Page ") >= 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"person_code": "", "signed_on": date(2026, 1, 1), "scopes": ["a"]},
        {"person_code": "P1", "signed_on": "2026-01-01", "scopes": ["a"]},
        {"person_code": "P1", "signed_on": date(2026, 1, 1), "scopes": []},
        {"person_code": "P1", "signed_on": date(2026, 1, 1), "scopes": "training"},
        {"person_code": "P1", "signed_on": date(2026, 1, 1), "scopes": ["a"], "guardian": ""},
    ],
)
def test_release_document_validates(tmp_path: Path, kwargs) -> None:
    with pytest.raises(ValueError):
        write_release_document(tmp_path / "r.pdf", **kwargs)
