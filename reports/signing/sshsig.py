"""OpenSSH SSHSIG signatures (``ssh-keygen -Y sign/verify``) over the exact bytes of a file.

Why SSHSIG: a recipient can check a report with the ``ssh-keygen`` they
already have, without installing mamoru (PROTOCOL.sshsig; research notes in
shared/research/formats.md, section A). Ed25519 is deterministic, so for the
same key and file our ``.sig`` is byte-for-byte the one ``ssh-keygen -Y sign``
writes; the tests hold us to that.

The verifier checks, in this order, and stops at the first failure with its
own error: armor, magic, version, namespace, hash algorithm, key type, that
the key is listed in allowed_signers (identity, namespaces=, validity window),
and only then the signature. The public key inside a signature is a claim,
never trust: it counts only if the allowed_signers file lists it. Strings
read from a signature are attacker text too: an error quotes them through
``printable``, so a namespace holding terminal escapes is shown, not obeyed.

Example::

    armored = sign(data, key)                       # bytes of report.json.sig
    result = verify(data, armored, signers, identity="auditor@example.jp")
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import struct
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from reports.safe_text import printable
from reports.signing.allowed_signers import AllowedSigner, authorize
from reports.signing.errors import (
    BadSignature,
    MalformedSignature,
    UnsupportedSignature,
    WrongNamespace,
)
from reports.signing.keys import ED25519, ed25519_blob, fingerprint

NAMESPACE = "mamoru-report"
MAGIC = b"SSHSIG"
VERSION = 1
HASH_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
DEFAULT_HASH = "sha512"
BEGIN = b"-----BEGIN SSH SIGNATURE-----\n"
END = b"-----END SSH SIGNATURE-----"
WRAP = 70  # ssh-keygen's sshbuf_dtob64 wraps at 70 (the spec only says SHOULD wrap at 76)


def ssh_string(data: bytes) -> bytes:
    """RFC 4251 ``string``: uint32 big-endian length, then the bytes."""
    return struct.pack(">I", len(data)) + data


class _Reader:
    """Reads RFC 4251 fields and turns every short read into a MalformedSignature."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise MalformedSignature(f"{self.what} is truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def text(self, field: str) -> str:
        raw = self.string()
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedSignature(f"{self.what}: {field} is not ASCII") from None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise MalformedSignature(f"{self.what} has {len(self.data) - self.pos} bytes of trailing data")


def signed_data(namespace: str, hash_alg: str, data: bytes) -> bytes:
    """What the key actually signs (PROTOCOL.sshsig §3): preamble, namespace, reserved, hash name, H(file)."""
    digest = HASH_ALGORITHMS[hash_alg](data).digest()
    return (MAGIC + ssh_string(namespace.encode()) + ssh_string(b"") + ssh_string(hash_alg.encode())
            + ssh_string(digest))


def armor(blob: bytes) -> bytes:
    b64 = base64.b64encode(blob)
    lines = [b64[i:i + WRAP] for i in range(0, len(b64), WRAP)]
    return BEGIN + b"\n".join(lines) + b"\n" + END + b"\n"


def dearmor(text: bytes) -> bytes:
    """The blob inside the armor; the same leniency as ssh-keygen (whitespace inside, anything after END)."""
    if not text.strip():
        raise MalformedSignature("the signature file is empty")
    if not text.startswith(BEGIN):
        if text.startswith(BEGIN.rstrip(b"\n") + b"\r\n"):
            raise MalformedSignature("the signature file has Windows line endings (CRLF); ssh-keygen rejects "
                                     "them too: restore the original file (e.g. git config core.autocrlf false)")
        raise MalformedSignature("not an SSH signature: missing '-----BEGIN SSH SIGNATURE-----' header")
    body = text[len(BEGIN):]
    end = body.find(b"\n" + END)
    if end < 0:
        raise MalformedSignature("the signature is truncated: missing '-----END SSH SIGNATURE-----' footer")
    b64 = b"".join(body[:end].split())
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedSignature("the signature is damaged: its base64 does not decode") from None


