"""keygen, scan --sign-key and verify as a user runs them, checked against the real ssh-keygen."""

from __future__ import annotations

import base64
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from reports.signing import allowed_signers
from reports.signing.keys import load_signing_key
from tests.signing_helpers import (
    HARDENED,
    IDENTITY,
    NS,
    need_ssh_keygen,
    public_key_text,
    ssh_keygen_key,
    ssh_verify,
)

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
SCAN = ("scan", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--quiet")


@pytest.fixture
def keyfile(run_cli: Run, tmp_path: Path) -> tuple[Path, Path]:
    """``mamoru keygen`` → (private key path, allowed_signers file made from its printed line)."""
    key = tmp_path / "cfg" / "signing_key"
    rc, _, out, err = run_cli("keygen", "--output", str(key), "--identity", IDENTITY)
    assert rc == 0, err
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(out)
    return key, allowed


def test_keygen_writes_0600_prints_the_line_and_refuses_to_overwrite(run_cli: Run, tmp_path: Path) -> None:
    key = tmp_path / "cfg" / "signing_key"
    rc, _, out, err = run_cli("keygen", "--output", str(key), "--identity", IDENTITY)
    assert rc == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "cfg").stat().st_mode) == 0o700
    assert key.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    [line] = out.splitlines()
    assert line.startswith(f'{IDENTITY} namespaces="{NS}" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5')
    [signer] = allowed_signers.parse(out)
    loaded = load_signing_key(key)
    assert signer.key_blob == loaded.public_blob
    assert loaded.fingerprint in err
    assert (tmp_path / "cfg" / "signing_key.pub").read_text().split()[:2] == line.split()[2:4]
    before = key.read_bytes()
    rc, _, out2, err2 = run_cli("keygen", "--output", str(key))
    assert rc == 2 and "refusing to overwrite" in err2 and out2 == ""
    assert key.read_bytes() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "k.pub").write_text("keep me\n")
    rc, _, _, err3 = run_cli("keygen", "--output", str(tmp_path / "other" / "k"))
    assert rc == 2 and "k.pub already exists" in err3 and not (tmp_path / "other" / "k").exists()


