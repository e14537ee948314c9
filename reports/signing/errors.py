"""Errors of signing and verification, each with its own plain message and hint.

A recipient checking a report needs to know *which* thing is wrong (no
signature, a key nobody vouched for, a signature meant for something else, a
signer whose validity ran out, a changed byte) because each has a different
next step. Every failure of the evidence itself exits 1; a wrong file name or a
malformed allowed_signers file is a configuration problem and exits 2.
"""

from __future__ import annotations

from agent.errors import ConfigError, MamoruError


class VerificationError(MamoruError):
    """The report could not be shown to be authentic. Exit 1."""

    exit_code = 1
    hint = "do not rely on this report until the sender explains the difference"


class SignatureMissing(VerificationError):
    hint = "the report is unsigned; ask the sender for REPORT.sig (made with mamoru scan --sign-key)"


class MalformedSignature(VerificationError):
    hint = "the .sig file is truncated, damaged or not an SSH signature; ask the sender for it again"


class UnsupportedSignature(VerificationError):
    hint = "mamoru reports are signed with Ed25519 keys and sha256/sha512 (SSHSIG version 1)"


class WrongNamespace(VerificationError):
    hint = 'mamoru report signatures use the namespace "mamoru-report"; this one was made for something else'


class UnknownKey(VerificationError):
    hint = "the signing key is in no line of the allowed_signers file; add it only after checking it with the sender"


class IdentityMismatch(VerificationError):
    hint = "the key is trusted, but for another identity; check --identity"


class NamespaceNotAllowed(VerificationError):
    hint = 'the allowed_signers line for this key has namespaces="..." that does not include mamoru-report'


class SignerExpired(VerificationError):
    hint = "the allowed_signers line has valid-before in the past; --verify-time checks against another date"


class SignerNotYetValid(VerificationError):
    hint = "the allowed_signers line has valid-after in the future; --verify-time checks against another date"


class BadSignature(VerificationError):
    hint = "the report bytes are not the ones that were signed: it was changed after signing"


class ChainBroken(VerificationError):
    hint = "a report of the series was removed, altered, renamed or reordered"


class AllowedSignersError(ConfigError):
    """The allowed_signers file itself is malformed (message names file:line). Exit 2."""

    hint = "format: PRINCIPALS [OPTIONS] ssh-ed25519 BASE64KEY (see ssh-keygen(1), ALLOWED SIGNERS)"


class SigningKeyError(ConfigError):
    """The signing key cannot be used (missing, wrong type, wrong passphrase). Exit 2."""

    hint = "make a key with: mamoru keygen --output PATH (or use an OpenSSH ed25519 private key)"
