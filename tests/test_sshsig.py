"""SSHSIG against the real ``ssh-keygen`` (OpenSSH), in both directions, and every way it must fail."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports.signing import allowed_signers, sshsig
from reports.signing.errors import (
    BadSignature,
    IdentityMismatch,
    MalformedSignature,
    NamespaceNotAllowed,
    SignerExpired,
    SignerNotYetValid,
    UnknownKey,
    UnsupportedSignature,
    VerificationError,
    WrongNamespace,
)
from reports.signing.keys import SigningKey, allowed_signers_line, create_key_files, load_signing_key
from tests.signing_helpers import (
    HARDENED,
    IDENTITY,
    NS,
    need_ssh_keygen,
    ssh_keygen_key,
    ssh_sign,
    ssh_verify,
)

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
pytestmark = pytest.mark.needs_service


@pytest.fixture
def report(run_cli: Run, tmp_path: Path) -> Path:
    """A real report written by ``mamoru scan`` (run_cli validated it against the schema)."""
    out = tmp_path / "report.json"
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--quiet", "--output", str(out))
    assert doc is not None and out.stat().st_size > 1000
    return out


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return create_key_files(tmp_path / "keys" / "signing_key", comment=IDENTITY)


def write_allowed(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def allowed(tmp_path: Path, key: SigningKey) -> Path:
    return write_allowed(tmp_path / "allowed_signers", "# recipients' trust list",
                         allowed_signers_line(IDENTITY, key.public_blob, NS))


def mamoru_verify(data: bytes, sig: bytes, allowed_path: Path, **kw: Any) -> sshsig.Verified:
    return sshsig.verify(data, sig, allowed_signers.load(allowed_path), **kw)


# --- interoperability ------------------------------------------------------------------------------------

def test_byte_identical_to_ssh_keygen(report: Path, key: SigningKey) -> None:
    """Same key, same file: our .sig is ssh-keygen's, byte for byte (armor at 70 columns, trailing newline)."""
    need_ssh_keygen()
    theirs = ssh_sign(Path(key.path), report)
    ours = sshsig.sign(report.read_bytes(), key.private)
    assert ours == theirs
    lines = ours.decode().splitlines()
    assert lines[0] == "-----BEGIN SSH SIGNATURE-----" and lines[-1] == "-----END SSH SIGNATURE-----"
    assert all(len(line) == 70 for line in lines[1:-2]) and 0 < len(lines[-2]) <= 70


def test_byte_identical_with_a_key_made_by_ssh_keygen(report: Path, tmp_path: Path) -> None:
    need_ssh_keygen()
    path = ssh_keygen_key(tmp_path / "id_ed25519")
    theirs = ssh_sign(path, report)
    assert sshsig.sign(report.read_bytes(), load_signing_key(path).private) == theirs
    theirs256 = ssh_sign(path, report, hashalg="sha256")
    assert sshsig.sign(report.read_bytes(), load_signing_key(path).private, hash_alg="sha256") == theirs256


@pytest.mark.parametrize("hash_alg", ["sha512", "sha256"])
def test_ssh_keygen_accepts_our_signature(report: Path, key: SigningKey, allowed: Path, tmp_path: Path,
                                          hash_alg: str) -> None:
    need_ssh_keygen()
    sig = tmp_path / "ours.sig"
    sig.write_bytes(sshsig.sign(report.read_bytes(), key.private, hash_alg=hash_alg))
    rc, out = ssh_verify(allowed, sig, report.read_bytes())
    assert rc == 0, out
    assert f'Good "{NS}" signature for {IDENTITY} with ED25519 key {key.fingerprint}' in out


@pytest.mark.parametrize("hashalg", [None, "sha256"])
def test_we_accept_ssh_keygen_signatures(report: Path, key: SigningKey, allowed: Path,
                                         hashalg: str | None) -> None:
    need_ssh_keygen()
    theirs = ssh_sign(Path(key.path), report, hashalg=hashalg)
    good = mamoru_verify(report.read_bytes(), theirs, allowed, identity=IDENTITY)
    assert good.hash_alg == (hashalg or "sha512")
    assert good.principals == (IDENTITY,) and good.fingerprint == key.fingerprint


# --- a changed byte ----------------------------------------------------------------------------------------

def flipped(data: bytes, pos: int, rng: random.Random) -> bytes:
    return data[:pos] + bytes([data[pos] ^ rng.randrange(1, 256)]) + data[pos + 1:]


def test_every_sampled_byte_flip_is_rejected_by_mamoru(report: Path, key: SigningKey, allowed: Path) -> None:
    data = report.read_bytes()
    sig = sshsig.sign(data, key.private)
    signers = allowed_signers.load(allowed)
    rng = random.Random(3)
    positions = sorted(set(rng.sample(range(len(data)), min(len(data), 600))) | {0, len(data) - 1})
    assert len(positions) >= 500
    for pos in positions:
        with pytest.raises(BadSignature):
            sshsig.verify(flipped(data, pos, rng), sig, signers, identity=IDENTITY)
    # Appending or dropping a byte is a change too.
    for changed in (data + b"\n", data[:-1], b" " + data):
        with pytest.raises(BadSignature):
            sshsig.verify(changed, sig, signers, identity=IDENTITY)
    assert sshsig.verify(data, sig, signers, identity=IDENTITY).principals == (IDENTITY,)


