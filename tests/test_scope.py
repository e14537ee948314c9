"""The network scope: nothing is sent to a network the policy does not declare.

Proved twice: in-process, with every function that could send replaced by
one that fails the test; and on a real namespace LAN, where the scanner's
interface counter must not move when a scan is refused (and must move when a
scan is allowed, so the counter is shown to work).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError
from agent.scope import OutOfScope, check_specs, guard, parse_network, parse_scope, require_in_scope
from agent.targets.network import NetworkTarget
from collectors import lan_probe
from collectors.base import CollectorError
from collectors.lan_discovery import COLLECTOR as DISCOVERY
from tests import lan_netns
from tests.conftest import require


class _Policy:
    def __init__(self, scope: list[str]) -> None:
        self.scope = scope

    def get(self, key: str, default: Any = None) -> Any:
        return self.scope if key == "network.scope" else default


def test_parse_network() -> None:
    assert str(parse_network("192.168.10.0/24")) == "192.168.10.0/24"
    with pytest.raises(ConfigError, match=r"did you mean 192\.168\.10\.0/24"):
        parse_network("192.168.10.5/24")
    with pytest.raises(ConfigError):
        parse_network("office")


def test_check_specs() -> None:
    check_specs(["local", "network:10.1.2.0/25", "wifi:"], _Policy(["10.1.0.0/16"]))
    with pytest.raises(OutOfScope, match=r"outside the policy's network\.scope"):
        check_specs(["network:10.2.0.0/24"], _Policy(["10.1.0.0/16"]))
    with pytest.raises(OutOfScope, match=r"declares no network\.scope"):
        check_specs(["network:10.1.0.0/24"], _Policy([]))
    with pytest.raises(OutOfScope):  # wider than the scope, though it overlaps
        check_specs(["network:10.1.0.0/22"], _Policy(["10.1.1.0/24"]))
    with pytest.raises(ConfigError, match="at most"):
        check_specs(["network:10.0.0.0/8"], _Policy(["10.0.0.0/8"]))
    assert OutOfScope("x").exit_code == 2


def test_guard() -> None:
    scope = parse_scope(["10.1.0.0/16"])
    guard("10.1.2.3", scope)
    for bad in ("10.2.0.1", "127.0.0.1"):
        with pytest.raises(OutOfScope):
            guard(bad, scope)
    with pytest.raises(OutOfScope):
        guard("10.1.2.3", [])
    with pytest.raises(OutOfScope):
        require_in_scope(ipaddress.ip_network("10.1.0.0/24"), [])


def test_network_target_spec() -> None:
    t = NetworkTarget.from_spec("network:192.168.10.0/30")
    assert [str(a) for a in t.hosts()] == ["192.168.10.1", "192.168.10.2"]
    assert t.platform().system == "network" and not t.can_run
    assert [str(a) for a in NetworkTarget.from_spec("network:192.168.10.9/32").hosts()] == ["192.168.10.9"]
    with pytest.raises(ConfigError):
        NetworkTarget.from_spec("network:fd00::/120")


@pytest.fixture
def no_packets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way mamoru could send is replaced by a tripwire."""
    calls: list[str] = []

    def trip(name: str) -> Any:
        def f(*a: Any, **k: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} called: a packet would have been sent")
        return f

    monkeypatch.setattr(lan_probe, "open_packet_socket", trip("open_packet_socket"))
    monkeypatch.setattr(lan_probe, "arp_sweep", trip("arp_sweep"))
    monkeypatch.setattr(lan_probe, "tcp_probe", trip("tcp_probe"))
    monkeypatch.setattr(socket.socket, "connect_ex", trip("connect_ex"))
    monkeypatch.setattr(socket.socket, "sendto", trip("sendto"))
    monkeypatch.setattr(socket, "create_connection", trip("create_connection"))
    return calls


def test_cli_refuses_out_of_scope_before_anything(run_cli: Any, tmp_path: Path, no_packets: list[str]) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text("network:\n  scope: [192.0.2.0/24]\n", encoding="utf-8")
    out = tmp_path / "r.json"
    rc, _, stdout, err = run_cli("scan", "--network", "198.51.100.0/24", "--policy", str(pol), "--output", str(out))
    assert rc == 2 and "outside the policy's network.scope" in err and "nothing was sent" in err
    assert not out.exists() and no_packets == []
    rc, _, _, err = run_cli("scan", "--target", "network:198.51.100.0/24", "--output", str(out))  # default: no scope
    assert rc == 2 and "declares no network.scope" in err and no_packets == []
    rc, _, _, err = run_cli("collect", "--target", "network:198.51.100.0/24", "--output", str(tmp_path / "b.json"))
    assert rc == 2 and no_packets == []


def test_collector_without_scope_sends_nothing(no_packets: list[str]) -> None:
    target = NetworkTarget.from_spec("network:192.0.2.0/24")
    with pytest.raises(CollectorError, match=r"no network\.scope"):
        DISCOVERY.collect(target)
    with pytest.raises(CollectorError, match="outside"):
        DISCOVERY.collect_with(target, {"network.scope": ["198.51.100.0/24"]})
    assert no_packets == []


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_refusal_on_a_real_lan_sends_no_frame() -> None:
    reason = lan_netns.available()
    require(reason is None, reason or "")
    work = Path(tempfile.mkdtemp(prefix="mm6-scope-"))
    work.chmod(0o755)
    try:
        with lan_netns.TestLan("10.206.8.0/24", [lan_netns.Host("h1", "10.206.8.11", "52:54:00:66:08:11")],
                               scanner_ip="10.206.8.2", scanner_mac="52:54:00:66:08:02") as lan:
            pol = work / "p.yaml"
            pol.write_text("network:\n  scope: [10.206.9.0/24]\n", encoding="utf-8")
            pol.chmod(0o644)
            scan = [sys.executable, "-m", "agent.cli.main", "scan", "--quiet", "--check", "WL-02", "--policy",
                    str(pol)]
            before = lan.tx_packets()
            res = lan.run([*scan, "--network", "10.206.8.0/24", "--output", str(work / "a.json")])
            assert res.returncode == 2 and "refusing to scan 10.206.8.0/24" in res.stderr
            assert lan.tx_packets() == before and not (work / "a.json").exists()
            pol.write_text("network:\n  scope: [10.206.8.0/24]\n", encoding="utf-8")
            res = lan.run([*scan, "--network", "10.206.8.0/28", "--output", str(work / "b.json")])
            assert res.returncode == 1, res.stderr  # h1 is not in the (empty) ledger
            assert lan.tx_packets() > before  # the counter does count what is sent
            doc = json.loads((work / "b.json").read_text())
            assert {d["mac"] for d in doc["findings"][0]["evidence"]["devices"]} == {"52:54:00:66:08:11",
                                                                                   "52:54:00:66:08:02"}
    finally:
        shutil.rmtree(work, ignore_errors=True)
