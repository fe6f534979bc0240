"""Generate faces from a recorded checkpoint: reproducible PNG blobs, rows, and the review queue.

A generated image is named by its recipe: checkpoint, seed, truncation psi, label and noise mode.
The latent comes from `torch.Generator().manual_seed(seed)` and rendering runs one image at a
time on the CPU by default, so the same recipe gives the same PNG bytes whenever it is run, and
asking again for a known recipe returns the existing row. Only checkpoints recorded by a training
run can generate (their data passed the consent gate), and never one marked tainted.

One call takes at most MAX_SEEDS_PER_CALL seeds and works through them in batches of
GENERATE_BATCH: each batch is rendered, stored and committed before the next is read, so memory
stays flat however many seeds are asked for (a checkpoint tainted meanwhile stops the call at
the next batch; the batches already committed stay). A call killed part way therefore resumes
when it is asked again: each batch first reads which of its seeds the recipe has already (one
column query), skips those without rendering, and renders only the rest. `progress` hears
after every batch how far the call is and how fast it renders; `after_batch` gets the ids of
each batch's new images, once committed (to score them as they come).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from likeness.blobstore import BlobStore, sha256_file
from likeness.errors import ConsentViolation, InvalidInput, NotFound
from likeness.models import Checkpoint, GeneratedImage, ReviewItem
from likeness.workbench import Workbench
from qa.review import enqueue
from training.checkpoint import load_snapshot
from training.generator import Generator
from training.networks import NetworkConfig, build_networks

log = logging.getLogger(__name__)

REVIEW_SOURCE = "generated"
NOISE_MODES = ("const", "random", "none")
MAX_SEED = 2**31 - 1
MAX_SEEDS_PER_CALL = 100_000    # seeds one generate call (and one `likeness generate`) takes at most
GENERATE_BATCH = 256            # seeds rendered and committed together
Label = int | Sequence[float]


@dataclasses.dataclass(frozen=True)
class GenerationProgress:
    """How far one generate call is, after a batch."""

    done: int                            # seeds of the call handled (rendered or found)
    total: int                           # seeds of the call
    rendered: int                        # images rendered by this call so far (the rest existed)
    render_s: float                      # seconds spent rendering and storing them

    @property
    def images_per_s(self) -> float:
        return self.rendered / self.render_s if self.render_s > 0 else 0.0


ProgressFn = Callable[[GenerationProgress], None]
BatchFn = Callable[[list[int]], None]


@dataclasses.dataclass(frozen=True)
class LoadedGenerator:
    """G_ema of one checkpoint, ready to render."""

    checkpoint_id: int
    network: NetworkConfig
    G: Generator
    device: torch.device


def load_generator(workbench: Workbench, checkpoint: int | Path, *, device: str = "cpu") -> LoadedGenerator:
    """G_ema of a checkpoint given by id or by snapshot file; refuses tainted or unrecorded ones.

    Networks are cached by the snapshot's content hash, so a page that renders again and again
    reads the file once; the taint check runs on every call.
    """
    with workbench.db.unit_of_work() as session:
        row = recorded_checkpoint(checkpoint, session=session)
        checkpoint_id, file_sha = row.id, row.file_sha256
    network, G = _generator_from_blob(workbench.blobs.url, file_sha, device)
    return LoadedGenerator(checkpoint_id=checkpoint_id, network=network, G=G, device=torch.device(device))


def generate(
    workbench: Workbench,
    checkpoint: int | Path,              # a checkpoint id, or a snapshot file recorded as a checkpoint
    *,
    seeds: Sequence[int],                # one image per seed, 0 .. 2**31 - 1, at most MAX_SEEDS_PER_CALL
    psi: float = 0.7,                    # truncation towards the mean face (1: none)
    label: Label | None = None,          # class index or label vector; required for conditional models
    noise_mode: str = "const",           # "const" (the trained noise buffers), "random" (seeded) or "none"
    queue_for_review: bool = True,       # put every image in the thumbs-down review queue
    device: str = "cpu",                 # CPU keeps the bytes identical across machines
    progress: ProgressFn | None = None,  # after each batch
    after_batch: BatchFn | None = None,  # the ids of each batch's newly rendered images, once committed
) -> list[int]:
    """Render one PNG per seed into the blob store; returns the GeneratedImage ids, in seed order."""
    seeds = _check_seeds(seeds)
    if noise_mode not in NOISE_MODES:
        raise InvalidInput(f"noise mode {noise_mode!r} is not one of {', '.join(NOISE_MODES)}")
    if not math.isfinite(psi):
        raise InvalidInput(f"psi must be a finite number, got {psi}")
    loaded = load_generator(workbench, checkpoint, device=device)
    c = label_tensor(loaded, label)
    key = label_key(label)
    recipe = dict(checkpoint_id=loaded.checkpoint_id, psi=float(psi), label_key=key, noise_mode=noise_mode)

    ids_by_seed: dict[int, int] = {}
    rendered, render_s = 0, 0.0
    for start in range(0, len(seeds), GENERATE_BATCH):
        batch = [s for s in dict.fromkeys(seeds[start:start + GENERATE_BATCH]) if s not in ids_by_seed]
        if batch:
            started = time.perf_counter()
            found, fresh = _generate_batch(workbench, loaded, batch, recipe=recipe, label=label, c=c, psi=psi,
                                           noise_mode=noise_mode, queue_for_review=queue_for_review)
            ids_by_seed.update(found)
            if fresh:
                rendered += len(fresh)
                render_s += time.perf_counter() - started
                if after_batch is not None:
                    after_batch(fresh)
        if progress is not None:
            progress(GenerationProgress(done=min(start + GENERATE_BATCH, len(seeds)), total=len(seeds),
                                        rendered=rendered, render_s=render_s))
    ids = [ids_by_seed[seed] for seed in seeds]
    log.info("checkpoint #%d: %d images (%d rendered now) at psi %g", loaded.checkpoint_id, len(ids), rendered, psi)
    return ids


def _generate_batch(workbench: Workbench, loaded: LoadedGenerator, seeds: list[int], *, recipe: dict[str, object],
                    label: Label | None, c: torch.Tensor | None, psi: float, noise_mode: str,
                    queue_for_review: bool) -> tuple[dict[int, int], list[int]]:
    """Render, store and record one batch of distinct seeds: (GeneratedImage ids by seed, the
    ids of the images this batch rendered). A batch the recipe has whole costs one or two
    column queries and no rendering (that is how a killed call resumes quickly)."""
    with workbench.db.unit_of_work() as session:
        known = _existing_ids(recipe, seeds, session=session)
        if len(known) == len(seeds):
            if not queue_for_review or _all_queued(list(known.values()), session=session):
                return {seed: image_id for seed, (image_id, _) in known.items()}, []
    images = {seed: workbench.blobs.put_bytes(png_bytes(render(loaded, [seed], psi=psi, c=c, noise_mode=noise_mode)[0]))
              for seed in seeds if seed not in known}

    with workbench.db.unit_of_work() as session:
        recorded_checkpoint(loaded.checkpoint_id, session=session)   # refuses one tainted meanwhile
        rows = _existing(recipe, seeds, session=session)
        for seed, sha in images.items():
            if seed not in rows:
                rows[seed] = GeneratedImage(seed=seed, label=_label_json(label), image_sha256=sha, **recipe)
                session.add(rows[seed])
        session.flush()
        if queue_for_review:
            # Only images not queued yet: enqueue() would reset a detector's flag on a queued one.
            shas = {row.image_sha256 for row in rows.values()}
            queued = set(session.scalars(select(ReviewItem.image_sha256).where(ReviewItem.image_sha256.in_(shas))))
            for sha in sorted(shas - queued):
                enqueue(session=session, image_sha256=sha, source=REVIEW_SOURCE)
        return {seed: row.id for seed, row in rows.items()}, [rows[seed].id for seed in images if seed not in known]


def render(
    loaded: LoadedGenerator,
    seeds: Sequence[int],
    *,
    psi: float = 0.7,
    c: torch.Tensor | None = None,       # (1, c_dim) label row, from the checkpoint's label size
    noise_mode: str = "const",
    mix_seeds: Sequence[int] | None = None,  # style mixing: fine styles from these seeds
    mix_cutoff: int | None = None,       # ws[:, mix_cutoff:] come from the mix seed
) -> list[Image.Image]:
    """One image per seed, rendered separately so that an image never depends on its batch."""
    images = []
    for i, seed in enumerate(seeds):
        z = _latent(loaded, seed)
        mix = {} if mix_seeds is None else {"mix_z": _latent(loaded, mix_seeds[i]), "mix_cutoff": mix_cutoff}
        noise = torch.Generator(device=loaded.device).manual_seed(seed)
        with torch.no_grad():
            img = loaded.G(z, c, psi=psi, noise_mode=noise_mode, generator=noise, **mix)
        images.append(_to_pil(img[0]))
    return images


def style_mixing_grid(
    workbench: Workbench,
    checkpoint: int | Path,
    *,
    row_seeds: Sequence[int],            # coarse styles (pose, face shape) come from these
    col_seeds: Sequence[int],            # fine styles (colour, texture) come from these
    psi: float = 0.7,
    label: Label | None = None,
    cutoff: int | None = None,           # first style taken from the column seed (None: half of them)
    noise_mode: str = "const",
) -> Image.Image:
    """The StyleGAN style-mixing figure: sources on the top row and left column, mixes inside."""
    loaded = load_generator(workbench, checkpoint)
    c = label_tensor(loaded, label)
    cut = loaded.G.num_ws // 2 if cutoff is None else cutoff
    if not 0 <= cut <= loaded.G.num_ws:
        raise InvalidInput(f"style cutoff must be in 0..{loaded.G.num_ws}, got {cut}")
    rows, cols = _check_seeds(row_seeds), _check_seeds(col_seeds)
    cells: list[Image.Image | None] = [None]
    cells += render(loaded, cols, psi=psi, c=c, noise_mode=noise_mode)
    for seed in rows:
        cells += render(loaded, [seed], psi=psi, c=c, noise_mode=noise_mode)
        cells += render(loaded, [seed] * len(cols), psi=psi, c=c, noise_mode=noise_mode,
                        mix_seeds=cols, mix_cutoff=cut)
    return _grid(cells, columns=len(cols) + 1, size=loaded.network.resolution)


def truncation_sweep(
    workbench: Workbench,
    checkpoint: int | Path,
    *,
    seeds: Sequence[int],                # one row per seed
    psis: Sequence[float] = (1.0, 0.85, 0.7, 0.5, 0.3, 0.0),  # one column per psi
    label: Label | None = None,
    noise_mode: str = "const",
) -> Image.Image:
    """Each seed across truncation values: how far psi trades variety for quality."""
    loaded = load_generator(workbench, checkpoint)
    c = label_tensor(loaded, label)
    cells: list[Image.Image | None] = []
    for seed in _check_seeds(seeds):
        for psi in psis:
            cells += render(loaded, [seed], psi=psi, c=c, noise_mode=noise_mode)
    return _grid(cells, columns=len(psis), size=loaded.network.resolution)


def image_blobs(ids: Sequence[int], *, session: Session) -> list[tuple[int, str]]:
    """(seed, image SHA-256) of generated images, in the order of `ids`."""
    rows = {row.id: row for row in session.scalars(select(GeneratedImage).where(GeneratedImage.id.in_(ids)))}
    return [(rows[i].seed, rows[i].image_sha256) for i in ids]


# ---- Checkpoints and consent. ------------------------------------------------------------------

def recorded_checkpoint(checkpoint: int | Path, *, session: Session) -> Checkpoint:
    """The row of a checkpoint given by id or snapshot file: NotFound for an unknown id,
    ConsentViolation for a tainted one or a file no recorded run made."""
    if isinstance(checkpoint, int):
        row = session.get(Checkpoint, checkpoint)
        if row is None:
            raise NotFound(f"no checkpoint #{checkpoint}", hint="`likeness train checkpoints` lists them")
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise NotFound(f"snapshot {path} does not exist", hint="pass a checkpoint id or a snapshot file")
        row = session.scalar(select(Checkpoint).where(Checkpoint.file_sha256 == sha256_file(path)).limit(1))
        if row is None:
            raise ConsentViolation(f"{path} is not a checkpoint of any recorded training run, so the "
                                   "consent behind its training data cannot be checked",
                                   hint="generate from checkpoints of runs started with `likeness train run`")
    if row.tainted:
        raise _tainted(row.id)
    return row


def _tainted(checkpoint_id: int) -> ConsentViolation:
    return ConsentViolation(f"checkpoint #{checkpoint_id} is tainted: a release behind its training data was "
                            "revoked, so it may not generate faces", hint="use a checkpoint trained without that data")


@functools.lru_cache(maxsize=2)
def _generator_from_blob(blob_url: str, sha256: str, device: str) -> tuple[NetworkConfig, Generator]:
    """G_ema rebuilt from a snapshot blob (content-addressed, so caching by hash is safe)."""
    blobs = BlobStore(blob_url)
    if blobs.is_local:
        state = load_snapshot(blobs.local_path(sha256), map_location=device)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            state = load_snapshot(blobs.copy_to(sha256, Path(scratch) / "snapshot.pt"), map_location=device)
    network = NetworkConfig.from_dict(state["network_config"])
    G, _ = build_networks(network)
    try:
        G.load_state_dict(state["G_ema"])
    except RuntimeError as exc:
        raise InvalidInput(f"snapshot blob {sha256[:12]}…: G_ema does not fit its network config ({exc})") from exc
    return network, G.to(device).eval().requires_grad_(False)


# ---- Recipes: seeds, labels, latents. ----------------------------------------------------------

def _check_seeds(seeds: Sequence[int]) -> Sequence[int]:
    if len(seeds) > MAX_SEEDS_PER_CALL:
        raise InvalidInput(f"{len(seeds):,} seeds asked for; one call takes at most {MAX_SEEDS_PER_CALL:,} "
                           "(MAX_SEEDS_PER_CALL)", hint="split the seeds over several calls")
    if not isinstance(seeds, range):
        seeds = list(seeds)
    if not seeds:
        raise InvalidInput("no seeds given", hint="pass at least one seed")
    bad = [s for s in seeds if not isinstance(s, int) or not 0 <= s <= MAX_SEED]
    if bad:
        raise InvalidInput(f"seeds must be integers in 0..{MAX_SEED}, got {bad[:5]}")
    return seeds


def _latent(loaded: LoadedGenerator, seed: int) -> torch.Tensor:
    z = torch.randn([1, loaded.network.z_dim], generator=torch.Generator().manual_seed(seed))
    return z.to(loaded.device)


def _label_json(label: Label | None) -> int | list[float] | None:
    if label is None or isinstance(label, int):
        return label
    return [float(v) for v in label]


def label_key(label: Label | None) -> str:
    """The recipe's name for a label: a hash of its JSON ("" for none)."""
    if label is None:
        return ""
    return hashlib.sha256(json.dumps(_label_json(label), separators=(",", ":")).encode()).hexdigest()


