"""Access-point configuration (WL-01, TX-01): real OpenWrt files, read from a root filesystem and over SSH.

The corpus files (../shared/corpus/openwrt-wireless, read at test time) are
placed at /etc/config/wireless of a temporary root file system; over SSH the
same file is served by a real sshd whose /etc is an overlay in a private
mount namespace, so the host's /etc is never touched.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from collectors.ap_parsers import APConfigError, APParser
from collectors.ap_parsers.openwrt import PARSER, encryption, parse_uci
from tests.conftest import finding, require, require_corpus, require_root

LEDGER = """
network:
  devices:
    - {mac: "a4:97:33:df:ae:b0", name: reception PC, owner: front desk}
    - {mac: "00-11-22-33-44-55", name: laptop, owner: sales}
"""

#: (corpus file, [(section, mode, enabled, security, ciphers, pmf)]) — what hostapd.sh would configure.
CORPUS = {
    "Dreamcatcher__config_wireless": [("@wifi-iface[0]", "ap", True, "enterprise", ["CCMP"], "no")],
    "EFF-OpenWireless__etc_config_wireless": [
        ("@wifi-iface[0]", "ap", False, "open", [], "no"), ("@wifi-iface[1]", "ap", True, "open", [], "no"),
        ("@wifi-iface[2]", "ap", True, "open", [], "no"), ("@wifi-iface[3]", "ap", False, "open", [], "no")],
    "ElPerroRocho-OpenWRT__config_wireless": [("@wifi-iface[0]", "ap", True, "wpa2", ["CCMP"], "no"),
                                              ("@wifi-iface[1]", "ap", True, "wpa/wpa2", ["CCMP"], "no")],
    "ax3000t-backup__etc_config_wireless": [("default_radio0", "ap", True, "wpa2", ["CCMP"], "capable"),
                                            ("default_radio1", "ap", True, "wpa2/wpa3", ["CCMP"], "capable")],
    "openWRT-backup__config_wireless": [("ap_0", "ap", True, "wpa2", ["CCMP"], "no"),
                                        ("ah_0", "adhoc", True, "unknown", [], "no"),  # encryption 'off'
                                        ("sta_0", "sta", False, "wpa/wpa2", ["CCMP"], "no")],
    "openwrt_pangolin__etc_config_wireless.ap": [("@wifi-iface[0]", "ap", True, "wpa2", ["CCMP", "TKIP"], "no")],
    "sustratoredconf__config_wireless": [
        ("lm_wlan2_mesh_radio2", "mesh", True, "open", [], "no"), ("lm_wlan0_ap_radio0", "ap", True, "open", [], "no"),
        ("lm_wlan0_apname_radio0", "ap", True, "open", [], "no"), ("lm_wlan1_mesh_radio1", "mesh", True, "open", [], "no")],
}


def _parse(name: str) -> dict[str, Any]:
    path = require_corpus("openwrt-wireless", name)
    return PARSER.parse(path.read_bytes(), path.name)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_openwrt_corpus(name: str) -> None:
    got = [(i["section"], i["mode"], not i["disabled"], i["security"], i["pairwise"], i["pmf"])
           for i in _parse(name)["interfaces"]]
    assert got == CORPUS[name]


def test_utf8_ssid_and_disabled_radio() -> None:
    (iface,) = _parse("openwrt_pangolin__etc_config_wireless.ap")["interfaces"]
    assert iface["ssid"] == "穿山甲@AP" and iface["ssid_hex"] == "穿山甲@AP".encode().hex()
    backup = {i["section"]: i for i in _parse("openwrt-backups__full-sys_etc_config_wireless")["interfaces"]}
    assert backup["wifinet4"]["security"] == "wpa3" and backup["wifinet4"]["pmf"] == "required"
    assert backup["wifinet2"]["disabled"] and backup["wifinet2"]["security"] == "open"


def test_macfilter_allow_without_list_is_read_as_such() -> None:
    ifaces = _parse("dynalink-dl-wrx36-backup__etc_config_wireless")["interfaces"]
    assert {(i["macfilter"], tuple(i["maclist"])) for i in ifaces} == {("allow", ())}


def test_templates_are_not_uci() -> None:
    with pytest.raises(APConfigError, match=r":1: not a UCI line"):
        _parse("openwrt-configuration-ansible__config_wireless")


def test_secrets_never_leave_the_parser() -> None:
    for name in ("openWRT-backup__config_wireless", "openwrt_pangolin__etc_config_wireless.ap",
                 "dynalink-dl-wrx36-backup__etc_config_wireless"):
        text = require_corpus("openwrt-wireless", name).read_text(encoding="utf-8")
        secrets = [line.split(None, 2)[2].strip("'\"") for line in text.splitlines()
                   if line.split()[:1] in (["option"], ["list"]) and line.split()[1] in ("key", "sae_password",
                                                                                        "wpapsk")]
        assert secrets, name
        dumped = json.dumps(PARSER.parse(text.encode(), name))
        assert not any(s in dumped for s in secrets), name
        assert all(i["key_set"] for i in PARSER.parse(text.encode(), name)["interfaces"] if i["mode"] == "ap")


@pytest.mark.parametrize(("value", "label", "ciphers"), [
    (None, "open", []), ("none", "open", []), ("wep+shared", "wep", ["WEP-104"]), ("psk", "wpa", ["CCMP"]),
    ("psk+tkip", "wpa", ["TKIP"]), ("psk2+tkip+ccmp", "wpa2", ["CCMP", "TKIP"]), ("sae", "wpa3", ["CCMP"]),
    ("sae-mixed", "wpa2/wpa3", ["CCMP"]), ("owe", "owe", ["CCMP"]), ("wpa3-192", "enterprise", ["GCMP-256"]),
    ("psk2+rot13", "unknown", []), ("off", "unknown", []),
])
def test_encryption_values(value: str | None, label: str, ciphers: list[str]) -> None:
    enc = encryption(value)
    assert (enc["security"], enc["pairwise"]) == (label, ciphers)


def test_uci_quoting_and_lists() -> None:
    (sec,) = parse_uci("config wifi-iface 'x'\n\toption ssid \"a b # c\"  # comment\n"
                       "\tlist maclist 00:11:22:33:44:55\n\tlist maclist 'AA-BB-CC-DD-EE-FF'\n", "w")
    assert sec["options"]["ssid"] == "a b # c" and len(sec["lists"]["maclist"]) == 2
    with pytest.raises(APConfigError):
        parse_uci("config wifi-iface 'x\n", "w")


# --- judged through the CLI on a root file system -------------------------------------------------

OWN_GOOD = """
config wifi-device 'radio0'
\toption type 'mac80211'

