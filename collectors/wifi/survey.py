"""``wifi_survey``: the Wi-Fi networks around, from a capture or from this machine's own scanner.

Whatever the source, the facts have one shape: ``networks`` (one record per
BSSID/SSID/security combination, with the raw AKM and cipher suites, the PMF
bits where the source knows them, and a security label) and ``connected``
(the networks this machine is associated with right now, live sources only).
The source is named, because what it can see differs: a capture and
wpa_supplicant's ``BSS`` give the raw elements; nmcli, netsh and airport give
the operating system's summary. A capture's facts also say whether all of
it was read (``integrity``: records and bytes read, the file's size, and each
problem with its record and byte offset), because a judge must never pass on
the part of a damaged file it could read.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from agent.targets.base import CommandUnavailable, Target, TargetError
from agent.targets.wifi import CaptureTarget, WifiTarget
from collectors.base import Collector, CollectorError, Facts
from collectors.wifi import airport, frames, netsh, nmcli, wpa_ctrl
from collectors.wifi.pcap import CaptureError


class WifiSurvey(Collector):
    id = "wifi_survey"
    #: 2: capture facts record whether the whole file was read (``integrity``).
    version = "2"
    platforms: ClassVar[frozenset[str]] = frozenset({"wifi"})
    timeout = 120.0

    def collect(self, target: Target) -> Facts:
        if isinstance(target, CaptureTarget):
            return self._capture(target)
        if isinstance(target, WifiTarget):
            return self._live(target)
        raise CollectorError(f"a {target.kind} target has no Wi-Fi survey")

    def _capture(self, target: CaptureTarget) -> Facts:
        with target.open_capture() as stream:
            size = os.fstat(stream.fileno()).st_size
            try:
                result = frames.analyse(stream)
            except CaptureError as e:
                raise CollectorError(f"{os.path.basename(target.path)}: {e}") from e
        networks = result.pop("networks")
        integrity = {"complete": result.pop("complete"), "records": result["records"],
                     "bytes_read": result.pop("bytes_read"), "file_size": size, "compressed": result["compressed"],
                     "problems": result.pop("problems")}
        return {"source": "capture", "file": os.path.basename(target.path), "stats": result, "integrity": integrity,
                "networks": networks, "connected": [], "notes": _capture_notes(result, integrity)}

    def _live(self, target: WifiTarget) -> Facts:
        tried: list[str] = []
        if target.os == "linux":
            sockets = wpa_ctrl.control_sockets(target.ctrl_dirs, target.interface)
            if sockets:
                try:
                    return _from_wpa(sockets)
                except CollectorError as e:  # e.g. not in the netdev group: NetworkManager may still answer
                    tried.append(str(e))
            else:
                tried.append(f"no wpa_supplicant control socket in {', '.join(target.ctrl_dirs)}")
            facts = _from_command(target, nmcli.COMMAND, "nmcli", lambda out: nmcli.parse(out.decode("utf-8",
                                                                                                     "replace")))
        elif target.os == "windows":
            facts = _from_command(target, netsh.COMMAND, "netsh", lambda out: netsh.parse(netsh.decode(out)))
        elif target.os == "darwin":
            facts = _from_command(target, airport.COMMAND, "airport",
                                  lambda out: airport.parse(out.decode("utf-8", "replace")))
        else:
            raise CollectorError(f"no Wi-Fi survey method for {target.os}")
        if isinstance(facts, str):
            raise CollectorError("; ".join([*tried, facts]))
        return facts


def _from_wpa(sockets: list[str]) -> Facts:
    networks: list[dict[str, Any]] = []
    connected: list[dict[str, Any]] = []
    interfaces: list[str] = []
    notes: list[str] = []
    errors: list[str] = []
    for path in sockets:
        try:
            one = wpa_ctrl.survey(path)
        except wpa_ctrl.CtrlError as e:
            errors.append(str(e))
            continue
        interfaces.append(one["interface"])
        for rec in one["networks"]:
            rec["interface"] = one["interface"]
        networks += one["networks"]
        if one["connected"]:
            connected.append(one["connected"])
        notes += [f"{one['interface']}: {n}" for n in one["notes"]]
    if not interfaces:
        raise CollectorError("wpa_supplicant did not answer: " + "; ".join(errors))
    return {"source": "wpa_supplicant", "interfaces": interfaces, "networks": networks, "connected": connected,
            "notes": notes + errors}


def _from_command(target: Target, argv: tuple[str, ...], name: str, parse: Any) -> Facts | str:
    try:
        res = target.run(argv, timeout=45)
    except CommandUnavailable:
        return f"{name} is not available"
    except TargetError as e:
        return f"{name}: {e}"
    if not res.ok:
        err = res.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{name} exited with {res.returncode}: {err[0] if err else ''}"
    networks = parse(res.stdout)
    connected = [
        {"interface": None, "bssid": n["bssid"], "ssid": n["ssid"], "ssid_hex": n["ssid_hex"],
         "hidden": n["hidden"], "key_mgmt": None, "pairwise": (n["rsn"] or n["wpa"] or {}).get("pairwise", []),
         "group": (n["rsn"] or n["wpa"] or {}).get("group"), "security": n["security"], "source": name}
        for n in networks if n.get("in_use")
    ]
    return {"source": name, "interfaces": [], "networks": networks, "connected": connected, "notes": []}


def _capture_notes(stats: dict[str, Any], integrity: dict[str, Any]) -> list[str]:
    notes = [p["problem"] for p in integrity["problems"]]
    for key, text in (("malformed", "malformed beacons/probe responses were ignored"),
                      ("bad_link", "frames with a bad FCS or radio header were ignored"),
                      ("not_80211", "records that are not 802.11 were ignored"),
                      ("networks_dropped", "networks beyond the limit were not recorded")):
        if stats[key]:
            notes.append(f"{stats[key]} {text}")
    if not stats["beacons"] and not stats["probe_responses"]:
        notes.append("the capture holds no beacons or probe responses: network security cannot be read from it")
    return notes


COLLECTOR = WifiSurvey()
