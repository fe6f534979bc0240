"""`likeness dataset` through the real command tree, on both databases: build, list, show, check
and export a snapshot of a labelled, released pool; a bad spec and a revoked release."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from sqlalchemy import select

from ingest import api as ingest_api
from likeness.models import Person, Release
from likeness.workbench import Workbench
from samples.labelled_pool import SitterPlan, add_pool
from tests.cli_runner import run_cli

AGES = ("adult", "senior", "child", "young_adult")

SPEC = """
name = "cli test"
size = 60
resolution = 32
seed = 1
tolerance = 0.05
max_person_share = 0.25
validation_share = 0.2
label_attributes = ["age_band", "expression"]
[quotas.age_band]
adult = 0.3
senior = 0.3
"*" = 0.4
[quotas.expression]
smile = 0.5
"*" = 0.5
"""

# Only P0001 is a senior of Monk 8-10 with (a third of 21 faces) 7 smiles: the joint cell asks
# for 0.2 of 60 = 12, so 5 are short (band 12 ± 3 → at least 9 → 2 missing) and P0001 could sit.
SHORT_SPEC = SPEC + """
[[joint]]
where = { age_band = "senior", skin_tone = "8-10", expression = "smile" }
share = 0.2
"""


def seed_pool(workbench: Workbench) -> None:
    """Eight released sitters over four age bands, faces cycling three expressions."""
    sitters = [SitterPlan(code=f"P{i:04d}", faces=20 + i,
                          person={"age_band": AGES[i % 4], "skin_tone": "9" if i == 1 else str(1 + i % 5)},
                          frames={"expression": ["neutral", "smile", "grin"]}, shoots=2) for i in range(8)]
    with workbench.db.unit_of_work() as session:
        add_pool(session, workbench.blobs, sitters)


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_build_list_show_and_export(env_workbench: Workbench, tmp_path: Path) -> None:
    seed_pool(env_workbench)
    spec = write(tmp_path, SPEC)
    plot = tmp_path / "balance.png"
    built = run_cli("dataset", "build", str(spec), "--plot", str(plot))
    assert built.exit_code == 0, built.output
    [head] = [line for line in built.output.splitlines() if line.startswith("snapshot #1 ")]
    sha256 = head.split()[2]
    assert len(sha256) == 64 and head.endswith("created")
    assert "age_band=senior" in built.output and "✓" in built.output and "✗" not in built.output
    assert "shortfall: none, every quota is within its band" in built.output
    assert "; 0 people in both" in built.output
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    again = run_cli("dataset", "build", str(spec))
    assert again.exit_code == 0 and f"snapshot #1 {sha256} existing" in again.output

    listed = run_cli("dataset", "list")
    assert listed.exit_code == 0 and sha256[:12] in listed.output and "cli test" in listed.output

    shown = run_cli("dataset", "show", sha256[:8])
    assert shown.exit_code == 0, shown.output
    assert f"snapshot #1 'cli test' {sha256}" in shown.output
    assert "60 faces (" in shown.output and "label vector: age_band (ordinal, 1), expression (one_hot, 7)" in shown.output
    assert "pool: 188 eligible; nothing left out" in shown.output and "split: " in shown.output
    detail = json.loads(run_cli("dataset", "show", "1", "--json").output)
    assert detail["snapshot"]["sha256"] == sha256 and detail["split"]["leaked_people"] == []
    train, val = detail["snapshot"]["train"], detail["snapshot"]["val"]
    assert train + val == 60 and val > 0

    out = tmp_path / "train.zip"
    exported = run_cli("dataset", "export", "1", str(out))
    assert exported.exit_code == 0, exported.output
    assert f"{train} train image(s) written to {out}" in exported.output
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
        labels = json.loads(archive.read("dataset.json"))["labels"]
    assert sum(n.endswith(".png") for n in names) == train == len(labels) == len(manifest["images"])
    assert manifest["snapshot"]["sha256"] == sha256 and {i["split"] for i in manifest["images"]} == {"train"}
    every = run_cli("dataset", "export", sha256[:10], str(tmp_path / "all.zip"), "--split", "all")
    assert every.exit_code == 0 and "60 all image(s)" in every.output
    assert run_cli("dataset", "export", "1", str(tmp_path / "x.zip"), "--split", "test").exit_code == 2


def test_a_shortfall_is_printed_and_given_as_json(env_workbench: Workbench, tmp_path: Path) -> None:
    seed_pool(env_workbench)
    spec = write(tmp_path, SHORT_SPEC)
    built = run_cli("dataset", "build", str(spec))
    assert built.exit_code == 0, built.output
    [line] = [line.strip() for line in built.output.splitlines() if line.strip().startswith("needs ")]
    assert line == "needs 2 more: age_band=senior × skin_tone=8-10 × expression=smile (could sit: P0001)"
    assert "✗" in built.output

    data = json.loads(run_cli("dataset", "build", str(spec), "--json").output)
    assert data["snapshot"]["created"] is False and data["snapshot"]["id"] == 1
    [short] = data["shortfall"]
    assert short["missing"] == 2 and short["sitters"] == ["P0001"]
    assert short["where"] == {"age_band": ["senior"], "skin_tone": ["8", "9", "10"], "expression": ["smile"]}
    [joint] = [c for c in data["cells"] if c["joint"]]
    assert joint["achieved"] == 7 and joint["missing"] == 2


def test_a_bad_spec_is_one_line_naming_the_key(env_workbench: Workbench, tmp_path: Path) -> None:
    seed_pool(env_workbench)
    spec = write(tmp_path, SPEC.replace('"*" = 0.4', '"*" = 0.3'))
    result = run_cli("dataset", "build", str(spec))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f'error: {spec}: quotas.age_band: shares sum to 0.9, not 1 (add the rest as "*" = share)']

    unknown = run_cli("dataset", "build", str(write(tmp_path, SPEC.replace("[quotas.expression]", "[quotas.mood]"))))
    assert unknown.exit_code == 1 and len(unknown.output.strip().splitlines()) == 1
    assert unknown.output.startswith(f"error: {spec}: quotas.mood: unknown attribute 'mood'")

    missing = run_cli("dataset", "build", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 1 and missing.output.strip() == f"error: {tmp_path / 'nope.toml'}: no such spec file"
    nothing = run_cli("dataset", "show", "7")
    assert nothing.exit_code == 1 and nothing.output.startswith("error: no dataset snapshot '7'")


def test_check_fails_once_a_members_release_is_revoked(env_workbench: Workbench, tmp_path: Path) -> None:
    seed_pool(env_workbench)
    assert run_cli("dataset", "build", str(write(tmp_path, SPEC))).exit_code == 0
    fine = run_cli("dataset", "check", "1")
    assert fine.exit_code == 0 and "every member's release still covers training" in fine.output

    member = sorted(json.loads(run_cli("dataset", "show", "1", "--json").output)["people"])[0]
    with env_workbench.db.unit_of_work() as session:
        release_id = session.scalar(select(Release.id).join(Person).where(Person.code == member))
        assert release_id is not None
        ingest_api.revoke_release(session=session, release_id=release_id, reason="withdrawn by the sitter", actor="test")

    lapsed = run_cli("dataset", "check", "1")
    assert lapsed.exit_code == 1
    [row] = [line for line in lapsed.output.splitlines() if member in line]
    assert f"#{release_id}" in row and "revoked" in row
    assert "error: snapshot #1: " in lapsed.output and "no longer covered by a release" in lapsed.output

    refused = run_cli("dataset", "export", "1", str(tmp_path / "out.zip"), "--split", "all")
    assert refused.exit_code == 1 and refused.output.startswith("error: ") and len(refused.output.strip().splitlines()) == 1
    assert not (tmp_path / "out.zip").exists()
