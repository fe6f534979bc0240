"""The gallery of generated faces and balanced deliveries, on both databases: only approved,
untainted faces; filters by label, measured Monk tone, checkpoint and label agreement; a
delivery that meets its quotas (signed files and a CSV) or says what to generate next."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select, update

from likeness.models import Checkpoint, GeneratedImage, ReviewItem, Role, Thumb
from likeness.workbench import Workbench
from model_registry import gallery
from model_registry.gallery import GalleryFilter
from model_registry.provenance import verify
from model_registry.signing import trust_anchor
from qa.review import cast_vote
from tests.cli_runner import run_cli
from tests.factories.people import add_user, user_id
from tests.qa.test_filter import write_faces

AGES = ("adult", "senior")


def seed_gallery(wb: Workbench, n: int = 24) -> dict[int, dict[str, object]]:
    """`n` faces: ages and expressions alternate, Monk tone 3 or 8, every fifth contradicts its
    label. Seeds 0 mod 4: accepted by the filter; 1 mod 4: rejected; 2 mod 4: voted up by a
    reviewer; 3 mod 4: nobody decided. Returns what each seed should be, by image id."""
    ids = write_faces(wb, n, seed=9)
    add_user(wb, "rev", Role.reviewer)
    with wb.db.unit_of_work() as session:   # votes first: a face the filter decided leaves the queue
        items = dict(session.execute(select(GeneratedImage.seed, ReviewItem.id).join(
            ReviewItem, ReviewItem.image_sha256 == GeneratedImage.image_sha256).where(GeneratedImage.id.in_(ids))).all())
        for seed, item in items.items():
            if seed % 4 in (1, 2):   # on seeds 1 mod 4 a reviewer's thumbs up does not beat the filter's reject
                cast_vote(session=session, item_id=item, reviewer_id=user_id(wb, "rev"), thumb=Thumb.up)
    truth: dict[int, dict[str, object]] = {}
    with wb.db.unit_of_work() as session:
        for image in session.scalars(select(GeneratedImage).where(GeneratedImage.id.in_(ids))):
            s = image.seed
            label = {"age_band": AGES[(s // 4) % 2], "expression": ("smile", "neutral")[(s // 2) % 2]}
            measured = {"monk_tone": 3 if s % 3 else 8, "smile": 0.1}
            mismatch = ["expression"] if s % 5 == 0 else []
            image.attributes = {"label": label, "measured": measured, "mismatch": mismatch}
            image.decision = {0: "accept", 1: "reject"}.get(s % 4)
            truth[image.id] = {"seed": s, **label, "monk": measured["monk_tone"], "mismatch": bool(mismatch),
                               "approved": s % 4 in (0, 2)}
    return truth


def shown(wb: Workbench, chosen: GalleryFilter) -> set[int]:
    with wb.db.unit_of_work() as session:
        found = {f.image_id for f in gallery.faces(session, chosen, limit=1000)}
        assert gallery.count(session, chosen) == len(found)
        return found


def test_filters_return_exactly_the_approved_faces_that_match(workbench: Workbench) -> None:
    truth = seed_gallery(workbench)
    approved = {i for i, t in truth.items() if t["approved"]}
    assert shown(workbench, GalleryFilter()) == approved
    assert shown(workbench, GalleryFilter(labels={"age_band": ["senior"]})) == {
        i for i in approved if truth[i]["age_band"] == "senior"}
    assert shown(workbench, GalleryFilter(labels={"age_band": ["adult"], "expression": ["smile"]})) == {
        i for i in approved if truth[i]["age_band"] == "adult" and truth[i]["expression"] == "smile"}
    assert shown(workbench, GalleryFilter(monk=(7, 10))) == {i for i in approved if truth[i]["monk"] == 8}
    assert shown(workbench, GalleryFilter(matching_label=True)) == {i for i in approved if not truth[i]["mismatch"]}
    with workbench.db.unit_of_work() as session:
        [checkpoint] = gallery.checkpoint_ids(session)
        assert gallery.choices(session) == {"age_band": ["adult", "senior"], "expression": ["neutral", "smile"]}
    assert shown(workbench, GalleryFilter(checkpoints=[checkpoint + 1])) == set()

    with workbench.db.unit_of_work() as session:   # a revoked release taints the checkpoint: the gallery empties
        session.execute(update(Checkpoint).values(tainted=True))
    assert shown(workbench, GalleryFilter()) == set()


SPEC = """
name = "delivery"
size = {size}
resolution = 16
tolerance = 0.0
label_attributes = ["age_band"]
[quotas.age_band]
adult = 0.5
senior = 0.5
"""


def test_a_delivery_meets_its_quotas_with_signed_files_and_a_csv(env_workbench: Workbench, tmp_path: Path) -> None:
    truth = seed_gallery(env_workbench, n=40)
    eligible = [i for i, t in truth.items() if t["approved"] and not t["mismatch"]]
    adults = sum(1 for i in eligible if truth[i]["age_band"] == "adult")
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(size=2 * min(adults, len(eligible) - adults)))
    out = tmp_path / "delivery"
    result = run_cli("faces", "export", str(spec), str(out))
    assert result.exit_code == 0, result.output
    assert "every quota met" in result.output
    with (out / "attributes.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    size = 2 * min(adults, len(eligible) - adults)
    assert len(rows) == size and sorted({r["age_band"] for r in rows}) == ["adult", "senior"]
    assert sum(r["age_band"] == "adult" for r in rows) == size // 2
    assert {int(i) for i in (r["seed"] for r in rows)} <= {int(str(truth[i]["seed"])) for i in eligible}
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == sorted(r["file"] for r in rows)
    anchor, _ = trust_anchor(env_workbench.settings)
    assert verify(out / files[0], trust_anchor_pem=anchor).valid

    spec.write_text(SPEC.format(size=2 * len(eligible)))   # more than the gallery holds
    short = run_cli("faces", "export", str(spec), str(tmp_path / "short"))
    assert short.exit_code == 0, short.output
    text = " ".join(short.output.split())
    assert "generate" in text and "more: age_band=adult" in text and "more: age_band=senior" in text
