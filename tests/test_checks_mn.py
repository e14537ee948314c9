"""MN-01 (rsyslog/journal-upload forwarding), MN-02 (monitoring tools), MN-03 (this audit on a schedule)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config.policy import load_policy
from agent.targets.rootfs import RootfsTarget
from checks import monitoring
from checks.base import Check, FactSet, Outcome
from collectors.log_forwarding import COLLECTOR as LOGFWD
from collectors.monitoring import COLLECTOR as MONITORING
from collectors.schedule_state import COLLECTOR as SCHEDULE
from tests.conftest import finding, require_corpus, require_tool

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
MakeRootfs = Callable[[dict[str, str | bytes]], Path]
RSYSLOGD = {"/usr/sbin/rsyslogd": b"\x7fELF", "/etc/os-release": "ID=debian\n"}


def procs(*names: str) -> dict[str, Any]:
    return {"processes": [{"pid": 10 + i, "comm": n, "exe": f"/usr/sbin/{n}", "cmdline": [n]}
                          for i, n in enumerate(names)], "restricted": False}


def judge(check: Check, facts: dict[str, Any], errors: dict[str, str] | None = None, **over: Any) -> Outcome:
    return check.evaluate(FactSet(facts, errors or {}), load_policy(overrides=over or None))


def fwd(root: Path) -> dict[str, Any]:
    facts: dict[str, Any] = LOGFWD.collect(RootfsTarget(f"rootfs:{root}", str(root)))
    return facts


def mn01(root: Path, *names: str, **over: Any) -> Outcome:
    return judge(monitoring.MN_01, {"log_forwarding": fwd(root), "processes": procs(*names)}, **over)


# --- rsyslog parsing ---------------------------------------------------------

def test_legacy_and_rainerscript_forwards(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({**RSYSLOGD, "/etc/rsyslog.conf": """
$ModLoad imuxsock # comment after a directive
$IncludeConfig /etc/rsyslog.d/*.conf
template(name="t" type="string" string="%msg% # not a comment (\\"quoted\\")\\n")
*.* @@(o)logs.example.jp:10514;RSYSLOG_ForwardFormat
mail.* @[2001:db8::5]
/* a block comment with action(type="omfwd" target="ignored") inside */
""", "/etc/rsyslog.d/50-remote.conf": """
auth,authpriv.* action(type="omfwd"
                      target="siem.example.jp" port="6514" protocol="tcp"
                      StreamDriver="gtls" StreamDriverMode="1")
