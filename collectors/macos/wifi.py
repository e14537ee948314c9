"""The Wi-Fi network a Mac is connected to, and its security mode (TX-01).

``system_profiler SPAirPortDataType -json`` is the documented way since ``airport`` went away (macOS 14.4).
Its JSON names the security mode by a code (``spairport_security_mode_wpa2_personal``), not by a localized
word, so the code is what the facts keep. macOS hides the network's name (``<redacted>``) from a process
without Location Services permission: that is recorded as it is, and the security mode is still reported.
Only the connected network is kept; the neighbours in the air are counted, not listed (they are not this
Mac's link, and their names are other people's).
"""

from __future__ import annotations

from typing import Any, ClassVar

from agent.targets.base import CommandResult, Target
from collectors.base import Facts
from collectors.macos.base import MacCollector, parse_json, run_tool
from collectors.problems import Problem

ARGV = ("/usr/sbin/system_profiler", "SPAirPortDataType", "-json")
WHERE = "system_profiler SPAirPortDataType"
#: Timeout: system_profiler scans for networks, which takes several seconds on a busy channel.
TIMEOUT = 45.0


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def parse_airport(stdout: bytes) -> list[dict[str, Any]]:
    """One entry per Wi-Fi interface: its name, status code and the connected network (or None)."""
    doc = parse_json(stdout, WHERE)
    groups = doc.get("SPAirPortDataType") if isinstance(doc, dict) else None
    if not isinstance(groups, list):
        raise Problem("wrong_type", where=WHERE, key="SPAirPortDataType", type=type(groups).__name__)
    out: list[dict[str, Any]] = []
    for group in groups:
        interfaces = group.get("spairport_airport_interfaces", []) if isinstance(group, dict) else None
        if not isinstance(interfaces, list):
            raise Problem("wrong_type", where=WHERE, key="spairport_airport_interfaces",
                          type=type(interfaces).__name__)
        for itf in interfaces:
            if not isinstance(itf, dict):
                raise Problem("wrong_type", where=WHERE, key="spairport_airport_interfaces", type="entry")
            if "spairport_status_information" not in itf and "spairport_current_network_information" not in itf:
                continue  # awdl0, llw0: Apple's peer-to-peer links, not a Wi-Fi network
            cur = itf.get("spairport_current_network_information")
            if cur is not None and not isinstance(cur, dict):
                raise Problem("wrong_type", where=WHERE, key="spairport_current_network_information",
                              type=type(cur).__name__)
            current = None if cur is None else {
                "ssid": _text(cur.get("_name")),
                "security": _text(cur.get("spairport_security_mode")),
                "phymode": _text(cur.get("spairport_network_phymode")),
                "channel": _text(cur.get("spairport_network_channel")),
            }
            others = itf.get("spairport_airport_other_local_wireless_networks")
            out.append({"interface": _text(itf.get("_name")),
                        "status": _text(itf.get("spairport_status_information")),
                        "current": current,
                        "neighbours": len(others) if isinstance(others, list) else 0})
    return out


def _parse(res: CommandResult) -> list[dict[str, Any]]:
    return parse_airport(res.stdout)


class WifiCollector(MacCollector):
    id: ClassVar[str] = "mac_wifi"

    def collect(self, target: Target) -> Facts:
        return {"airport": run_tool(target, ARGV, _parse, timeout=TIMEOUT)}


COLLECTOR = WifiCollector()
