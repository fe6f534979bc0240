"""The proxy set's artifacts are ones a reviewer could see: a bad face that looks like its good
crop would teach the filter and score the checks on labels nobody could give."""

from __future__ import annotations

import numpy as np

from samples.proxy_faces import MIN_VISIBLE_PX, build_proxy_set, visible

# Artifacts drawn on the good crop just before them (misaligned and face-free items are crops
# of their own).
ON_THE_CROP = ("crater", "smear", "closed_eye", "mismatched_eyes")


def test_visible_needs_enough_changed_pixels() -> None:
    crop = np.full((64, 64, 3), 120, np.uint8)
    faint = crop.copy()
    faint[:4, :4] = 255                              # 16 pixels changed a lot
    assert not visible(crop, faint)
    dim = crop.copy()
    dim[:16, :16] += 8                               # 256 pixels changed by 24 (R+G+B): too little
    assert not visible(crop, dim)
    spot = crop.copy()
    side = int(np.ceil(np.sqrt(MIN_VISIBLE_PX)))
    spot[:side, :side] = 60
    assert visible(crop, spot)


def test_every_artifact_on_a_crop_shows(testdata_dir) -> None:
    items = build_proxy_set(per_face=4)
    crop = None
    seen = 0
    for item in items:
        if item.good:
            crop = item
        elif item.artifact in ON_THE_CROP:
            assert crop is not None and crop.source == item.source
            assert visible(crop.image, item.image), f"{item.artifact} on a crop of {item.source} cannot be seen"
            seen += 1
    assert seen >= 0.9 * len(ON_THE_CROP) * sum(item.good for item in items)