config wifi-iface 'office'
\toption device 'radio0'
\toption mode 'ap'
\toption ssid 'office-wifi'
\toption encryption 'sae-mixed'
\toption key 'not-a-real-passphrase-1234'
\toption macfilter 'allow'
\tlist maclist 'A4:97:33:DF:AE:B0'
\tlist maclist '00:11:22:33:44:55'
"""


@pytest.fixture
def scan_rootfs(run_cli: Any, make_rootfs: Callable[[dict[str, str | bytes]], Path],
                tmp_path: Path) -> Callable[..., dict[str, Any]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(LEDGER, encoding="utf-8")

    def scan(config: bytes | None) -> dict[str, Any]:
        files: dict[str, str | bytes] = {"/etc/os-release": "NAME=OpenWrt\nVERSION_ID=23.05\n"}
        if config is not None:
            files["/etc/config/wireless"] = config
        root = make_rootfs(files)
        _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--policy", str(policy), "--check", "WL-01",
                               "--check", "TX-01")
        assert doc is not None
        return doc

    return scan


def test_wl01_tx01_pass_on_allow_list_matching_ledger(scan_rootfs: Callable[..., dict[str, Any]]) -> None:
    doc = scan_rootfs(OWN_GOOD.encode())
    assert finding(doc, "WL-01")["status"] == "pass"
    tx = finding(doc, "TX-01")
    assert tx["status"] == "pass" and "wpa2/wpa3" in tx["message"]["en"]
    assert "not-a-real-passphrase" not in json.dumps(doc)


def test_wl01_fails_on_unregistered_mac_and_deny(scan_rootfs: Callable[..., dict[str, Any]]) -> None:
    doc = scan_rootfs(OWN_GOOD.replace("'00:11:22:33:44:55'", "'de:ad:be:ef:00:01'").encode())
    wl = finding(doc, "WL-01")
    assert wl["status"] == "fail" and "de:ad:be:ef:00:01" in wl["message"]["en"]
    doc = scan_rootfs(OWN_GOOD.replace("'allow'", "'deny'").encode())
    assert finding(doc, "WL-01")["status"] == "fail" and "deny" in finding(doc, "WL-01")["message"]["en"]


@pytest.mark.parametrize(("name", "wl01", "tx01"), [
    ("dir825_openwrt__etc_config_wireless", "fail", "pass"),  # no MAC filter; psk2 (the open iface is disabled)
    ("EFF-OpenWireless__etc_config_wireless", "fail", "fail"),  # open APs
    ("openwrt_pangolin__etc_config_wireless.ap", "fail", "fail"),  # psk2+tkip+aes: TKIP allowed
    ("ElPerroRocho-OpenWRT__config_wireless", "fail", "fail"),  # psk-mixed: WPA1 allowed
    ("sustratoredconf__config_wireless", "fail", "fail"),  # no encryption option: open
    ("openWRT-backup__config_wireless", "fail", "error"),  # adhoc with encryption 'off': cannot tell
    ("dynalink-dl-wrx36-backup__etc_config_wireless", "error", "pass"),  # allow, but the list is elsewhere
    ("openwrt-configuration-ansible__config_wireless", "error", "error"),  # a Jinja template, not UCI
    ("Dreamcatcher__config_wireless", "fail", "pass"),  # WPA2-Enterprise, no MAC filter
])
def test_corpus_verdicts(scan_rootfs: Callable[..., dict[str, Any]], name: str, wl01: str, tx01: str) -> None:
    doc = scan_rootfs(require_corpus("openwrt-wireless", name).read_bytes())
    assert (finding(doc, "WL-01")["status"], finding(doc, "TX-01")["status"]) == (wl01, tx01)


def test_no_vendor_config_asks_a_person(scan_rootfs: Callable[..., dict[str, Any]]) -> None:
    doc = scan_rootfs(None)
    wl = finding(doc, "WL-01")
    # The person is asked once, by the organisation's OR-16 (issue 13), not by every host.
    assert wl["status"] == "not_applicable" and "OR-16" in wl["message"]["en"] and "MAC" in wl["message"]["ja"]
    assert finding(doc, "OR-16", "organisation")["status"] == "manual"
    assert wl["evidence"]["tried"] == [{"parser": "openwrt", "path": "/etc/config/wireless", "result": "missing"}]
    assert finding(doc, "TX-01")["status"] == "not_applicable"


def test_parser_plugin_seam(monkeypatch: pytest.MonkeyPatch, make_rootfs: Callable[..., Path]) -> None:
    """A vendor parser registered beside OpenWrt's is tried through the same collector."""
    from agent.targets.rootfs import RootfsTarget
    from collectors import access_point

    class AcmeParser(APParser):
        name = "acme"
        paths: ClassVar[tuple[str, ...]] = ("/etc/acme/wlan.json",)

        def parse(self, data: bytes, path: str) -> dict[str, Any]:
            conf = json.loads(data)
            return {"interfaces": [{"section": "wlan0", "mode": "ap", "ssid": conf["ssid"],
                                    "ssid_hex": conf["ssid"].encode().hex(), "hidden": False, "disabled": False,
                                    "encryption": conf["auth"], "security": "wpa3", "pairwise": ["CCMP"],
                                    "group": "CCMP", "pmf": "required", "macfilter": "allow",
                                    "maclist": conf["allow"], "maclist_invalid": [], "macfile": None,
                                    "key_set": True}]}

    monkeypatch.setattr(access_point, "parsers", lambda: (AcmeParser(), PARSER))
    root = make_rootfs({"/etc/acme/wlan.json": json.dumps({"ssid": "acme", "auth": "sae",
                                                           "allow": ["a4:97:33:df:ae:b0"]})})
    facts = access_point.COLLECTOR.collect(RootfsTarget.from_spec(f"rootfs:{root}"))
    assert facts["vendor"] == "acme" and facts["interfaces"][0]["ssid"] == "acme"