def test_byte_flips_are_rejected_by_ssh_keygen_too(report: Path, key: SigningKey, allowed: Path,
                                                   tmp_path: Path) -> None:
    need_ssh_keygen()
    data = report.read_bytes()
    sig = tmp_path / "report.sig"
    sig.write_bytes(sshsig.sign(data, key.private))
    assert ssh_verify(allowed, sig, data)[0] == 0
    rng = random.Random(7)
    for pos in rng.sample(range(len(data)), 40):
        rc, out = ssh_verify(allowed, sig, flipped(data, pos, rng))
        assert rc != 0 and "Could not verify signature" in out, pos


def test_flips_inside_the_signature_never_verify(report: Path, key: SigningKey, allowed: Path) -> None:
    """Damage in the blob itself: a specific error every time, never a pass and never a crash."""
    data = report.read_bytes()
    blob = sshsig.dearmor(sshsig.sign(data, key.private))
    signers = allowed_signers.load(allowed)
    rng = random.Random(11)
    for pos in range(len(blob)):
        bad = sshsig.armor(flipped(blob, pos, rng))
        with pytest.raises(VerificationError):
            sshsig.verify(data, bad, signers, identity=IDENTITY)


# --- trust decisions, with both verifiers ---------------------------------------------------------------------

def test_wrong_namespace(report: Path, key: SigningKey, allowed: Path, tmp_path: Path) -> None:
    need_ssh_keygen()
    data = report.read_bytes()
    other = ssh_sign(Path(key.path), report, namespace="file")
    with pytest.raises(WrongNamespace, match='namespace "file", not "mamoru-report"'):
        mamoru_verify(data, other, allowed, identity=IDENTITY)
    sig = tmp_path / "other.sig"
    sig.write_bytes(other)
    assert ssh_verify(allowed, sig, data)[0] != 0
    # and one of ours presented as another namespace: ssh-keygen refuses it as well
    ours = tmp_path / "ours.sig"
    ours.write_bytes(sshsig.sign(data, key.private))
    assert ssh_verify(allowed, ours, data, namespace="file")[0] != 0
    with pytest.raises(WrongNamespace):
        sshsig.verify(data, ours.read_bytes(), allowed_signers.load(allowed), namespace="file")


def _ours(report: Path, key: SigningKey, tmp_path: Path) -> Path:
    sig = tmp_path / "ours.sig"
    sig.write_bytes(sshsig.sign(report.read_bytes(), key.private))
    return sig


def test_wrong_identity(report: Path, key: SigningKey, allowed: Path, tmp_path: Path) -> None:
    need_ssh_keygen()
    sig = _ours(report, key, tmp_path)
    assert ssh_verify(allowed, sig, report.read_bytes(), identity="someone@else.example")[0] != 0
    with pytest.raises(IdentityMismatch, match=r"someone@else\.example"):
        mamoru_verify(report.read_bytes(), sig.read_bytes(), allowed, identity="someone@else.example")


def test_key_not_listed(report: Path, key: SigningKey, tmp_path: Path) -> None:
    need_ssh_keygen()
    stranger = create_key_files(tmp_path / "stranger", comment="x")
    allowed = write_allowed(tmp_path / "as", allowed_signers_line(IDENTITY, stranger.public_blob, NS))
    sig = _ours(report, key, tmp_path)
    assert ssh_verify(allowed, sig, report.read_bytes())[0] != 0
    with pytest.raises(UnknownKey, match=key.fingerprint.replace("+", r"\+")):
        mamoru_verify(report.read_bytes(), sig.read_bytes(), allowed, identity=IDENTITY)
    with pytest.raises(UnknownKey):  # without --identity as well
        mamoru_verify(report.read_bytes(), sig.read_bytes(), allowed)


def test_namespaces_option_that_excludes_ours(report: Path, key: SigningKey, tmp_path: Path) -> None:
    need_ssh_keygen()
    line = allowed_signers_line(IDENTITY, key.public_blob, "git,file")
    allowed = write_allowed(tmp_path / "as", line)
    sig = _ours(report, key, tmp_path)
    assert ssh_verify(allowed, sig, report.read_bytes())[0] != 0
    with pytest.raises(NamespaceNotAllowed, match=r"as:1"):
        mamoru_verify(report.read_bytes(), sig.read_bytes(), allowed, identity=IDENTITY)
    # A pattern that does include ours passes both.
    allowed2 = write_allowed(tmp_path / "as2", allowed_signers_line(IDENTITY, key.public_blob, "git,mamoru-*"))
    assert ssh_verify(allowed2, sig, report.read_bytes())[0] == 0
    mamoru_verify(report.read_bytes(), sig.read_bytes(), allowed2, identity=IDENTITY)