def sign(data: bytes, key: Ed25519PrivateKey, *, namespace: str = NAMESPACE, hash_alg: str = DEFAULT_HASH) -> bytes:
    """The armored detached signature of ``data`` (exact bytes), as ``ssh-keygen -Y sign`` writes it."""
    if not namespace:
        raise ValueError("SSHSIG namespace must not be empty")
    if hash_alg not in HASH_ALGORITHMS:
        raise ValueError(f"unsupported hash algorithm {hash_alg!r}")
    raw = key.sign(signed_data(namespace, hash_alg, data))
    pub = ed25519_blob(key.public_key())
    blob = (MAGIC + struct.pack(">I", VERSION) + ssh_string(pub) + ssh_string(namespace.encode())
            + ssh_string(b"") + ssh_string(hash_alg.encode())
            + ssh_string(ssh_string(ED25519.encode()) + ssh_string(raw)))
    return armor(blob)


@dataclasses.dataclass(frozen=True)
class ParsedSignature:
    public_key: bytes  # the SSH wire blob of the key the signature claims
    namespace: str
    hash_alg: str
    signature: bytes  # raw 64-byte Ed25519 signature


def parse(armored: bytes, *, namespace: str = NAMESPACE) -> ParsedSignature:
    """Structure checks (armor .. key type) before any trust decision; raises the specific error."""
    blob = dearmor(armored)
    r = _Reader(blob, "the signature")
    if not blob.startswith(MAGIC):
        raise MalformedSignature("not an SSH signature: bad magic (expected 'SSHSIG')")
    r.take(len(MAGIC))
    version = r.uint32()
    if version != VERSION:
        raise UnsupportedSignature(f"SSHSIG version {version} is not supported (only version {VERSION})")
    public_key = r.string()
    got_ns = r.text("namespace")
    r.string()  # reserved: ignored, as the spec says
    hash_alg = r.text("hash algorithm")
    sig_blob = r.string()
    r.end()
    if got_ns != namespace:
        raise WrongNamespace(f'the signature was made for namespace "{printable(got_ns)}", not "{namespace}"')
    if hash_alg not in HASH_ALGORITHMS:
        raise UnsupportedSignature(f'hash algorithm "{printable(hash_alg)}" is not supported (sha256 or sha512)')
    kr = _Reader(public_key, "the signature's public key")
    key_type = kr.text("key type")
    if key_type != ED25519:
        raise UnsupportedSignature(f'key type "{printable(key_type)}" is not supported (only {ED25519})')
    if len(kr.string()) != 32:
        raise MalformedSignature("the signature's Ed25519 public key is not 32 bytes")
    kr.end()
    sr = _Reader(sig_blob, "the signature value")
    sig_type = sr.text("signature type")
    if sig_type != ED25519:
        raise UnsupportedSignature(f'signature type "{printable(sig_type)}" does not match key type {ED25519}')
    raw = sr.string()
    sr.end()
    if len(raw) != 64:
        raise MalformedSignature("the Ed25519 signature value is not 64 bytes")
    return ParsedSignature(public_key=public_key, namespace=got_ns, hash_alg=hash_alg, signature=raw)


@dataclasses.dataclass(frozen=True)
class Verified:
    principals: tuple[str, ...]  # the allowed_signers principals fields that vouched for the key
    fingerprint: str
    hash_alg: str
    namespace: str


def verify(data: bytes, armored: bytes, signers: list[AllowedSigner], *, identity: str | None = None,
           namespace: str = NAMESPACE, when: float | None = None) -> Verified:
    """Verify ``armored`` over the exact bytes ``data``; returns who vouched for the key or raises.

    ``identity`` None accepts any principal listed for the key (like ``ssh-keygen -Y find-principals``);
    ``when`` is the time the allowed_signers validity window is checked at (default: now).
    """
    parsed = parse(armored, namespace=namespace)
    principals = authorize(signers, parsed.public_key, identity=identity, namespace=namespace,
                           when=time.time() if when is None else when)
    key = Ed25519PublicKey.from_public_bytes(parsed.public_key[-32:])  # parse() checked the layout
    try:
        key.verify(parsed.signature, signed_data(namespace, parsed.hash_alg, data))
    except InvalidSignature:
        raise BadSignature("bad signature: the report is not the file that was signed "
                           "(at least one byte differs)") from None
    return Verified(principals=principals, fingerprint=fingerprint(parsed.public_key), hash_alg=parsed.hash_alg,
                    namespace=parsed.namespace)
