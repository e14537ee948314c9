"""What a renderer may say about a report's signature: checked here, never taken from the report itself.

A report that says "signed" about itself proves nothing. The cover of an HTML report (and every other format
that shows it) states what *this* run of ``mamoru report`` found beside the file:

- ``verified``: the ``.sig`` verifies over the exact bytes and its key is in the allowed_signers file given;
- ``unverified_signer``: the ``.sig`` verifies over the exact bytes for the key it names, but no
  allowed_signers file was given, so who holds that key is not established (anyone can sign with a new key);
- ``invalid``: there is a ``.sig`` and it does not verify (a byte differs, wrong namespace, key not allowed …);
- ``unsigned``: there is no ``.sig``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from reports.signing.errors import VerificationError

Status = Literal["verified", "unverified_signer", "invalid", "unsigned"]
MAX_SIG_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class SignatureInfo:
    status: Status
    fingerprint: str | None = None  # SHA256:… of the key the signature names
    principals: tuple[str, ...] = ()  # allowed_signers principals that vouched (verified only)
    problem: str | None = None  # why ``invalid`` (English, for the evidence; formats show the status word)


def signature_info(data: bytes, sig_path: Path, *, allowed_signers: str | None = None,
                   identity: str | None = None) -> SignatureInfo:
    from reports.signing import sshsig
    from reports.signing.keys import fingerprint

    try:
        if sig_path.stat().st_size > MAX_SIG_BYTES:
            return SignatureInfo(status="invalid", problem=f"{sig_path.name} is far too large for a signature")
        armored = sig_path.read_bytes()
    except FileNotFoundError:
        return SignatureInfo(status="unsigned")
    except OSError as e:
        return SignatureInfo(status="invalid", problem=f"{sig_path.name}: cannot read it ({e.strerror})")
    try:
        parsed = sshsig.parse(armored)
    except VerificationError as e:
        return SignatureInfo(status="invalid", problem=str(e))
    fp = fingerprint(parsed.public_key)
    if allowed_signers is not None:
        from reports.signing import allowed_signers as allowed

        signers = allowed.load(allowed_signers)  # a malformed file is the user's config error (exit 2)
        try:
            v = sshsig.verify(data, armored, signers, identity=identity)
        except VerificationError as e:
            return SignatureInfo(status="invalid", fingerprint=fp, problem=str(e))
        return SignatureInfo(status="verified", fingerprint=v.fingerprint, principals=v.principals)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(parsed.public_key[-32:])  # parse() checked the layout
    try:
        key.verify(parsed.signature, sshsig.signed_data(parsed.namespace, parsed.hash_alg, data))
    except InvalidSignature:
        return SignatureInfo(status="invalid", fingerprint=fp,
                             problem="bad signature: the report is not the file that was signed")
    return SignatureInfo(status="unverified_signer", fingerprint=fp)
