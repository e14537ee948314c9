"""The office LAN (WL-02, TX-02, TX-03) on a real LAN built of network namespaces.

Five namespaces on one bridge: the scanner and four hosts with distinct MACs.
h1 (registered) runs a plaintext login service on port 23 and a TFTP server;
h2 is not in the ledger (a Buffalo OUI); h3 (registered) runs a TLS server
that accepts only TLS 1.0; h4 (registered) a TLS server that accepts 1.2 and
1.3. mamoru runs inside the scanner's namespace (``ip netns exec``), as root
(ARP sweep) and as nobody (TCP-connect fallback). Only 10.206.6.0/24 inside
these namespaces is ever addressed; everything is deleted afterwards.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import lan_netns
from tests.conftest import finding, require, require_tool, validate_report

pytestmark = [pytest.mark.needs_service, pytest.mark.needs_root]

SUBNET = "10.206.6.0/24"
HOSTS = [
    lan_netns.Host("h1", "10.206.6.11", "52:54:00:66:00:11"),
    lan_netns.Host("h2", "10.206.6.12", "00:1d:73:66:00:12"),
    lan_netns.Host("h3", "10.206.6.13", "52:54:00:66:00:13"),
    lan_netns.Host("h4", "10.206.6.14", "52:54:00:66:00:14"),
]
LEDGER = [("52:54:00:66:00:11", "reception PC", "front desk"), ("52:54:00:66:00:13", "NAS", "admin"),
          ("52:54:00:66:00:14", "printer", "admin")]


class Lab:
    def __init__(self, lan: lan_netns.TestLan, work: Path) -> None:
        self.lan = lan
        self.work = work
        self.n = 0

    def policy(self, *, scope: str = SUBNET, extra: list[tuple[str, str, str]] = ()) -> Path:  # type: ignore[assignment]
        self.n += 1
        p = self.work / f"policy{self.n}.yaml"
        devices = "".join(f'    - {{mac: "{m}", name: {n}, owner: {o}}}\n' for m, n, o in [*LEDGER, *extra])
        p.write_text(f"network:\n  scope: [{scope}]\n  devices:\n{devices}", encoding="utf-8")
        p.chmod(0o644)
        return p

    def scan(self, network: str, policy: Path, *checks: str, user: int | None = None) -> tuple[int, Any, str]:
        self.n += 1
        out = self.work / f"report{self.n}.json"
        argv = [sys.executable, "-m", "agent.cli.main", "scan", "--network", network, "--policy", str(policy),
                "--output", str(out), "--lang", "en", "--quiet"]
        for c in checks:
            argv += ["--check", c]
        res = self.lan.run(argv, user=user, timeout=300)
        doc = json.loads(out.read_text()) if out.exists() else None
        if doc is not None:
            validate_report(doc)
        return res.returncode, doc, res.stderr


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    reason = lan_netns.available()
    require(reason is None, reason or "")
    require_tool("openssl", "setpriv", "ss")
    work = Path(tempfile.mkdtemp(prefix="mm6-lan-"))
    work.chmod(0o777)  # the unprivileged scan writes its report here
    cert, key = lan_netns.make_cert(work)
    cert.chmod(0o644)
    key.chmod(0o644)
    with lan_netns.TestLan(SUBNET, HOSTS, scanner_ip="10.206.6.2", scanner_mac="52:54:00:66:00:02") as lan:
        lan.start(lan.host("h1"), lan_netns.python_server(lan_netns.PLAINTEXT_SERVER, "23"), ready_port=23)
        lan.start(lan.host("h1"), lan_netns.python_server(lan_netns.TFTP_SERVER), ready_port=69)
        lan.start(lan.host("h3"), lan_netns.tls_server(cert, key, 443, "-tls1"), ready_port=443)
        lan.start(lan.host("h4"), lan_netns.tls_server(cert, key, 8443, "-min_protocol", "TLSv1.2"),
                  ready_port=8443)
        yield Lab(lan, work)
    shutil.rmtree(work, ignore_errors=True)


def test_arp_sweep_finds_the_unregistered_device_and_weak_services(lab: Lab) -> None:
    rc, doc, err = lab.scan(SUBNET, lab.policy(), "WL-02", "TX-02", "TX-03")
    assert rc == 1 and doc is not None, err
    wl = finding(doc, "WL-02")
    assert wl["status"] == "fail"
    assert "00:1d:73:66:00:12 10.206.6.12 (Buffalo" in wl["message"]["en"]
    assert "52:54:00:66:00:11" not in wl["message"]["en"]
    ev = wl["evidence"]
    assert ev["method"] == "arp"
    seen = {d["mac"]: d for d in ev["devices"]}
    assert set(seen) == {h.mac for h in HOSTS} | {"52:54:00:66:00:02"}
    assert seen["52:54:00:66:00:02"]["self"] is True and seen["52:54:00:66:00:11"]["name"] == "reception PC"
    assert seen["00:1d:73:66:00:12"]["registered"] is False
    tx2 = finding(doc, "TX-02")
    assert tx2["status"] == "fail"
    assert "telnet 10.206.6.11:23/tcp" in tx2["message"]["en"] and "tftp 10.206.6.11:69/udp" in tx2["message"]["en"]
    tx3 = finding(doc, "TX-03")
    assert tx3["status"] == "fail" and "10.206.6.13:443 (https) accepts TLSv1" in tx3["message"]["en"]
    assert "10.206.6.14" not in tx3["message"]["en"]
    versions = {(e["address"], e["port"]): e["versions"] for e in tx3["evidence"]["endpoints"]}
    assert versions[("10.206.6.13", 443)] == {"TLSv1": True, "TLSv1.1": False, "TLSv1.2": False, "TLSv1.3": False}
    assert versions[("10.206.6.14", 8443)] == {"TLSv1": False, "TLSv1.1": False, "TLSv1.2": True, "TLSv1.3": True}


def test_everything_registered_and_modern_passes(lab: Lab) -> None:
    policy = lab.policy(extra=[("00:1D:73:66:00:12", "guest AP", "admin")])
    rc, doc, err = lab.scan(SUBNET, policy, "WL-02")
    assert rc == 0 and doc is not None, err
    assert finding(doc, "WL-02")["status"] == "pass" and "4 devices" in finding(doc, "WL-02")["message"]["en"]
    rc, doc, err = lab.scan("10.206.6.14/32", policy, "TX-02", "TX-03", "WL-02")  # only h4
    assert doc is not None, err
    assert finding(doc, "TX-03")["status"] == "pass"
    assert finding(doc, "TX-02")["status"] == "pass"
    assert finding(doc, "WL-02")["status"] == "pass"


def test_unprivileged_scan_falls_back_to_tcp(lab: Lab) -> None:
    rc, doc, err = lab.scan(SUBNET, lab.policy(), "WL-02", "TX-03", user=65534)
    assert doc is not None, err
    wl = finding(doc, "WL-02")
    assert wl["evidence"]["method"] == "tcp"
    assert any("needs root" in n for n in wl["evidence"]["notes"])
    macs = {d["mac"] for d in wl["evidence"]["devices"] if not d["self"]}
    assert macs == {h.mac for h in HOSTS}  # the kernel's neighbour table supplied them
    assert wl["status"] == "fail" and "00:1d:73:66:00:12" in wl["message"]["en"]
    assert finding(doc, "TX-03")["status"] == "fail"


def test_empty_range_is_an_error_not_a_pass(lab: Lab) -> None:
    rc, doc, err = lab.scan("10.206.6.64/28", lab.policy(), "WL-02", "TX-03")
    assert doc is not None, err
    assert finding(doc, "WL-02")["status"] == "error"
    assert finding(doc, "TX-03")["status"] == "not_applicable"


def test_host_checks_do_not_apply_to_a_network(lab: Lab) -> None:
    # WL-02 applies to the network, so the host checks beside it are simply not_applicable there (with no
    # check that applies at all, the target would be an error: tests/test_fail_closed_pipeline.py).
    rc, doc, err = lab.scan("10.206.6.11/32", lab.policy(), "TX-04", "WL-03", "WL-02")
    assert doc is not None, err
    assert {finding(doc, c)["status"] for c in ("TX-04", "WL-03")} == {"not_applicable"}
    assert doc["targets"][0]["kind"] == "network"
