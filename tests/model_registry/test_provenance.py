"""Content Credentials: the local CA, signing, verifying, tampering, operator certificates, CLI."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from PIL import Image

from likeness.config import Settings
from likeness.errors import ConfigError, InvalidInput, NotFound
from model_registry import signing
from model_registry.provenance import (
    DIGITAL_SOURCE_TYPE,
    TRAINING_MINING_USES,
    XMP_SOURCE_TYPE,
    GenerationFacts,
    read_xmp,
    sign_png,
    software_version,
    verify,
)
from tests.cli_runner import run_cli

FACTS = GenerationFacts(seed=42, psi=0.7, label=[0.0, 1.0], checkpoint_id=3, checkpoint_sha256="a" * 64,
                        snapshot_hash="b" * 64, dataset_fingerprint="c" * 64, noise_mode="const", image_sha256="d" * 64)


def face_png(size: int = 32) -> bytes:
    """A small real PNG (a gradient, so the pixel data is not all one value)."""
    image = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def chunks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """PNG chunk type -> (offset of its data, length) for the first chunk of each type."""
    found: dict[bytes, tuple[int, int]] = {}
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        found.setdefault(data[pos + 4:pos + 8], (pos + 8, length))
        pos += 12 + length
    return found


def flipped(data: bytes, offset: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 0x01
    return bytes(changed)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def signed(settings: Settings, tmp_path: Path) -> Path:
    return sign_png(face_png(), tmp_path / "out" / "face.png", facts=FACTS, identity=signing.load_identity(settings))


def anchor(settings: Settings) -> bytes:
    return signing.trust_anchor(settings)[0]


# ---- The local CA. -----------------------------------------------------------------------------

def test_local_ca_is_made_once_owner_only_with_a_leaf_c2pa_accepts(settings: Settings) -> None:
    folder = settings.data_dir / "signing"
    assert not folder.exists()
    identity = signing.load_identity(settings)
    assert identity.local and identity.alg == "es256"
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["root-ca.key", "root-ca.pem", "signer.key", "signer.pem"]
    assert {stat.S_IMODE((folder / n).stat().st_mode) for n in names} == {0o600}

    leaf, root = x509.load_pem_x509_certificates(identity.chain_pem)
    assert leaf.issuer == root.subject != leaf.subject
    leaf.verify_directly_issued_by(root)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.EMAIL_PROTECTION]
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert identity.trust_anchor_pem == (folder / "root-ca.pem").read_bytes()

    # Used again, it is the same CA; the trust anchor is its root.
    assert signing.load_identity(settings).chain_pem == identity.chain_pem
    assert signing.trust_anchor(settings) == (identity.trust_anchor_pem, folder / "root-ca.pem")


def test_processes_starting_at_once_end_up_with_one_ca(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "signing"
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def make() -> None:
        barrier.wait()
        try:
            signing.ensure_local_ca(folder)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(p.name for p in folder.parent.iterdir()) == ["signing"]  # no scratch folder left
    signing.read_identity(folder / "signer.pem", folder / "signer.key", local=True)


# ---- Signing and verifying. --------------------------------------------------------------------

def test_signed_png_verifies_and_its_facts_round_trip(settings: Settings, signed: Path) -> None:
    verdict = verify(signed, trust_anchor_pem=anchor(settings))
    assert verdict.valid, verdict.problems
    assert verdict.state == "Trusted" and verdict.problems == []
    assert verdict.facts == FACTS
    assert verdict.facts.software == "likeness" and verdict.facts.software_version == software_version()
    assert verdict.digital_source_type == DIGITAL_SOURCE_TYPE
    assert verdict.training_mining == {use: "notAllowed" for use in TRAINING_MINING_USES}
    assert verdict.signed_by_us and verdict.signer is not None and "likeness" in verdict.signer

    # IPTC DigitalSourceType sits in the XMP of the signed file, and the manifest is still valid.
    assert verdict.xmp_digital_source_type == DIGITAL_SOURCE_TYPE
    assert read_xmp(signed.read_bytes())[XMP_SOURCE_TYPE] == DIGITAL_SOURCE_TYPE
    with Image.open(signed) as image:   # still an ordinary PNG with the same pixels
        assert image.format == "PNG"
        with Image.open(io.BytesIO(face_png())) as original:
            assert image.tobytes() == original.tobytes()


def test_a_png_file_signs_the_same_way(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "render.png"
    source.write_bytes(face_png())
    facts = GenerationFacts(seed=1, psi=1.0, label=None, checkpoint_id=1, checkpoint_sha256="e" * 64)
    out = sign_png(source, tmp_path / "signed.png", facts=facts, identity=signing.load_identity(settings))
    verdict = verify(out, trust_anchor_pem=anchor(settings))
    assert verdict.valid and verdict.facts == facts and verdict.facts.snapshot_hash is None
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # written atomically


@pytest.mark.parametrize("where", ["pixels", "header", "xmp", "generation assertion"])
def test_one_changed_byte_makes_it_invalid(settings: Settings, signed: Path, where: str) -> None:
    data = signed.read_bytes()
    layout = chunks(data)
    offset = {
        "pixels": layout[b"IDAT"][0] + 5,
        "header": layout[b"IHDR"][0] + 3,
        "xmp": data.index(b"trainedAlgorithmicMedia", layout[b"iTXt"][0]),
        "generation assertion": data.index(b"a" * 64, layout[b"caBX"][0]),
    }[where]
    signed.write_bytes(flipped(data, offset))
    verdict = verify(signed, trust_anchor_pem=anchor(settings))
    assert not verdict.valid and verdict.state == "Invalid"
    expected = "the image bytes changed after signing" if where != "generation assertion" else \
        "an assertion of the manifest changed after signing"
    assert any(expected in p for p in verdict.problems), verdict.problems


def test_a_damaged_manifest_is_invalid_not_an_error(settings: Settings, signed: Path) -> None:
    data = signed.read_bytes()
    jumbf = chunks(data)[b"caBX"][0]
    signed.write_bytes(flipped(data, jumbf + 20))      # inside the outer JUMBF box description
    verdict = verify(signed, trust_anchor_pem=anchor(settings))
    assert not verdict.valid
    assert verdict.problems and "manifest" in verdict.problems[0]


def test_another_root_does_not_trust_it(signed: Path, tmp_path: Path) -> None:
    stranger = Settings(data_dir=tmp_path / "elsewhere")
    verdict = verify(signed, trust_anchor_pem=anchor(stranger))
    assert not verdict.valid and verdict.state == "Valid"   # intact, but not signed under this root
    assert verdict.problems == ["the signing certificate does not chain to the trust anchor "
                                "(signingCredential.untrusted)"]
    assert verdict.facts == FACTS   # still readable


def test_files_without_credentials_say_so(settings: Settings, tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    plain.write_bytes(face_png())
    with pytest.raises(NotFound, match=r"plain.png carries no Content Credentials \(no C2PA manifest\)"):
        verify(plain, trust_anchor_pem=anchor(settings))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(InvalidInput, match="notes.txt is not an image c2pa can read"):
        verify(text, trust_anchor_pem=anchor(settings))
    with pytest.raises(NotFound, match="missing.png does not exist"):
        verify(tmp_path / "missing.png", trust_anchor_pem=anchor(settings))
    with pytest.raises(InvalidInput, match="not a PNG"):
        sign_png(b"GIF89a", tmp_path / "x.png", facts=FACTS, identity=signing.load_identity(settings))


# ---- An operator's own certificate. ------------------------------------------------------------

@pytest.fixture
def operator_ca(tmp_path: Path) -> Path:
    """A CA made elsewhere, standing in for the operator's own (chain leaf first, then root)."""
    return signing.ensure_local_ca(tmp_path / "operator" / "pki")


