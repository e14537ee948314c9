"""PH-01 applies where someone can sit at a graphical session, not wherever GNOME's schemas are installed.

Many packages (a browser, a PDF viewer) pull the GNOME settings schemas onto headless servers; a screen
lock cannot matter there. A desktop session is possible when a display manager is installed (its program
or its systemd unit) or a session file offers one; the evidence says what was looked for and found.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config.policy import load_policy
from agent.targets.rootfs import RootfsTarget
from checks import physical
from checks.base import FactSet, Outcome
from collectors.screenlock import COLLECTOR as SCREENLOCK
from tests.conftest import FIXTURES

MakeRootfs = Callable[[dict[str, str | bytes]], Path]
SCHEMAS = "/usr/share/glib-2.0/schemas"
HARDENED = FIXTURES / "rootfs" / "hardened"
WEAK = FIXTURES / "rootfs" / "weak"


def schemas_from(tree: Path) -> dict[str, str | bytes]:
    """The GNOME schemas (and distribution overrides) of a fixture, as a browser package would leave them."""
    return {f"{SCHEMAS}/{p.name}": p.read_bytes() for p in sorted((tree / SCHEMAS.lstrip("/")).iterdir())}


def dconf_from(tree: Path) -> dict[str, str | bytes]:
    return {"/" + str(p.relative_to(tree)): p.read_bytes() for p in sorted((tree / "etc/dconf").rglob("*"))
            if p.is_file()}


def ph01(root: Path) -> tuple[Outcome, dict[str, Any]]:
    facts = SCREENLOCK.collect(RootfsTarget(f"rootfs:{root}", str(root)))
    return physical.PH_01.evaluate(FactSet({"screenlock": facts}, {}), load_policy()), facts


def test_schemas_alone_are_not_a_desktop(make_rootfs: MakeRootfs) -> None:
    """A headless server with the schemas (and even an administrator's dconf lock) but no way to log in."""
    root = make_rootfs({**schemas_from(WEAK), **dconf_from(HARDENED)})
    out, facts = ph01(root)
    assert out.status == "not_applicable", out.message.en
    assert "display manager" in out.message.en and "ディスプレイマネージャー" in out.message.ja
    seen = out.evidence["session"]
    assert seen["display_managers"] == {} and seen["session_files"] == []
    assert "/usr/sbin/gdm3" in seen["looked_for"]["display_managers"]["gdm3"]
    assert "/lib/systemd/system/lightdm.service" in seen["looked_for"]["display_managers"]["lightdm"]
    assert seen["looked_for"]["session_dirs"] == ["/usr/share/xsessions", "/usr/share/wayland-sessions"]
    assert seen["desktop_settings"] == ["gnome"]  # the schemas were found, and did not decide
    assert facts["desktops"]["gnome"]["installed"] is True


@pytest.mark.parametrize("manager", ["/usr/sbin/gdm3", "/usr/lib/systemd/system/gdm.service",
                                     "/lib/systemd/system/lightdm.service", "/usr/bin/sddm"])
def test_schemas_and_a_display_manager_are_judged(make_rootfs: MakeRootfs, manager: str) -> None:
    hardened = make_rootfs({**schemas_from(HARDENED), **dconf_from(HARDENED), manager: b""})
    out, _ = ph01(hardened)
    assert out.status == "pass", out.message.en
    assert out.evidence["desktop"] == "gnome"
    assert manager in [p for paths in out.evidence["session"]["display_managers"].values() for p in paths]


def test_weak_settings_with_a_display_manager_fail_as_before(make_rootfs: MakeRootfs) -> None:
    out, _ = ph01(make_rootfs({**schemas_from(WEAK), "/usr/sbin/gdm3": b""}))
    assert out.status == "fail" and "1800" in out.message.en and "not locked" in out.message.en


def test_a_session_file_without_a_lock_fails(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({**schemas_from(HARDENED),
                        "/usr/share/wayland-sessions/gnome.desktop": "[Desktop Entry]\nName=GNOME\nExec=gnome-session\n"})
    out, _ = ph01(root)
    assert out.status == "fail", out.message.en  # schema defaults: nothing locked by the administrator
    assert out.evidence["session"]["session_files"] == ["/usr/share/wayland-sessions/gnome.desktop"]
    assert "管理者が固定していないキー" in out.message.ja


def test_a_session_with_no_desktop_mamoru_reads_is_error(make_rootfs: MakeRootfs) -> None:
    """A session of a desktop mamoru does not read (and no GNOME settings): a lock may be missing, so never n/a."""
    out, _ = ph01(make_rootfs({"/usr/sbin/lightdm": b"",
                               "/usr/share/xsessions/i3.desktop": "[Desktop Entry]\nName=i3\n"}))
    assert out.status == "error", out.message.en
    assert "gnome" in out.message.en


def test_an_xfce_session_without_a_screen_locker_fails(make_rootfs: MakeRootfs) -> None:
    """Xfce is read since issue 16: with no xfce4-screensaver (or light-locker) nothing locks the screen."""
    out, _ = ph01(make_rootfs({"/usr/sbin/lightdm": b"",
                               "/usr/share/xsessions/xfce.desktop": "[Desktop Entry]\nName=Xfce Session\n"}))
    assert out.status == "fail", out.message.en
    assert "xfce4-screensaver" in out.message.en and out.evidence["desktop"] == "xfce"


def test_fixtures_are_desktops() -> None:
    """The hardened and weak fixtures are desktops (they carry the dconf lock and the distribution override)."""
    assert ph01(HARDENED)[0].status == "pass"
    assert ph01(WEAK)[0].status == "fail"
