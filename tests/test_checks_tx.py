"""TX-02 (listening plaintext services, seen in /proc/net) and TX-05 (Samba's SMB1 floor)."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config.policy import load_policy
from agent.targets.local import LocalTarget
from agent.targets.rootfs import RootfsTarget
from checks import transfer
from checks.base import FactSet
from collectors.listening import COLLECTOR as LISTENING
from collectors.listening import decode_address, parse_table
from collectors.samba import COLLECTOR as SAMBA
from tests.conftest import finding, require_tool

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
MakeRootfs = Callable[[dict[str, str | bytes]], Path]
TELNET_PORT = 2323


@pytest.fixture
def fake_telnet() -> Iterator[socket.socket]:
    """A throwaway TCP listener on 127.0.0.1:2323, standing in for a telnet daemon."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", TELNET_PORT))
    s.listen(1)
    try:
        yield s
    finally:
        s.close()


def write_policy(tmp_path: Path, text: str) -> str:
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return str(p)


TELNET_POLICY = """plaintext_services:
  extra_ports: {"2323/tcp": telnet}
  include_loopback: true
"""


def test_listener_seen_in_proc_with_its_process(fake_telnet: socket.socket) -> None:
    eps = LISTENING.collect(LocalTarget())["endpoints"]
    mine = [e for e in eps if e["port"] == TELNET_PORT and e["proto"] == "tcp"]
    assert mine == [{"address": "127.0.0.1", "port": TELNET_PORT, "proto": "tcp", "process": mine[0]["process"]}]
    # This test process owns the socket; its name is what the kernel calls it.
    assert mine[0]["process"] == Path("/proc/self/comm").read_text().strip()


def test_listening_agrees_with_ss(fake_telnet: socket.socket) -> None:
    require_tool("ss")

    def ss_ports() -> set[int]:
        out = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, env={"LC_ALL": "C"}).stdout
        return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}

    before = ss_ports()
    ours = {e["port"] for e in LISTENING.collect(LocalTarget())["endpoints"] if e["proto"] == "tcp"}
    after = ss_ports()
    # Other tests may open or close listeners meanwhile: judge only what was stable around our read.
    assert before & after <= ours <= before | after
    assert TELNET_PORT in ours


def test_tx02_fails_on_telnet_listener(fake_telnet: socket.socket, tmp_path: Path, run_cli: Cli) -> None:
    rc, doc, _, _ = run_cli("scan", "--check", "TX-02", "--policy", write_policy(tmp_path, TELNET_POLICY))
    assert doc is not None
    f = finding(doc, "TX-02")
    assert f["status"] == "fail", f
    assert any(p.startswith("telnet 127.0.0.1:2323/tcp") for p in f["evidence"]["plaintext"])
    assert rc == 1


def test_tx02_loopback_only_is_listed_not_judged(fake_telnet: socket.socket, tmp_path: Path, run_cli: Cli) -> None:
    policy = write_policy(tmp_path, 'plaintext_services:\n  extra_ports: {"2323/tcp": telnet}\n')
    _, doc, _, _ = run_cli("scan", "--check", "TX-02", "--policy", policy)
    assert doc is not None
    f = finding(doc, "TX-02")
    assert f["status"] == "pass", f
    assert any("2323" in p for p in f["evidence"]["loopback_only_ignored"])


def test_tx02_allowed_port_exempts(fake_telnet: socket.socket, tmp_path: Path, run_cli: Cli) -> None:
    policy = write_policy(tmp_path, TELNET_POLICY + '  allowed_ports: ["2323/tcp"]\n')
    _, doc, _, _ = run_cli("scan", "--check", "TX-02", "--policy", policy)
    assert doc is not None
    assert finding(doc, "TX-02")["status"] == "pass"


def test_tx02_without_the_listener_passes(tmp_path: Path, run_cli: Cli) -> None:
    _, doc, _, _ = run_cli("scan", "--check", "TX-02", "--policy", write_policy(tmp_path, TELNET_POLICY))
    assert doc is not None
    assert finding(doc, "TX-02")["status"] == "pass"


def test_tx02_on_a_directory_is_error(make_rootfs: MakeRootfs, run_cli: Cli) -> None:
    root = make_rootfs({"/etc/os-release": "ID=debian\n", "/proc/net/tcp": "garbage\n"})
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "TX-02")
    assert doc is not None
    assert finding(doc, "TX-02")["status"] == "error"


def test_proc_net_parsing() -> None:
    v4 = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
          "   0: 0100007F:0913 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n"
          "   1: 0100007F:9C40 0100007F:0913 01 00000000:00000000 00:00000000 00000000     0        0 4243 1\n")
    rows = parse_table(v4, "tcp", 4, "tcp")
    assert rows == [{"address": "127.0.0.1", "port": 2323, "proto": "tcp", "inode": 4242}]
    assert decode_address("00000000000000000000000001000000", 6) == "::1"
    mapped = ipaddress.IPv6Address(decode_address("0000000000000000FFFF00000100007F", 6))
    assert mapped.ipv4_mapped == ipaddress.IPv4Address("127.0.0.1")
    with pytest.raises(ValueError):
        parse_table("no header\n", "tcp", 4, "tcp")
    with pytest.raises(ValueError):
        parse_table(v4.splitlines()[0] + "\n   0: zz:zz\n", "tcp", 4, "tcp")


