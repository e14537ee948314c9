"""Secrets stay out of messages, and file text stays out of the terminal's control (issue 10, items 7 and 9).

Item 7: a parser that reads a file holding secrets (UCI wireless config, shadow,
wpa_supplicant's control socket) names file, line and key in its errors, never
the value; a malformed line yields only its line number. Each case runs the
real CLI (``mamoru scan`` and ``mamoru collect``) and looks for a canary secret
in the report, the bundle, stdout and stderr, and checks that the damaged line
is still reported as an error.

Item 9: ``mamoru verify`` (one report and ``--chain``) shows every string that
comes from a file (signature namespace, hash algorithm, key type, file names,
run ids, times, allowed_signers principals and namespaces) escaped: no raw ESC
or BEL reaches the terminal.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports.signing import sshsig
from reports.signing.keys import SigningKey, create_key_files, public_line
from tests.conftest import finding, require_corpus
from tests.signing_helpers import HARDENED, IDENTITY, NS, need_ssh_keygen, ssh_sign

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
CANARY = "Zq8canaryPSK5f3a"


# --- item 7: secrets in parse errors -------------------------------------------------------------------

def _leak_free(canary: str, *texts: str | bytes) -> None:
    for t in texts:
        assert canary not in (t.decode("utf-8", "replace") if isinstance(t, bytes) else t)


def _scan_and_collect(run_cli: Run, root: Path, tmp_path: Path, *checks: str) -> tuple[dict[str, Any], list[Any]]:
    """``mamoru scan`` and ``mamoru collect`` of a root file system: (report, every text they produced)."""
    selection = [a for c in checks for a in ("--check", c)]
    report = tmp_path / "report.json"
    rc, doc, out, err = run_cli("scan", "--target", f"rootfs:{root}", *selection, "--lang", "en",
                                "--output", str(report))
    assert doc is not None, (rc, err)
    bundle = tmp_path / "facts.bundle.json"
    rc2, _, out2, err2 = run_cli("collect", "--target", f"rootfs:{root}", *selection, "--output", str(bundle))
    assert rc2 == 0, err2
    return doc, [report.read_bytes(), out, err, bundle.read_bytes(), out2, err2]


#: (corpus file, how its first ``option key`` line is damaged). The value there is replaced by the canary.
UCI_DAMAGE = {
    "trailing-word": ("ElPerroRocho-OpenWRT__config_wireless", "\toption key '{c}' trailing", True),
    "unterminated-quote": ("ax3000t-backup__etc_config_wireless", "\toption key '{c}", True),
    "value-without-name": ("openwrt_pangolin__etc_config_wireless.ap", "\toption '{c}'", False),
    "value-on-its-own-line": ("Dreamcatcher__config_wireless", "\t'{c}'", False),
    "list-with-two-values": ("openwrt-backups__full-sys_etc_config_wireless", "\tlist key '{c}' 'x'", True),
}


@pytest.mark.parametrize("case", sorted(UCI_DAMAGE))
def test_uci_error_names_file_line_and_key_never_the_value(case: str, run_cli: Run, tmp_path: Path,
                                                           make_rootfs: Callable[..., Path]) -> None:
    name, damaged, names_key = UCI_DAMAGE[case]
    lines = require_corpus("openwrt-wireless", name).read_text(encoding="utf-8").splitlines()
    n = next(i for i, line in enumerate(lines) if line.split()[:2] == ["option", "key"])
    lines[n] = damaged.format(c=CANARY)
    root = make_rootfs({"/etc/config/wireless": "\n".join(lines) + "\n"})
    doc, texts = _scan_and_collect(run_cli, root, tmp_path, "WL-01")
    _leak_free(CANARY, *texts)
    wl = finding(doc, "WL-01")
    assert wl["status"] == "error"
    message = wl["message"]["en"]
    assert f"/etc/config/wireless:{n + 1}:" in message
    assert ("'key'" in message) is names_key


def test_uci_parser_refuses_every_damaged_corpus_line_without_quoting_it() -> None:
    """Every ``option`` line of every corpus file, given a trailing word: an error naming line and option."""
    from collectors.ap_parsers import APConfigError
    from collectors.ap_parsers.openwrt import parse_uci

    corpus = require_corpus("openwrt-wireless")
    tried = 0
    for path in sorted(corpus.iterdir()):
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            parse_uci("\n".join(lines), path.name)
        except APConfigError:
            continue  # a template, not UCI (test_ap_config.py::test_templates_are_not_uci)
        for n, line in enumerate(lines):
            words = line.split()
            if words[:1] != ["option"] or len(words) < 3:
                continue
            damaged = [*lines[:n], f"\toption {words[1]} '{CANARY}' {CANARY}", *lines[n + 1:]]
            with pytest.raises(APConfigError) as e:
                parse_uci("\n".join(damaged), path.name)
            assert CANARY not in str(e.value) and f"{path.name}:{n + 1}:" in str(e.value)
            tried += 1
    assert tried > 100


PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
GROUP = "root:x:0:\nalice:x:1000:\n"
#: Shadow files whose line 2 (alice's) is damaged so that the hash could pass for another field.
SHADOW_DAMAGE = {
    "sha512-without-user": f"$6$salt{CANARY}$hash{CANARY}xyz/.:19700:0:99999:7::::",
    "yescrypt-without-user": f"$y$j9T${CANARY}$abc{CANARY}:19700:0:99999:7::::",
    "des-without-user": f"{CANARY[:11]}Ab:19700:0:99999:7::::",
    "shifted-hash": f"alice:19700:$6${CANARY}$x:0:99999:7:::",
    "truncated": f"alice:$6$salt${CANARY}:19700",
}


@pytest.mark.parametrize("case", sorted(SHADOW_DAMAGE))
def test_malformed_shadow_line_yields_only_its_number(case: str, run_cli: Run, tmp_path: Path,
                                                      make_rootfs: Callable[..., Path]) -> None:
    line = SHADOW_DAMAGE[case]
    canary = CANARY[:11] if case == "des-without-user" else CANARY
    root = make_rootfs({"/etc/passwd": PASSWD, "/etc/group": GROUP,
                        "/etc/shadow": f"root:!:19700:0:99999:7:::\n{line}\n"})
    doc, texts = _scan_and_collect(run_cli, root, tmp_path)
    _leak_free(canary, *texts)
    ia = finding(doc, "IA-01")
    assert ia["status"] == "error" and "malformed lines 2" in ia["message"]["en"] and "2 行目" in ia["message"]["ja"]
    bundle = json.loads(texts[3])
    shadow = bundle["targets"][0]["facts"]["facts"]["accounts"]["data"]["shadow"]
    assert shadow["malformed_lines"] == [2]
    assert set(shadow["states"]) == set(shadow["aging"]) == {"root"}


def test_account_names_that_real_systems_use_still_parse() -> None:
    from collectors.accounts import parse_group, parse_passwd, parse_shadow

    names = ["root", "_apt", "systemd-network", "john.doe", "WS01$", "user@example.jp", "Debian-exim", "a1", "山田"]
    users, bad = parse_passwd([f"{u}:x:{i}:{i}::/home/{u}:/bin/sh" for i, u in enumerate(names)])
    assert bad == [] and [u["name"] for u in users] == names
    states, bad = parse_shadow([f"{u}:!:19700:0:99999:7:::" for u in names] + ["legacy:*:::::::"])
    assert bad == [] and list(states) == [*names, "legacy"]
    groups, bad = parse_group([f"{u}:x:{i}:" for i, u in enumerate(names)])
    assert bad == [] and len(groups) == len(names)
    # Not names: a hash, a number, a blank or a path in the name field.
    _, bad = parse_passwd(["$6$a$b:x:0:0::/:/bin/sh", "1000:x:0:0::/:/bin/sh", "a b:x:0:0::/:/bin/sh",
                           "a/b:x:0:0::/:/bin/sh"])
    assert bad == [1, 2, 3, 4]


def test_wpa_ctrl_errors_describe_replies_without_quoting_them(tmp_path: Path) -> None:
    """A control socket that answers SCAN and SCAN_RESULTS with text: the messages do not carry it."""
    from collectors.wifi import wpa_ctrl
    from tests.test_wifi_wpa_ctrl import FakeWpaSupplicant

    class Odd(FakeWpaSupplicant):
        def __init__(self, path: Path, replies: dict[str, str]) -> None:
            self.replies = replies
            super().__init__(path, [], {})

        def answer(self, cmd: str) -> str:
            return self.replies.get(cmd) or super().answer(cmd)

    server = Odd(tmp_path / "wlan0", {"SCAN": f"psk={CANARY}\n"})
    try:
        result = wpa_ctrl.survey(str(tmp_path / "wlan0"), scan_timeout=0.5)
    finally:
        server.close()
    assert result["notes"] and "SCAN answered an unexpected reply" in result["notes"][0]
    assert CANARY not in json.dumps(result)
    server = Odd(tmp_path / "wlan1", {"SCAN_RESULTS": f'network={{ psk="{CANARY}" }}\n'})
    try:
        with pytest.raises(wpa_ctrl.CtrlError) as e:
            wpa_ctrl.survey(str(tmp_path / "wlan1"), scan_timeout=0.5)
    finally:
        server.close()
    assert CANARY not in str(e.value) and "SCAN_RESULTS reply is not a scan table" in str(e.value)
    with pytest.raises(wpa_ctrl.CtrlError, match="'FAIL'"):  # a protocol word is still shown
        wpa_ctrl.parse_scan_results("FAIL\n")


# --- item 9: terminal escapes in verify ----------------------------------------------------------------

EVIL = "\x1b]0;pwned\x07\x1b[2J"


def _no_raw_controls(*texts: str) -> None:
    for t in texts:
        assert "\x1b" not in t and "\x07" not in t, t


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[SigningKey, bytes]:
    """A key and the bytes of a real report written by ``mamoru scan``."""
    from agent.cli.main import main

    base = tmp_path_factory.mktemp("hygiene")
    key = create_key_files(base / "signing_key", comment=IDENTITY)
    out = base / "report.json"
    assert main(["scan", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--quiet", "--output", str(out)]) == 0
    return key, out.read_bytes()


def _allowed(tmp_path: Path, key: SigningKey, principal: str = IDENTITY, namespaces: str = NS) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(f'{principal} namespaces="{namespaces}" {public_line(key.public_blob)}\n', encoding="utf-8")
    return path


def _crafted(data: bytes, key: SigningKey, *, hash_alg: bytes = b"sha512", key_type: bytes = b"ssh-ed25519",
             sig_type: bytes = b"ssh-ed25519") -> bytes:
    """A real Ed25519 SSHSIG over ``data`` whose hash-algorithm / key-type / signature-type names are ours."""
    s = sshsig.ssh_string
    digest = hashlib.sha512(data).digest()
    raw = key.private.sign(sshsig.MAGIC + s(NS.encode()) + s(b"") + s(hash_alg) + s(digest))
    pub = s(key_type) + s(key.public_blob[-32:])
    blob = (sshsig.MAGIC + struct.pack(">I", 1) + s(pub) + s(NS.encode()) + s(b"") + s(hash_alg)
            + s(s(sig_type) + s(raw)))
    return sshsig.armor(blob)


def test_namespace_with_escapes_from_ssh_keygen(run_cli: Run, tmp_path: Path,
                                                signed: tuple[SigningKey, bytes]) -> None:
    need_ssh_keygen()
    key, data = signed
    report = tmp_path / "report.json"
    report.write_bytes(data)
    ssh_sign(Path(key.path), report, namespace=EVIL)  # the real ssh-keygen takes any namespace
    rc, _, out, err = run_cli("verify", str(report), "--allowed-signers", str(_allowed(tmp_path, key)))
    assert rc == 1 and "namespace" in err
    _no_raw_controls(out, err)
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in err


@pytest.mark.parametrize("field", ["hash_alg", "key_type", "sig_type"])
def test_signature_names_with_escapes(field: str, run_cli: Run, tmp_path: Path,
                                      signed: tuple[SigningKey, bytes]) -> None:
    key, data = signed
    report = tmp_path / "report.json"
    report.write_bytes(data)
    Path(f"{report}.sig").write_bytes(_crafted(data, key, **{field: f"sha512{EVIL}".encode()}))
    rc, _, out, err = run_cli("verify", str(report), "--allowed-signers", str(_allowed(tmp_path, key)))
    assert rc == 1 and ("not supported" in err or "does not match" in err)
    _no_raw_controls(out, err)
    assert "\\x1b" in err


def test_file_name_and_principal_with_escapes(run_cli: Run, tmp_path: Path,
                                              signed: tuple[SigningKey, bytes]) -> None:
    key, data = signed
    report = tmp_path / f"r{EVIL}.json"
    report.write_bytes(data)
    allowed = _allowed(tmp_path, key, principal=f"auditor{EVIL}@example.jp")
    rc, _, out, err = run_cli("verify", str(report), "--allowed-signers", str(allowed))  # no .sig yet
    assert rc == 1 and "no signature file" in err
    _no_raw_controls(out, err)
    Path(f"{report}.sig").write_bytes(sshsig.sign(data, key.private))
    rc, _, out, err = run_cli("verify", str(report), "--allowed-signers", str(allowed))
    assert rc == 0 and out.startswith('Good "mamoru-report" signature for auditor\\x1b]0;pwned')
    _no_raw_controls(out, err)
    rc, _, out, err = run_cli("verify", str(report), "--allowed-signers", str(allowed), "--identity", "x@y")
    assert rc == 1 and "not for identity" in err
    _no_raw_controls(out, err)


def test_allowed_signers_namespaces_with_escapes(run_cli: Run, tmp_path: Path,
                                                 signed: tuple[SigningKey, bytes]) -> None:
    key, data = signed
    report = tmp_path / "report.json"
    report.write_bytes(data)
    Path(f"{report}.sig").write_bytes(sshsig.sign(data, key.private))
    allowed = _allowed(tmp_path, key, namespaces=f"other{EVIL}")
    rc, _, out, err = run_cli("verify", str(report), "--allowed-signers", str(allowed))
    assert rc == 1 and "allowed only for namespaces" in err
    _no_raw_controls(out, err)


def _resign(path: Path, key: SigningKey, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_bytes())
    edit(doc)
    data = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    path.write_bytes(data)
    Path(f"{path}.sig").write_bytes(sshsig.sign(data, key.private))


def test_chain_with_escapes_in_names_run_ids_and_times(run_cli: Run, tmp_path: Path,
                                                       signed: tuple[SigningKey, bytes]) -> None:
    key, data = signed
    directory = tmp_path / "reports"
    directory.mkdir()
    report = directory / f"r{EVIL}.json"
    report.write_bytes(data)

    def evil_run(doc: dict[str, Any]) -> None:
        doc["run"]["id"] = f"run{EVIL}"
        doc["run"]["started"] = f"{doc['run']['started']}{EVIL}"

    _resign(report, key, evil_run)
    allowed = _allowed(tmp_path, key, principal=f"auditor{EVIL}@example.jp")
    rc, _, out, err = run_cli("verify", "--chain", str(directory), "--allowed-signers", str(allowed))
    assert rc == 0 and "chain OK: 1 reports" in out
    _no_raw_controls(out, err)
    assert "run run\\x1b]0;pwned\\x07\\x1b[2J" in out
    # Broken: the same report without its signature; the error names the file, escaped.
    Path(f"{report}.sig").unlink()
    rc, _, out, err = run_cli("verify", "--chain", str(directory), "--allowed-signers", str(allowed))
    assert rc == 1 and "chain broken at r\\x1b]0;pwned" in err
    _no_raw_controls(out, err)


def test_chain_renamed_report_with_escapes(run_cli: Run, tmp_path: Path, signed: tuple[SigningKey, bytes]) -> None:
    """Two real chained scans; the first renamed to a name full of escapes: the link problem names it."""
    from agent.cli.main import main

    key, _ = signed
    directory = tmp_path / "reports"
    directory.mkdir()
    for n in (1, 2):
        assert main(["scan", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--quiet", "--output",
                     str(directory / f"report-{n}.json"), "--sign-key", key.path]) == 0
    for suffix in ("", ".sig"):
        shutil.move(directory / f"report-1.json{suffix}", directory / f"r{EVIL}.json{suffix}")
    rc, _, out, err = run_cli("verify", "--chain", str(directory), "--allowed-signers", str(_allowed(tmp_path, key)))
    assert rc == 1 and "renamed or reordered" in out + err
    _no_raw_controls(out, err)


def test_printable_is_idempotent_and_keeps_layout() -> None:
    from reports.safe_text import printable, printable_lines

    once = printable(f"a{EVIL}b\u202e")
    assert printable(once) == once and "\x1b" not in once
    assert printable_lines(f"one{EVIL}\n  hint: two") == "one\\x1b]0;pwned\\x07\\x1b[2J\n  hint: two"



def test_journal_upload_url_keeps_no_credentials(run_cli: Run, make_rootfs: Callable[..., Path],
                                                 tmp_path: Path) -> None:
    """A journal-upload URL may carry a password or a token: the facts keep scheme, host, port and path only."""
    root = make_rootfs({
        "/usr/lib/systemd/systemd-journal-upload": b"",
        "/etc/systemd/journal-upload.conf": f"[Upload]\nURL=https://audit:{CANARY}@logs.example.jp:19532/upload"
                                            f"?token={CANARY}#frag\n",
        "/etc/systemd/system/multi-user.target.wants/systemd-journal-upload.service": b"",
    })
    bundle = tmp_path / "facts.bundle.json"
    rc, _, out, err = run_cli("collect", "--target", f"rootfs:{root}", "--check", "MN-01", "--output", str(bundle))
    text = bundle.read_text()
    assert CANARY not in text and CANARY not in out and CANARY not in err
    assert "https://logs.example.jp:19532/upload" in text
    rc, doc, out, err = run_cli("scan", "--target", f"rootfs:{root}", "--check", "MN-01")
    assert doc is not None and CANARY not in json.dumps(doc) and CANARY not in out + err


def test_rsyslog_parse_errors_stop_before_a_value(make_rootfs: Callable[..., Path]) -> None:
    """An rsyslog line mamoru cannot parse is named by its first word, never quoted up to a password."""
    from agent.targets.rootfs import RootfsTarget
    from collectors.log_forwarding import COLLECTOR

    root = make_rootfs({"/usr/sbin/rsyslogd": b"", "/etc/rsyslog.conf": f'pwd="{CANARY}"\n'})
    facts = COLLECTOR.collect(RootfsTarget(f"rootfs:{root}", str(root)))
    text = json.dumps(facts)
    assert CANARY not in text
    assert "cannot_parse" in text and "rsyslog.conf:1" in text, text
