"""The automatic checks on generated faces, measured on the proxy set's held-out sources, and
their storage on GeneratedImage rows."""

from __future__ import annotations

import functools
import io

import cv2
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update

from labeling.encoding import encode, encoding_to_json, label_encoding
from likeness.models import DatasetSnapshot, GeneratedImage
from likeness.workbench import Workbench
from qa.generated.checks import check_face
from qa.generated.labels import decode_label
from qa.generated.store import check_images
from samples.lineage_pool import PipelinePlan, write_pipeline
from samples.proxy_faces import ProxyItem, build_proxy_set
from tests.cli_runner import run_cli

# check -> the artifact it is there to catch; each must flag its own artifact on held-out
# sources more often than it flags good faces, by this margin.
OWN_ARTIFACT = {"face_found": "no_face", "alignment": "misaligned", "eyes": "closed_eye",
                "symmetry": "mismatched_eyes", "craters": "crater", "background": "smear", "eye_flatness": "closed_eye"}
MARGIN = 0.15


@functools.cache
def held_out() -> list[tuple[ProxyItem, dict]]:
    return [(item, check_face(item.image).checks) for item in build_proxy_set() if item.split == "held_out"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OWN_ARTIFACT))
def test_each_check_flags_its_artifact_better_than_chance(testdata_dir, name: str) -> None:
    results = held_out()
    bad = [checks[name]["flagged"] for item, checks in results if item.artifact == OWN_ARTIFACT[name]]
    good = [checks[name]["flagged"] for item, checks in results if item.good]
    assert len(bad) >= 10 and len(good) >= 10
    recall, fpr = float(np.mean(bad)), float(np.mean(good))
    assert recall > fpr + MARGIN, f"{name}: recall {recall:.2f}, false positives {fpr:.2f}"


@pytest.mark.slow
def test_background_check_spares_hair_in_focus_before_a_grained_wall(testdata_dir) -> None:
    """The held-out selfie's hair is less sharp than its finely grained plaster wall, yet in
    focus: a check reading only how much less sharp than the median cell flagged most of its
    good crops, and so most good faces of any photograph like it."""
    selfie = [checks["background"]["flagged"] for item, checks in held_out() if item.good and item.source == "selfie"]
    assert len(selfie) >= 5
    assert float(np.mean(selfie)) <= 0.25, f"background flags {float(np.mean(selfie)):.2f} of the selfie's good crops"


@pytest.mark.parametrize("side", [8, 16, 32, 64])
def test_tiny_noise_is_no_face_with_a_note(side: int) -> None:
    noise = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    result = check_face(noise, label_attributes=None)
    assert result.checks["face_found"]["flagged"] and result.checks["face_found"]["value"] == 0.0
    assert "no face" in result.checks["face_found"]["note"]
    assert not any(c["flagged"] for n, c in result.checks.items() if n != "face_found")


def test_eyes_too_small_to_read_are_flagged_with_the_reason(testdata_dir) -> None:
    face = next(i for i in build_proxy_set(per_face=1, per_empty=1) if i.source == "eileen_collins" and i.good)
    assert not check_face(face.image).checks["eyes"]["flagged"]
    small = check_face(cv2.resize(face.image, (64, 64), interpolation=cv2.INTER_AREA)).checks
    assert not small["face_found"]["flagged"]
    assert small["eyes"]["flagged"] and small["eyes"]["note"].startswith("undetermined: ")
    assert "too small" in small["eyes"]["note"]


def test_label_decodes_through_the_encoding() -> None:
    slots = label_encoding(["skin_tone", "expression"])
    vector = encode({"skin_tone": "7", "expression": "smile"}, slots)
    assert decode_label(vector, slots) == {"skin_tone": "7", "expression": "smile"}
    assert decode_label(3, slots) == {} and decode_label(None, slots) == {}


def _png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def _write_images(workbench: Workbench) -> tuple[list[int], list[ProxyItem]]:
    items = [i for i in build_proxy_set(per_face=1, per_empty=1) if i.source == "eileen_collins"][:2]
    items.append(ProxyItem(np.zeros((32, 32, 3), np.uint8), "blank", "no_face", "held_out"))
    slots = label_encoding(["skin_tone", "expression"])
    with workbench.db.unit_of_work() as session:
        rows = write_pipeline(session, [], PipelinePlan(snapshots=[[]], runs=[(0, None)], checkpoints=[0],
                                                        images=[0] * len(items)), tag="checks")
        session.execute(update(DatasetSnapshot).values(label_encoding=encoding_to_json(slots)))
        for image_id, item in zip(rows.images, items, strict=True):
            session.execute(update(GeneratedImage).where(GeneratedImage.id == image_id).values(
                image_sha256=workbench.blobs.put_bytes(_png(item.image)),
                label=encode({"skin_tone": "3", "expression": "neutral"}, slots),
                checks={"discriminator": {"value": 0.4, "threshold": 0.1, "flagged": False, "note": ""}}))
    return rows.images, items


def test_check_images_stores_checks_and_keeps_other_entries(workbench: Workbench, testdata_dir) -> None:
    ids, items = _write_images(workbench)
    summary = check_images(workbench, ids)
    assert summary.checked == 3 and summary.no_face == 1
    with workbench.db.unit_of_work() as session:
        rows = {r.id: r for r in session.scalars(select(GeneratedImage).where(GeneratedImage.id.in_(ids)))}
    for image_id, item in zip(ids, items, strict=True):
        row = rows[image_id]
        assert row.checks["discriminator"]["value"] == 0.4
        assert row.checks["face_found"]["flagged"] == (item.artifact == "no_face")
        assert row.attributes["label"] == {"skin_tone": "3", "expression": "neutral"}
        assert set(row.attributes) == {"label", "measured", "mismatch"}
    # The astronaut smiles broadly against a "neutral" label.
    assert "expression" in rows[ids[0]].attributes["mismatch"]


def test_cli_checks_unchecked_images(env_workbench: Workbench, testdata_dir) -> None:
    ids, _ = _write_images(env_workbench)
    result = run_cli("faces", "check")
    assert result.exit_code == 0, result.output
    assert "checked 3 generated image(s): 1 without a face" in result.output
    again = run_cli("faces", "check")
    assert "checked 0 generated image(s)" in again.output
    with env_workbench.db.unit_of_work() as session:
        assert all("eyes" in c for c in session.scalars(select(GeneratedImage.checks).where(GeneratedImage.id.in_(ids))))
