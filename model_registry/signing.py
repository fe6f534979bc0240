"""The certificate and key that sign Content Credentials, and the root that verifies them.

C2PA signers refuse a self-signed leaf: the signing certificate must be issued by a CA, carry
the digitalSignature key usage and an extended key usage on the C2PA list (emailProtection
here; c2pa 0.38 refuses documentSigning, 1.3.6.1.5.5.7.3.36, at signing time). Without
LIKENESS_SIGNING_CERT / LIKENESS_SIGNING_KEY the workbench makes its own on first use, under
data_dir/signing (owner-only, 0700; every file 0600):

    root-ca.pem   the local root CA (P-256, 20 years): the trust anchor verifiers are given
    root-ca.key   its key (kept to issue a new signer when the old one runs out)
    signer.pem    the signing chain, leaf first (P-256 leaf, 5 years) then the root
    signer.key    the leaf's key

The folder is built beside its final name and renamed into place, so two processes that
start at once end up with one CA, and a crash never leaves half of one.

An operator's own certificate (PEM chain, leaf first) and key are checked the same way: a
missing, unreadable or malformed file, a key that does not match the leaf, a self-signed or
expired leaf each give one ConfigError naming the file and the setting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from likeness.config import PRIVATE_FILE_MODE, Settings, make_private_dir, private_umask
from likeness.errors import ConfigError
from likeness.files import write_bytes_atomic

log = logging.getLogger(__name__)

SIGNING_DIR = "signing"
ROOT_CERT = "root-ca.pem"
ROOT_KEY = "root-ca.key"
CHAIN = "signer.pem"
KEY = "signer.key"

ROOT_YEARS = 20
LEAF_YEARS = 5
LEAF_EKU = ExtendedKeyUsageOID.EMAIL_PROTECTION   # on c2pa's default EKU list
ORGANIZATION = "likeness workbench"

# c2pa's names for the algorithms of the keys it can sign with.
_EC_ALGS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


@dataclasses.dataclass(frozen=True)
class SigningIdentity:
    """What signs: the chain (leaf first) and key as PEM, the algorithm c2pa calls it by, and
    the root that verifiers trust (None when an operator's chain stops below its root)."""

    chain_pem: bytes
    key_pem: bytes
    alg: str                      # es256, es384, es512, ps256 or ed25519
    trust_anchor_pem: bytes | None
    cert_path: Path
    key_path: Path
    local: bool                   # made by the workbench (data_dir/signing), not the operator's
    subject: str                  # the leaf's common name and organisation, for messages
    not_after: dt.datetime


def signing_dir(settings: Settings) -> Path:
    return settings.data_dir / SIGNING_DIR


def load_identity(settings: Settings) -> SigningIdentity:
    """The operator's certificate and key when both settings are given, else the local CA's
    (made on first use). ConfigError when only one of the two settings is given."""
    cert, key = settings.signing_cert, settings.signing_key
    if cert is not None and key is not None:
        return read_identity(Path(cert), Path(key), local=False)
    if cert is not None or key is not None:
        given, missing = ("LIKENESS_SIGNING_CERT", "LIKENESS_SIGNING_KEY") if cert else (
            "LIKENESS_SIGNING_KEY", "LIKENESS_SIGNING_CERT")
        raise ConfigError(f"{given} is set but {missing} is not",
                          hint="set both (certificate chain and its private key), or neither for the local CA")
    folder = ensure_local_ca(signing_dir(settings))
    return read_identity(folder / CHAIN, folder / KEY, local=True)


def trust_anchor(settings: Settings) -> tuple[bytes, Path]:
    """The root certificate (PEM) that our Content Credentials chain to, and the file it is in.

    The local CA's root (made on first use), or the last certificate of the operator's chain
    when that one is a root; ConfigError when the operator's chain does not include its root."""
    identity = load_identity(settings)
    path = anchor_path(identity)
    if identity.trust_anchor_pem is None or path is None:
        raise ConfigError(f"{identity.cert_path} (LIKENESS_SIGNING_CERT) does not end with its root certificate",
                          hint="pass the root to verify against with --trust-anchor, or append it to the chain")
    return identity.trust_anchor_pem, path


def read_anchor(path: Path) -> bytes:
    """A trust anchor given by the user: one or more PEM certificates (ConfigError otherwise)."""
    pem = _read(path, "--trust-anchor", "trust anchor")
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ConfigError(f"trust anchor {path} is not a PEM certificate ({exc})") from None
    return pem


def anchor_path(identity: SigningIdentity) -> Path | None:
    """The file that holds the identity's root: root-ca.pem of the local CA, the operator's chain
    when it ends with its root, else None."""
    if identity.local:
        return identity.cert_path.parent / ROOT_CERT
    return identity.cert_path if identity.trust_anchor_pem is not None else None


# ---- Reading and checking a certificate and key. -----------------------------------------------

def read_identity(cert_path: Path, key_path: Path, *, local: bool) -> SigningIdentity:
    """Read and check a PEM chain (leaf first) and its key; ConfigError naming the bad file."""
    cert_setting = "local signing CA" if local else "LIKENESS_SIGNING_CERT"
    key_setting = "local signing CA" if local else "LIKENESS_SIGNING_KEY"
    chain_pem = _read(cert_path, cert_setting, "certificate")
    key_pem = _read(key_path, key_setting, "private key")
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise ConfigError(f"{cert_path} ({cert_setting}) is not a PEM certificate chain ({exc})",
                          hint="give the signing certificate first, then the CAs that issued it") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigError(f"{key_path} ({key_setting}) is encrypted with a passphrase",
                          hint="give an unencrypted PEM key, readable by its owner only") from None
    except ValueError as exc:
        raise ConfigError(f"{key_path} ({key_setting}) is not a PEM private key ({exc})") from None

    leaf = chain[0]
    alg = _alg(key, key_path, key_setting)
    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        raise ConfigError(f"{key_path} ({key_setting}) is not the key of the certificate in {cert_path}",
                          hint="give the private key that belongs to the first (leaf) certificate of the chain")
    if leaf.issuer == leaf.subject:
        raise ConfigError(f"{cert_path} ({cert_setting}) starts with a self-signed certificate, which C2PA refuses",
                          hint="sign with a leaf issued by a CA (chain leaf first), or unset the setting for the local CA")
    _check_leaf_profile(leaf, cert_path, cert_setting)
    now = dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        what = "expired on" if now > leaf.not_valid_after_utc else "is not valid before"
        when = leaf.not_valid_after_utc if now > leaf.not_valid_after_utc else leaf.not_valid_before_utc
        raise ConfigError(f"the signing certificate in {cert_path} ({cert_setting}) {what} {when:%Y-%m-%d}",
                          hint=_renew_hint(cert_path, local))
    if not local:
        _warn_if_shared(key_path)
    top = chain[-1]
    anchor = top.public_bytes(serialization.Encoding.PEM) if len(chain) > 1 and top.issuer == top.subject else None
    return SigningIdentity(chain_pem=chain_pem, key_pem=key_pem, alg=alg, trust_anchor_pem=anchor,
                           cert_path=cert_path, key_path=key_path, local=local, subject=_subject(leaf),
                           not_after=leaf.not_valid_after_utc)


def _read(path: Path, setting: str, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"signing {what} {path} ({setting}) does not exist",
                          hint="point the setting at an existing PEM file") from None
    except IsADirectoryError:
        raise ConfigError(f"signing {what} {path} ({setting}) is a folder, not a PEM file") from None
    except OSError as exc:
        raise ConfigError(f"signing {what} {path} ({setting}) cannot be read: {exc.strerror}",
                          hint="make it readable by the user that runs the workbench") from None


def _alg(key: object, key_path: Path, setting: str) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _EC_ALGS:
        return _EC_ALGS[key.curve.name]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return "ps256"
    raise ConfigError(f"{key_path} ({setting}) is a key C2PA cannot sign with",
                      hint="use an EC P-256/P-384/P-521, Ed25519 or RSA (2048 bits or more) key")


def _check_leaf_profile(leaf: x509.Certificate, cert_path: Path, setting: str) -> None:
    """The parts of C2PA's certificate profile that signing would otherwise fail on obscurely."""
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        digital_signature = usage.digital_signature
    except x509.ExtensionNotFound:
        digital_signature = False
    if not digital_signature:
        raise ConfigError(f"the signing certificate in {cert_path} ({setting}) lacks the digitalSignature key usage")
    try:
        ekus = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        ekus = set()
    if not ekus:
        raise ConfigError(f"the signing certificate in {cert_path} ({setting}) has no extended key usage",
                          hint="C2PA needs one such as emailProtection (1.3.6.1.5.5.7.3.4)")


def _warn_if_shared(key_path: Path) -> None:
    with contextlib.suppress(OSError):
        if stat.S_IMODE(key_path.stat().st_mode) & 0o077:
            log.warning("signing key %s is readable by other users; it should be owner-only (chmod 600)", key_path)


def _renew_hint(cert_path: Path, local: bool) -> str:
    if local:
        return (f"move {cert_path.parent} aside to make a new local CA "
                "(keep its root-ca.pem to verify what it signed)")
    return "renew the certificate and point LIKENESS_SIGNING_CERT at the new chain"


def _public_der(public_key: object) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _subject(cert: x509.Certificate) -> str:
    names = [a.value for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME)
             for a in cert.subject.get_attributes_for_oid(oid)]
    return ", ".join(str(n) for n in names) or cert.subject.rfc4514_string()


