"""IA-02, IA-03, IA-05, PM-02, PM-04 on real configuration files, real login records and a real non-root scan.

PAM and pwquality inputs are third-party files from ../shared/corpus, read at test time. Login records
are written by the real tools (``lastlog --set`` and ``utmpdump --reverse``); records older than today,
which no tool can write, are packed in the same layout the real tool's output was just parsed in.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import finding, require, require_corpus, require_root, require_tool

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
MakeRootfs = Callable[[dict[str, str | bytes]], Path]

PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "alice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
          "bob:x:1001:1001:Bob:/home/bob:/bin/bash\n")
GROUP = "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\nbob:x:1001:\n"
TODAY = int(time.time() // 86400)


def shadow(**days: int | str) -> str:
    """A shadow file; each user's value is its last-change day, or 'locked'/'expired'."""
    lines = ["root:$6$FAKEHASH:19700:0:99999:7:::", "daemon:*:19700:0:99999:7:::"]
    for name, v in days.items():
        if v == "locked":
            lines.append(f"{name}:!$y$FAKEHASH:{TODAY - 400}:0:99999:7:::")
        elif v == "expired":
            lines.append(f"{name}:$y$FAKEHASH:{TODAY - 500}:0:99999:7::{TODAY - 400}:")
        else:
            lines.append(f"{name}:$y$FAKEHASH:{v}:0:99999:7:::")
    return "\n".join(lines) + "\n"


def judge(run_cli: Run, root: Path, check: str, tmp_path: Path, policy: str | None = None) -> dict[str, Any]:
    args = ["scan", "--target", f"rootfs:{root}", "--check", check, "--quiet", "--lang", "en"]
    if policy is not None:
        pol = tmp_path / f"policy-{check}.yaml"
        pol.write_text(policy)
        args += ["--policy", str(pol)]
    _, doc, _, _ = run_cli(*args)
    assert doc is not None
    return finding(doc, check)


def corpus(name: str) -> str:
    return require_corpus("host-config", name).read_text()


# --- IA-02 password quality ------------------------------------------------------------------------

