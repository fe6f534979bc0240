"""Generation at scale: resumes exactly after a kill, fills a mix of labels, scores and checks every
face, and lets the learned filter decide the faces it is sure of."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sqlalchemy import func, select, update

from labeling.encoding import encode, label_encoding
from likeness.errors import ConsentViolation, InvalidInput
from likeness.models import Checkpoint, FaceFilter, GeneratedImage, ReviewItem
from likeness.workbench import Workbench
from qa.review import reviewable
from tests.cli_runner import process_env, run_cli
from training import generate as gen
from training import generated_scores as scores
from training.dataset import ImageFolderDataset
from training.generation_mix import allocate
from training.metrics.features import RandomConvFeatures
from training.snapshots.spec import parse_spec

# Batches of 3; the 8th render (inside the third batch, its PNG stored, its rows not committed) kills us.
KILLED_GENERATE = textwrap.dedent("""
    import os, signal, sys
    from likeness.workbench import Workbench
    from training import generate as gen
    gen.GENERATE_BATCH = 3
    real_png, rendered = gen.png_bytes, []
    def png(image):
        rendered.append(1)
        data = real_png(image)
        if len(rendered) == 8:
            os.kill(os.getpid(), signal.SIGKILL)
        return data
    gen.png_bytes = png
    with Workbench.open() as wb:
        gen.generate(wb, int(sys.argv[1]), seeds=range(12), queue_for_review=False)
