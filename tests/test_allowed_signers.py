"""The allowed_signers parser: OpenSSH's syntax, OpenSSH's answers, and plain errors with file:line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reports.signing import allowed_signers as a
from reports.signing import sshsig
from reports.signing.errors import AllowedSignersError, IdentityMismatch, UnknownKey
from reports.signing.keys import SigningKey, create_key_files, public_line
from tests.signing_helpers import IDENTITY, NS, need_ssh_keygen, ssh_verify


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return create_key_files(tmp_path_factory.mktemp("k") / "key", comment="k")


@pytest.fixture(scope="module")
def pub(key: SigningKey) -> str:
    return public_line(key.public_blob)


def test_full_line_with_every_option(pub: str) -> None:
    [s] = a.parse(f'# comment\n\n  {IDENTITY},*@office.example.jp '
                  f'NameSpaces="mamoru-report,git",VALID-AFTER="20240101Z",valid-before="20300101120000Z" '
                  f"{pub} trailing key comment\n", "f")
    assert s.principals == f"{IDENTITY},*@office.example.jp"
    assert s.namespaces == "mamoru-report,git"
    assert s.valid_after == 1704067200 and s.valid_before == 1893499200
    assert s.key_type == "ssh-ed25519" and not s.cert_authority and s.source == "f:3"


def test_quoted_principals_and_escaped_quotes(pub: str) -> None:
    [s] = a.parse(f'"first@example.jp,second@example.jp" namespaces="a\\"b" {pub}', "f")
    assert s.principals == "first@example.jp,second@example.jp"
    assert s.namespaces == 'a"b'


def test_cert_authority_is_parsed_but_never_matches(pub: str, key: SigningKey) -> None:
    signers = a.parse(f"*@example.jp cert-authority {pub}", "f")
    assert signers[0].cert_authority
    with pytest.raises(UnknownKey):
        a.authorize(signers, key.public_blob, identity=IDENTITY, namespace=NS, when=time.time())


def test_other_key_types_are_accepted_in_the_file() -> None:
    # A real RSA public key line of someone else must not make the file unusable.
    rsa = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDDdlT8vIGJzVJ9eBzw1Cy5jNZpP+vCFgB/7qDyGbrBQ4m6rFkQMz1ZWTI3KZD"
           "a8hvZ+2SwS1XH+2U4ZPVs+Kvsh8e5uK8eV4lWzsDYcp8nMy8aV5JmSQo0QkZ2Nv/0y1q2CsJ0IJrhNuqv1HSGkmYF6XyAlWq6oPqT"
           "VhX3FkjC2w==")
    [s] = a.parse(f"x@example.jp {rsa}", "f")
    assert s.key_type == "ssh-rsa"


@pytest.mark.parametrize("line, message", [
    ("x@example.jp", "needs principals and a key"),
    ("x@example.jp ssh-ed25519", "missing base64 key"),
    ("x@example.jp ssh-ed25519 !!!notbase64", "base64"),
    ("x@example.jp ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "malformed ssh-ed25519"),
    ("x@example.jp ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGBnMQ1TJmzkY8VlBI4zMXR4uazCR4RDmTEdJpMNRzyB",
     "not a ssh-rsa key"),
    ('x@example.jp bogus-option {pub}', "unknown option"),
    ('x@example.jp namespaces=mamoru-report {pub}', "double-quoted"),
    ('x@example.jp namespaces="a",namespaces="b" {pub}', "multiple"),
    ('x@example.jp valid-before="2024" {pub}', "valid-before"),
    ('x@example.jp valid-before="20241301" {pub}', "valid-before"),
    ('x@example.jp valid-after="20300101Z",valid-before="20200101Z" {pub}', "not after"),
    ('x@example.jp namespaces="unterminated {pub}', "quote"),
    ('"x@example.jp {pub}', "unterminated quote"),
    ('x@example.jp namespaces="a", {pub}', "comma"),
    ('x@example.jp cert-authority', "missing key"),
])
def test_malformed_lines_name_file_and_line(tmp_path: Path, pub: str, line: str, message: str) -> None:
    path = tmp_path / "allowed_signers"
    path.write_text("# first line is a comment\n" + line.format(pub=pub) + "\n")
    with pytest.raises(AllowedSignersError) as e:
        a.load(path)
    assert f"{path}:2:" in str(e.value) and message in str(e.value)
    assert e.value.exit_code == 2


def test_unusable_files(tmp_path: Path) -> None:
    with pytest.raises(AllowedSignersError, match="no such file"):
        a.load(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.write_text("# nobody\n\n")
    with pytest.raises(AllowedSignersError, match="lists no signer"):
        a.load(empty)
    binary = tmp_path / "binary"
    binary.write_bytes(b"# ok\n\xff\xfe\n")
    with pytest.raises(AllowedSignersError, match=":2: not UTF-8"):
        a.load(binary)


@pytest.mark.parametrize("patterns, identity, expected", [
    ("auditor@example.jp", "auditor@example.jp", 1),
    ("auditor@example.jp", "auditor@example.com", 0),
    ("*@example.jp", "anyone@example.jp", 1),
    ("*@example.jp,!mallory@example.jp", "mallory@example.jp", -1),
    ("!mallory@example.jp,*@example.jp", "alice@example.jp", 1),
    ("a?c@x", "abc@x", 1),
    ("a?c@x", "abbc@x", 0),
    ("a.c@x", "abc@x", 0),  # no regex metacharacters
    ("*", "", 1),
])
def test_pattern_lists_like_openssh(patterns: str, identity: str, expected: int) -> None:
    assert a.match_pattern_list(identity, patterns) == expected


def test_times_like_openssh() -> None:
    assert a.parse_absolute_time("20240101Z") == 1704067200
    assert a.parse_absolute_time("202401010930Z") == 1704101400
    assert a.parse_absolute_time("20240101093015z") == 1704101415
    assert a.parse_absolute_time("20240101UTC") == 1704067200
    assert a.parse_absolute_time("20240101") == int(time.mktime(time.strptime("2024-01-01", "%Y-%m-%d")))
    for bad in ("2024", "2024010", "20240230Z", "2024010112Z3", "abcdefgh", ""):
        with pytest.raises(ValueError):
            a.parse_absolute_time(bad)


def test_identity_is_optional_and_reports_who(key: SigningKey, pub: str) -> None:
    signers = a.parse(f"alice@example.jp {pub}\nbob@example.jp namespaces=\"git\" {pub}\n", "f")
    assert a.authorize(signers, key.public_blob, identity=None, namespace=NS, when=time.time()) == (
        "alice@example.jp",)
    with pytest.raises(IdentityMismatch, match=r"alice@example\.jp"):
        a.authorize(signers, key.public_blob, identity="carol@example.jp", namespace=NS, when=time.time())


@pytest.mark.needs_service
@pytest.mark.parametrize("line, identity, accepted", [
    ('"auditor@example.jp,backup@example.jp" {pub}', "backup@example.jp", True),
    ('*@example.jp,!mallory@example.jp NAMESPACES="mamoru-report" {pub} comment', "mallory@example.jp", False),
    ('*@example.jp,!mallory@example.jp NAMESPACES="mamoru-report" {pub} comment', "alice@example.jp", True),
    ('auditor@example.jp namespaces="git,mamoru-*",valid-after="20200101" {pub}', IDENTITY, True),
    ('auditor@example.jp namespaces="git,!mamoru-*,*" {pub}', IDENTITY, False),
    ('auditor@example.jp cert-authority {pub}', IDENTITY, False),
    ('AUDITOR@example.jp {pub}', IDENTITY, False),  # principals are case-sensitive
])
def test_same_answer_as_ssh_keygen(tmp_path: Path, key: SigningKey, pub: str, line: str, identity: str,
                                   accepted: bool) -> None:
    need_ssh_keygen()
    data = b"the exact bytes of a report\n"
    sig = tmp_path / "r.sig"
    sig.write_bytes(sshsig.sign(data, key.private))
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(line.format(pub=pub) + "\n")
    rc, out = ssh_verify(allowed, sig, data, identity=identity)
    assert (rc == 0) is accepted, out
    signers = a.load(allowed)
    if accepted:
        sshsig.verify(data, sig.read_bytes(), signers, identity=identity)
    else:
        with pytest.raises(Exception) as e:
            sshsig.verify(data, sig.read_bytes(), signers, identity=identity)
        assert e.type.__name__ in {"IdentityMismatch", "UnknownKey", "NamespaceNotAllowed"}
