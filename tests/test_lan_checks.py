"""WL-02 and TX-03 judges on facts: pass, fail, and facts that cannot be trusted (never a pass)."""

from __future__ import annotations

from typing import Any

from agent.config.policy import load_policy
from checks.base import FactSet, Status
from checks.tls import TX_03
from checks.wireless import WL_02

POLICY = load_policy(overrides={"network": {"scope": ["10.0.0.0/24"], "devices": [
    {"mac": "52-54-00-00-00-01", "name": "pc", "owner": "a"}]}})


def dev(ip: str, mac: str | None, *, self: bool = False, vendor: str | None = None) -> dict[str, Any]:
    return {"ip": ip, "mac": mac, "vendor": vendor, "locally_administered": mac is not None and mac[1] in "2367abef",
            "seen_by": "arp", "self": self}


def lan(*devices: dict[str, Any]) -> FactSet:
    return FactSet({"lan_discovery": {"network": "10.0.0.0/24", "method": "arp", "devices": list(devices),
                                      "notes": []}}, {})


def test_wl02_pass_fail_and_unknown() -> None:
    me = dev("10.0.0.2", "02:00:00:00:00:99", self=True)  # the scanner itself is listed, not judged
    assert WL_02.evaluate(lan(me, dev("10.0.0.5", "52:54:00:00:00:01")), POLICY).status is Status.PASS
    out = WL_02.evaluate(lan(me, dev("10.0.0.5", "52:54:00:00:00:01"), dev("10.0.0.6", "00:1d:73:00:00:01",
                                                                             vendor="Buffalo.Inc"),
                             dev("10.0.0.7", "da:00:00:00:00:01")), POLICY)
    assert out.status is Status.FAIL
    assert "00:1d:73:00:00:01 10.0.0.6 (Buffalo.Inc)" in out.message.en
    assert "da:00:00:00:00:01 10.0.0.7 (locally administered" in out.message.en
    assert "2 台" in out.message.ja
    assert WL_02.evaluate(lan(me, dev("10.0.0.5", None)), POLICY).status is Status.ERROR  # MAC unknown
    assert WL_02.evaluate(lan(me), POLICY).status is Status.ERROR  # nobody answered
    conflict = WL_02.evaluate(lan(dev("10.0.0.5", "52:54:00:00:00:01"), dev("10.0.0.5", "52:54:00:00:00:02")),
                              POLICY)
    assert conflict.status is Status.FAIL and conflict.evidence["ip_conflicts"] == {
        "10.0.0.5": ["52:54:00:00:00:01", "52:54:00:00:00:02"]}


def test_wl02_malformed_and_missing_facts() -> None:
    assert WL_02.evaluate(FactSet({"lan_discovery": {"devices": "garbage"}}, {}), POLICY).status is Status.ERROR
    assert WL_02.evaluate(FactSet({}, {"lan_discovery": "no route to 10.0.0.0/24"}), POLICY).status is Status.ERROR
    assert WL_02.evaluate(FactSet({}, {}), POLICY).status is Status.ERROR


def ep(addr: str, port: int, v10: bool | None, v11: bool | None, v12: bool | None, v13: bool | None) -> dict[str, Any]:
    versions = {"TLSv1": v10, "TLSv1.1": v11, "TLSv1.2": v12, "TLSv1.3": v13}
    return {"address": addr, "port": port, "service": "https", "versions": versions,
            "details": {k: {"code": "handshake_timeout"} if v is None else {"code": "completed", "version": k}
                        for k, v in versions.items()}}


def tls(*endpoints: dict[str, Any]) -> FactSet:
    return FactSet({"tls_versions": {"endpoints": list(endpoints), "ports_tested": [443], "client": {},
                                     "notes": []}}, {})


def test_tx03_verdicts() -> None:
    assert TX_03.evaluate(tls(ep("10.0.0.5", 443, False, False, True, True)), POLICY).status is Status.PASS
    fail = TX_03.evaluate(tls(ep("10.0.0.5", 443, False, True, True, True), ep("10.0.0.6", 443, None, None, None,
                                                                              None)), POLICY)
    assert fail.status is Status.FAIL and "10.0.0.5:443 (https) accepts TLSv1.1" in fail.message.en
    assert TX_03.evaluate(tls(ep("10.0.0.5", 443, None, False, True, True)), POLICY).status is Status.ERROR
    assert TX_03.evaluate(tls(ep("10.0.0.5", 443, False, False, False, False)), POLICY).status is Status.ERROR
    assert TX_03.evaluate(tls(), POLICY).status is Status.NOT_APPLICABLE
    assert TX_03.evaluate(FactSet({"tls_versions": {"endpoints": [{"address": "x"}]}}, {}),
                          POLICY).status is Status.ERROR
