"""mamoru vs ``nmap -sn``: discovering the hosts of a /24 on a namespace LAN, and whether both find the same ones.

    sudo .venv/bin/python benchmarks/lan.py [--hosts 20] [--rounds 3]

Builds a LAN of network namespaces (names ``mm6…``, addresses in 10.206.7.0/24
that exist only inside them, all deleted at the end): one bridge, a scanner
and N hosts with their own MACs. In the scanner's namespace it times, in
alternating rounds:

* mamoru's host discovery (the ARP sweep that WL-02 uses), in-process;
* the whole ``mamoru scan --network … --check WL-02`` command, start-up included;
* ``nmap -sn -n`` (nmap's default host discovery; as root on a LAN that is an ARP ping);
* for reference, scapy's ``srp`` ARP sweep with a 2 s timeout.

It prints each time, the median, the ratio to nmap, and whether every tool
found exactly the hosts (IP and MAC) that exist.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.installed import compile_like_pip  # noqa: E402
from tests import lan_netns  # noqa: E402

SUBNET = "10.206.7.0/24"

MAMORU_DISCOVERY = """
import json, sys, time, ipaddress
from collectors.lan_discovery import _discover
from agent.scope import parse_scope
net = ipaddress.ip_network(sys.argv[1])
t = time.perf_counter()
r = _discover(net, [str(a) for a in net.hosts()], parse_scope([sys.argv[1]]))
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "hosts": {d["ip"]: d["mac"] for d in r["devices"] if not d["self"]}}))
"""

SCAPY_SRP = """
import json, sys, time
t0 = time.perf_counter()
from scapy.all import ARP, Ether, conf, srp
conf.verb = 0
t = time.perf_counter()
ans, _ = srp(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=sys.argv[1]), timeout=2, iface="eth0")
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "import": t - t0, "hosts": {r.psrc: r.hwsrc for _, r in ans}}))
"""


def timed(lan: lan_netns.TestLan, argv: list[str]) -> tuple[float, str]:
    import time

    t = time.perf_counter()
    res = lan.run(argv, timeout=300)
    dt = time.perf_counter() - t
    if res.returncode not in (0, 1):
        raise RuntimeError(f"{argv[0]} failed ({res.returncode}): {res.stderr[-500:]}")
    return dt, res.stdout


def nmap_hosts(xml: str, own_ip: str) -> dict[str, str]:
    hosts = {}
    for block in re.findall(r"<host>.*?</host>", xml, re.S):
        if 'state="up"' not in block:
            continue
        ip = re.search(r'addr="([\d.]+)" addrtype="ipv4"', block)
        mac = re.search(r'addr="([0-9A-Fa-f:]{17})" addrtype="mac"', block)
        if ip and ip.group(1) != own_ip:
            hosts[ip.group(1)] = mac.group(1).lower() if mac else ""
    return hosts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    compile_like_pip()  # as pip does at install time: see benchmarks/installed.py
    reason = lan_netns.available()
    if reason or shutil.which("nmap") is None:
        print(reason or "nmap is not installed (Debian: apt-get install nmap)")
        return 2
    hosts = [lan_netns.Host(f"h{i}", f"10.206.7.{10 + i * 7}", f"52:54:00:67:{i >> 8:02x}:{i & 255:02x}")
             for i in range(args.hosts)]
    truth = {h.ip: h.mac for h in hosts}
    work = Path(tempfile.mkdtemp(prefix="mm6-bench-lan-"))
    work.chmod(0o755)
    policy = work / "policy.yaml"
    policy.write_text(f"network:\n  scope: [{SUBNET}]\n", encoding="utf-8")
    policy.chmod(0o644)
    times: dict[str, list[float]] = {"mamoru discovery": [], "mamoru scan (whole CLI)": [], "nmap -sn": [],
                                     "scapy srp (2 s timeout)": []}
    found: dict[str, dict[str, str]] = {}
    try:
        with lan_netns.TestLan(SUBNET, hosts, scanner_ip="10.206.7.2", scanner_mac="52:54:00:67:ff:02") as lan:
            for _ in range(args.rounds):
                _, out = timed(lan, [sys.executable, "-c", MAMORU_DISCOVERY, SUBNET])
                res = json.loads(out)
                times["mamoru discovery"].append(res["seconds"])
                found["mamoru discovery"] = res["hosts"]
                dt, _ = timed(lan, [sys.executable, "-m", "agent.cli.main", "scan", "--network", SUBNET, "--policy",
                                    str(policy), "--check", "WL-02", "--quiet", "--output", str(work / "r.json")])
                times["mamoru scan (whole CLI)"].append(dt)
                doc = json.loads((work / "r.json").read_text())
                found["mamoru scan (whole CLI)"] = {d["ip"]: d["mac"] for d in doc["findings"][0]["evidence"]["devices"]
                                                    if not d["self"]}
                dt, xml = timed(lan, ["nmap", "-sn", "-n", "-oX", "-", SUBNET])
                times["nmap -sn"].append(dt)
                found["nmap -sn"] = nmap_hosts(xml, "10.206.7.2")
                _, out = timed(lan, [sys.executable, "-c", SCAPY_SRP, SUBNET])
                res = json.loads(out)
                times["scapy srp (2 s timeout)"].append(res["seconds"])
                found["scapy srp (2 s timeout)"] = res["hosts"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"/24 with {args.hosts} live hosts, {args.rounds} rounds (medians; each round in brackets)")
    for k, v in times.items():
        ok = found[k] == truth
        print(f"{k:26s} {med[k]:6.2f} s  ({', '.join(f'{x:.2f}' for x in v)})  "
              f"nmap/this {med['nmap -sn'] / med[k]:4.2f}x  found {len(found[k])} hosts, exactly the real ones: {ok}")
    same = found["mamoru discovery"] == found["nmap -sn"] == truth
    print(f"mamoru and nmap found the same hosts (IP and MAC): {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
