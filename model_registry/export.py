"""Export generated faces: every file carries Content Credentials; tainted faces are withheld.

`export_generated` writes one signed PNG per generated image as seed<SEED>-<SHA12>.png (SHA12:
the start of the unsigned render's SHA-256, so two recipes with the same seed never collide),
each written atomically. An image whose checkpoint is tainted is withheld (a release behind
its training data was revoked) and named in the result with its reason; the
others are still written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import select

from likeness.config import make_private_dir
from likeness.errors import InvalidInput, NotFound
from likeness.files import write_bytes_atomic
from likeness.models import Checkpoint, DatasetSnapshot, GeneratedImage, TrainingRun
from likeness.workbench import Workbench
from model_registry.provenance import GenerationFacts, PngSigner
from model_registry.signing import anchor_path, load_identity


@dataclasses.dataclass(frozen=True)
class Withheld:
    image_id: int
    seed: int
    reason: str


@dataclasses.dataclass(frozen=True)
class ExportResult:
    folder: Path
    written: list[Path]
    withheld: list[Withheld]
    signer: str                 # subject of the signing certificate
    trust_anchor: Path | None   # the root a verifier needs (None: the operator's chain omits it)


@dataclasses.dataclass(frozen=True)
class _Row:
    image_id: int
    image_sha256: str
    facts: GenerationFacts
    withheld: str | None


def export_file_name(seed: int, image_sha256: str) -> str:
    return f"seed{seed:04d}-{image_sha256[:12]}.png"


def export_generated(workbench: Workbench, image_ids: Sequence[int], folder: Path, *,
                     progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Sign and write the generated images `image_ids` into `folder` (made if missing).

    NotFound for an unknown id; tainted images are withheld, not written. The signing
    certificate is checked before anything is written (ConfigError when it is unusable).
    `progress(done, total)` is called after each image."""
    if not image_ids:
        raise InvalidInput("no generated images to export")
    rows = _rows(workbench, image_ids)
    identity = load_identity(workbench.settings)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"--export {folder} is a file, not a folder")
    if not folder.exists():
        make_private_dir(folder)
    written: list[Path] = []
    withheld: list[Withheld] = []
    with PngSigner(identity) as signer:
        for done, row in enumerate(rows, start=1):
            if row.withheld is not None:
                withheld.append(Withheld(image_id=row.image_id, seed=row.facts.seed, reason=row.withheld))
            else:
                name = export_file_name(row.facts.seed, row.image_sha256)
                signed = signer.sign(workbench.blobs.read_bytes(row.image_sha256), facts=row.facts, title=name)
                written.append(write_bytes_atomic(folder / name, signed))
            if progress is not None:
                progress(done, len(rows))
    return ExportResult(folder=folder, written=written, withheld=withheld, signer=identity.subject,
                        trust_anchor=anchor_path(identity))


def _rows(workbench: Workbench, image_ids: Sequence[int]) -> list[_Row]:
    """The images in the order asked (each once), with their facts and why they are withheld."""
    wanted = list(dict.fromkeys(image_ids))
    query = (select(GeneratedImage, Checkpoint.file_sha256, Checkpoint.tainted, TrainingRun.dataset_fingerprint,
                    DatasetSnapshot.sha256)
             .join(Checkpoint, Checkpoint.id == GeneratedImage.checkpoint_id)
             .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
             .outerjoin(DatasetSnapshot, DatasetSnapshot.id == TrainingRun.snapshot_id)
             .where(GeneratedImage.id.in_(wanted)))
    with workbench.db.unit_of_work() as session:
        found = {image.id: (image, file_sha, ckpt_tainted, fingerprint, snapshot_sha)
                 for image, file_sha, ckpt_tainted, fingerprint, snapshot_sha in session.execute(query)}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"no generated image #{missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        rows = []
        for image_id in wanted:
            image, file_sha, ckpt_tainted, fingerprint, snapshot_sha = found[image_id]
            reason = _withheld_reason(ckpt_tainted, image.checkpoint_id)
            facts = GenerationFacts(
                seed=image.seed, psi=image.psi, label=image.label, checkpoint_id=image.checkpoint_id,
                checkpoint_sha256=file_sha, snapshot_hash=snapshot_sha, dataset_fingerprint=fingerprint,
                noise_mode=image.noise_mode, image_sha256=image.image_sha256,
            )
            rows.append(_Row(image_id=image.id, image_sha256=image.image_sha256, facts=facts, withheld=reason))
    return rows


def withheld_images(workbench: Workbench, image_ids: Sequence[int]) -> dict[int, str]:
    """The generated images among `image_ids` that no export may carry, with the reason (its
    checkpoint is tainted), in the order asked."""
    query = (select(GeneratedImage.id, Checkpoint.tainted, Checkpoint.id)
             .join(Checkpoint, Checkpoint.id == GeneratedImage.checkpoint_id)
             .where(GeneratedImage.id.in_(set(image_ids))))
    with workbench.db.unit_of_work() as session:
        found = {image_id: _withheld_reason(ckpt_tainted, ckpt_id) for image_id, ckpt_tainted, ckpt_id in session.execute(query)}
    return {i: reason for i in dict.fromkeys(image_ids) if (reason := found.get(i)) is not None}


def _withheld_reason(checkpoint_tainted: bool, checkpoint_id: int) -> str | None:
    if checkpoint_tainted:
        return f"its checkpoint #{checkpoint_id} is tainted: a release behind its training data was revoked"
    return None