@pytest.mark.needs_service
def test_keygen_fingerprint_and_key_work_with_ssh_keygen(keyfile: tuple[Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    need_ssh_keygen()
    key, _ = keyfile
    lf = subprocess.run(["ssh-keygen", "-lf", str(key)], capture_output=True, check=True, text=True).stdout
    assert lf.split()[1] == load_signing_key(key).fingerprint
    # ssh-keygen reads our private key (no passphrase) and derives the same public key
    assert public_key_text(key) == " ".join(Path(f"{key}.pub").read_text().split()[:2])


@pytest.mark.needs_service
def test_keygen_with_passphrase(run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_ssh_keygen()
    monkeypatch.setenv("MAMORU_KEY_PASSPHRASE", "correct horse")
    key = tmp_path / "k"
    assert run_cli("keygen", "--output", str(key), "--passphrase")[0] == 0
    wrong = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(key)], capture_output=True)
    assert wrong.returncode != 0
    right = subprocess.run(["ssh-keygen", "-y", "-P", "correct horse", "-f", str(key)], capture_output=True)
    assert right.returncode == 0
    assert load_signing_key(key).fingerprint  # via the environment variable


def test_keygen_default_path_follows_xdg(run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert run_cli("keygen")[0] == 0
    assert stat.S_IMODE((tmp_path / "xdg" / "mamoru" / "signing_key").stat().st_mode) == 0o600


@pytest.mark.needs_service
def test_scan_signs_and_both_verifiers_accept(run_cli: Run, keyfile: tuple[Path, Path], tmp_path: Path) -> None:
    need_ssh_keygen()
    key, allowed = keyfile
    out = tmp_path / "report.json"
    rc, doc, _, err = run_cli(*SCAN, "--sign-key", str(key), "--output", str(out))
    assert rc == 0 and doc is not None
    sig = Path(f"{out}.sig")
    assert sig.read_bytes().startswith(b"-----BEGIN SSH SIGNATURE-----\n")
    fp = load_signing_key(key).fingerprint
    assert fp in err and "UNSIGNED" not in err
    code, said = ssh_verify(allowed, sig, out.read_bytes())
    assert code == 0 and fp in said
    rc, _, stdout, err = run_cli("verify", str(out), "--allowed-signers", str(allowed), "--identity", IDENTITY)
    assert rc == 0, err
    assert stdout.startswith(f'Good "{NS}" signature for {IDENTITY} with ED25519 key {fp}')
    rc, _, stdout, _ = run_cli("verify", str(out), "--allowed-signers", str(allowed))  # identity optional
    assert rc == 0 and IDENTITY in stdout


def test_no_private_key_material_leaves_the_key_file(run_cli: Run, keyfile: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    key, _ = keyfile
    private = load_signing_key(key).private
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    body = "".join(key.read_text().splitlines()[1:-1])
    out = tmp_path / "report.json"
    _, _, stdout, err = run_cli(*SCAN, "--sign-key", str(key), "--output", str(out))
    produced = out.read_bytes() + Path(f"{out}.sig").read_bytes() + stdout.encode() + err.encode()
    for secret in (seed, seed.hex().encode(), base64.b64encode(seed).rstrip(b"="), body[40:80].encode()):
        assert secret not in produced
    assert "private=" not in repr(load_signing_key(key))  # the key object never prints its secret


def test_unsigned_scan_says_so(run_cli: Run, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    Path(f"{out}.sig").write_text("stale signature of an earlier report\n")
    rc, doc, _, err = run_cli(*SCAN, "--output", str(out))
    assert doc is not None and "UNSIGNED" in err
    assert not Path(f"{out}.sig").exists() and "removed the old" in err


def test_sign_key_without_output_is_a_usage_error(run_cli: Run, keyfile: tuple[Path, Path]) -> None:
    rc, _, _, err = run_cli(*SCAN, "--sign-key", str(keyfile[0]), report=False)
    assert rc == 2 and "--sign-key needs --output" in err


@pytest.mark.needs_service
def test_existing_ssh_keygen_keys_work_as_sign_key(run_cli: Run, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    need_ssh_keygen()
    plain = ssh_keygen_key(tmp_path / "id_ed25519")
    protected = ssh_keygen_key(tmp_path / "id_protected", passphrase="s3cret pass")
    for key in (plain, protected):
        allowed = tmp_path / f"allowed_{key.name}"
        allowed.write_text(f"{IDENTITY} {public_key_text(key) if key == plain else Path(f'{key}.pub').read_text()}")
    out = tmp_path / "a.json"
    rc, doc, _, err = run_cli(*SCAN, "--sign-key", str(plain), "--output", str(out))
    assert doc is not None and "signature written" in err
    assert ssh_verify(tmp_path / "allowed_id_ed25519", Path(f"{out}.sig"), out.read_bytes())[0] == 0
    # protected, no passphrase available (no terminal in tests, no variable): refused before scanning
    monkeypatch.delenv("MAMORU_KEY_PASSPHRASE", raising=False)
    out2 = tmp_path / "b.json"
    rc, _, _, err = run_cli(*SCAN, "--sign-key", str(protected), "--output", str(out2))
    assert rc == 2 and "passphrase-protected" in err and not out2.exists()
    monkeypatch.setenv("MAMORU_KEY_PASSPHRASE", "wrong")
    rc, _, _, err = run_cli(*SCAN, "--sign-key", str(protected), "--output", str(out2))
    assert rc == 2 and "wrong passphrase" in err and not out2.exists()
    monkeypatch.setenv("MAMORU_KEY_PASSPHRASE", "s3cret pass")
    rc, doc, _, err = run_cli(*SCAN, "--sign-key", str(protected), "--output", str(out2))
    assert doc is not None and "s3cret" not in err
    assert ssh_verify(tmp_path / "allowed_id_protected", Path(f"{out2}.sig"), out2.read_bytes())[0] == 0
    rc, _, _, err = run_cli("verify", str(out2), "--allowed-signers", str(tmp_path / "allowed_id_protected"))
    assert rc == 0, err


@pytest.mark.needs_service
def test_unusable_keys_are_refused_before_the_scan(run_cli: Run, tmp_path: Path) -> None:
    need_ssh_keygen()
    rsa = ssh_keygen_key(tmp_path / "id_rsa", key_type="rsa")
    loose = ssh_keygen_key(tmp_path / "id_loose")
    loose.chmod(0o644)
    garbage = tmp_path / "garbage"
    garbage.write_text("not a key")
    garbage.chmod(0o600)
    cases = {
        rsa: "Ed25519 keys only",
        Path(f"{rsa}.pub"): "public key",
        loose: "too open",
        garbage: "not an OpenSSH or PEM private key",
        tmp_path / "missing": "no such file",
    }
    for path, message in cases.items():
        if path.name.endswith(".pub"):
            path.chmod(0o600)
        out = tmp_path / "r.json"
        rc, _, _, err = run_cli(*SCAN, "--sign-key", str(path), "--output", str(out))
        assert rc == 2 and message in err, (path, err)
        assert not out.exists() and "Traceback" not in err


@pytest.mark.needs_service
def test_verify_errors_are_distinct_plain_and_exit_as_documented(run_cli: Run, keyfile: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    need_ssh_keygen()
    key, allowed = keyfile
    report = tmp_path / "report.json"
    run_cli(*SCAN, "--sign-key", str(key), "--output", str(report))
    sig = Path(f"{report}.sig")
    good_sig, data = sig.read_bytes(), report.read_bytes()
    pub = allowed.read_text().split(" ", 2)[2].strip()

    def verify(*extra: str, allowed_path: Path = allowed) -> tuple[int, str]:
        rc, _, _, err = run_cli("verify", str(report), "--allowed-signers", str(allowed_path), *extra)
        assert "Traceback" not in err
        return rc, err

    def allowed_file(name: str, line: str) -> Path:
        p = tmp_path / name
        p.write_text(line + "\n")
        return p

    firsts: dict[str, str] = {}

    def expect(name: str, want_rc: int, fragment: str, *extra: str, allowed_path: Path = allowed) -> None:
        rc, err = verify(*extra, allowed_path=allowed_path)
        assert rc == want_rc and fragment in err, (name, err)
        lines = err.strip().splitlines()
        assert lines[0].startswith("mamoru: error: ")
        if want_rc == 1:  # a failed verification always says what to do next
            assert len(lines) == 2 and lines[1].startswith("  hint: ")
        else:
            assert len(lines) <= 2
        firsts[name] = lines[0]

    assert verify()[0] == 0
    # signature file problems
    sig.unlink()
    expect("missing signature", 1, "no signature file")
    sig.write_bytes(good_sig[:100])
    expect("truncated", 1, "truncated")
    sig.write_bytes(b"\x89PNG garbage")
    expect("garbage", 1, "not an SSH signature")
    sig.write_bytes(good_sig)
    # trust problems
    expect("unknown key", 1, "not listed", allowed_path=allowed_file(
        "stranger", f"{IDENTITY} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGBnMQ1TJmzkY8VlBI4zMXR4uazCR4RDmTEdJpMNRzyB"))
    expect("identity", 1, "not for identity", "--identity", "other@example.jp")
    expect("namespaces=", 1, "allowed only for namespaces", allowed_path=allowed_file(
        "ns", f'{IDENTITY} namespaces="git" {pub}'))
    expect("expired", 1, "expired", allowed_path=allowed_file("exp", f'{IDENTITY} valid-before="20200101Z" {pub}'))
    expect("not yet valid", 1, "valid only from", allowed_path=allowed_file(
        "fut", f'{IDENTITY} valid-after="29990101Z" {pub}'))
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", "file", "-q", str(tmp_path / "allowed_signers")],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    expect("namespace", 1, 'namespace "file"', "--signature", str(tmp_path / "allowed_signers.sig"))
    report.write_bytes(data.replace(b'"pass"', b'"fail"', 1))
    expect("changed byte", 1, "bad signature")
    report.write_bytes(data)
    assert len(set(firsts.values())) == len(firsts)  # every cause reads differently
    # usage and configuration: exit 2
    expect("explicit signature missing", 2, "no such file", "--signature", str(tmp_path / "nope.sig"))
    expect("allowed_signers malformed", 2, f"{tmp_path / 'bad'}:1:", allowed_path=allowed_file(
        "bad", f"{IDENTITY} namespaces=unquoted {pub}"))
    expect("allowed_signers missing", 2, "no such file", allowed_path=tmp_path / "none")
    expect("bad verify-time", 2, "--verify-time", "--verify-time", "yesterday")
    assert verify("--verify-time", "20190101Z", allowed_path=tmp_path / "exp")[0] == 0
    rc, _, _, err = run_cli("verify", str(tmp_path / "none.json"), "--allowed-signers", str(allowed))
    assert rc == 2 and "no such file" in err
    rc, _, _, err = run_cli("verify", str(report), "--chain", str(tmp_path), "--allowed-signers", str(allowed))
    assert rc == 2 and "either REPORT or --chain" in err
    rc, _, _, err = run_cli("verify", str(report))
    assert rc == 2 and "--allowed-signers" in err


@pytest.mark.needs_service
def test_readme_recipient_command(run_cli: Run, keyfile: tuple[Path, Path], tmp_path: Path) -> None:
    """The README's recipient command, run exactly as written there (stdin redirected from the file)."""
    need_ssh_keygen()
    key, allowed = keyfile
    report = tmp_path / "report.json"
    run_cli(*SCAN, "--sign-key", str(key), "--output", str(report))
    with report.open("rb") as stdin:
        proc = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", IDENTITY, "-n", NS,
                               "-s", f"{report}.sig"], stdin=stdin, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith(f'Good "{NS}" signature for {IDENTITY}')
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "ssh-keygen -Y verify -f allowed_signers -I auditor@example.jp -n mamoru-report -s report.json.sig " \
           "< report.json" in readme
    assert 'cmd /c "ssh-keygen -Y verify' in readme
