"""Content Credentials (C2PA) on generated faces, and reading them back.

Every signed PNG carries, in one manifest signed offline (no timestamp authority):

- `c2pa.actions`: one `c2pa.created` action with `digitalSourceType` trainedAlgorithmicMedia
  and our software agent (likeness and its version);
- `com.likeness.generation`: the recipe and lineage of the face (seed, psi, label, noise mode,
  checkpoint id and snapshot file SHA-256, training data fingerprint, dataset snapshot hash,
  SHA-256 of the unsigned render as stored in the blob store);
- `c2pa.training-mining`: every use (generative training, training, inference, data mining)
  `notAllowed`.

Before signing, the XMP packet gets IPTC `Iptc4xmpExt:DigitalSourceType` (and PLUS
`DataMining` prohibited) through exiv2: the manifest hashes the bytes it is embedded in, so
anything written afterwards would break it. Files are written atomically.

`verify` validates a file against one trust anchor only (our root, by default): a manifest
is valid when c2pa finds it intact and its signer chains to that root ("Trusted"); anything
else is invalid, with each failure explained.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import c2pa
import pyexiv2

from likeness.errors import InvalidInput, NotFound
from likeness.files import write_bytes_atomic
from model_registry.signing import SigningIdentity

log = logging.getLogger(__name__)

SOFTWARE_NAME = "likeness"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
PLUS_DATA_MINING_PROHIBITED = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED"
GENERATION_ASSERTION = "com.likeness.generation"
TRAINING_MINING_ASSERTION = "c2pa.training-mining"
TRAINING_MINING_USES = ("c2pa.ai_generative_training", "c2pa.ai_inference", "c2pa.ai_training", "c2pa.data_mining")
XMP_SOURCE_TYPE = "Xmp.iptcExt.DigitalSourceType"
XMP_DATA_MINING = "Xmp.plus.DataMining"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_VERIFY_BYTES = 512 * 1024 * 1024
TRUSTED = "Trusted"

# What a failure code means, in words a studio can act on.
_FAILURES = {
    "assertion.dataHash.mismatch": "the image bytes changed after signing",
    "assertion.hashedURI.mismatch": "an assertion of the manifest changed after signing",
    "assertion.missing": "an assertion the claim names is missing",
    "claimSignature.mismatch": "the claim's signature does not match its content",
    "signingCredential.untrusted": "the signing certificate does not chain to the trust anchor",
    "signingCredential.expired": "the signing certificate had expired when it signed",
    "signingCredential.invalid": "the signing certificate is not valid for C2PA",
}

pyexiv2.set_log_level(4)  # exiv2's own warnings on stderr: off; errors raise


def software_version() -> str:
    try:
        return package_version(SOFTWARE_NAME)
    except PackageNotFoundError:
        return "unknown"


@dataclasses.dataclass(frozen=True)
class GenerationFacts:
    """What the manifest says about a generated face."""

    seed: int
    psi: float
    label: int | list[float] | None
    checkpoint_id: int
    checkpoint_sha256: str                  # the snapshot file's SHA-256
    snapshot_hash: str | None = None        # the dataset snapshot the checkpoint's run trained on
    dataset_fingerprint: str | None = None  # the training data folder's fingerprint, as the run recorded it
    noise_mode: str | None = None
    image_sha256: str | None = None         # the unsigned render (its blob in the store)
    software: str = SOFTWARE_NAME
    software_version: str = dataclasses.field(default_factory=software_version)

    def assertion(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["software"], data["software_version"]   # they are the action's softwareAgent
        # As JSON text: c2pa stores a JSON array of numbers as a CBOR byte string, losing floats.
        data["label"] = None if self.label is None else json.dumps(self.label, separators=(",", ":"))
        return {"label": GENERATION_ASSERTION, "data": data}

    @classmethod
    def from_manifest(cls, data: dict[str, Any], agent: dict[str, Any] | None) -> GenerationFacts:
        names = {f.name for f in dataclasses.fields(cls)} - {"software", "software_version"}
        known = {k: v for k, v in data.items() if k in names}
        if isinstance(known.get("label"), str):
            try:
                known["label"] = json.loads(known["label"])
            except ValueError:
                pass   # shown as written
        agent = agent or {}
        return cls(**known, software=str(agent.get("name", "")), software_version=str(agent.get("version", "")))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of `verify`: valid only when the manifest is intact and trusted."""

    path: Path
    valid: bool
    state: str                              # c2pa's validation state: Trusted, Valid (untrusted), Invalid
    problems: list[str]
    facts: GenerationFacts | None           # None when the manifest has no generation assertion
    digital_source_type: str | None         # of the c2pa.created action
    xmp_digital_source_type: str | None     # IPTC, from the XMP packet
    training_mining: dict[str, str]         # use -> allowed / notAllowed / constrained
    signer: str | None                      # common name and issuer of the signing certificate
    signed_by_us: bool                      # the claim generator is likeness