def test_registered_parsers_come_from_entry_points() -> None:
    from collectors.access_point import parsers

    assert [p.name for p in parsers()] == ["openwrt"]


# --- over SSH ---------------------------------------------------------------------------------

def _free_port() -> int:
    for port in range(26600, 26700):  # this module's own range
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 26600-26699")


@pytest.fixture
def openwrt_over_ssh() -> Iterator[tuple[Any, Any]]:
    """A real sshd whose /etc has config/wireless, through an overlay only its mount namespace sees."""
    require_root()
    from tests import sshd_helpers as sh

    require(sh.sshd_available(), "sshd is not installed")
    work = Path(tempfile.mkdtemp(prefix="mm6-ap-"))
    work.chmod(0o755)
    upper, scratch = work / "upper", work / "work"
    (upper / "config").mkdir(parents=True)
    scratch.mkdir()
    (upper / "config" / "wireless").write_bytes(OWN_GOOD.replace("'allow'", "'deny'").encode())

    class OverlaySshd(sh.Sshd):
        def _argv(self) -> list[str]:
            script = self.dir / "overlay.sh"
            script.write_text("set -e\n" + " ".join(shlex.quote(a) for a in [
                "mount", "-t", "overlay", "overlay", "-o",
                f"lowerdir=/etc,upperdir={upper},workdir={scratch}", "/etc"]) + "\nexec " + " ".join(
                shlex.quote(a) for a in [sh.SSHD, "-D", "-f", str(self.config), "-E", str(self.log)]) + "\n")
            return ["unshare", "-m", "--propagation", "private", "/bin/sh", str(script)]

    key = sh.keygen(work / "client_key")
    server = OverlaySshd(work / "sshd", authorized_keys=[sh.public_line(key)], port=_free_port())
    known = work / "known_hosts"
    known.write_text(server.known_hosts_line() + "\n")
    try:
        server.start()
        yield server, (key, known)
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_wl01_over_ssh(openwrt_over_ssh: tuple[Any, Any], run_cli: Any, tmp_path: Path) -> None:
    server, (key, known) = openwrt_over_ssh
    assert not Path("/etc/config/wireless").exists()  # the host never had it
    policy = tmp_path / "policy.yaml"
    policy.write_text(LEDGER, encoding="utf-8")
    rc, doc, _, _ = run_cli("scan", "--target", server.spec("root"), "--identity-file", str(key), "--known-hosts",
                            str(known), "--policy", str(policy), "--check", "WL-01", "--check", "TX-01")
    assert doc is not None, rc
    wl = finding(doc, "WL-01")
    assert wl["status"] == "fail" and "deny" in wl["message"]["en"]
    assert wl["evidence"]["source"] == "/etc/config/wireless"
    assert finding(doc, "TX-01")["status"] == "pass"
    assert "not-a-real-passphrase" not in json.dumps(doc)