def label_tensor(loaded: LoadedGenerator, label: Label | None) -> torch.Tensor | None:
    """The label as the network takes it: a class index becomes a one-hot row."""
    c_dim, ref = loaded.network.c_dim, f"checkpoint #{loaded.checkpoint_id}"
    if c_dim == 0:
        if label is not None:
            raise InvalidInput(f"{ref} is unconditional: it takes no label")
        return None
    if label is None:
        raise InvalidInput(f"{ref} is conditional ({c_dim} label values)",
                           hint=f"pass a class index 0..{c_dim - 1} or {c_dim} label values")
    if isinstance(label, int):
        if not 0 <= label < c_dim:
            raise InvalidInput(f"class {label} is outside {ref}'s classes 0..{c_dim - 1}")
        c = torch.zeros([1, c_dim])
        c[0, label] = 1
    else:
        values = [float(v) for v in label]
        if len(values) != c_dim:
            raise InvalidInput(f"{ref} takes {c_dim} label values, got {len(values)}")
        c = torch.tensor([values], dtype=torch.float32)
    return c.to(loaded.device)


def _existing_ids(recipe: dict[str, object], seeds: Sequence[int], *,
                  session: Session) -> dict[int, tuple[int, str]]:
    """(id, image SHA-256) by seed of the recipe's rows among `seeds`: columns only, no ORM rows."""
    query = select(GeneratedImage.seed, GeneratedImage.id, GeneratedImage.image_sha256).where(
        GeneratedImage.seed.in_(set(seeds)), *(getattr(GeneratedImage, k) == v for k, v in recipe.items()))
    return {seed: (image_id, sha) for seed, image_id, sha in session.execute(query)}