# ---- Signing. ----------------------------------------------------------------------------------

class PngSigner:
    """Signs PNGs with one identity; open it once for a batch (`with PngSigner(identity) as s`)."""

    def __init__(self, identity: SigningIdentity) -> None:
        self.identity = identity
        settings: dict[str, Any] = {
            "builder": {"thumbnail": {"enabled": False}},    # the face itself is the picture
            "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
        }
        if identity.trust_anchor_pem is not None:
            settings["trust"] = {"trust_anchors": identity.trust_anchor_pem.decode("utf-8", errors="replace")}
        info = c2pa.C2paSignerInfo(alg=identity.alg.encode(), sign_cert=identity.chain_pem,
                                   private_key=identity.key_pem, ta_url=None)
        self._context = c2pa.Context.from_dict(settings)
        try:
            self._signer = c2pa.Signer.from_info(info)
        except c2pa.C2paError as exc:
            self._context.close()
            raise InvalidInput(f"{identity.cert_path}: c2pa cannot sign with this certificate and key ({exc})") from None

    def sign(self, png: bytes, *, facts: GenerationFacts, title: str = "generated.png") -> bytes:
        """The PNG with IPTC XMP and a signed manifest embedded."""
        if not png.startswith(PNG_SIGNATURE):
            raise InvalidInput(f"{title}: not a PNG image")
        tagged = write_xmp(png, title=title)
        with c2pa.Builder(manifest_definition(facts, title=title), self._context) as builder:
            out = io.BytesIO()
            try:
                builder.sign(self._signer, "image/png", io.BytesIO(tagged), out)
            except c2pa.C2paError as exc:
                raise InvalidInput(f"{title}: signing its Content Credentials failed ({exc})",
                                   hint=f"check the signing certificate {self.identity.cert_path}") from None
        return out.getvalue()

    def close(self) -> None:
        self._signer.close()
        self._context.close()

    def __enter__(self) -> PngSigner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sign_png(source: bytes | Path, dest: Path, *, facts: GenerationFacts, identity: SigningIdentity) -> Path:
    """Write `source` (PNG bytes or a PNG file) to `dest` with Content Credentials, atomically."""
    dest = Path(dest)
    png = source if isinstance(source, bytes) else _read_file(Path(source))
    with PngSigner(identity) as signer:
        signed = signer.sign(png, facts=facts, title=dest.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(dest, signed)


def manifest_definition(facts: GenerationFacts, *, title: str) -> dict[str, Any]:
    agent = {"name": facts.software, "version": facts.software_version}
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": "image/png",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE, "softwareAgent": agent},
            ]}},
            facts.assertion(),
            {"label": TRAINING_MINING_ASSERTION,
             "data": {"entries": {use: {"use": "notAllowed"} for use in TRAINING_MINING_USES}}},
        ],
    }


def write_xmp(png: bytes, *, title: str = "image") -> bytes:
    """`png` with IPTC DigitalSourceType (trainedAlgorithmicMedia) and PLUS DataMining
    (prohibited) in its XMP packet."""
    try:
        image = pyexiv2.ImageData(png)
    except RuntimeError as exc:
        raise InvalidInput(f"{title}: exiv2 cannot read it ({exc})") from None
    try:
        image.modify_xmp({XMP_SOURCE_TYPE: DIGITAL_SOURCE_TYPE, XMP_DATA_MINING: PLUS_DATA_MINING_PROHIBITED})
        return bytes(image.get_bytes())
    finally:
        image.close()


def read_xmp(data: bytes) -> dict[str, Any]:
    """The XMP properties of an image ({} when it has none or exiv2 cannot read it)."""
    try:
        image = pyexiv2.ImageData(data)
    except RuntimeError:
        return {}
    try:
        return dict(image.read_xmp())
    except RuntimeError:
        return {}
    finally:
        image.close()


