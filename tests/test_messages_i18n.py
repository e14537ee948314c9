"""Every finding says its actual reason, in the language it claims to be in.

The Japanese message of every check, on real root filesystems (the hardened and weak fixtures, an almost
empty one, and trees built to hit the error paths of the collectors), must not carry English sentences
from collectors or judges: a run of three or more English words in ``message.ja`` is a leak, unless it is
a name the reader types as it is (a config key with blanks, a product name). Also checked on every tree:
no list prints as "-", no ``{placeholder}`` is left unfilled, and no message is the judge's own crash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import registry
from agent.config.policy import load_policy
from agent.runner import collect_target, evaluate_target, needed_collectors
from checks import base
from reports.model import Finding
from tests.conftest import FIXTURES, require_corpus, write_tree

MakeRootfs = Callable[[dict[str, str | bytes]], Path]

#: English a Japanese message may quote because the reader types or sees it exactly so: configuration keys
#: that contain blanks. Lower case; matched as whole runs.
ALLOWED_RUNS = frozenset({
    "server min protocol", "server max protocol",  # smb.conf keys
    "mamoru checks list",  # a command to type
})
#: A run of English words: ASCII letters (an apostrophe inside), separated by blanks only, and not glued to
#: an identifier (a path, key=value, a dotted or hyphenated name) at either end. Japanese text needs no
#: blanks around it: "あるか（LVM on LUKS など）" holds a run.
_IDENT = r"A-Za-z0-9_./:=@+\-\\{}<>"
_RUN = re.compile(rf"(?<![{_IDENT}'])[A-Za-z]+(?:'[A-Za-z]+)?(?: +[A-Za-z]+(?:'[A-Za-z]+)?){{2,}}(?![{_IDENT}])")


def english_runs(text: str) -> list[str]:
    """Runs of three or more consecutive English words, minus the allowed names."""
    return [m.group(0) for m in _RUN.finditer(text) if m.group(0).lower() not in ALLOWED_RUNS]


def test_the_heuristic_sees_the_leaks_it_is_for() -> None:
    # The leaks of issue 10, as they were printed.
    assert english_runs("unlimited by time 日しか保存されません")
    assert english_runs("判定できません: 暗号化を判定できません: /: no /etc/fstab entry covers this path")
    assert english_runs("画面ロック設定がポリシーを満たしません: not locked by the administrator: lock-enabled")
    assert english_runs("定義ファイル (バージョン 27000) は 1 日前のもので（clamd (loaded)）") == []  # two words only
    assert english_runs("プロセスを確認できません: collector 'processes' failed: no /proc on this target")
    assert english_runs("その上にあるか（LVM on LUKS など）は動作中のシステムでしか分かりません")
    # Names, paths, settings and short quotes are not sentences.
    assert english_runs("ポリシーに反する SSH 設定: PermitRootLogin yes, PermitEmptyPasswords yes, MaxAuthTries 10") == []
    assert english_runs("SMBv1 が有効です: server max protocol = NT1（/etc/samba/smb.conf:3）") == []
    assert english_runs("idle-delay 1800 秒 + lock-delay 0 秒が上限 600 秒を超えています") == []


HARDENED = FIXTURES / "rootfs" / "hardened"
WEAK = FIXTURES / "rootfs" / "weak"
OS_RELEASE = 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'

#: Trees that reach the error paths of the collectors: each file is malformed the way a real one can be.
BROKEN: dict[str, dict[str, str | bytes]] = {
    "parsers": {
        "/etc/os-release": OS_RELEASE,
        # PH-01: a desktop whose dconf keyfile dconf itself would refuse.
        "/usr/sbin/gdm3": b"",
        "/usr/share/glib-2.0/schemas/org.gnome.desktop.screensaver.gschema.xml":
            (HARDENED / "usr/share/glib-2.0/schemas/org.gnome.desktop.screensaver.gschema.xml").read_bytes(),
        "/etc/dconf/profile/user": "user-db:user\nsystem-db:local\n",
        "/etc/dconf/db/local.d/00-screensaver": "idle-delay=uint32 300\n",
        # LG-02: a block never closed. IA-02/IA-03: an unknown PAM control, a faillock.conf that fails.
        "/etc/logrotate.conf": "weekly\nrotate 4\ninclude /etc/logrotate.d\n",
        "/etc/logrotate.d/rsyslog": "/var/log/auth.log {\n weekly\n rotate 53\n",
        "/etc/pam.d/passwd": "password requisit pam_pwquality.so\n",
        "/etc/pam.d/login": "auth required pam_faillock.so preauth\nauth [default=die] pam_faillock.so authfail\n",
        "/etc/security/faillock.conf": "deny = lots\n",
        "/etc/login.defs": "PASS_MIN_LEN 8\nthis is not a setting\n",
        # AV-02/AV-03: ClamAV installed with its example configuration and a damaged database.
        "/usr/sbin/clamd": b"", "/usr/bin/clamscan": b"",
        "/etc/clamav/clamd.conf": "Example\nLocalSocket /run/clamav/clamd.ctl\n",
        "/var/lib/clamav/daily.cld": b"ClamAV-VDB:garbage\n" + b"\0" * 600,
        # PH-02: the data lies on a mapper that crypttab may or may not be below.
        "/etc/fstab": "/dev/mapper/vg-data /srv/data ext4 defaults 0 2\n",
        "/etc/crypttab": "cryptroot UUID=0f1e2d3c none luks\n",
        # IA-01, IA-05: malformed account databases.
        "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/al\n",
        "/etc/group": "root:x:0:\nusers:x:oops\n",
        # TX-05: a smb.conf that cannot be read as text.
        "/usr/sbin/smbd": b"", "/etc/samba/smb.conf": b"[global]\nserver min protocol = \xff\n",
    },
    "parsers-2": {
        "/etc/os-release": OS_RELEASE,
        # PH-01: a session file, and a GNOME schema that is not XML.
        "/usr/share/xsessions/gnome.desktop": "[Desktop Entry]\nName=GNOME\nExec=gnome-session\n",
        "/usr/share/glib-2.0/schemas/org.gnome.desktop.screensaver.gschema.xml": "<schemalist><schema",
        # LG-02: a rotation without a period; journald with a retention that is not a time span.
        "/etc/logrotate.conf": "/var/log/auth.log {\n rotate 5\n}\n",
        "/usr/lib/systemd/systemd-journald": b"",
        "/etc/systemd/journald.conf": "[Journal]\nStorage=persistent\nMaxRetentionSec=a while\n",
        # IA-02/IA-03: an include that is missing, a lockout module argument that is not a number.
        "/etc/pam.d/passwd": "@include common-password\n",
        "/etc/pam.d/sshd": "auth required pam_tally2.so deny=five\n",
        "/etc/ssh/sshd_config": "UsePAM yes\nPermitRootLogin no\n", "/usr/sbin/sshd": b"",
        "/etc/security/pwquality.conf": "minimum_length = 12\n",
        # AV-03: a database directory holding a file that is not a signature database.
        "/usr/bin/clamscan": b"", "/var/lib/clamav/daily.cvd": b"not a database",
        # PH-02: nothing in fstab covers the data.
        "/etc/fstab": "# empty\n",
        # IA-01: /etc/passwd that is not UTF-8.
        "/etc/passwd": b"root:x:0:0:root:/root:/bin/bash\n\xff\xfeguest::1:1::/:/bin/sh\n",
    },
    "clamav": {
        "/etc/os-release": OS_RELEASE,
        # AV-03 judged from the header of a signature database (its build time: 2023-01-01, long stale).
        "/usr/bin/clamscan": b"",
        "/var/lib/clamav/daily.cvd": b"ClamAV-VDB:01 Jan 2023 07-00 +0000:26768:2036547:90:x:x:raynman:1672556400"
                                     .ljust(512, b" ") + b"\0" * 64,
    },
    "lockout": {
        "/etc/os-release": OS_RELEASE,
        "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"
                       "toor:x:0:0::/root:/bin/bash\nalice:x:1001:1001::/home/alice2:/bin/bash\n",
        "/etc/group": "root:x:0:\nalice:x:1000:\nstaff:x:1000:\n",
        "/etc/shadow": "root:*:19700::::::\nalice:!:19700::::::\ntoor::19700::::::\n",
        # IA-03: faillock without preauth on login, tally2 without deny on sshd, sshd bypassing PAM.
        "/etc/pam.d/login": "auth [default=die] pam_faillock.so authfail\nauth required pam_unix.so\n",
        "/etc/pam.d/sshd": "auth required pam_tally2.so onerr=fail\nauth required pam_unix.so\n",
        "/etc/ssh/sshd_config": "UsePAM no\nPermitRootLogin yes\n", "/usr/sbin/sshd": b"",
        "/etc/pam.d/passwd": "password requisite pam_passwdqc.so config=/etc/passwdqc.conf\n",
        # PH-01: a session, GNOME settings that leave the screen unlocked.
        "/usr/sbin/lightdm": b"",
        "/usr/share/glib-2.0/schemas/org.gnome.desktop.screensaver.gschema.xml":
            (WEAK / "usr/share/glib-2.0/schemas/org.gnome.desktop.screensaver.gschema.xml").read_bytes(),
        "/usr/share/glib-2.0/schemas/org.gnome.desktop.session.gschema.xml":
            (WEAK / "usr/share/glib-2.0/schemas/org.gnome.desktop.session.gschema.xml").read_bytes(),
        "/etc/dconf/profile/user": "user-db:user\nsystem-db:local\n",
        "/etc/dconf/db/local.d/00-screensaver": "[org/gnome/desktop/screensaver]\nlock-enabled=false\n"
                                                "idle-activation-enabled=false\n[org/gnome/desktop/session]\n"
                                                "idle-delay=uint32 0\n",
        # LG-02: a rotation long enough on paper (weekly x 60 = 420 days) for a log that is not on disk.
        "/etc/logrotate.conf": "/var/log/auth.log {\n weekly\n rotate 60\n}\n",
        # PH-02: the root filesystem plain, crypttab unlocking nothing it uses.
        "/etc/fstab": "/dev/sda1 / ext4 defaults 0 1\n",
        # LG-04 has a log to judge; LG-02's auth.log stays absent.
        "/var/log/syslog": "",
        # TX-05: SMBv1 allowed by name.
        "/usr/sbin/smbd": b"", "/etc/samba/smb.conf": "[global]\nserver min protocol = NT1\n",
    },
}


def scan(spec: str, *, data_paths: list[str] | None = None) -> list[Finding]:
    """Every registered check on one target, the way ``mamoru scan`` runs them."""
    policy = load_policy(overrides={"data_paths": data_paths} if data_paths else None)
    checks = list(registry.checks().values())
    collectors = needed_collectors(checks, registry.collectors())
    return evaluate_target(collect_target(spec, collectors, policy=policy), checks, policy)


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Finding]]:
    tmp = tmp_path_factory.mktemp("i18n")
    counter = iter(range(100))

    def make(files: dict[str, str | bytes]) -> Path:
        return write_tree(tmp / f"tree-{next(counter)}", files)

    out = {"hardened": scan(f"rootfs:{HARDENED}"), "weak": scan(f"rootfs:{WEAK}"),
           "weak+data_paths": scan(f"rootfs:{WEAK}", data_paths=["/srv/data", "/home"])}
    out["almost-empty"] = scan(f"rootfs:{make({'/etc/os-release': OS_RELEASE})}")
    for name, files in BROKEN.items():
        out[name] = scan(f"rootfs:{make(files)}", data_paths=["/srv/data"])
    # Access points (WL-01): real OpenWrt configurations, one without a MAC filter, one whose list is elsewhere.
    for name in ("dir825_openwrt__etc_config_wireless", "dynalink-dl-wrx36-backup__etc_config_wireless"):
        config = require_corpus("openwrt-wireless", name).read_bytes()
        root = make({"/etc/os-release": "NAME=OpenWrt\n", "/etc/config/wireless": config})
        out[name] = scan(f"rootfs:{root}")
    return out


def _messages(findings: dict[str, list[Finding]]) -> list[tuple[str, str, dict[str, str], str]]:
    return [(tree, f.check, f.message, f.status) for tree, fs in findings.items() for f in fs]


def english_leaks(findings: dict[str, list[Finding]]) -> list[str]:
    """Every Japanese message holding a run of English words, with where it came from."""
    return [f"{tree} {check} ({status}): {runs} in {msg['ja']!r}"
            for tree, check, msg, status in _messages(findings) if (runs := english_runs(msg["ja"]))]


def test_no_english_sentence_in_japanese_messages(findings: dict[str, list[Finding]]) -> None:
    leaks = english_leaks(findings)
    assert not leaks, "\n".join(leaks)


def test_lists_placeholders_and_crashes(findings: dict[str, list[Finding]]) -> None:
    crashed = base.common_texts()["judge_crashed"].ja.split("(")[0]
    bad = []
    for tree, check, msg, _ in _messages(findings):
        for lang in ("ja", "en"):
            text = msg[lang]
            if re.search(r"(^|[:：(（]\s*)-\s*($|[)）])", text) or ": -" in text:
                bad.append(f"{tree} {check} {lang}: empty list as '-': {text!r}")
            if re.search(r"\{[a-z_]+\}", text):
                bad.append(f"{tree} {check} {lang}: unfilled placeholder: {text!r}")
            if text.startswith(crashed) or "internally" in text:
                bad.append(f"{tree} {check} {lang}: the judge crashed: {text!r}")
            if "Phrase(" in text or "Text(" in text or "{'code'" in text:
                bad.append(f"{tree} {check} {lang}: a value printed raw: {text!r}")
    assert not bad, "\n".join(bad)


def test_the_trees_reach_the_error_paths(findings: dict[str, list[Finding]]) -> None:
    """The broken trees are only worth something if the checks really say error on them."""
    status = {(tree, f.check): f.status for tree, fs in findings.items() for f in fs}
    for check in ("PH-01", "LG-02", "IA-02", "IA-03", "AV-02", "PH-02", "IA-01", "IA-05"):
        assert status[("parsers", check)] == "error", check
    for check in ("PH-01", "LG-02", "IA-02", "IA-03", "AV-03", "PH-02", "IA-01"):
        assert status[("parsers-2", check)] == "error", check
    for check in ("PH-01", "IA-03", "LG-02", "IA-05", "TX-05", "PH-02"):
        assert status[("lockout", check)] == "fail", check
    assert status[("clamav", "AV-03")] == "fail"
    assert status[("dir825_openwrt__etc_config_wireless", "WL-01")] == "fail"
    assert status[("dynalink-dl-wrx36-backup__etc_config_wireless", "WL-01")] == "error"


def test_empty_lists_are_a_word_in_each_language() -> None:
    assert base._display([], "ja") == "なし" and base._display([], "en") == "none"
    assert base._display(["a", "b"], "ja") == "a, b"


def test_known_errors_are_explained_in_japanese() -> None:
    for raw in ("/etc/shadow: Permission denied", "/etc/passwd: 52428800 bytes, larger than the 8388608-byte cap",
                "a rootfs target cannot run commands", "timed out (no result within 30 s)",
                "no /proc on this target: a directory has no running processes",
                "a directory has no sockets: listening services need a running system",
                "/etc/pam.d/passwd: not valid UTF-8 (byte 36)"):
        text = base.explain(raw)
        assert isinstance(text, base.Text) and text.en and not english_runs(text.ja), (raw, text)


def finding_of(findings: list[Finding], check: str) -> Finding:
    return next(f for f in findings if f.check == check)


def test_lg02_says_nothing_is_on_disk(findings: dict[str, list[Finding]]) -> None:
    """weekly x 60 = 420 days would do, but no auth.log exists: that, not "only 420 days", is the reason."""
    lg02 = finding_of(findings["lockout"], "LG-02")
    assert lg02.status == "fail"
    assert "only" not in lg02.message["en"] and "しか" not in lg02.message["ja"]
    assert "Nothing of logrotate /var/log/auth.log is on disk" in lg02.message["en"], lg02.message
    assert "ディスク上にまったくありません" in lg02.message["ja"]


def test_lg02_unlimited_is_worded_per_language(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/etc/os-release": OS_RELEASE, "/lib/systemd/systemd-journald": b"",
                        "/etc/systemd/journald.conf": "[Journal]\nStorage=persistent\n",
                        "/var/log/journal/0123/system.journal": b"LPKSHHRH"})
    f = finding_of(scan(f"rootfs:{root}"), "LG-02")
    assert f.status == "pass", f.message
    assert "journald（永続保存）" in f.message["ja"] and "unlimited" not in f.message["ja"]
    # And a store with no time limit that holds nothing yet: "無期限" in Japanese, not "unlimited by time".
    (root / "var/log/journal/0123/system.journal").unlink()
    f = finding_of(scan(f"rootfs:{root}"), "LG-02")
    assert f.status == "fail" and "無期限" in f.message["ja"] and "unlimited" in f.message["en"], f.message
    assert not english_runs(f.message["ja"])


def test_collector_facts_carry_codes_not_sentences(findings: dict[str, list[Finding]]) -> None:
    """The evidence of the broken trees holds the collectors' problems as codes."""
    ph01 = finding_of(findings["parsers"], "PH-01")
    assert "dconf のキーファイル" in ph01.message["ja"] and "not a keyfile line" in ph01.message["en"]
    ph02 = finding_of(findings["parsers-2"], "PH-02")
    assert ph02.evidence["paths"][0]["why"] == {"code": "no_fstab_entry"}