def test_an_operator_certificate_signs_and_verifies(operator_ca: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", signing_cert=operator_ca / "signer.pem",
                        signing_key=operator_ca / "signer.key")
    identity = signing.load_identity(settings)
    assert not identity.local and identity.cert_path == operator_ca / "signer.pem"
    out = sign_png(face_png(), tmp_path / "op.png", facts=FACTS, identity=identity)
    pem, path = signing.trust_anchor(settings)
    assert path == operator_ca / "signer.pem" and pem == (operator_ca / "root-ca.pem").read_bytes()
    assert verify(out, trust_anchor_pem=pem).valid
    assert not (tmp_path / "data" / "signing").exists()   # no local CA made


def test_bad_operator_settings_give_one_clear_error(operator_ca: Path, tmp_path: Path) -> None:
    def load(cert: Path | None, key: Path | None) -> signing.SigningIdentity:
        return signing.load_identity(Settings(data_dir=tmp_path / "data", signing_cert=cert, signing_key=key))

    cert, key = operator_ca / "signer.pem", operator_ca / "signer.key"
    missing = tmp_path / "nowhere" / "cert.pem"
    with pytest.raises(ConfigError, match=rf"signing certificate {missing} \(LIKENESS_SIGNING_CERT\) does not exist"):
        load(missing, key)
    with pytest.raises(ConfigError, match=r"private key .*key.pem \(LIKENESS_SIGNING_KEY\) does not exist"):
        load(cert, tmp_path / "key.pem")
    with pytest.raises(ConfigError, match="LIKENESS_SIGNING_CERT is set but LIKENESS_SIGNING_KEY is not"):
        load(cert, None)
    with pytest.raises(ConfigError, match=r"is a folder"):
        load(cert, operator_ca)
    with pytest.raises(ConfigError, match=r"is not the key of the certificate"):
        load(cert, operator_ca / "root-ca.key")
    with pytest.raises(ConfigError, match=r"starts with a self-signed certificate, which C2PA refuses"):
        load(operator_ca / "root-ca.pem", operator_ca / "root-ca.key")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"garbage.pem \(LIKENESS_SIGNING_CERT\) is not a PEM certificate chain"):
        load(garbage, key)
    with pytest.raises(ConfigError, match=r"garbage.pem \(LIKENESS_SIGNING_KEY\) is not a PEM private key"):
        load(cert, garbage)
    if os.geteuid() != 0:   # root reads any file
        unreadable = tmp_path / "unreadable.key"
        unreadable.write_bytes(key.read_bytes())
        unreadable.chmod(0)
        with pytest.raises(ConfigError, match=r"unreadable.key \(LIKENESS_SIGNING_KEY\) cannot be read"):
            load(cert, unreadable)

    # The local CA's files are checked the same way.
    local = Settings(data_dir=tmp_path / "data")
    signing.load_identity(local)
    (tmp_path / "data" / "signing" / "signer.key").write_bytes((operator_ca / "signer.key").read_bytes())
    with pytest.raises(ConfigError, match=r"signer.key \(local signing CA\) is not the key of the certificate"):
        signing.load_identity(local)