kern.* :omrelp:relp.example.jp:2514
""", "/etc/rsyslog.d/README": "not included: no .conf suffix *.* @@nope\n"})
    facts = fwd(root)
    rs = facts["rsyslog"]
    assert rs["problem"] is None
    got = {(f["target"], f["port"], f["protocol"], f["tls"], f["selector"]) for f in rs["forwards"]}
    assert got == {("logs.example.jp", "10514", "tcp", False, "*.*"), ("2001:db8::5", "514", "udp", False, "mail.*"),
                   ("siem.example.jp", "6514", "tcp", True, "auth,authpriv.*"),
                   ("relp.example.jp", "2514", "relp", False, "kern.*")}
    assert rs["files"] == ["/etc/rsyslog.conf", "/etc/rsyslog.d/50-remote.conf"]
    assert mn01(root, "rsyslogd").status == "pass"
    assert mn01(root).status == "fail"  # configured, but no rsyslogd runs
    assert mn01(root, "rsyslogd", log_forwarding={"require_tls": True}).status == "pass"


def test_legacy_tls_directives(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({**RSYSLOGD, "/etc/rsyslog.conf": "$DefaultNetstreamDriver gtls\n"
                        "$ActionSendStreamDriverMode 1\n*.* @@central.example:6514\n"})
    assert fwd(root)["rsyslog"]["forwards"][0]["tls"] is True


def test_auth_excluded_or_only_udp_without_tls(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({**RSYSLOGD, "/etc/rsyslog.conf":
                        "*.info;mail.none;authpriv.none;cron.none @@central.example\n"})
    out = mn01(root, "rsyslogd")
    assert out.status == "fail" and "authentication" in out.message.en
    root2 = make_rootfs({**RSYSLOGD, "/etc/rsyslog.conf": "*.* @central.example\n"})
    assert mn01(root2, "rsyslogd").status == "pass"
    out = mn01(root2, "rsyslogd", log_forwarding={"require_tls": True})
    assert out.status == "fail" and "TLS" in out.message.en


def test_conditional_forwards_cannot_be_judged(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({**RSYSLOGD, "/etc/rsyslog.conf": """
if $programname == 'sshd' then {
    action(type="omfwd" target="a.example" port="514" protocol="udp")
} else {
    stop
}
ruleset(name="remote") {
    action(type="omfwd" target="b.example" protocol="tcp")
}
"""})
    facts = fwd(root)
    assert [f["context"] for f in facts["rsyslog"]["forwards"]] == ["if $programname == 'sshd'", "ruleset remote"]
    assert mn01(root, "rsyslogd").status == "error"


def test_malformed_config_is_error(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({**RSYSLOGD, "/etc/rsyslog.conf": 'action(type="omfwd" target="x"\n*.* /var/log/x\n'})
    assert fwd(root)["rsyslog"]["problem"]
    assert mn01(root, "rsyslogd").status == "error"
    root2 = make_rootfs({**RSYSLOGD, "/etc/rsyslog.conf": 'include(file="/etc/rsyslog.d/missing.conf")\n'})
    assert mn01(root2, "rsyslogd").status == "error"
    root3 = make_rootfs({**RSYSLOGD, "/etc/rsyslog.conf":
                         'include(file="/etc/rsyslog.d/missing.conf" mode="optional")\n'})
    assert mn01(root3, "rsyslogd").status == "fail"


@pytest.mark.parametrize("name", ["Secure_Linux_Logging_Lab__rsyslog.conf", "cis-rhel-ansible__rsyslog.conf",
                                  "ygh_linux_dump__rsyslog.conf"])
def test_corpus_configs_forward_nothing(make_rootfs: MakeRootfs, name: str) -> None:
    """Real configs from public repositories: a TCP receiver, CIS and CentOS defaults. None forwards."""
    src = require_corpus("host-config", name)
    root = make_rootfs({**RSYSLOGD, "/etc/rsyslog.conf": src.read_bytes()})
    facts = fwd(root)
    assert facts["rsyslog"]["problem"] is None
    assert facts["rsyslog"]["forwards"] == []
    out = mn01(root, "rsyslogd")
    assert out.status == "fail" and "No log forwarding" in out.message.en
    assert judge(monitoring.MN_01, {"log_forwarding": facts, "processes": procs("rsyslogd")},
                 log_forwarding={"required": False}).status == "not_applicable"


def test_journal_upload(make_rootfs: MakeRootfs) -> None:
    files: dict[str, str | bytes] = {"/etc/os-release": "ID=debian\n", "/lib/systemd/systemd-journal-upload": b"",
                                     "/etc/systemd/journal-upload.conf": "[Upload]\nURL=https://logs.example:19532\n"}
    root = make_rootfs(files)
    assert mn01(root, "systemd-journal-upload").status == "fail"  # configured, not enabled
    link = root / "etc/systemd/system/multi-user.target.wants"
    link.mkdir(parents=True)
    (link / "systemd-journal-upload.service").symlink_to("/lib/systemd/system/systemd-journal-upload.service")
    (root / "lib/systemd/system").mkdir(parents=True)
    (root / "lib/systemd/system/systemd-journal-upload.service").write_text("[Service]\n")
    out = mn01(root, "systemd-journal-upload")
    assert out.status == "pass" and "https://logs.example:19532" in out.message.en


def test_selector_covers() -> None:
    sc = monitoring.selector_covers
    assert sc("*.*", "authpriv") is True
    assert sc("*.info;authpriv.none", "authpriv") is False
    assert sc("*.info;authpriv.none", "auth") is True
    assert sc("auth,authpriv.*", "auth") is True
    assert sc("mail.*", "auth") is False
    assert sc("*.warn", "auth") is False  # auth messages are info/notice
    assert sc("authpriv.=info", "authpriv") is True
    assert sc("if $msg contains 'x'", "auth") is None


# --- MN-02 -------------------------------------------------------------------

def mn02(root: Path, *names: str, errors: dict[str, str] | None = None) -> Outcome:
    facts: dict[str, Any] = {"monitoring": MONITORING.collect(RootfsTarget(f"rootfs:{root}", str(root)))}
    if not errors:
        facts["processes"] = procs(*names)
    return judge(monitoring.MN_02, facts, errors=errors)


def test_aide_needs_baseline_and_schedule(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/etc/os-release": "ID=debian\n", "/usr/bin/aide": b""})
    assert mn02(root).status == "fail"
    (root / "var/lib/aide").mkdir(parents=True)
    (root / "var/lib/aide/aide.db").write_bytes(b"db")
    assert mn02(root).status == "fail"  # a baseline nobody checks against
    cron = root / "etc/cron.daily/dailyaidecheck"
    cron.parent.mkdir(parents=True)
    cron.write_text("#!/bin/sh\n# daily AIDE check\nexec /usr/share/aide/bin/dailyaidecheck\n")
    assert mn02(root).status == "fail"  # run-parts skips a script that is not executable
    cron.chmod(0o755)
    out = mn02(root, errors={"processes": "no /proc on this target"})  # a schedule needs no process list
    assert out.status == "pass" and "AIDE" in out.message.en


def test_daemon_tools_judged_by_process(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/etc/os-release": "ID=debian\n", "/usr/sbin/auditd": b"",
                        "/usr/bin/fail2ban-server": b"",
                        "/etc/audit/rules.d/50-data.rules": "-w /srv/data -p rwa -k personal\n# x\n",
                        "/etc/fail2ban/jail.conf": "[DEFAULT]\nenabled = false\n[sshd]\nport = ssh\n",
                        "/etc/fail2ban/jail.d/defaults-debian.conf": "[sshd]\nenabled = true\n"})
    assert mn02(root).status == "fail"
    out = mn02(root, "fail2ban-server")
    assert out.status == "pass"
    assert out.evidence["fail2ban"]["jails"] == ["sshd"]
    assert out.evidence["auditd"]["rules"]["rules"] == 1
    assert mn02(root, errors={"processes": "no /proc on this target"}).status == "error"


def test_nothing_installed(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/etc/os-release": "ID=debian\n"})
    out = mn02(root)
    assert out.status == "fail" and "No intrusion" in out.message.en


# --- MN-03 -------------------------------------------------------------------

def mamoru() -> str:
    return str(Path(sys.executable).parent / "mamoru")


def test_schedule_installed_and_recent_report(tmp_path: Path, run_cli: Cli) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\n")
    rc, _, _, _ = run_cli("schedule", "--install", "--root", str(root), "--no-sign", "--mamoru", mamoru(),
                          report=False)
    assert rc == 0
    reports = root / "var/lib/mamoru/reports"
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "MN-03")
    assert doc is not None
    f = finding(doc, "MN-03")
    assert f["status"] == "fail" and "holds no report" in f["message"]["en"], f
    # A real report written into the directory, as the timer would.
    run_cli("scan", "--target", f"rootfs:{root}", "--check", "PM-01", "--output", str(reports / "report-1.json"))
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "MN-03")
    assert doc is not None
    f = finding(doc, "MN-03")
    assert f["status"] == "pass", f
    assert f["evidence"]["age_source"] == "run.finished"
    assert f["evidence"]["jobs"][0]["kind"] == "systemd timer" and f["evidence"]["jobs"][0]["enabled"]


def test_stale_report_from_ten_days_ago(tmp_path: Path, run_cli: Cli) -> None:
    require_tool("faketime")
    root = tmp_path / "root"
    run_cli("schedule", "--install", "--kind", "cron", "--root", str(root), "--no-sign", "--mamoru", mamoru(),
            report=False)
    (root / "etc/os-release").write_text("ID=debian\n")
    out = root / "var/lib/mamoru/reports/report-old.json"
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run(["faketime", "-f", "-10d", mamoru(), "scan", "--quiet", "--target", f"rootfs:{root}",
                    "--check", "PM-01", "--output", str(out)], env=env, timeout=120)
    assert json.loads(out.read_bytes())["run"]["finished"] < time.strftime("%Y-%m-%d", time.gmtime(time.time() - 9 * 86400))
    os.utime(out)  # a fresh file time must not hide the report's own date
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "MN-03")
    assert doc is not None
    f = finding(doc, "MN-03")
    assert f["status"] == "fail" and 9.9 < f["evidence"]["age_days"] < 10.2, f
    assert f["evidence"]["jobs"][0]["where"] == "/etc/cron.d/mamoru:2"


def test_no_schedule_and_damaged_report(tmp_path: Path) -> None:
    root = tmp_path / "root"
    reports = root / "var/lib/mamoru/reports"
    reports.mkdir(parents=True)
    (reports / "report-x.json").write_text("{not json")
    cron = root / "etc/cron.d"
    cron.mkdir(parents=True)
    (cron / "mamoru").write_text("# 0 3 * * * root mamoru scan --output /x.json\n")  # commented out
    facts = SCHEDULE.collect_with(RootfsTarget(f"rootfs:{root}", str(root)),
                                  {"schedule.report_dir": "/var/lib/mamoru/reports"})
    assert facts["jobs"] == []
    assert judge(monitoring.MN_03, {"schedule_state": facts}).status == "fail"
    (cron / "mamoru").write_text("0 3 * * * root mamoru scan --output /x.json\n")
    facts = SCHEDULE.collect_with(RootfsTarget(f"rootfs:{root}", str(root)),
                                  {"schedule.report_dir": "/var/lib/mamoru/reports"})
    assert facts["reports"]["problem"]
    # A newest report that is not a mamoru report proves no run: no guessing from its file time.
    out = judge(monitoring.MN_03, {"schedule_state": facts})
    assert out.status == "error" and "not a readable mamoru report" in out.message.en
    # Facts gathered for another report directory cannot answer for this policy's.
    other = judge(monitoring.MN_03, {"schedule_state": facts}, schedule={"report_dir": "/srv/reports"})
    assert other.status == "error"
