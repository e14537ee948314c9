"""The first seven checks on pass, fail and malformed root filesystems, through the real CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, finding

CORE = ("IA-01", "IA-04", "PM-01", "PM-03", "LG-02", "TX-04", "PH-01")
HARDENED = FIXTURES / "rootfs" / "hardened"
WEAK = FIXTURES / "rootfs" / "weak"
Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]


def scan(run_cli: Run, root: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["scan", "--target", f"rootfs:{root}", "--lang", "en", "--quiet"]
    for c in CORE:
        args += ["--check", c]
    rc, doc, _, _ = run_cli(*args, *extra)
    assert doc is not None
    return rc, doc


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    def copy(src: Path) -> Path:
        dst = tmp_path / ("copy-" + src.name)
        shutil.copytree(src, dst, symlinks=True)
        return dst

    return copy


def test_hardened_rootfs_passes_everything(run_cli: Run) -> None:
    rc, doc = scan(run_cli, HARDENED)
    statuses = {f["check"]: f["status"] for f in doc["findings"]}
    assert statuses == dict.fromkeys(CORE, "pass"), json.dumps(doc["findings"], indent=1)[:3000]
    assert rc == 0
    assert doc["targets"][0]["hostname"] == "fileserver"
    assert doc["targets"][0]["os"] == "Debian GNU/Linux 12"
    # Evidence documents *why*: first value wins over the main file, and Match blocks do not leak.
    ia04 = finding(doc, "IA-04")
    assert ia04["evidence"]["permitrootlogin"] == "no"
    assert ia04["evidence"]["maxauthtries"] == 3
    tx04 = finding(doc, "TX-04")
    assert "hmac-sha1" not in tx04["evidence"]["macs"]
    assert "hmac-sha2-256" in tx04["evidence"]["macs"]  # "-hmac-sha1*" removed only the SHA-1 MACs
    lg02 = finding(doc, "LG-02")
    assert lg02["evidence"]["stores"][0]["days"] == 371.0
    pm03 = finding(doc, "PM-03")
    assert "/etc/sudoers.d/README.disabled" not in pm03["evidence"]["files"]


def test_weak_rootfs_fails_everything(run_cli: Run) -> None:
    rc, doc = scan(run_cli, WEAK)
    statuses = {f["check"]: f["status"] for f in doc["findings"]}
    assert statuses == dict.fromkeys(CORE, "fail"), json.dumps(doc["findings"], indent=1)[:3000]
    assert rc == 1
    assert "guest" in finding(doc, "IA-01")["message"]["en"]
    assert "bob" in finding(doc, "IA-01")["message"]["en"]
    assert finding(doc, "PM-01")["evidence"]["uid0_accounts"] == ["root", "toor"]
    ia04 = finding(doc, "IA-04")["message"]["en"]
    assert "PermitRootLogin yes" in ia04 and "PermitEmptyPasswords yes" in ia04 and "MaxAuthTries 10" in ia04
    weak = finding(doc, "TX-04")["evidence"]["weak"]
    assert weak == ["aes128-cbc", "hmac-sha1", "diffie-hellman-group14-sha1"]
    rules = finding(doc, "PM-03")["evidence"]["passwordless_all"]
    assert any("deploy -> EVERYTHING" in r for r in rules)  # through a Cmnd_Alias
    assert any("/etc/sudoers.d/90-cloud" in r for r in rules)  # through #includedir
    lg02 = finding(doc, "LG-02")
    assert lg02["evidence"]["stores"][0]["days"] == 28.0  # the global "rotate 4" x weekly
    ph01 = finding(doc, "PH-01")["message"]["en"]
    assert "1800" in ph01 and "not locked" in ph01  # the distribution override raised idle-delay


def test_no_secret_reaches_the_report(run_cli: Run, tmp_path: Path) -> None:
    for root in (HARDENED, WEAK):
        _, doc = scan(run_cli, root)
        text = json.dumps(doc)
        assert "FAKEHASH" not in text and "$6$" not in text and "$y$" not in text


def test_report_in_japanese_and_english(run_cli: Run) -> None:
    _, doc = scan(run_cli, WEAK)
    for f in doc["findings"]:
        for field in ("title", "message", "remediation"):
            assert f[field]["ja"] and f[field]["en"] and f[field]["ja"] != f[field]["en"]


def _status(run_cli: Run, root: Path, check: str) -> dict[str, Any]:
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", check, "--quiet")
    assert doc is not None
    return finding(doc, check)


# --- malformed input: every one of these must be `error` with a reason, never pass -----------------

MALFORMED: list[tuple[str, str, str | bytes, str]] = [
    ("IA-01", "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/al", "malformed"),
    ("IA-01", "/etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n\xff\xfeguest::1:1::/:/bin/sh\n", "UTF-8"),
    ("PM-01", "/etc/passwd", "root:x:zero:0:root:/root:/bin/bash\n", "malformed"),
    ("IA-01", "/etc/shadow", "root:$6$FAKEHASHxx:19700\n", "malformed"),
    ("IA-04", "/etc/ssh/sshd_config", "PermitRootLogin no\nPermitRootLogn no\n", "Bad configuration option"),
    ("IA-04", "/etc/ssh/sshd_config", "PermitRootLogin maybe\n", "unsupported option"),
    ("IA-04", "/etc/ssh/sshd_config", b"PermitRootLogin no\nBanner \xff\n", "UTF-8"),
    ("IA-04", "/etc/ssh/sshd_config", "Include /etc/ssh/loop.conf\n", "Include loop"),
    ("TX-04", "/etc/ssh/sshd_config", "MaxAuthTries 3\nCiphers \"aes256-ctr\n", "quotation"),
    ("PM-03", "/etc/sudoers", "root ALL=(ALL) ALL\n@include /etc/sudoers.d/a\n", "include loop"),
    ("PM-03", "/etc/sudoers", "root ALL\n", "syntax error"),
    ("LG-02", "/etc/logrotate.d/rsyslog", "/var/log/auth.log {\n weekly\n rotate 53\n", "never closed"),
    ("LG-02", "/etc/logrotate.d/rsyslog", "/var/log/auth.log {\n weekly\n rotate many\n}\n", "needs a number"),
    ("PH-01", "/etc/dconf/db/local.d/00-screensaver", "idle-delay=uint32 300\n", "not a keyfile line"),
    ("PH-01", "/usr/share/glib-2.0/schemas/org.gnome.desktop.session.gschema.xml", "<schemalist><schema", ""),
]


@pytest.mark.parametrize(("check", "path", "content", "reason"), MALFORMED)
def test_malformed_input_is_error_never_pass(
    run_cli: Run, copy_of: Callable[[Path], Path], check: str, path: str, content: str | bytes, reason: str
) -> None:
    root = copy_of(HARDENED)
    dest = root / path.lstrip("/")
    if isinstance(content, bytes):
        dest.write_bytes(content)
    else:
        dest.write_text(content)
    (root / "etc/ssh/loop.conf").write_text("Include /etc/ssh/sshd_config\n")
    (root / "etc/sudoers.d/a").write_text("@include /etc/sudoers\n")
    f = _status(run_cli, root, check)
    assert f["status"] == "error", f
    assert reason in f["message"]["en"], f["message"]["en"]


def test_huge_file_is_error(run_cli: Run, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(HARDENED)
    with (root / "etc/passwd").open("wb") as fh:
        fh.write(b"root:x:0:0:root:/root:/bin/bash\n")
        fh.truncate(50 * 1024 * 1024)
    f = _status(run_cli, root, "IA-01")
    assert f["status"] == "error" and "cap" in f["message"]["en"]


def test_missing_files_are_never_pass(run_cli: Run, tmp_path: Path) -> None:
    root = tmp_path / "empty"
    (root / "etc").mkdir(parents=True)
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", *[a for c in CORE for a in ("--check", c)], "--quiet")
    assert doc is not None
    statuses = {f["check"]: f["status"] for f in doc["findings"]}
    assert statuses["IA-01"] == "error" and statuses["PM-01"] == "error"  # no /etc/passwd: cannot tell
    assert statuses["IA-04"] == statuses["TX-04"] == "not_applicable"  # no sshd at all
    assert statuses["PM-03"] == "not_applicable"  # no sudo
    assert statuses["PH-01"] == "not_applicable"  # no desktop
    assert statuses["LG-02"] == "fail"  # nothing keeps authentication records
    assert "pass" not in statuses.values()


def test_sshd_binary_without_config_is_error(run_cli: Run, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(HARDENED)
    (root / "etc/ssh/sshd_config").unlink()
    f = _status(run_cli, root, "IA-04")
    assert f["status"] == "error" and "no such file" in f["message"]["en"]


def test_journald_persistent_with_long_retention_passes(run_cli: Run, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(WEAK)
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/lib/systemd/systemd-journald").write_text("")
    (root / "etc/systemd/journald.conf.d").mkdir(parents=True)
    (root / "etc/systemd/journald.conf").write_text("[Journal]\nStorage=volatile\n")
    (root / "etc/systemd/journald.conf.d/retention.conf").write_text("[Journal]\nStorage=persistent\nMaxRetentionSec=13month\n")
    f = _status(run_cli, root, "LG-02")
    assert f["status"] == "fail", f  # configured, but no journal file on disk: nothing is kept yet
    assert f["evidence"]["stores"][-1]["not_counted"]
    (root / "var/log/journal/3d1219c7c4c5404aaa1f6d2a48adfda4").mkdir(parents=True)
    (root / "var/log/journal/3d1219c7c4c5404aaa1f6d2a48adfda4/system.journal").write_bytes(b"LPKSHHRH")
    f = _status(run_cli, root, "LG-02")
    assert f["status"] == "pass", f
    (root / "etc/systemd/journald.conf.d/retention.conf").write_text("[Journal]\nStorage=persistent\nMaxRetentionSec=3month\n")
    assert _status(run_cli, root, "LG-02")["status"] == "fail"
    (root / "etc/systemd/journald.conf.d/retention.conf").write_text("[Journal]\nStorage=persistent\nMaxRetentionSec=a while\n")
    assert _status(run_cli, root, "LG-02")["status"] == "error"


def test_policy_changes_the_verdict(run_cli: Run, tmp_path: Path) -> None:
    pol = tmp_path / "lenient.yaml"
    pol.write_text("sshd:\n  permit_root_login: [\"no\", prohibit-password]\n  max_auth_tries: 3\nlogging:\n  retention_days: 400\n")
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--policy", str(pol), "--check", "LG-02",
                            "--check", "IA-04", "--quiet")
    assert doc is not None
    assert finding(doc, "LG-02")["status"] == "fail"  # 371 days < 400
    assert finding(doc, "LG-02")["expected"]["retention_days"] == ">= 400"
    assert finding(doc, "IA-04")["status"] == "pass"
    assert doc["run"]["policy"]["name"] == "lenient"