def test_ia02_cracklib_with_required_classes_passes(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    root = make_rootfs({"/etc/pam.d/passwd": "@include common-password\n",
                        "/etc/pam.d/common-password": corpus("secure-debian-configs__pam.d_common-password")})
    f = judge(run_cli, root, "IA-02", tmp_path, "password: {min_length: 12, min_classes: 4}\n")
    assert f["status"] == "pass", f
    assert f["evidence"]["min_length"] == 15 and f["evidence"]["classes"] == 4
    assert f["evidence"]["modules"][0]["module"] == "pam_cracklib.so"


def test_ia02_pwquality_reads_its_conf_file(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    files = {"/etc/pam.d/passwd": "@include common-password\n",
             "/etc/pam.d/common-password": corpus("Born2beroot__pam.d_common-password")}
    root = make_rootfs(files)
    # No pwquality.conf: libpwquality's own default minlen (8) applies.
    assert judge(run_cli, root, "IA-02", tmp_path, "password: {min_length: 10}\n")["status"] == "fail"
    (root / "etc/security").mkdir(parents=True)
    (root / "etc/security/pwquality.conf").write_text(corpus("Born2beroot__pwquality.conf"))
    f = judge(run_cli, root, "IA-02", tmp_path, "password: {min_length: 10, min_classes: 3}\n")
    assert f["status"] == "pass", f
    assert f["evidence"]["min_length"] == 10 and f["evidence"]["classes"] == 3
    # A drop-in read after the main file lowers it again, as libpwquality applies it.
    (root / "etc/security/pwquality.conf.d").mkdir()
    (root / "etc/security/pwquality.conf.d/50-local.conf").write_text("minlen = 6\n")
    f = judge(run_cli, root, "IA-02", tmp_path)
    assert f["status"] == "fail" and "6 characters" in f["message"]["en"]


def test_ia02_rhel_default_cracklib_credits_lower_the_minimum(run_cli: Run, make_rootfs: MakeRootfs,
                                                               tmp_path: Path) -> None:
    # pam_cracklib with its defaults: minlen 9 minus four 1-point credits, floored at 6.
    root = make_rootfs({"/etc/pam.d/passwd": "password   substack     system-auth\n",
                        "/etc/pam.d/system-auth": corpus("ygh_linux_dump__pam.d_system-auth-ac")})
    f = judge(run_cli, root, "IA-02", tmp_path)
    assert f["status"] == "fail", f
    assert f["evidence"]["min_length"] == 6
    cracklib = next(m for m in f["evidence"]["modules"] if m["module"] == "pam_cracklib.so")
    assert cracklib["credits"] == {"dcredit": 1, "ucredit": 1, "lcredit": 1, "ocredit": 1}


def test_ia02_debian_default_is_six(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    root = make_rootfs({"/etc/pam.d/passwd": "@include common-password\n",
                        "/etc/pam.d/common-password": "password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\n"
                                                      "password\trequisite\t\t\tpam_deny.so\n"})
    f = judge(run_cli, root, "IA-02", tmp_path)
    assert f["status"] == "fail" and f["evidence"]["min_length"] == 6


def test_ia02_module_not_installed(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    libdir = "/usr/lib/x86_64-linux-gnu/security"
    files = {"/etc/pam.d/passwd": "-password requisite pam_pwquality.so minlen=14\n"
                                  "password [success=1 default=ignore] pam_unix.so obscure\n",
             f"{libdir}/pam_unix.so": b"\x7fELF"}
    root = make_rootfs(files)
    # A "-password" line whose module is absent is skipped by PAM: only pam_unix (6) is left.
    f = judge(run_cli, root, "IA-02", tmp_path)
    assert f["status"] == "fail" and f["evidence"]["min_length"] == 6
    (root / "etc/pam.d/passwd").write_text("password requisite pam_pwquality.so minlen=14\n")
    f = judge(run_cli, root, "IA-02", tmp_path)
    assert f["status"] == "error" and "not installed" in f["message"]["en"]
    (root / libdir.lstrip("/") / "pam_pwquality.so").write_bytes(b"\x7fELF")
    assert judge(run_cli, root, "IA-02", tmp_path)["status"] == "pass"


def test_ia02_no_pam_uses_login_defs(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    root = make_rootfs({"/etc/login.defs": corpus("secure-debian-configs__login.defs") + "PASS_MIN_LEN 12\n"})
    f = judge(run_cli, root, "IA-02", tmp_path)
    assert f["status"] == "pass" and f["evidence"]["source"] == "/etc/login.defs PASS_MIN_LEN"
    root2 = make_rootfs({"/etc/login.defs": corpus("secure-debian-configs__login.defs")})
    assert judge(run_cli, root2, "IA-02", tmp_path)["status"] == "error"  # no PASS_MIN_LEN: unknown


IA02_MALFORMED = [
    ({"/etc/pam.d/passwd": "password requisit pam_pwquality.so\n"}, "unknown control"),
    ({"/etc/pam.d/passwd": "passwd required pam_unix.so\n"}, "unknown type"),
    ({"/etc/pam.d/passwd": "password [success=1 default=ignore pam_unix.so\n"}, "unterminated"),
    ({"/etc/pam.d/passwd": "@include common-password\n"}, "not found"),
    ({"/etc/pam.d/passwd": "@include common-password\n", "/etc/pam.d/common-password": "@include passwd\n"},
     "include loop"),
    ({"/etc/pam.d/passwd": "password requisite pam_pwquality.so\n",
      "/etc/security/pwquality.conf": "minlen = ten\n"}, "needs a number"),
    ({"/etc/pam.d/passwd": "password requisite pam_pwquality.so\n",
      "/etc/security/pwquality.conf": "minimum_length = 12\n"}, "unknown setting"),
    ({"/etc/pam.d/passwd": "password requisite pam_cracklib.so minlen=x\n"}, "not a number"),
    ({"/etc/pam.d/passwd": b"password requisite pam_pwquality.so minlen=\xff\n"}, "UTF-8"),
]


@pytest.mark.parametrize(("files", "reason"), IA02_MALFORMED)
def test_ia02_malformed_is_error(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path,
                                 files: dict[str, str | bytes], reason: str) -> None:
    f = judge(run_cli, make_rootfs(files), "IA-02", tmp_path)
    assert f["status"] == "error", f
    assert reason in f["message"]["en"]


# --- IA-03 lockout -----------------------------------------------------------------------------------

DEBIAN_COMMON_AUTH = ("auth\t[success=1 default=ignore]\tpam_unix.so nullok\n"
                      "auth\trequisite\t\t\tpam_deny.so\nauth\trequired\t\t\tpam_permit.so\n")
FAILLOCK_AUTH = ("auth required pam_faillock.so preauth\n"
                 "auth [success=1 default=ignore] pam_unix.so nullok\n"
                 "auth [default=die] pam_faillock.so authfail\n"
                 "auth sufficient pam_faillock.so authsucc\n"
                 "auth requisite pam_deny.so\nauth required pam_permit.so\n")


def lockout_root(make_rootfs: MakeRootfs, common_auth: str, extra: dict[str, str | bytes] | None = None) -> Path:
    files: dict[str, str | bytes] = {
        "/etc/pam.d/login": "auth optional pam_faildelay.so delay=3000000\n@include common-auth\n",
        "/etc/pam.d/sshd": "@include common-auth\naccount required pam_nologin.so\n",
        "/etc/pam.d/common-auth": common_auth,
        "/etc/ssh/sshd_config": "UsePAM yes\nPermitRootLogin no\n",
        "/usr/sbin/sshd": b"",
    }
    files.update(extra or {})
    return make_rootfs(files)


def test_ia03_pam_tally2_from_corpus_passes(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    root = lockout_root(make_rootfs, corpus("secure-debian-configs__pam.d_common-auth"))
    f = judge(run_cli, root, "IA-03", tmp_path)
    assert f["status"] == "pass", f
    mech = f["evidence"]["sshd"]["mechanisms"][0]
    assert (mech["module"], mech["deny"], mech["unlock_time"]) == ("pam_tally2.so", 5, 900)


def test_ia03_faillock_with_conf_file(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    root = lockout_root(make_rootfs, FAILLOCK_AUTH)
    f = judge(run_cli, root, "IA-03", tmp_path)
    assert f["status"] == "pass"  # pam_faillock's defaults: deny=3, unlock_time=600
    assert f["evidence"]["login"]["mechanisms"][0]["deny"] == 3
    (root / "etc/security").mkdir(parents=True)
    (root / "etc/security/faillock.conf").write_text("# local\ndeny = 20\nunlock_time = 900\neven_deny_root\n")
    f = judge(run_cli, root, "IA-03", tmp_path)
    assert f["status"] == "fail" and "deny=20" in f["message"]["en"]
    # An argument overrides the file, as pam_faillock applies it.
    (root / "etc/pam.d/common-auth").write_text(FAILLOCK_AUTH.replace("preauth", "preauth deny=5"))
    assert judge(run_cli, root, "IA-03", tmp_path)["status"] == "pass"
    f = judge(run_cli, root, "IA-03", tmp_path, "lockout: {min_unlock_seconds: 1800}\n")
    assert f["status"] == "fail" and "unlock_time=900" in f["message"]["en"]


def test_ia03_fails_without_lockout(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    f = judge(run_cli, lockout_root(make_rootfs, DEBIAN_COMMON_AUTH), "IA-03", tmp_path)
    assert f["status"] == "fail" and "login: no pam_faillock" in f["message"]["en"]
    # authfail without preauth: a locked account still gets in with the right password.
    half = FAILLOCK_AUTH.replace("auth required pam_faillock.so preauth\n", "")
    f = judge(run_cli, lockout_root(make_rootfs, half), "IA-03", tmp_path)
    assert f["status"] == "fail" and "preauth" in f["message"]["en"]
    tally_no_deny = "auth required pam_tally2.so onerr=fail\n" + DEBIAN_COMMON_AUTH
    f = judge(run_cli, lockout_root(make_rootfs, tally_no_deny), "IA-03", tmp_path)
    assert f["status"] == "fail" and "deny=0" in f["message"]["en"]


def test_ia03_ssh_without_pam_bypasses_lockout(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    root = lockout_root(make_rootfs, FAILLOCK_AUTH, {"/etc/ssh/sshd_config": "UsePAM no\n"})
    f = judge(run_cli, root, "IA-03", tmp_path)
    assert f["status"] == "fail" and "UsePAM no" in f["message"]["en"]
    (root / "etc/ssh/sshd_config").write_text("UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n")
    assert judge(run_cli, root, "IA-03", tmp_path)["status"] == "pass"


@pytest.mark.parametrize(("common_auth", "extra", "reason"), [
    (FAILLOCK_AUTH, {"/etc/security/faillock.conf": "deny = lots\n"}, "needs a number"),
    (FAILLOCK_AUTH, {"/etc/security/faillock.conf": "lockout = 3\n"}, "unknown setting"),
    ("auth required pam_tally2.so deny=five\n", {}, "not a number"),
    ("auth required pam_faillock.so preauth conf=/etc/other.conf\n", {}, "not read"),
    ("auth required\n", {}, "needs a type, a control and a module"),
])
def test_ia03_malformed_is_error(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path, common_auth: str,
                                 extra: dict[str, str | bytes], reason: str) -> None:
    f = judge(run_cli, lockout_root(make_rootfs, common_auth, extra), "IA-03", tmp_path)
    assert f["status"] == "error", f
    assert reason in f["message"]["en"]


def test_ia02_ia03_on_this_host(run_cli: Run) -> None:
    """The local PAM stacks parse; on a stock Debian both checks have a verdict, never an error."""
    _, doc, _, _ = run_cli("scan", "--check", "IA-02", "--check", "IA-03", "--quiet")
    assert doc is not None
    for check in ("IA-02", "IA-03"):
        f = finding(doc, check)
        assert f["status"] in ("pass", "fail"), f
    assert finding(doc, "IA-02")["evidence"]["file"].startswith("/etc/pam.d/")


# --- IA-05 shared identities ---------------------------------------------------------------------------

def test_ia05(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    root = make_rootfs({"/etc/passwd": PASSWD, "/etc/group": GROUP})
    f = judge(run_cli, root, "IA-05", tmp_path)
    assert f["status"] == "pass" and f["evidence"]["users"] == 4
    (root / "etc/passwd").write_text(PASSWD + "office:x:1001:1001:Shared:/home/office:/bin/bash\n"
                                     "alice:x:1005:1005::/home/alice2:/bin/sh\n")
    (root / "etc/group").write_text(GROUP + "staff:x:1000:\n")
    f = judge(run_cli, root, "IA-05", tmp_path)
    assert f["status"] == "fail"
    assert f["evidence"]["duplicate_uids"] == {"1001": ["bob", "office"]}
    assert f["evidence"]["duplicate_user_names"] == ["alice"]
    assert f["evidence"]["duplicate_gids"] == {"1000": ["alice", "staff"]}
    (root / "etc/group").write_text(GROUP + "broken:x:\n")
    assert judge(run_cli, root, "IA-05", tmp_path)["status"] == "error"


# --- PM-02 administrators -------------------------------------------------------------------------------

def admin_root(make_rootfs: MakeRootfs, sudoers: str, group: str = GROUP) -> Path:
    return make_rootfs({"/etc/passwd": PASSWD + "carol:x:1002:1002::/home/carol:/bin/bash\n"
                                                "dave:x:1003:100::/home/dave:/bin/bash\n",
                        "/etc/group": group, "/etc/sudoers": sudoers, "/usr/bin/sudo": b""})


def test_pm02_manual_then_pass_then_fail(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    root = admin_root(make_rootfs, "root ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n")
    f = judge(run_cli, root, "PM-02", tmp_path)
    assert f["status"] == "manual" and "alice" in f["message"]["en"]
    assert f["evidence"]["administrators"] == {"alice": ["group sudo", "sudoers /etc/sudoers:2"]}
    f = judge(run_cli, root, "PM-02", tmp_path, "accounts: {approved_admins: [alice, zoe]}\n")
    assert f["status"] == "pass" and f["evidence"]["not_admin_now"] == ["zoe"]
    (root / "etc/sudoers").write_text(
        "User_Alias OPS = carol, %#100\nCmnd_Alias EVERYTHING = ALL\n"
        "root ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\nOPS ALL = (root) EVERYTHING\n"
        "bob ALL = (www-data) ALL\nbob ALL = /usr/bin/systemctl restart nginx\n")
    (root / "etc/group").write_text(GROUP + "users:x:100:\nwheel:x:10:bob\n")
    f = judge(run_cli, root, "PM-02", tmp_path, "accounts: {approved_admins: [alice]}\n")
    assert f["status"] == "fail", f
    admins = f["evidence"]["administrators"]
    assert set(admins) == {"alice", "bob", "carol", "dave"}  # dave: primary group 100 via %#100
    assert admins["bob"] == ["group wheel"]  # his sudo rules run as www-data or one command: not admin


def test_pm02_everyone_and_unresolvable(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    f = judge(run_cli, admin_root(make_rootfs, "ALL ALL=(ALL) ALL\n"), "PM-02", tmp_path)
    assert f["status"] == "fail" and "every user" in f["message"]["en"]
    f = judge(run_cli, admin_root(make_rootfs, "+admins ALL=(ALL) ALL\n"), "PM-02", tmp_path)
    assert f["status"] == "error" and "+admins" in f["message"]["en"]
    f = judge(run_cli, admin_root(make_rootfs, "root ALL=(ALL) ALL\n", "root:x:0:\n"), "PM-02", tmp_path)
    assert f["status"] == "pass" and "Nobody but root" in f["message"]["en"]
    f = judge(run_cli, admin_root(make_rootfs, "alice ALL=(ALL) ALL\nbob\n"), "PM-02", tmp_path)
    assert f["status"] == "error" and "syntax error" in f["message"]["en"]


# --- PM-04 dormant accounts -----------------------------------------------------------------------------

def lastlog_record(when: int) -> bytes:
    return struct.pack("<i32s256s", when, b"pts/0", b"192.0.2.7")


def wtmp_from_text(lines: list[str]) -> bytes:
    require_tool("utmpdump")
    return subprocess.run(["utmpdump", "--reverse"], input="".join(lines).encode(), capture_output=True,
                          check=True).stdout


def utmp_line(user: str, iso: str) -> str:
    return f"[7] [01234] [ts/0] [{user:<8}] [pts/0       ] [192.0.2.1           ] [192.0.2.1      ] [{iso}]\n"


@pytest.mark.needs_root
def test_pm04_real_lastlog_and_wtmp(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    require_root()
    require_tool("lastlog")
    root = make_rootfs({"/etc/passwd": PASSWD, "/etc/group": GROUP, "/etc/shadow": shadow(alice=TODAY - 400, bob=TODAY - 400),
                        "/var/log/lastlog": b""})
    # The real shadow-utils tool writes alice's record (now) in the binary file the collector parses.
    subprocess.run(["lastlog", "--root", str(root), "--set", "--user", "alice"], check=True, capture_output=True)
    # bob's last session, 200 days ago, written by util-linux into wtmp.
    old = time.strftime("%Y-%m-%dT%H:%M:%S,000000+00:00", time.gmtime(time.time() - 200 * 86400))
    (root / "var/log/wtmp").write_bytes(wtmp_from_text([utmp_line("bob", old)]))
    f = judge(run_cli, root, "PM-04", tmp_path)
    assert f["status"] == "fail", f
    assert f["message"]["en"].endswith("bob (200 days)")
    assert "(0 days ago)" in f["evidence"]["accounts"]["alice"]
    # Exempting bob (a sealed break-glass account) leaves only active accounts.
    f = judge(run_cli, root, "PM-04", tmp_path, "accounts: {dormant_exempt: [bob]}\n")
    assert f["status"] == "pass" and f["evidence"]["exempt"] == ["bob"]


def test_pm04_never_logged_in_locked_and_expired(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    now = int(time.time())
    lastlog = b"\0" * 292 * 1000 + lastlog_record(now - 86400 * 3)  # UID 1000 (alice): 3 days ago
    files: dict[str, str | bytes] = {
        "/etc/passwd": PASSWD + "carol:x:1002:1002::/home/carol:/bin/bash\n"
                                "dave:x:1003:1003::/home/dave:/bin/bash\n"
                                "erin:x:1004:1004::/home/erin:/bin/bash\n",
        "/etc/shadow": shadow(alice=TODAY - 400, bob=TODAY - 5, carol="locked", dave="expired", erin="locked"),
        "/home/erin/.ssh/authorized_keys": "ssh-ed25519 AAAA test\n",
        "/var/log/lastlog": lastlog,
    }
    root = make_rootfs(files)
    f = judge(run_cli, root, "PM-04", tmp_path)
    ev = f["evidence"]["accounts"]
    assert ev["bob"].startswith("never logged in; password set")  # new account: not dormant yet
    assert ev["carol"] == "disabled (password locked, no SSH keys)"
    assert ev["dave"].startswith("disabled (expired")
    assert ev["erin"].startswith("never logged in")  # locked password, but an SSH key still logs in
    assert f["status"] == "fail" and "erin (never logged in)" in f["message"]["en"]
    (root / "home/erin/.ssh/authorized_keys").unlink()
    f = judge(run_cli, root, "PM-04", tmp_path)
    assert f["status"] == "pass" and "2 enabled" in f["message"]["en"], f


@pytest.mark.parametrize(("path", "content", "reason"), [
    ("/var/log/lastlog", b"\0" * 291, "not a multiple"),
    ("/var/lib/lastlog/lastlog2.db", b"SQLite format 3\0garbage", "lastlog2"),
    ("/etc/login.defs", "UID_MIN one\n", "not numbers"),
    ("/etc/shadow", "alice:$y$FAKEHASH:19000\n", "malformed"),
])
def test_pm04_malformed_is_error(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path, path: str,
                                 content: str | bytes, reason: str) -> None:
    files: dict[str, str | bytes] = {"/etc/passwd": PASSWD, "/etc/shadow": shadow(alice=TODAY, bob=TODAY),
                                     "/var/log/lastlog": b""}
    files[path] = content
    f = judge(run_cli, make_rootfs(files), "PM-04", tmp_path)
    assert f["status"] == "error", f
    assert reason in f["message"]["en"]


def test_pm04_no_login_records_is_error(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    f = judge(run_cli, make_rootfs({"/etc/passwd": PASSWD, "/etc/shadow": shadow(alice=TODAY, bob=TODAY)}),
              "PM-04", tmp_path)
    assert f["status"] == "error" and "no login records" in f["message"]["en"]


# --- fail closed for real: the same scan as an unprivileged user ------------------------------------------

def _as_nobody(mamoru: Path, out: Path, target: str, checks: tuple[str, ...]) -> dict[str, Any]:
    report = out / f"report-{len(list(out.iterdir()))}.json"
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(mamoru), "scan", "--target", target,
            "--quiet", "--lang", "en", "--output", str(report)]
    for c in checks:
        argv += ["--check", c]
    proc = subprocess.run(argv, capture_output=True, env={**os.environ, "HOME": str(out)})
    assert report.exists(), proc.stderr.decode()[-2000:]
    doc: dict[str, Any] = json.loads(report.read_text())
    assert doc["run"]["operator"]["user"] in ("nobody", "65534")
    return doc


@pytest.mark.needs_root
def test_unprivileged_scan_is_error_not_pass() -> None:
    """As ``nobody``, /etc/shadow and /etc/sudoers are unreadable: every check that needs them says so."""
    require_root()
    require_tool("setpriv")
    mamoru = Path(sys.executable).with_name("mamoru")
    require(mamoru.exists(), f"{mamoru} missing")
    # pytest's own temp root is private to root: use a directory nobody can reach.
    out = Path(tempfile.mkdtemp(prefix="mamoru-nobody-", dir="/tmp"))
    try:
        os.chmod(out, 0o777)
        probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(mamoru),
                                "--help"], capture_output=True)
        require(probe.returncode == 0, f"nobody cannot run {mamoru}: {probe.stderr[-300:]!r}")
        # This host: root has a login shell, so IA-01 needs /etc/shadow (0640 root:shadow).
        require(Path("/etc/sudoers").exists(), "sudo is not installed")
        doc = _as_nobody(mamoru, out, "local", ("IA-01", "PM-03"))
        for check in ("IA-01", "PM-03"):
            f = finding(doc, check)
            assert f["status"] == "error" and "run as root" in f["message"]["en"], f
        # An image with a person account, its shadow and sudoers as root-only as on a real system.
        root = out / "root"
        (root / "etc").mkdir(parents=True)
        (root / "usr/bin").mkdir(parents=True)
        (root / "var/log").mkdir(parents=True)
        (root / "etc/passwd").write_text(PASSWD)
        (root / "etc/group").write_text(GROUP)
        (root / "etc/shadow").write_text(shadow(alice=TODAY, bob=TODAY))
        (root / "etc/sudoers").write_text("%sudo ALL=(ALL:ALL) ALL\n")
        (root / "usr/bin/sudo").write_bytes(b"")
        (root / "var/log/lastlog").write_bytes(b"")
        os.chmod(root / "etc/shadow", 0o600)
        os.chmod(root / "etc/sudoers", 0o440)
        for d in (root, root / "etc", root / "usr", root / "usr/bin", root / "var", root / "var/log"):
            os.chmod(d, 0o755)
        doc = _as_nobody(mamoru, out, f"rootfs:{root}", ("IA-01", "PM-02", "PM-04"))
        for check in ("IA-01", "PM-02", "PM-04"):
            f = finding(doc, check)
            assert f["status"] == "error" and "run as root" in f["message"]["en"], f
    finally:
        shutil.rmtree(out)