def test_tx02_uses_lan_services_too_and_fails_closed() -> None:
    policy = load_policy()
    lan = {"endpoints": [{"address": "10.9.0.2", "port": 21, "proto": "tcp", "process": None}]}
    out = transfer.TX_02.evaluate(FactSet({"lan_services": lan}, {"listening": "no /proc"}), policy)
    assert out.status == "fail" and "ftp 10.9.0.2:21/tcp" in out.message.en
    out = transfer.TX_02.evaluate(FactSet({"lan_services": {"endpoints": []}}, {"listening": "no /proc"}), policy)
    assert out.status == "error"
    assert transfer.TX_02.evaluate(FactSet({}, {}), policy).status == "error"


# --- TX-05 -------------------------------------------------------------------

SMB_GLOBAL = "[global]\n   workgroup = OFFICE\n{extra}\n[share]\n   path = /srv/share\n   min protocol = NT1\n"


def samba_root(make_rootfs: MakeRootfs, conf: str, *, version: str = "4.17.12") -> Path:
    status = (f"Package: samba\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2:{version}+dfsg-0\n"
              "Description: SMB server\n\n")
    return make_rootfs({"/etc/os-release": "ID=debian\n", "/usr/sbin/smbd": b"\x7fELF",
                        "/var/lib/dpkg/status": status, "/etc/samba/smb.conf": conf})


def tx05(root: Path) -> Any:
    facts = SAMBA.collect(RootfsTarget(f"rootfs:{root}", str(root)))
    return transfer.TX_05.evaluate(FactSet({"samba": facts}, {}), load_policy())


@pytest.mark.parametrize(("extra", "version", "status"), [
    ("   server min protocol = SMB2_10", "4.17.12", "pass"),
    ("   Server Min Protocol = SMB3", "4.9.5", "pass"),
    ("   server min protocol = NT1", "4.17.12", "fail"),
    ("   min protocol = LANMAN2", "4.17.12", "fail"),          # the synonym
    ("   server max protocol = NT1", "4.17.12", "fail"),
    ("", "4.17.12", "pass"),                                  # SMB2_02 by default since 4.11
    ("", "4.9.5", "fail"),                                    # older Samba allowed SMB1 by default
    ("   server min protocol = \\\n      SMB2_02", "4.17.12", "pass"),  # continued line
    ("   server min protocol = SMB9", "4.17.12", "error"),
    ("   include = /etc/samba/smb.conf.%m", "4.17.12", "error"),
    ("   this line has no equals sign", "4.17.12", "error"),
])
def test_tx05_cases(make_rootfs: MakeRootfs, extra: str, version: str, status: str) -> None:
    out = tx05(samba_root(make_rootfs, SMB_GLOBAL.format(extra=extra), version=version))
    assert out.status == status, out.message.en


def test_tx05_include_is_followed(make_rootfs: MakeRootfs) -> None:
    root = samba_root(make_rootfs, SMB_GLOBAL.format(extra="   include = /etc/samba/global.conf"))
    (root / "etc/samba/global.conf").write_text("server min protocol = NT1\n")
    out = tx05(root)
    assert out.status == "fail" and "global.conf:1" in out.message.en


def test_tx05_not_applicable_without_samba(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/etc/os-release": "ID=debian\n", "/etc/samba/smb.conf": "[global]\n"})
    assert tx05(root).status == "not_applicable"


@pytest.mark.needs_service
@pytest.mark.parametrize("extra", ["   server min protocol = NT1", "   min protocol = SMB3_11",
                                   "   include = {inc}", ""])
def test_parser_agrees_with_testparm(tmp_path: Path, extra: str) -> None:
    """Samba's own testparm reads the same files and must report the same effective floor."""
    require_tool("testparm")
    inc = tmp_path / "inc.conf"
    inc.write_text("[global]\nserver min protocol = SMB2_10\n")
    conf = tmp_path / "smb.conf"
    conf.write_text(SMB_GLOBAL.format(extra=extra.format(inc=inc)))
    res = subprocess.run(["testparm", "-s", "--parameter-name=server min protocol", str(conf)],
                         capture_output=True, text=True, env={"LC_ALL": "C"}, timeout=30)
    truth = res.stdout.strip()
    root = tmp_path / "root"
    (root / "etc/samba").mkdir(parents=True)
    (root / "etc/samba/smb.conf").write_text(conf.read_text().replace(str(inc), "/etc/samba/inc.conf"))
    (root / "etc/samba/inc.conf").write_text(inc.read_text())
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/smbd").write_bytes(b"")
    facts = SAMBA.collect(RootfsTarget(f"rootfs:{root}", str(root)))
    ours = facts["settings"].get("server min protocol", {}).get("value", "SMB2_02")
    aliases = {"SMB2": "SMB2_10", "SMB3": "SMB3_11"}  # testparm prints Samba's enum names
    assert aliases.get(ours.upper(), ours.upper()) == aliases.get(truth.upper(), truth.upper()), (ours, truth)