def test_av03_names_its_source_per_language(findings: dict[str, list[Finding]]) -> None:
    from_header = finding_of(findings["clamav"], "AV-03")
    assert "daily.cvd のヘッダー" in from_header.message["ja"] and "daily.cvd header" in from_header.message["en"]
    # What the running clamd has loaded: a judge on facts, since no clamd runs in a directory.
    from agent.config.policy import load_policy as policy
    from checks import malware

    now = 1_764_918_000.0
    clamav = {"collected_at": now, "installed": {"clamd": "/usr/sbin/clamd"},
              "daemons": [{"pid": 100, "comm": "clamd", "config": "/etc/clamav/clamd.conf"}],
              "configs": {}, "databases": [], "engine": {"reply": "ClamAV 1.4.6/27400/x", "version": 27400,
                                                         "build_time": now - 3600, "problem": None}}
    out = malware.AV_03.evaluate(base.FactSet({"antivirus": {"installed": {"clamav": ["/usr/sbin/clamd"]}},
                                               "clamav": clamav}, {}), policy())
    assert out.status == "pass"
    assert "動作中の clamd" in out.message.ja and "clamd (loaded)" not in out.message.ja, out.message
    assert not english_runs(out.message.ja)


def test_message_texts_are_japanese() -> None:
    """The data files themselves: every Japanese message, shared sentence, fact wording and error wording."""
    import yaml

    meta = Path(base.__file__).parent / "meta"
    leaks = []
    for path in sorted(meta.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if path.name == "_errors.yaml":
            texts = {e["match"]: e for e in data}
        elif path.name.startswith("_"):
            texts = data
        else:
            texts = {**data["messages"], "title": data["title"]}
        leaks += [f"{path.name} {key}: {runs}" for key, text in texts.items()
                  if isinstance(text, dict) and "ja" in text and (runs := english_runs(text["ja"]))]
    assert not leaks, "\n".join(leaks)


def test_terminal_summary_follows_lang(findings: dict[str, list[Finding]]) -> None:
    """Statuses, target states and reasons, and the summary line: in the chosen language only."""
    import io

    from reports.model import Report, RunInfo, TargetRecord
    from reports.terminal import render_terminal

    report = Report(
        run=RunInfo(id="r", started="", finished="", tool={}, policy={}, operator={}),
        targets=[TargetRecord(id="rootfs:/srv/image", kind="rootfs", hostname="files", os="Debian", status="partial",
                              reason="partial"),
                 TargetRecord(id="ssh://audit@10.0.0.5:22", kind="ssh", hostname="", os="", status="error",
                              reason="timeout", error="timed out (no result within 10 s)")],
        findings=findings["lockout"])
    out = {}
    for lang in ("ja", "en"):
        buf = io.StringIO()
        render_terminal(report, lang=lang, file=buf, width=200)
        out[lang] = buf.getvalue()
    ja = out["ja"]
    assert "一部のみ" in ja and "失敗" in ja and "時間切れです" in ja and "10 秒以内に結果がありませんでした" in ja
    assert "集計" in ja and "不合格" in ja and "対象外" in ja
    assert " — partial" not in ja and " — error" not in ja and "timed out" not in ja
    assert "summary" not in ja and "FAIL" not in ja
    en = out["en"]
    assert " — partial" in en and " — error (timed out)" in en and "summary" in en and "FAIL" in en
    assert "集計" not in en