""")


def rows(workbench: Workbench) -> list[tuple[int, str]]:
    with workbench.db.unit_of_work() as session:
        return list(session.execute(select(GeneratedImage.seed, GeneratedImage.image_sha256).order_by(GeneratedImage.seed)))


def test_a_generation_killed_mid_batch_resumes_with_every_seed_once_and_the_same_bytes(
        env_workbench: Workbench, checkpoint_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_GENERATE, str(checkpoint_id)], env=process_env(env_workbench),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert [seed for seed, _ in rows(env_workbench)] == list(range(6))   # two whole batches, nothing of the third

    monkeypatch.setattr(gen, "GENERATE_BATCH", 3)
    fresh: list[int] = []
    ids = gen.generate(env_workbench, checkpoint_id, seeds=range(12), queue_for_review=False, after_batch=fresh.extend)
    assert len(fresh) == 6 and set(fresh) <= set(ids)                    # only the missing seeds were rendered
    stored = rows(env_workbench)
    assert [seed for seed, _ in stored] == list(range(12))
    gen._generator_from_blob.cache_clear()
    loaded = gen.load_generator(env_workbench, checkpoint_id)
    for seed, sha in stored:                                             # as an uninterrupted run renders them
        assert env_workbench.blobs.read_bytes(sha) == gen.png_bytes(gen.render(loaded, [seed], psi=0.7)[0])
    assert gen.generate(env_workbench, checkpoint_id, seeds=range(12), queue_for_review=False) == ids


def test_progress_reports_every_batch_and_skips_existing_fast(workbench: Workbench, checkpoint_id: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "GENERATE_BATCH", 4)
    reports: list[gen.GenerationProgress] = []
    gen.generate(workbench, checkpoint_id, seeds=range(10), progress=reports.append)
    assert [(r.done, r.total, r.rendered) for r in reports] == [(4, 10, 4), (8, 10, 8), (10, 10, 10)]
    assert reports[-1].images_per_s > 0

    def no_rendering(*args: object, **kwargs: object) -> None:
        raise AssertionError("a known recipe was rendered again")

    monkeypatch.setattr(gen, "render", no_rendering)
    again: list[gen.GenerationProgress] = []
    gen.generate(workbench, checkpoint_id, seeds=range(10), progress=again.append)
    assert [(r.done, r.rendered) for r in again] == [(4, 0), (8, 0), (10, 0)]


MIX = """
size = 40
[quotas.age_band]
adult = 0.5
child = 0.25
senior = 0.25
[quotas.expression]
smile = 0.5
"*" = 0.5
[[joint]]
where = { age_band = "senior", expression = "smile" }
share = 0.2
"""


def test_a_mix_meets_every_quota_with_distinct_deterministic_seeds() -> None:
    slots = label_encoding(["age_band", "expression"])
    mix = allocate(parse_spec(MIX), slots)
    assert mix.status == "Optimal" and mix.total == 40 and all(q.met for q in mix.quotas)

    def count(**where: set[str]) -> int:
        return sum(c.count for c in mix.cells if all(dict(c.values)[a] in v for a, v in where.items()))

    assert (count(age_band={"adult"}), count(age_band={"child"}), count(age_band={"senior"})) == (20, 10, 10)
    assert count(expression={"smile"}) == 20 and count(age_band={"senior"}, expression={"smile"}) == 8
    assert count(age_band={"teen", "young_adult"}) == 0                   # no share, no faces
    assert {dict(c.values)["age_band"] for c in mix.cells} == {"adult", "child", "senior"}
    assert all(len(c.seeds) == c.count for c in mix.cells)
    assert len({c.seeds.start for c in mix.cells}) == len(mix.cells)     # each label its own latents
    again = allocate(parse_spec(MIX), slots)
    assert [(c.values, c.count, c.seeds) for c in again.cells] == [(c.values, c.count, c.seeds) for c in mix.cells]
    bigger = allocate(parse_spec(MIX), slots, n=400)
    assert bigger.total == 400 and all(q.met for q in bigger.quotas)
    starts = {c.values: c.seeds.start for c in mix.cells}
    assert all(c.seeds.start == starts[c.values] for c in bigger.cells if c.values in starts)  # a larger n extends

    with pytest.raises(InvalidInput, match="skin_tone is not part of this model's label"):
        allocate(parse_spec('size = 4\n[quotas.skin_tone]\n"1-5" = 0.5\n"*" = 0.5\n'), slots)


def test_a_mix_needs_a_labelled_checkpoint(env_workbench: Workbench, checkpoint_id: int, tmp_path: Path) -> None:
    spec = tmp_path / "mix.toml"
    spec.write_text(MIX, encoding="utf-8")
    refused = run_cli("generate", str(checkpoint_id), "--mix", str(spec))
    assert refused.exit_code == 1 and "has no attribute labels" in refused.output


def test_scores_are_merged_into_the_checks(env_workbench: Workbench, checkpoint_id: int) -> None:
    wb = env_workbench
    result = run_cli("generate", str(checkpoint_id), "--n", "6", "--no-score")
    assert result.exit_code == 0, result.output
    with wb.db.unit_of_work() as session:
        ids = list(session.scalars(select(GeneratedImage.id).order_by(GeneratedImage.id)))
        other = {"value": 0.2, "threshold": 0.5, "flagged": False, "note": "another check"}
        session.execute(update(GeneratedImage).where(GeneratedImage.id == ids[0]).values(checks={"blotches": other}))
    assert scores.unscored_images(wb) == ids

    scored = run_cli("generate", "score", "--checkpoint", str(checkpoint_id))
    assert scored.exit_code == 0, scored.output
    assert "scored 6 images" in scored.output
    with wb.db.unit_of_work() as session:
        checks: dict[int, Any] = dict(session.execute(select(GeneratedImage.id, GeneratedImage.checks)).all())
    assert checks[ids[0]]["blotches"] == other
    for entry in checks.values():
        for name in (scores.DISCRIMINATOR, scores.REALISM):
            value, threshold = entry[name]["value"], entry[name]["threshold"]
            assert np.isfinite(value) and entry[name]["flagged"] == (value < threshold) and entry[name]["note"]
    assert "randconv" in checks[ids[0]][scores.REALISM]["note"]         # no Inception here: our extractor, named
    assert scores.unscored_images(wb) == []
    assert "every generated image has both scores" in run_cli("generate", "score").output

    # Generating with scores (the default) scores the new faces as they come, and only those.
    with_scores = run_cli("generate", str(checkpoint_id), "--seeds", "6-8")
    assert with_scores.exit_code == 0 and "scored 3 images" in " ".join(with_scores.output.split())
    assert scores.unscored_images(wb) == []

    # A score is D's, in a fixed group: the same image scores the same whatever it is batched with.
    scorer = scores.load_scorer(wb, checkpoint_id)
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    assert np.allclose(scorer.discriminator(images, None)[:2], scorer.discriminator(images[:2], None), atol=1e-5)


def test_bfloat16_scores_rank_and_flag_as_float32_does(workbench: Workbench, checkpoint_id: int) -> None:
    """D in bfloat16 (what scoring picks on a CPU with bfloat16 units) against float32 on the same faces."""
    exact = scores.load_scorer(workbench, checkpoint_id, dtype=torch.float32)
    fast = scores.load_scorer(workbench, checkpoint_id, dtype=torch.bfloat16)
    faces = gen.render(exact.loaded, list(range(40)), psi=1.0)
    pixels = torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in faces])).permute(0, 3, 1, 2)
    a, b = exact.discriminator(pixels.contiguous(), None), fast.discriminator(pixels.contiguous(), None)
    assert np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1] > 0.95   # Spearman
    assert np.abs(a - b).max() < 0.05 * (a.max() - a.min())
    ta, tb = exact.threshold(1.0), fast.threshold(1.0)
    assert ta != tb                                    # one threshold per precision, neither read for the other
    assert ((a < ta) != (b < tb)).sum() <= 2
    entry = fast.checks(pixels[:1].contiguous(), None, psi=1.0)[0][scores.DISCRIMINATOR]
    assert "bfloat16" in entry["note"]


def test_real_images_are_realistic_and_noise_is_not(faces16: Path) -> None:
    """The realism score on real face photographs against themselves, and on pure noise."""
    dataset = ImageFolderDataset(faces16)
    real = torch.stack([dataset[i][0] for i in range(len(dataset))])
    dataset.close()
    extractor = RandomConvFeatures()
    features = extractor(real)
    kept, radii = scores.prune(features, scores.knn_radii(features))
    assert len(features) / 2 <= len(kept) < len(features)              # the larger radii are dropped
    own = scores.realism_scores(features, kept, radii)
    noise = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (8, 3, 16, 16), dtype=np.uint8))
    noisy = scores.realism_scores(extractor(noise), kept, radii)
    assert (own >= 1).mean() >= 0.6, own
    assert (noisy < 1).all() and noisy.max() < np.median(own), noisy


def test_tainted_checkpoints_are_neither_scored_nor_generated(workbench: Workbench, checkpoint_id: int) -> None:
    ids = gen.generate(workbench, checkpoint_id, seeds=[0, 1], queue_for_review=False)
    with workbench.db.unit_of_work() as session:
        session.execute(update(Checkpoint).where(Checkpoint.id == checkpoint_id).values(tainted=True))
    with pytest.raises(ConsentViolation, match="tainted"):
        scores.score_images(workbench, ids)
    with pytest.raises(ConsentViolation, match="tainted"):
        gen.generate(workbench, checkpoint_id, seeds=range(5))
    assert scores.unscored_images(workbench) == []                       # tainted images are not offered
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(GeneratedImage)) == 2
        assert all(not checks for checks in session.scalars(select(GeneratedImage.checks)))


def test_a_rerun_scores_faces_an_earlier_run_left_unscored(env_workbench: Workbench, checkpoint_id: int) -> None:
    assert run_cli("generate", str(checkpoint_id), "--n", "3", "--no-score").exit_code == 0
    assert len(scores.unscored_images(env_workbench)) == 3        # as a run killed between commit and scoring leaves them
    again = run_cli("generate", str(checkpoint_id), "--n", "4")
    assert again.exit_code == 0, again.output
    assert "scored 4 images" in " ".join(again.output.split())
    assert scores.unscored_images(env_workbench) == []


def test_the_discriminator_threshold_is_taken_at_the_faces_own_psi(workbench: Workbench, checkpoint_id: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # In float32, so that rounding stays far below the gap between the two thresholds (bfloat16's
    # rounding differs between batch sizes by a few thousandths; its agreement is tested above).
    monkeypatch.setattr(scores, "scoring_dtype", lambda: torch.float32)
    mean_faces = gen.generate(workbench, checkpoint_id, seeds=[0, 1], psi=0.0, queue_for_review=False)
    untruncated = gen.generate(workbench, checkpoint_id, seeds=[0, 1], psi=1.0, queue_for_review=False)
    scores.score_images(workbench, mean_faces + untruncated)
    with workbench.db.unit_of_work() as session:
        checks: dict[int, Any] = dict(session.execute(select(GeneratedImage.id, GeneratedImage.checks)).all())
    d = {image_id: checks[image_id][scores.DISCRIMINATOR] for image_id in checks}

    # At psi 0 every reference face is the mean face too, so the threshold is that face's own score
    # (up to float32 rounding, which differs between batch sizes).
    for image_id in mean_faces:
        assert d[image_id]["threshold"] == pytest.approx(d[image_id]["value"], abs=1e-5)
        assert "psi 0," in d[image_id]["note"]
    # At psi 1 it is the quantile over untruncated reference faces, not the psi-0 value.
    scorer = scores.load_scorer(workbench, checkpoint_id)
    loaded = scorer.loaded
    reference = gen.render(loaded, [scores.REFERENCE_SEED + i for i in range(scores.REFERENCE_COUNT)], psi=1.0)
    pixels = torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in reference])).permute(0, 3, 1, 2)
    expected = float(np.quantile(scorer.discriminator(pixels.contiguous(), None), scores.REJECT_QUANTILE))
    for image_id in untruncated:
        assert d[image_id]["threshold"] == pytest.approx(expected, abs=1e-5)
        assert d[image_id]["flagged"] == (d[image_id]["value"] < expected) and "psi 1," in d[image_id]["note"]
    assert abs(d[untruncated[0]]["threshold"] - d[mean_faces[0]]["threshold"]) > 1e-3

    # A fresh scorer reads each psi's threshold from the cache instead of rendering its reference again.
    monkeypatch.setattr(gen, "render", lambda *a, **k: pytest.fail("a cached threshold was rendered again"))
    fresh = scores.load_scorer(workbench, checkpoint_id)
    assert fresh is not scorer and fresh.thresholds == {}
    assert fresh.threshold(1.0) == d[untruncated[0]]["threshold"]
    assert fresh.threshold(0.0) == d[mean_faces[0]]["threshold"]


def test_a_mix_from_a_labelled_checkpoint_generates_each_quota(env_workbench: Workbench, labelled_checkpoint: int,
                                                               tmp_path: Path) -> None:
    spec_path = tmp_path / "mix.toml"
    spec_path.write_text(MIX, encoding="utf-8")
    made = run_cli("generate", str(labelled_checkpoint), "--mix", str(spec_path), "--no-review")
    assert made.exit_code == 0, made.output
    assert "mix: 40 faces" in made.output and "every quota met" in made.output

    slots = label_encoding(["age_band", "expression"])
    attributes = [slot.attribute for slot in slots]
    named = {tuple(encode(dict(zip(attributes, combo)), slots)): dict(zip(attributes, combo))
             for combo in itertools.product(*(slot.values for slot in slots))}
    with env_workbench.db.unit_of_work() as session:
        stored = session.execute(select(GeneratedImage.label, GeneratedImage.seed)).all()
    faces = [named[tuple(label)] for label, _ in stored]                # each a label the model was conditioned on
    assert len(faces) == 40 and len({(tuple(label), seed) for label, seed in stored}) == 40

    spec = parse_spec(MIX)
    for quota in spec.quotas:                                             # every share, within the spec's band
        count = sum(all(face[c.attribute] in c.values for c in quota.cells) for face in faces)
        assert abs(count - quota.share * spec.size) <= spec.tolerance * spec.size, (quota.key, count)
    ages = [face["age_band"] for face in faces]
    assert (ages.count("adult"), ages.count("child"), ages.count("senior")) == (20, 10, 10)
    assert sum(face == {"age_band": "senior", "expression": "smile"} for face in faces) == 8

    again = run_cli("generate", str(labelled_checkpoint), "--mix", str(spec_path), "--no-review")
    assert again.exit_code == 0, again.output
    with env_workbench.db.unit_of_work() as session:                      # the same recipes: nothing added
        assert session.scalar(select(func.count()).select_from(GeneratedImage)) == 40


def decisions(workbench: Workbench) -> dict[int, tuple[Any, ...]]:
    with workbench.db.unit_of_work() as session:
        return {row.seed: tuple(row[1:]) for row in session.execute(
            select(GeneratedImage.seed, GeneratedImage.checks, GeneratedImage.decision, GeneratedImage.decision_reason,
                   GeneratedImage.image_sha256).order_by(GeneratedImage.seed))}


def test_new_faces_are_checked_and_the_filter_decides_the_sure_ones(env_workbench: Workbench,
                                                                     checkpoint_id: int) -> None:
    wb = env_workbench
    first = run_cli("generate", str(checkpoint_id), "--seeds", "0-5")
    assert first.exit_code == 0, first.output
    text = " ".join(first.output.split())
    assert "checked 6 generated image(s): " in text and "no learned filter yet" in text
    skipped = run_cli("generate", str(checkpoint_id), "--seeds", "6-7", "--no-checks")
    assert skipped.exit_code == 0 and "checked" not in skipped.output and "filter" not in skipped.output
    rows = decisions(wb)
    assert [seed for seed, row in rows.items() if "face_found" in row[0]] == list(range(6))
    assert all(row[1] is None for row in rows.values())                  # no filter: nothing decided

    # A filter whose p(good) rises with the discriminator's score, sure of the two lowest and highest.
    d = np.array([[rows[seed][0][scores.DISCRIMINATOR]["value"]] for seed in range(8)])
    classifier = LogisticRegression(C=1e4).fit(d, (d[:, 0] > np.median(d)).astype(int))
    p = classifier.predict_proba(d)[:, 1]
    reject, accept = sorted(p)[1], sorted(p)[-2]
    buffer = io.BytesIO()
    joblib.dump(classifier, buffer)
    with wb.db.unit_of_work() as session:
        session.add(FaceFilter(version=1, model_sha256=wb.blobs.put_bytes(buffer.getvalue()),
                               features=[f"{scores.DISCRIMINATOR}.value"], thresholds={"reject": reject, "accept": accept},
                               metrics={}, active=True, created_by="test"))

    # A rerun checks the faces left unchecked and lets the filter decide every face it has not seen.
    rerun = run_cli("generate", str(checkpoint_id), "--seeds", "0-7")
    assert rerun.exit_code == 0, rerun.output
    text = " ".join(rerun.output.split())
    assert "checked 2 generated image(s): " in text and "filter v1 scored 8 faces: 2 accepted, 2 rejected" in text
    rows = decisions(wb)
    for seed, (checks, decision, reason, _sha) in rows.items():
        assert "face_found" in checks
        assert decision == ("accept" if p[seed] >= accept else "reject" if p[seed] <= reject else None)
        assert (reason is not None and reason.startswith("filter v1: p(good)")) == (decision is not None)
    with wb.db.unit_of_work() as session:                                 # reviewers get only the undecided
        queued = set(session.scalars(select(ReviewItem.image_sha256).where(reviewable())))
    assert queued == {sha for _checks, decision, _reason, sha in rows.values() if decision is None}
    assert len(queued) == 4

    more = run_cli("generate", str(checkpoint_id), "--seeds", "8-10")
    assert more.exit_code == 0, more.output
    assert "filter v1 scored 3 faces" in " ".join(more.output.split())
    assert all(reason is None or reason.startswith("filter v1") for _c, _d, reason, _s in decisions(wb).values())
