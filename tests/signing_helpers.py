"""Helpers for the signing tests: the real ``ssh-keygen`` on one side, mamoru on the other."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import FIXTURES, require_tool

NS = "mamoru-report"
HARDENED = FIXTURES / "rootfs" / "hardened"
IDENTITY = "auditor@example.jp"


def need_ssh_keygen() -> None:
    require_tool("ssh-keygen")


def ssh_keygen_key(path: Path, *, passphrase: str = "", comment: str = "test@example.jp",
                   key_type: str = "ed25519") -> Path:
    """A key made by the real ssh-keygen, as a user's ~/.ssh/id_ed25519 would be."""
    args = ["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", comment, "-f", str(path)]
    if key_type == "rsa":
        args[4:4] = ["-b", "2048"]
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return path


def ssh_sign(key: Path, file: Path, *, namespace: str = NS, hashalg: str | None = None) -> bytes:
    """``ssh-keygen -Y sign``: returns the .sig bytes (and leaves FILE.sig beside FILE)."""
    sig = Path(f"{file}.sig")
    sig.unlink(missing_ok=True)  # ssh-keygen would ask before overwriting
    args = ["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", namespace]
    if hashalg:
        args += ["-O", f"hashalg={hashalg}"]
    subprocess.run([*args, str(file)], check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return sig.read_bytes()


def ssh_verify(allowed: Path, sig: Path, data: bytes, *, identity: str = IDENTITY, namespace: str = NS,
               verify_time: str | None = None) -> tuple[int, str]:
    """``ssh-keygen -Y verify ... < report``: (exit code, stdout+stderr)."""
    args = ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", identity, "-n", namespace, "-s", str(sig)]
    if verify_time:
        args += ["-O", f"verify-time={verify_time}"]
    proc = subprocess.run(args, input=data, capture_output=True, timeout=60)
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


def public_key_text(key: Path) -> str:
    """``ssh-keytype base64`` of a key file, via ssh-keygen -y (works for any key ssh-keygen made)."""
    out = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(key)], check=True, capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=60).stdout.decode()
    return " ".join(out.split()[:2])