# ---- The command line. -------------------------------------------------------------------------

def test_cli_verify_and_trust_anchor(settings: Settings, signed: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(settings.data_dir))
    ok = run_cli("provenance", "verify", str(signed))
    assert ok.exit_code == 0, ok.output
    text = " ".join(ok.output.split())
    assert "face.png: valid: Content Credentials intact and trusted" in text
    assert "recipe: seed 42, psi 0.7, label [0.0, 1.0], noise const" in text
    assert f"checkpoint: #3 (snapshot file sha256 {'a' * 64})" in text
    assert "XMP DigitalSourceType: trainedAlgorithmicMedia" in text
    assert "training and data mining: notAllowed" in text

    as_json = run_cli("provenance", "verify", str(signed), "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.output)["facts"]["seed"] == 42

    shown = run_cli("provenance", "trust-anchor")
    assert shown.exit_code == 0 and shown.output.strip() == str(settings.data_dir / "signing" / "root-ca.pem")
    exported = tmp_path / "root.pem"
    assert run_cli("provenance", "trust-anchor", "--out", str(exported)).exit_code == 0
    assert exported.read_bytes() == (settings.data_dir / "signing" / "root-ca.pem").read_bytes()
    assert run_cli("provenance", "verify", str(signed), "--trust-anchor", str(exported)).exit_code == 0

    data = signed.read_bytes()
    tampered = tmp_path / "tampered.png"
    tampered.write_bytes(flipped(data, chunks(data)[b"IDAT"][0] + 5))
    bad = run_cli("provenance", "verify", str(tampered))
    assert bad.exit_code == 1
    assert "tampered.png: INVALID (Invalid)" in bad.output and "the image bytes changed after signing" in bad.output

    plain = tmp_path / "plain.png"
    plain.write_bytes(face_png())
    none = run_cli("provenance", "verify", str(plain))
    assert none.exit_code == 1 and none.output.startswith("error: ") and "carries no Content Credentials" in none.output

    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(anchor(Settings(data_dir=tmp_path / "elsewhere")))
    untrusted = run_cli("provenance", "verify", str(signed), "--trust-anchor", str(stranger))
    assert untrusted.exit_code == 1 and "does not chain to the trust anchor" in untrusted.output
    missing = run_cli("provenance", "verify", str(signed), "--trust-anchor", str(tmp_path / "none.pem"))
    assert missing.exit_code == 1 and "none.pem (--trust-anchor) does not exist" in missing.output
