"""mamoru vs tshark on a 100 000-beacon capture: time, and whether both give every BSSID the same verdict.

    .venv/bin/python benchmarks/wifi_capture.py [--beacons 100000] [--networks 600]

The capture is made once with scapy in a temporary directory: a few hundred
access points (every security the classifier knows: open, WEP, WPA1, mixed,
WPA2 with and without PMF, transition, WPA3, OWE, Enterprise, TKIP), each
beaconing with its own sequence numbers and timestamps, with radiotap
headers. tshark (Debian package ``tshark``) decodes every beacon and prints
the fields that decide security; mamoru's verdict is recomputed from those
fields with the same classifier, so "identical verdicts" compares what each
tool *read*. mamoru is timed in-process (the reader and classifier) and as a
whole ``mamoru scan`` command; tshark as its command.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.installed import compile_like_pip  # noqa: E402
from collectors.wifi import ie  # noqa: E402
from collectors.wifi.frames import analyse  # noqa: E402
from tests.wifi_frames import SYNTHETIC, beacon, rsn, wpa  # noqa: E402

KINDS: list[dict[str, Any]] = [kw for _, _, kw, _, _ in SYNTHETIC] + [
    {"privacy": False},
    {"privacy": True},
    {"privacy": True, "wpa_body": wpa()},
    {"privacy": True, "wpa_body": wpa(group="TKIP", pairwise=["CCMP", "TKIP"]),
     "rsn_body": rsn(group="TKIP", pairwise=["CCMP", "TKIP"])},
    {"privacy": True, "rsn_body": rsn()},
    {"privacy": True, "rsn_body": rsn(akm=["PSK", "FT-PSK"])},
    {"privacy": True, "rsn_body": rsn(akm=["802.1X"], mfpc=True)},
    {"privacy": True, "rsn_body": rsn(akm=["PSK-SHA256"], mfpr=True, mfpc=True)},
]

TSHARK_FIELDS = ["wlan.bssid", "wlan.fixed.capabilities.privacy", "wlan.rsn.gcs.type", "wlan.rsn.pcs.type",
                 "wlan.rsn.akms.type", "wlan.rsn.capabilities.mfpr", "wlan.rsn.capabilities.mfpc",
                 "wlan.wfa.ie.wpa.mcs.type", "wlan.wfa.ie.wpa.ucs.type", "wlan.wfa.ie.wpa.akms.type", "wlan.ssid"]


def make_capture(path: Path, beacons: int, networks: int) -> None:
    from scapy.utils import RawPcapWriter

    templates = []
    for i in range(networks):
        kind = KINDS[i % len(KINDS)]
        raw = bytes(beacon(f"02:bb:{i >> 8:02x}:{i & 255:02x}:00:01", f"bench-{i}".encode(), **kind))
        templates.append(bytearray(raw))
    rt_len = templates[0][2] | (templates[0][3] << 8)
    with RawPcapWriter(str(path), linktype=127) as w:
        w.write_header(None)
        for n in range(beacons):
            frame = templates[n % networks]
            seq = (n // networks) & 0xFFF
            struct.pack_into("<H", frame, rt_len + 22, seq << 4)  # sequence control
            struct.pack_into("<Q", frame, rt_len + 24, n * 102400)  # TSF timestamp
            w.write_packet(bytes(frame), sec=1_700_000_000 + n // 10, usec=(n % 10) * 100_000)


def _types(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def tshark_verdicts(output: str) -> dict[str, tuple[str, str | None]]:
    """BSSID -> (label, pmf), from tshark's fields, with mamoru's classifier."""
    out: dict[str, tuple[str, str | None]] = {}
    for line in output.splitlines():
        f = line.split("\t")
        if len(f) < len(TSHARK_FIELDS) - 1:
            continue
        bssid, privacy, rgcs, rpcs, rakm, mfpr, mfpc, wmcs, wucs, wakm = f[:10]
        rsn_ie = wpa_ie = None
        if rakm or rpcs:
            rsn_ie = {"group": ie.CIPHERS.get(_types(rgcs)[0], "?") if rgcs else None,
                      "pairwise": [ie.CIPHERS.get(t, "?") for t in _types(rpcs)],
                      "akm": [ie.AKMS.get(t, "?") for t in _types(rakm)],
                      "mfpr": mfpr in ("1", "True"), "mfpc": mfpc in ("1", "True")}
        if wakm or wucs:
            wpa_ie = {"group": ie.CIPHERS.get(_types(wmcs)[0], "?") if wmcs else None,
                      "pairwise": [ie.CIPHERS.get(t, "?") for t in _types(wucs)],
                      "akm": [ie.AKMS.get(t, "?") for t in _types(wakm)]}
        label = ie.classify(privacy=privacy in ("1", "True"), rsn=rsn_ie, wpa=wpa_ie)
        out.setdefault(bssid, (label, ie.pmf(rsn_ie)))
    return out


def timed(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, res.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beacons", type=int, default=100_000)
    ap.add_argument("--networks", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    compile_like_pip()  # as pip does at install time: see benchmarks/installed.py
    if shutil.which("tshark") is None:
        print("tshark is not installed (Debian: apt-get install tshark)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="mm6-bench-wifi-"))
    try:
        cap = work / "beacons.pcap"
        t0 = time.perf_counter()
        make_capture(cap, args.beacons, args.networks)
        print(f"capture: {args.beacons} beacons from {args.networks} APs, {cap.stat().st_size / 1e6:.1f} MB, "
              f"made with scapy in {time.perf_counter() - t0:.1f} s")
        tshark_argv = ["tshark", "-n", "-r", str(cap), "-Y", "wlan.fc.type_subtype==8", "-T", "fields",
                       "-E", "occurrence=a", "-E", "aggregator=,"]
        for f in TSHARK_FIELDS:
            tshark_argv += ["-e", f]
        cli = [sys.executable, "-m", "agent.cli.main", "scan", "--wifi-capture", str(cap), "--check", "WL-03",
               "--quiet", "--output", str(work / "report.json")]
        times: dict[str, list[float]] = {"mamoru (reader+classifier)": [], "mamoru, no body cache": [],
                                         "mamoru scan (whole CLI)": [], "tshark": []}
        result: dict[str, Any] = {}
        tshark_out = ""
        for _ in range(args.rounds):
            t = time.perf_counter()
            with cap.open("rb") as f:
                result = analyse(f)
            times["mamoru (reader+classifier)"].append(time.perf_counter() - t)
            t = time.perf_counter()
            with cap.open("rb") as f:
                analyse(f, cache=False)
            times["mamoru, no body cache"].append(time.perf_counter() - t)
            times["mamoru scan (whole CLI)"].append(timed(cli)[0])
            dt, tshark_out = timed(tshark_argv)
            times["tshark"].append(dt)
        mine = {n["bssid"]: (n["security"], n["pmf"]) for n in result["networks"]}
        theirs = tshark_verdicts(tshark_out)
        frames = sum(n["frames"] for n in result["networks"])
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in times.items():
            print(f"{k:30s} median {med[k]:6.2f} s   ({', '.join(f'{x:.2f}' for x in v)})   "
                  f"{args.beacons / med[k]:>10,.0f} beacons/s")
        base = med["tshark"]
        for k in times:
            if k != "tshark":
                print(f"ratio tshark / {k}: {base / med[k]:.1f}x")
        same = mine == theirs
        print(f"beacons read: mamoru {frames}, tshark {len(tshark_out.splitlines())}")
        print(f"BSSIDs: mamoru {len(mine)}, tshark {len(theirs)}; identical verdicts (label and PMF): {same}")
        if not same:
            diff = {b: (mine.get(b), theirs.get(b)) for b in set(mine) | set(theirs) if mine.get(b) != theirs.get(b)}
            print("differences:", json.dumps(dict(itertools.islice(diff.items(), 10)), indent=1))
        print("labels:", dict(sorted(collections.Counter(v[0] for v in mine.values()).items())))
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