# ---- The local CA. -----------------------------------------------------------------------------

def ensure_local_ca(folder: Path) -> Path:
    """`folder` holding a local root CA and a signer it issued, made now if it is missing."""
    if (folder / CHAIN).exists() or (folder / ROOT_CERT).exists():
        return folder
    make_private_dir(folder.parent)
    with private_umask():
        scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))  # 0700
    try:
        _write_local_ca(scratch)
        try:
            os.rename(scratch, folder)     # atomic; fails when another process got there first
        except OSError:
            if not (folder / CHAIN).exists():
                raise
            log.info("another process made the signing CA in %s first; using it", folder)
        else:
            log.info("made a local signing CA in %s (trust anchor %s)", folder, folder / ROOT_CERT)
    except OSError as exc:
        raise ConfigError(f"cannot make the local signing CA in {folder}: {exc.strerror or exc}",
                          hint="check that the data folder is writable, or set LIKENESS_SIGNING_CERT/_KEY") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _write_local_ca(folder: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(hours=1)   # a clock slightly behind still accepts it
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("likeness local signing root")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name).issuer_name(root_name).public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + dt.timedelta(days=365 * ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("likeness content credentials")).issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + dt.timedelta(days=365 * LEAF_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([LEAF_EKU]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    root_pem = root.public_bytes(serialization.Encoding.PEM)
    files = {
        ROOT_KEY: _key_pem(root_key),
        KEY: _key_pem(leaf_key),
        ROOT_CERT: root_pem,
        CHAIN: leaf.public_bytes(serialization.Encoding.PEM) + root_pem,
    }
    for name, data in files.items():
        write_bytes_atomic(folder / name, data, mode=PRIVATE_FILE_MODE)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)])


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                         crl_sign=crl_sign, encipher_only=False, decipher_only=False)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
