"""`likeness provenance`: read and validate the Content Credentials of a file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from likeness.cli import console, print_line, sub_app
from likeness.config import Settings
from likeness.files import write_bytes_atomic
from model_registry import signing
from model_registry.provenance import DIGITAL_SOURCE_TYPE, Verdict, verify

provenance_app = sub_app("Read and validate Content Credentials (C2PA) on exported faces.")


@provenance_app.command("verify")
def verify_command(
    file: Path = typer.Argument(..., help="An exported image (PNG from `likeness generate ... --export DIR`)."),
    trust_anchor: Path | None = typer.Option(
        None, help="Root certificate (PEM) to trust; default: this workbench's signing root."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Validate a file's Content Credentials and print what they say; exit 1 unless valid."""
    if trust_anchor is not None:
        anchor_pem = signing.read_anchor(trust_anchor)
    else:
        anchor_pem, _ = signing.trust_anchor(Settings())
    verdict = verify(file, trust_anchor_pem=anchor_pem)
    if as_json:
        console.print_json(json.dumps(_as_dict(verdict)))
    else:
        _print(verdict)
    if not verdict.valid:
        raise typer.Exit(1)


@provenance_app.command("trust-anchor")
def trust_anchor_command(
    out: Path | None = typer.Option(None, help="Also write the root certificate (PEM) to this file."),
) -> None:
    """Print where the root certificate of this workbench's Content Credentials is (made on first
    use): give it to whoever verifies the exported faces."""
    pem, path = signing.trust_anchor(Settings())
    if out is not None:
        write_bytes_atomic(out, pem, mode=0o644)    # a certificate is public
        console.print(f"trust anchor written to {out}")
    else:
        print_line(str(path))


def _print(v: Verdict) -> None:
    if v.valid:
        print_line(f"{v.path}: valid: Content Credentials intact and trusted, signed by {v.signer}")
    else:
        print_line(f"{v.path}: INVALID ({v.state})")
        for problem in v.problems:
            print_line(f"  problem: {problem}")
        if v.signer:
            print_line(f"  signed by: {v.signer}")
    source = "trainedAlgorithmicMedia" if v.digital_source_type == DIGITAL_SOURCE_TYPE else v.digital_source_type
    xmp = "trainedAlgorithmicMedia" if v.xmp_digital_source_type == DIGITAL_SOURCE_TYPE else v.xmp_digital_source_type
    f = v.facts
    if f is not None:
        print_line(f"  created by: {f.software} {f.software_version} ({source or 'no digital source type'})")
        label = "-" if f.label is None else json.dumps(f.label)
        print_line(f"  recipe: seed {f.seed}, psi {f.psi:g}, label {label}, noise {f.noise_mode or '-'}")
        print_line(f"  checkpoint: #{f.checkpoint_id} (snapshot file sha256 {f.checkpoint_sha256})")
        print_line(f"  dataset snapshot: {f.snapshot_hash or '-'}; training data fingerprint: {f.dataset_fingerprint or '-'}")
        if f.image_sha256:
            print_line(f"  render sha256: {f.image_sha256}")
    elif v.state != "Invalid" or v.digital_source_type:
        print_line(f"  digital source type: {source or '-'} (no likeness generation record)")
    print_line(f"  XMP DigitalSourceType: {xmp or '-'}")
    if v.training_mining:
        uses = sorted(set(v.training_mining.values()))
        print_line(f"  training and data mining: {', '.join(uses)} ({', '.join(sorted(v.training_mining))})")


def _as_dict(v: Verdict) -> dict[str, object]:
    data = dataclasses.asdict(v)
    data["path"] = str(v.path)
    return data
