"""The image measures added for shut lids and the wider skin mask, and the proxy set's smallest
train face, on the proxy set's real crops."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from faces.detect import mesh_aligned_face
from qa.generated import pixels as px
from qa.generated.checks import check_face
from samples.proxy_faces import CRATER_POINTS, ProxyItem, build_proxy_set

MARGIN = 0.15


@functools.cache
def proxy_set() -> list[ProxyItem]:
    return build_proxy_set()


@pytest.mark.slow
def test_eye_flatness_flags_shut_lids_on_held_out_faces_better_than_chance(testdata_dir) -> None:
    held = [(item, check_face(item.image).checks["eye_flatness"]) for item in proxy_set()
            if item.split == "held_out" and item.artifact in ("none", "closed_eye")]
    closed = [c["flagged"] for item, c in held if item.artifact == "closed_eye"]
    good = [c["flagged"] for item, c in held if item.good]
    assert len(closed) >= 10 and len(good) >= 10
    recall, fpr = float(np.mean(closed)), float(np.mean(good))
    assert recall > fpr + MARGIN, f"eye_flatness: recall {recall:.2f}, false positives {fpr:.2f}"
    # Higher is worse: shut lids read flatter than open eyes on the same faces.
    values = [(item.artifact, c["value"]) for item, c in held if c["value"] is not None]
    assert np.median([v for a, v in values if a == "closed_eye"]) > np.median([v for a, v in values if a == "none"])


def test_skin_mask_reaches_the_outer_cheeks_and_chin_but_not_the_hairline(testdata_dir) -> None:
    for item in [i for i in proxy_set() if i.good][:6]:
        finding = mesh_aligned_face(item.image)
        assert finding is not None
        small, pts = px.scaled(item.image, finding.landmarks)
        mask = px.skin_mask(pts)
        inside = {index: bool(mask[int(round(pts[index, 1])), int(round(pts[index, 0]))]) for index in CRATER_POINTS}
        assert all(inside.values()), f"{item.source}: crater points off the skin mask: {inside}"
        top = pts[10]  # the oval's top, at the hairline
        assert not mask[int(round(top[1])), int(round(top[0]))]


def test_the_small_portrait_is_a_train_source(testdata_dir) -> None:
    hopper = [i for i in proxy_set() if i.source == "grace_hopper"]
    assert hopper and {i.split for i in hopper} == {"train"}
    assert {i.artifact for i in hopper} >= {"none", "crater", "closed_eye"}