# ---- Verifying. --------------------------------------------------------------------------------

def verify(path: Path, *, trust_anchor_pem: bytes) -> Verdict:
    """Read and validate the Content Credentials of `path` against `trust_anchor_pem` alone.

    NotFound when the file does not exist or carries no manifest; InvalidInput when it is not
    an image c2pa reads. A manifest that c2pa cannot parse (its bytes damaged) is invalid."""
    path = Path(path)
    data = _read_file(path)
    fmt = "image/png" if data.startswith(PNG_SIGNATURE) else None
    settings = {
        "trust": {"trust_anchors": trust_anchor_pem.decode("utf-8", errors="replace")},
        "verify": {"verify_trust": True, "remote_manifest_fetch": False, "ocsp_fetch": False},
    }
    xmp_type = read_xmp(data).get(XMP_SOURCE_TYPE)
    try:
        with _reader(data, fmt, settings) as reader:
            store = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        raise NotFound(f"{path} carries no Content Credentials (no C2PA manifest)",
                       hint="only images exported with `likeness generate ... --export DIR` are signed") from None
    except c2pa.C2paError.NotSupported as exc:
        raise InvalidInput(f"{path} is not an image c2pa can read ({exc})") from None
    except c2pa.C2paError as exc:
        return Verdict(path=path, valid=False, state="Invalid",
                       problems=[f"the manifest cannot be read: its bytes are damaged ({exc})"], facts=None,
                       digital_source_type=None, xmp_digital_source_type=_str(xmp_type), training_mining={},
                       signer=None, signed_by_us=False)
    return _verdict(path, store, xmp_type)


@contextmanager
def _reader(data: bytes, fmt: str | None, settings: dict[str, Any]) -> Iterator[c2pa.Reader]:
    with c2pa.Context.from_dict(settings) as context, c2pa.Reader(fmt, io.BytesIO(data), None, context) as reader:
        yield reader


def _verdict(path: Path, store: dict[str, Any], xmp_type: Any) -> Verdict:
    state = str(store.get("validation_state") or "Invalid")
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {}) or {}
    results = store.get("validation_results", {}).get("activeManifest", {}) or {}
    problems = [_explain(f) for f in results.get("failure", [])]
    if state != TRUSTED and not problems:
        problems.append(f"c2pa's verdict is {state}, not {TRUSTED}")
    assertions = {a.get("label"): a.get("data", {}) for a in manifest.get("assertions", [])}
    created: dict[str, Any] = next((a for label in ("c2pa.actions.v2", "c2pa.actions")
                                for a in assertions.get(label, {}).get("actions", []) if a.get("action") == "c2pa.created"), {})
    generation = assertions.get(GENERATION_ASSERTION)
    facts = None
    if isinstance(generation, dict):
        try:
            facts = GenerationFacts.from_manifest(generation, created.get("softwareAgent"))
        except TypeError as exc:
            problems.append(f"the {GENERATION_ASSERTION} assertion is incomplete ({exc})")
    mining = assertions.get(TRAINING_MINING_ASSERTION) or assertions.get("cawg.training-mining") or {}
    info = manifest.get("signature_info", {}) or {}
    signer = ", ".join(str(v) for v in (info.get("common_name"), info.get("issuer")) if v) or None
    generators = manifest.get("claim_generator_info", []) or []
    return Verdict(
        path=path, valid=state == TRUSTED and not problems, state=state, problems=problems, facts=facts,
        digital_source_type=created.get("digitalSourceType"), xmp_digital_source_type=_str(xmp_type),
        training_mining={use: str(entry.get("use")) for use, entry in (mining.get("entries") or {}).items()},
        signer=signer, signed_by_us=any(g.get("name") == SOFTWARE_NAME for g in generators),
    )


def _explain(failure: dict[str, Any]) -> str:
    code = str(failure.get("code", "unknown"))
    meaning = _FAILURES.get(code) or str(failure.get("explanation") or "failed")
    return f"{meaning} ({code})"


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_VERIFY_BYTES:
            raise InvalidInput(f"{path} is {size:,} bytes; at most {MAX_VERIFY_BYTES:,} are read")
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a folder, not an image") from None
    except OSError as exc:
        raise InvalidInput(f"{path} cannot be read: {exc.strerror}") from None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