def _all_queued(known: list[tuple[int, str]], *, session: Session) -> bool:
    shas = {sha for _, sha in known}
    queued = session.scalar(select(func.count(func.distinct(ReviewItem.image_sha256))).where(ReviewItem.image_sha256.in_(shas)))
    return queued == len(shas)


def _existing(recipe: dict[str, object], seeds: Sequence[int], *, session: Session) -> dict[int, GeneratedImage]:
    query = select(GeneratedImage).where(GeneratedImage.seed.in_(set(seeds)),
                                         *(getattr(GeneratedImage, k) == v for k, v in recipe.items()))
    return {row.seed: row for row in session.scalars(query)}


# ---- Pixels. -----------------------------------------------------------------------------------

def _to_pil(img: torch.Tensor) -> Image.Image:
    pixels = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


def png_bytes(image: Image.Image) -> bytes:
    """The PNG a generated face is stored as."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _grid(cells: Sequence[Image.Image | None], *, columns: int, size: int) -> Image.Image:
    """Cells left to right, top to bottom; None leaves a white cell."""
    mode = next((c.mode for c in cells if c is not None), "RGB")
    rows = math.ceil(len(cells) / columns)
    grid = Image.new(mode, (columns * size, rows * size), color="white")
    for i, cell in enumerate(cells):
        if cell is not None:
            grid.paste(cell, ((i % columns) * size, (i // columns) * size))
    return grid