def test_validity_window(report: Path, key: SigningKey, tmp_path: Path) -> None:
    need_ssh_keygen()
    pub = allowed_signers_line(IDENTITY, key.public_blob, NS).split(" ", 2)[2]
    sig = _ours(report, key, tmp_path)
    data = report.read_bytes()
    expired = write_allowed(tmp_path / "expired", f'{IDENTITY} valid-before="20200101Z",namespaces="{NS}" {pub}')
    assert ssh_verify(expired, sig, data)[0] != 0
    with pytest.raises(SignerExpired, match="2020-01-01T00:00:00Z"):
        mamoru_verify(data, sig.read_bytes(), expired, identity=IDENTITY)
    future = write_allowed(tmp_path / "future", f'{IDENTITY} valid-after="29990101Z" {pub}')
    assert ssh_verify(future, sig, data)[0] != 0
    with pytest.raises(SignerNotYetValid):
        mamoru_verify(data, sig.read_bytes(), future, identity=IDENTITY)
    # Checked at a time inside the window (ssh-keygen -O verify-time / our when=), both accept.
    assert ssh_verify(expired, sig, data, verify_time="20190601Z")[0] == 0
    when = allowed_signers.parse_absolute_time("20190601Z")
    mamoru_verify(data, sig.read_bytes(), expired, identity=IDENTITY, when=when)
    window = write_allowed(tmp_path / "window", f'{IDENTITY} valid-after="20200101",valid-before="29990101" {pub}')
    assert ssh_verify(window, sig, data)[0] == 0
    mamoru_verify(data, sig.read_bytes(), window, identity=IDENTITY)


@pytest.mark.parametrize("damage", ["truncated", "no_footer", "garbage", "empty", "bad_base64", "crlf",
                                    "short_blob", "trailing_data"])
def test_damaged_signature_files(report: Path, key: SigningKey, allowed: Path, tmp_path: Path,
                                 damage: str) -> None:
    need_ssh_keygen()
    data = report.read_bytes()
    good = sshsig.sign(data, key.private)
    blob = sshsig.dearmor(good)
    bad = {
        "truncated": good[: len(good) // 2],
        "no_footer": good.replace(b"-----END SSH SIGNATURE-----\n", b""),
        "garbage": b"\x00\xffthis is not a signature\n" * 4,
        "empty": b"",
        "bad_base64": good.replace(good.splitlines()[2], b"!" * 70),
        "crlf": good.replace(b"\n", b"\r\n"),
        "short_blob": sshsig.armor(blob[:40]),
        "trailing_data": sshsig.armor(blob + b"\x00"),
    }[damage]
    sig = tmp_path / "bad.sig"
    sig.write_bytes(bad)
    assert ssh_verify(allowed, sig, data)[0] != 0
    with pytest.raises(MalformedSignature) as e:
        mamoru_verify(data, bad, allowed, identity=IDENTITY)
    assert "Traceback" not in str(e.value) and len(str(e.value).splitlines()) == 1


def test_unsupported_parts_are_named(report: Path, key: SigningKey, allowed: Path, tmp_path: Path) -> None:
    """Version, hash algorithm and key type each get their own message (blobs edited field by field)."""
    need_ssh_keygen()
    data = report.read_bytes()
    blob = sshsig.dearmor(sshsig.sign(data, key.private))
    v2 = blob[:6] + b"\x00\x00\x00\x02" + blob[10:]
    with pytest.raises(UnsupportedSignature, match="version 2"):
        mamoru_verify(data, sshsig.armor(v2), allowed)
    md5 = blob.replace(sshsig.ssh_string(b"sha512"), sshsig.ssh_string(b"md5xxx"))
    with pytest.raises(UnsupportedSignature, match="md5xxx"):
        mamoru_verify(data, sshsig.armor(md5), allowed)
    rsa = ssh_keygen_key(tmp_path / "rsa", key_type="rsa")
    with pytest.raises(UnsupportedSignature, match="ssh-rsa"):
        mamoru_verify(data, ssh_sign(rsa, report), allowed)
    with pytest.raises(MalformedSignature, match="magic"):
        mamoru_verify(data, sshsig.armor(b"XXXSIG" + blob[6:]), allowed)


def test_embedded_key_alone_is_never_trusted(report: Path, tmp_path: Path) -> None:
    """A forger signs with their own key: the signature is internally perfect, yet nobody vouched for it."""
    data = report.read_bytes()
    forger = create_key_files(tmp_path / "forger", comment="x")
    honest = create_key_files(tmp_path / "honest", comment="x")
    allowed = write_allowed(tmp_path / "as", allowed_signers_line(IDENTITY, honest.public_blob, NS))
    with pytest.raises(UnknownKey):
        mamoru_verify(data, sshsig.sign(data, forger.private), allowed)


def test_armor_wraps_like_ssh_keygen() -> None:
    blob = bytes(range(256)) * 2
    armored = sshsig.armor(blob)
    body = armored.decode().splitlines()[1:-1]
    assert "".join(body) == base64.b64encode(blob).decode()
    assert [len(x) for x in body[:-1]] == [70] * (len(body) - 1)
    assert sshsig.dearmor(armored) == blob
