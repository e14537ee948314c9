"""The live-only Windows checks on an offline image (real corpus hives): they can fail a PC, never pass one.

Defender's state, BitLocker's protection and the installed updates exist only on a running PC. From an
image, the registry can still show Defender switched off (the WinDefend service disabled, Group Policy's
DisableAntiSpyware / DisableRealtimeMonitoring): that is a ``fail``; anything else is ``error`` saying the
running PC is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config.policy import load_policy
from agent.runner import collect_target, evaluate_target
from collectors.windows.live import BITLOCKER, DEFENDER, HOTFIX
from tests.windows_image import CORRUPTED_SYSTEM, build_tree, profile_list

LIVE_CHECKS = ("AV-01", "AV-02", "AV-03", "AV-04", "PH-02")
DEFENDER_POLICY = r"Policies\Microsoft\Windows Defender"


def scan(root: Path) -> dict[str, Any]:
    from agent.registry import checks as registered

    tf = collect_target(f"rootfs:{root}", [DEFENDER, BITLOCKER, HOTFIX])
    assert tf.system == "windows", tf
    every = registered()
    return {f.check: f for f in evaluate_target(tf, [every[c] for c in LIVE_CHECKS], load_policy())}


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive
def test_an_image_needs_the_running_pc(tmp_path: Path) -> None:
    found = scan(build_tree(tmp_path, software=profile_list()))
    for cid in LIVE_CHECKS:
        assert found[cid].status == "error", (cid, found[cid].message)
        assert "running PC" in found[cid].message["en"], cid
        assert "起動中の PC" in found[cid].message["ja"], cid
    # what the image did show: Defender's service starts (the corpus Windows 10 SYSTEM hive), no policy
    assert found["AV-01"].evidence["registry"]["WinDefend Start"] in (2, 3)
    assert found["AV-01"].evidence["registry"]["DisableAntiSpyware"] is None


@pytest.mark.needs_service
def test_defender_switched_off_by_policy_fails_from_the_image(tmp_path: Path) -> None:
    software = profile_list() | {DEFENDER_POLICY: [("DisableAntiSpyware", "dword:0x00000001")]}
    found = scan(build_tree(tmp_path, software=software))
    assert found["AV-01"].status == "fail" and "DisableAntiSpyware=1" in found["AV-01"].message["en"]
    assert found["AV-02"].status == "fail"
    assert found["AV-03"].status == "error"  # a signature date is never read from an image


@pytest.mark.needs_service
def test_real_time_protection_off_by_policy_fails_av02_only(tmp_path: Path) -> None:
    software = profile_list() | {DEFENDER_POLICY + r"\Real-Time Protection":
                                 [("DisableRealtimeMonitoring", "dword:0x00000001")]}
    found = scan(build_tree(tmp_path, software=software))
    assert found["AV-02"].status == "fail" and "DisableRealtimeMonitoring=1" in found["AV-02"].message["en"]
    assert found["AV-01"].status == "error"


def test_a_corrupted_system_hive_is_error_never_pass(tmp_path: Path) -> None:
    found = scan(build_tree(tmp_path, system=CORRUPTED_SYSTEM))
    for cid in LIVE_CHECKS:
        assert found[cid].status == "error", cid
