"""Generation: reproducible from the recipe, stored once, queued for review, refused when tainted."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from likeness.errors import ConsentViolation, InvalidInput
from likeness.models import Checkpoint, GeneratedImage, ReviewItem
from likeness.workbench import Workbench
from tests.cli_runner import run_cli
from training import generate as gen
from training.generate import MAX_SEEDS_PER_CALL


def count(workbench: Workbench, model: type) -> int:
    with workbench.db.unit_of_work() as session:
        total = session.scalar(select(func.count()).select_from(model))
        assert total is not None
        return total


def test_generation_is_reproducible_idempotent_and_queued(workbench: Workbench, checkpoint_id: int) -> None:
    ids = gen.generate(workbench, checkpoint_id, seeds=[0, 1, 2], psi=0.7)
    assert len(set(ids)) == 3
    with workbench.db.unit_of_work() as session:
        pairs = gen.image_blobs(ids, session=session)
        items = {i.image_sha256: i.source for i in session.scalars(select(ReviewItem))}
    assert [seed for seed, _ in pairs] == [0, 1, 2]
    shas = [sha for _, sha in pairs]
    assert len(set(shas)) == 3  # different seeds, different faces
    assert items == {sha: "generated" for sha in shas}
    with Image.open(io.BytesIO(workbench.blobs.read_bytes(shas[0]))) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (16, 16), "RGB")

    # Asking again for known recipes reuses their rows, in the order asked, and leaves the queue alone.
    with workbench.db.unit_of_work() as session:
        session.execute(update(ReviewItem).where(ReviewItem.image_sha256 == shas[2]).values(flag="closed_eyes"))
    assert gen.generate(workbench, checkpoint_id, seeds=[2, 0], psi=0.7) == [ids[2], ids[0]]
    assert count(workbench, GeneratedImage) == 3 and count(workbench, ReviewItem) == 3
    with workbench.db.unit_of_work() as session:
        assert session.scalar(select(ReviewItem.flag).where(ReviewItem.image_sha256 == shas[2])) == "closed_eyes"

    # The same recipe rendered from scratch gives the same bytes; another psi another image.
    gen._generator_from_blob.cache_clear()
    loaded = gen.load_generator(workbench, checkpoint_id)
    assert gen.png_bytes(gen.render(loaded, [1], psi=0.7)[0]) == workbench.blobs.read_bytes(shas[1])
    [other] = gen.generate(workbench, checkpoint_id, seeds=[1], psi=0.5, noise_mode="random", queue_for_review=False)
    with workbench.db.unit_of_work() as session:
        row = session.get(GeneratedImage, other)
    assert row is not None
    assert (row.psi, row.noise_mode, row.label, row.label_key) == (0.5, "random", None, "")
    assert row.image_sha256 not in shas and count(workbench, ReviewItem) == 3


def test_tainted_and_unrecorded_checkpoints_refuse_to_generate(workbench: Workbench, checkpoint_id: int,
                                                               tiny_trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    snapshot = tiny_trained_run[1] / "network-snapshot-000000.004.pt"
    assert gen.generate(workbench, snapshot, seeds=[3], queue_for_review=False)  # a recorded file works by path
    stranger = tmp_path / "network-snapshot-000999.pt"
    stranger.write_bytes(snapshot.read_bytes() + b"\0")
    with pytest.raises(ConsentViolation, match="not a checkpoint of any recorded training run"):
        gen.generate(workbench, stranger, seeds=[3])

    with workbench.db.unit_of_work() as session:
        session.execute(update(Checkpoint).where(Checkpoint.id == checkpoint_id).values(tainted=True))
    with pytest.raises(ConsentViolation, match=f"checkpoint #{checkpoint_id} is tainted"):
        gen.generate(workbench, checkpoint_id, seeds=[4])
    with pytest.raises(ConsentViolation, match="tainted"):
        gen.truncation_sweep(workbench, snapshot, seeds=[4])
    assert count(workbench, GeneratedImage) == 1


def cell(grid: Image.Image, row: int, col: int) -> bytes:
    return grid.crop((col * 16, row * 16, col * 16 + 16, row * 16 + 16)).tobytes()


def test_grids_for_the_page(workbench: Workbench, checkpoint_id: int) -> None:
    sweep = gen.truncation_sweep(workbench, checkpoint_id, seeds=[0, 1], psis=(1.0, 0.5, 0.0))
    assert sweep.size == (3 * 16, 2 * 16)
    # psi 0 is the mean face whatever the seed (constant noise).
    assert sweep.crop((32, 0, 48, 16)).tobytes() == sweep.crop((32, 16, 48, 32)).tobytes()
    assert sweep.crop((0, 0, 16, 16)).tobytes() != sweep.crop((0, 16, 16, 32)).tobytes()

    num_ws = gen.load_generator(workbench, checkpoint_id).G.num_ws
    coarse_only = gen.style_mixing_grid(workbench, checkpoint_id, row_seeds=[5, 6], col_seeds=[7, 8, 9], cutoff=num_ws)
    assert coarse_only.size == (4 * 16, 3 * 16)
    assert cell(coarse_only, 2, 3) == cell(coarse_only, 2, 0)  # every style from the row's seed
    fine_only = gen.style_mixing_grid(workbench, checkpoint_id, row_seeds=[5, 6], col_seeds=[7, 8, 9], cutoff=0)
    assert cell(fine_only, 2, 3) == cell(fine_only, 0, 3)      # every style from the column's seed
    mixed = gen.style_mixing_grid(workbench, checkpoint_id, row_seeds=[5], col_seeds=[7])
    assert cell(mixed, 1, 1) not in (cell(mixed, 0, 1), cell(mixed, 1, 0))


def test_bad_recipes_are_refused(workbench: Workbench, checkpoint_id: int) -> None:
    with pytest.raises(InvalidInput, match="unconditional"):
        gen.generate(workbench, checkpoint_id, seeds=[0], label=1)
    with pytest.raises(InvalidInput, match="seeds must be integers"):
        gen.generate(workbench, checkpoint_id, seeds=[-1])
    with pytest.raises(InvalidInput, match="noise mode"):
        gen.generate(workbench, checkpoint_id, seeds=[0], noise_mode="loud")
    assert count(workbench, GeneratedImage) == 0


def test_cli_generate(env_workbench: Workbench, checkpoint_id: int, tmp_path: Path) -> None:
    result = run_cli("generate", str(checkpoint_id), "--seeds", "0-2,7", "--psi", "0.5", "--out", str(tmp_path / "faces"))
    assert result.exit_code == 0, result.output
    assert f"4 images from checkpoint {checkpoint_id} at psi 0.5, queued for review" in " ".join(result.output.split())
    assert sorted(p.name for p in (tmp_path / "faces").iterdir()) == [
        "seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]
    assert count(env_workbench, ReviewItem) == 4

    missing = run_cli("generate", "999")
    assert missing.exit_code == 1 and missing.output.startswith("error: no checkpoint #999")
    bad = run_cli("generate", str(checkpoint_id), "--seeds", "a-b")
    assert bad.exit_code == 2 and "is not a seed list" in bad.output


def test_seed_ranges_beyond_the_maximum_are_refused_without_building_them(
        env_workbench: Workbench, checkpoint_id: int) -> None:
    started = time.monotonic()
    huge = run_cli("generate", str(checkpoint_id), "--seeds", "0-2000000000")
    assert huge.exit_code == 2
    assert "MAX_SEEDS_PER_CALL" in huge.output and f"{MAX_SEEDS_PER_CALL:,}" in " ".join(huge.output.split())
    assert time.monotonic() - started < 10
    assert run_cli("generate", str(checkpoint_id), "--n", str(MAX_SEEDS_PER_CALL + 1)).exit_code == 2
    with pytest.raises(InvalidInput, match="MAX_SEEDS_PER_CALL"):
        gen.generate(env_workbench, checkpoint_id, seeds=range(MAX_SEEDS_PER_CALL + 1))
    assert count(env_workbench, GeneratedImage) == 0


def test_generation_streams_seeds_in_batches(workbench: Workbench, checkpoint_id: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    whole = gen.generate(workbench, checkpoint_id, seeds=[0, 1, 2, 3, 4], psi=0.7)
    batches: list[list[int]] = []
    real = gen._generate_batch

    def spy(*args: Any, **kwargs: Any) -> tuple[dict[int, int], list[int]]:
        batches.append(list(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(gen, "GENERATE_BATCH", 2)
    monkeypatch.setattr(gen, "_generate_batch", spy)
    assert gen.generate(workbench, checkpoint_id, seeds=range(7), psi=0.7) == [*whole, *gen.generate(
        workbench, checkpoint_id, seeds=[5, 6], psi=0.7)]
    assert batches[:4] == [[0, 1], [2, 3], [4, 5], [6]]
    assert gen.generate(workbench, checkpoint_id, seeds=[3, 3, 3], psi=0.7) == [whole[3]] * 3
    assert count(workbench, GeneratedImage) == 7
