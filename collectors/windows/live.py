"""Windows facts only a running system has: Defender's state, Security Center's products, BitLocker, updates.

They come from the PowerShell batch (one process per scan, ``agent/targets/powershell.py``), as CIM
objects in JSON: never from localized prose. Offline (a disk image) there is no running system: the
facts say so (``live: false`` with the reason), and Defender's registry switches are still read, because
those can show a PC unprotected even from an image, though never protected.
"""

from __future__ import annotations

import time
from typing import Any

from agent.targets.base import Target, TargetError
from agent.targets.powershell import PartError
from agent.targets.registry import RegistryReader, RegQuery
from collectors.windows.base import Answers, WindowsCollector

WINDEFEND = RegQuery(r"HKLM\SYSTEM\CurrentControlSet\Services\WinDefend", ("Start",))
DEFENDER_POLICY = RegQuery(r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender", ("DisableAntiSpyware",))
RTP_POLICY = RegQuery(r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender\Real-Time Protection",
                      ("DisableRealtimeMonitoring",))


def live_part(target: Target, name: str) -> tuple[Any, dict[str, Any] | None, str | None]:
    """(the part's JSON or None, its error as {kind, message} or None, where the batch ran)."""
    try:
        batch = target.powershell()
    except TargetError as e:
        return None, {"kind": "offline", "message": str(e)}, None
    try:
        return batch.part(name), None, batch.where
    except PartError as e:
        return None, {"kind": e.kind, "message": e.detail}, batch.where
    except TargetError as e:
        return None, {"kind": "error", "message": str(e)}, batch.where


class DefenderCollector(WindowsCollector):
    """Defender's live status and Security Center's anti-virus products; Defender's registry switches."""

    id = "win_defender"
    registry_reads = (WINDEFEND, DEFENDER_POLICY, RTP_POLICY)
    powershell_parts = ("defender", "securitycenter")

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        defender, d_err, via = live_part(target, "defender")
        center, c_err, _ = live_part(target, "securitycenter")
        return {"service": answers.one(WINDEFEND).fact(), "policy": answers.one(DEFENDER_POLICY).fact(),
                "rtp_policy": answers.one(RTP_POLICY).fact(), "live": via is not None, "via": via,
                "defender": defender, "defender_error": d_err,
                "security_center": center, "security_center_error": c_err, "collected_at": time.time()}


class LivePartCollector(WindowsCollector):
    """A collector whose facts are one part of the batch, as it came (judges check every field's type)."""

    part: str

    def collect(self, target: Target) -> dict[str, Any]:
        value, err, via = live_part(target, self.part)
        return {"live": via is not None, "via": via, "value": value, "error": err, "collected_at": time.time()}


class BitlockerCollector(LivePartCollector):
    """BitLocker per volume: GetProtectionStatus()/GetConversionStatus() called, the cached property beside."""

    id = "win_bitlocker"
    part = "bitlocker"
    powershell_parts = ("bitlocker",)


class HotfixCollector(LivePartCollector):
    """Installed updates and when (Get-HotFix)."""

    id = "win_hotfix"
    part = "hotfix"
    powershell_parts = ("hotfix",)


DEFENDER = DefenderCollector()
BITLOCKER = BitlockerCollector()
HOTFIX = HotfixCollector()
