"""WL-01, WL-03 and TX-01 judges on facts: the corners the end-to-end tests do not reach."""

from __future__ import annotations

from typing import Any

from agent.config.policy import load_policy
from checks.base import FactSet, Status
from checks.wireless import TX_01, WL_01, WL_03
from collectors.wifi import ie


def policy(**wifi: Any) -> Any:
    return load_policy(overrides={"wifi": {"ssids": ["office"], **wifi}, "network": {"devices": [
        {"mac": "00:11:22:33:44:55"}]}})


def net(ssid: bytes, *, rsn: dict[str, Any] | None = None, wpa: dict[str, Any] | None = None,
        privacy: bool = True, pmf: str | None = None, bssid: str = "02:00:00:00:00:01") -> dict[str, Any]:
    rec = ie.network(bssid=bssid, ssid=ssid, privacy=privacy, rsn=rsn, wpa=wpa)
    rec["pmf"] = pmf
    return rec


def survey(*networks: dict[str, Any], connected: list[dict[str, Any]] | None = None) -> FactSet:
    return FactSet({"wifi_survey": {"source": "nmcli", "networks": list(networks), "connected": connected or [],
                                    "notes": []}}, {})


WPA2 = ie.suites(akm=["PSK"], pairwise=["CCMP"], group="CCMP")


def test_wl03_cipher_unknown_is_not_a_pass() -> None:
    coarse = ie.suites(akm=["PSK"], pairwise=[], group=None)  # e.g. nmcli's SECURITY column only
    assert WL_03.evaluate(survey(net(b"office", rsn=coarse)), policy()).status is Status.ERROR
    assert WL_03.evaluate(survey(net(b"office", rsn=WPA2)), policy()).status is Status.PASS


def test_wl03_pmf_policy() -> None:
    assert WL_03.evaluate(survey(net(b"office", rsn=WPA2, pmf="no")), policy(require_pmf=True)).status \
        is Status.FAIL
    assert WL_03.evaluate(survey(net(b"office", rsn=WPA2, pmf=None)), policy(require_pmf=True)).status \
        is Status.ERROR
    assert WL_03.evaluate(survey(net(b"office", rsn=WPA2, pmf="capable")), policy(require_pmf=True)).status \
        is Status.PASS


def test_wl03_one_weak_bssid_fails_the_ssid() -> None:
    weak = net(b"office", privacy=False, bssid="02:00:00:00:00:02")  # an open AP broadcasting our SSID
    out = WL_03.evaluate(survey(net(b"office", rsn=WPA2), weak), policy())
    assert out.status is Status.FAIL and "02:00:00:00:00:02" in out.message.en and "open" in out.message.en


def test_wl03_malformed_facts() -> None:
    assert WL_03.evaluate(FactSet({"wifi_survey": {"networks": [{"nonsense": 1}]}}, {}), policy()).status \
        is Status.ERROR
    assert WL_03.evaluate(FactSet({}, {"wifi_survey": "no radio"}), policy()).status is Status.ERROR


def test_tx01_judges_this_machines_link_even_on_a_foreign_network() -> None:
    link = {"interface": "wlan0", "ssid": "cafe", "ssid_hex": b"cafe".hex(), "hidden": False, "key_mgmt": "NONE",
            "pairwise": ["NONE"], "group": "NONE", "security": "open", "source": "wpa_supplicant"}
    out = TX_01.evaluate(survey(net(b"office", rsn=WPA2), connected=[link]), policy())
    assert out.status is Status.FAIL and "cafe [this machine's link on wlan0]: open" in out.message.en


def test_tx01_not_applicable_without_wifi() -> None:
    facts = FactSet({"access_point": {"found": False, "interfaces": [], "tried": []}}, {})
    assert TX_01.evaluate(facts, policy()).status is Status.NOT_APPLICABLE
    assert WL_01.evaluate(facts, policy()).status is Status.NOT_APPLICABLE  # asked of the organisation (OR-16)


def test_wl01_broken_maclist_is_not_a_pass() -> None:
    iface = {"section": "x", "mode": "ap", "ssid": "office", "ssid_hex": b"office".hex(), "hidden": False,
             "disabled": False, "security": "wpa2", "pairwise": ["CCMP"], "group": "CCMP", "pmf": "no",
             "macfilter": "allow", "maclist": ["00:11:22:33:44:55"], "maclist_invalid": ["zz:zz"],
             "macfile": None, "key_set": True}
    facts = FactSet({"access_point": {"found": True, "vendor": "openwrt", "source": "/etc/config/wireless",
                                      "interfaces": [iface]}}, {})
    assert WL_01.evaluate(facts, policy()).status is Status.ERROR
    iface["maclist_invalid"] = []
    assert WL_01.evaluate(facts, policy()).status is Status.PASS
    iface["macfile"] = "/etc/maclist"
    assert WL_01.evaluate(facts, policy()).status is Status.ERROR
    assert WL_01.evaluate(FactSet({}, {"access_point": "openwrt: not UCI"}), policy()).status is Status.ERROR
