"""PH-01 on KDE Plasma (kscreenlockerrc, immutable with ``[$i]``) and Xfce (xfce4-screensaver's xfconf channel).

Real configuration trees are written under a root directory and read through the rootfs target, with the
session files Debian's plasma-workspace 5.27 and xfce4-session 4.18 install. Where Debian packages the
desktops' own tools (kreadconfig5 from libkf5config-bin, xfconf-query from xfconf), the same trees are read
by them too, pointed at the tree with $XDG_CONFIG_DIRS, and must agree with mamoru's readers: a user's own
file is written in $XDG_CONFIG_HOME with other values, and what the tool returns shows whether the system's
value held (enforced) or the user's won.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config.policy import load_policy
from agent.targets.rootfs import RootfsTarget
from checks import physical
from checks.base import FactSet, Outcome
from collectors import kconfig, xfconf
from collectors.screenlock import COLLECTOR as SCREENLOCK
from collectors.screenlock import SESSIONS
from tests.conftest import require_tool, write_tree
from tests.test_ph01_applicability import HARDENED, WEAK, dconf_from, schemas_from

MakeRootfs = Callable[[dict[str, str | bytes]], Path]

# As Debian 12 installs them (plasma-workspace 4:5.27.5-2+deb12u2, xfce4-session 4.18.1-1), translations left out.
PLASMA_DESKTOP = ("[Desktop Entry]\nType=XSession\nExec=/usr/bin/startplasma-x11\nTryExec=/usr/bin/startplasma-x11\n"
                  "DesktopNames=KDE\nName=Plasma (X11)\nComment=Plasma by KDE\nX-KDE-PluginInfo-Version=5.27.5\n")
XFCE_DESKTOP = ("[Desktop Entry]\nVersion=1.0\nName=Xfce Session\n"
                "Comment=Use this session to run Xfce as your desktop environment\nExec=startxfce4\nIcon=\n"
                "Type=Application\nDesktopNames=XFCE\n")
KDE = {"/usr/bin/sddm": b"", "/usr/share/xsessions/plasma.desktop": PLASMA_DESKTOP}
XFCE = {"/usr/sbin/lightdm": b"", "/usr/share/xsessions/xfce.desktop": XFCE_DESKTOP,
        "/usr/bin/xfce4-screensaver": b""}
PEOPLE = {"/etc/passwd": "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"
                         "bob:x:1001:1001::/home/bob:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n",
          "/etc/group": "root:x:0:\nstaff:x:50:alice\nalice:x:1000:\nbob:x:1001:\n"}
KSL = "/etc/xdg/kscreenlockerrc"
XFC = "/etc/xdg/xfce4/xfconf/xfce-perchannel-xml/xfce4-screensaver.xml"
ENFORCED_KDE = "[Daemon][$i]\nAutolock=true\nTimeout=5\nLockGrace=0\n"


def ph01(root: Path) -> tuple[Outcome, dict[str, Any]]:
    facts = SCREENLOCK.collect(RootfsTarget(f"rootfs:{root}", str(root)))
    return physical.PH_01.evaluate(FactSet({"screenlock": facts}, {}), load_policy()), facts


def channel(body: str, attrs: str = "") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<channel name="xfce4-screensaver" version="1.0"{attrs}>\n'
            f"{body}</channel>\n")


def saver(idle: int = 5, lock_attr: str = "") -> str:
    """Every property PH-01 needs, each carrying ``lock_attr`` (e.g. ' unlocked="root"')."""
    a = lock_attr
    return ('  <property name="saver" type="empty">\n'
            f'    <property name="enabled" type="bool" value="true"{a}/>\n'
            '    <property name="idle-activation" type="empty">\n'
            f'      <property name="enabled" type="bool" value="true"{a}/>\n'
            f'      <property name="delay" type="int" value="{idle}"{a}/>\n'
            "    </property>\n  </property>\n"
            '  <property name="lock" type="empty">\n'
            f'    <property name="enabled" type="bool" value="true"{a}/>\n'
            f'    <property name="sleep-activation" type="bool" value="true"{a}/>\n'
            '    <property name="saver-activation" type="empty">\n'
            f'      <property name="enabled" type="bool" value="true"{a}/>\n'
            f'      <property name="delay" type="int" value="0"{a}/>\n'
            "    </property>\n  </property>\n")


# -- KDE Plasma --------------------------------------------------------------------------------------------

def test_kde_defaults_are_not_enforced(make_rootfs: MakeRootfs) -> None:
    """No kscreenlockerrc: kscreenlocker's defaults (5 min + 5 s) would lock, but any user can turn them off."""
    out, facts = ph01(make_rootfs(KDE))
    assert out.status == "fail", out.message.en
    assert out.evidence["desktop"] == "kde" and "immutable" in out.message.en and "Autolock" in out.message.en
    assert "[$i]" in out.message.ja
    assert facts["desktops"]["kde"]["defaults"]["Timeout"] == "5"
    assert facts["desktops"]["kde"]["defaults"]["LockGrace"] == "5"
    assert "kscreenlockersettings.kcfg" in out.evidence["defaults_source"]


@pytest.mark.parametrize("session", ["/usr/share/wayland-sessions/plasmawayland.desktop",  # Plasma 5
                                     "/usr/share/wayland-sessions/plasma.desktop",  # Plasma 6
                                     "/usr/share/xsessions/plasmax11.desktop"])
def test_kde_is_judged_from_any_plasma_session(make_rootfs: MakeRootfs, session: str) -> None:
    out, _ = ph01(make_rootfs({session: PLASMA_DESKTOP.replace("startplasma-x11", "startplasma-wayland"),
                               KSL: ENFORCED_KDE}))
    assert out.status == "pass", out.message.en
    assert out.evidence["session"]["desktop_sessions"] == {"kde": [session]}


def test_kde_immutable_group_passes(make_rootfs: MakeRootfs) -> None:
    out, _ = ph01(make_rootfs({**KDE, KSL: ENFORCED_KDE}))
    assert out.status == "pass", out.message.en
    assert "300 s" in out.message.en and "300 秒" in out.message.ja
    assert out.evidence["immutable"]["Autolock"] == KSL
    assert out.evidence["immutable"]["RequirePassword"] == KSL  # unset in the file, but the group is immutable


def test_kde_whole_file_immutable_enforces_the_defaults(make_rootfs: MakeRootfs) -> None:
    """``[$i]`` before any group: no user file is read, so kscreenlocker's defaults (300 s + 5 s grace) hold."""
    out, _ = ph01(make_rootfs({**KDE, KSL: "[$i]\n[Greeter]\nTheme=\n"}))
    assert out.status == "pass", out.message.en
    assert "305 s" in out.message.en


def test_kde_one_key_not_immutable(make_rootfs: MakeRootfs) -> None:
    tree = {**KDE, KSL: "[Daemon]\nAutolock[$i]=true\nTimeout[$i]=5\nLock[$i]=true\nLockGrace[$i]=0\n"
                        "RequirePassword[$i]=true\nLockOnResume=true\n"}
    out, _ = ph01(make_rootfs(tree))
    assert out.status == "fail", out.message.en
    assert out.message.en.endswith("not made immutable ([$i]) by the administrator: LockOnResume")


@pytest.mark.parametrize(("body", "why"), [
    ("Autolock=Off\n", "Autolock=false"),
    ("Lock=no\n", "Lock=false (no password"),
    ("RequirePassword=0\n", "RequirePassword=false"),
    ("Timeout=30\n", "Timeout 30 min + LockGrace 0 s > 600 s"),
    ("Timeout=0\n", "Timeout=0 (never)"),
    ("LockOnResume=false\n", "LockOnResume=false"),
])
def test_kde_weak_values_fail(make_rootfs: MakeRootfs, body: str, why: str) -> None:
    # In an immutable group the first line of a key wins (kreadconfig5 agrees, below), so the weak value first.
    out, _ = ph01(make_rootfs({**KDE, KSL: ENFORCED_KDE.replace("[Daemon][$i]\n", "[Daemon][$i]\n" + body)}))
    assert out.status == "fail", out.message.en
    assert why in out.message.en and "KDE Plasma" in out.message.ja


def test_kde_lock_screen_action_restricted(make_rootfs: MakeRootfs) -> None:
    out, _ = ph01(make_rootfs({**KDE, KSL: ENFORCED_KDE,
                               "/etc/xdg/kdeglobals": "[KDE Action Restrictions][$i]\nlock_screen=false\n"}))
    assert out.status == "fail" and "lock_screen=false" in out.message.en and "/etc/xdg/kdeglobals" in out.message.en


@pytest.mark.parametrize(("text", "words"), [
    ("[Daemon][$i]\nAutolock true\n", "not a KConfig line"),
    ("[Daemon][$i]\nTimeout=five\n", "not a number: five"),
])
def test_kde_unreadable_settings_are_errors(make_rootfs: MakeRootfs, text: str, words: str) -> None:
    out, _ = ph01(make_rootfs({**KDE, KSL: text}))
    assert out.status == "error" and words in out.message.en, out.message.en


KDE_TREES = {
    "group": "[Daemon][$i]\nAutolock=Yes\nTimeout=3\n",
    "keys": "# comment\n[Daemon]\nAutolock[$i]=OFF\nTimeout = 7\nLockGrace[$i]=2\n[Greeter]\nTheme=x\n",
    "file": "[$i]\n[Daemon]\nTimeout=4\n",
    "other group": "[Greeter][$i]\nTheme=x\n[Daemon]\nLock=false\n",
    "translation": "[Daemon]\nTimeout[ja]=9\nTimeout[$i]=2\n",
    "first wins when immutable": "[Daemon][$i]\nTimeout=5\nTimeout=30\n",
    "group made immutable below": "[Daemon]\nTimeout=5\n[Daemon][$i]\nAutolock=true\n",
}


@pytest.mark.parametrize("name", sorted(KDE_TREES))
def test_kde_reader_agrees_with_kreadconfig5(tmp_path: Path, name: str) -> None:
    """Each key: kreadconfig5 (with a user file setting other values) returns the system value or default
    exactly when mamoru says the key is immutable, and the user's value otherwise."""
    require_tool("kreadconfig5")
    system, home = tmp_path / "xdg", tmp_path / "home"
    write_tree(system, {"/kscreenlockerrc": KDE_TREES[name]})
    user = {"Autolock": "false", "Timeout": "61", "Lock": "false", "LockGrace": "99", "LockOnResume": "false",
            "RequirePassword": "false"}
    write_tree(home, {"/kscreenlockerrc": "[Daemon]\n" + "".join(f"{k}={v}\n" for k, v in user.items())})
    defaults = SESSIONS["kde"]["defaults"]
    state = kconfig.read_system(RootfsTarget(f"rootfs:{system}", str(system)), ["/"], "kscreenlockerrc",
                                {"Daemon": set(defaults)})
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CONFIG_DIRS": str(system),
           "XDG_CONFIG_HOME": str(home)}
    for key, default in defaults.items():
        e = state["entries"].get("Daemon", {}).get(key)
        immutable = bool((e and e["immutable"]) or "Daemon" in state["immutable_groups"] or state["immutable_file"])
        theirs = subprocess.run(["kreadconfig5", "--file", "kscreenlockerrc", "--group", "Daemon", "--key", key,
                                 "--default", default], env=env, capture_output=True, text=True, check=True)
        ours = (e["value"] if e else default) if immutable else user[key]
        assert theirs.stdout.strip() == ours, (name, key, state)


def test_kde_later_line_wins_in_a_mutable_group(tmp_path: Path) -> None:
    require_tool("kreadconfig5")
    write_tree(tmp_path / "xdg", {"/kscreenlockerrc": "[Daemon]\nTimeout=5\nTimeout=30\n"})
    state = kconfig.read_system(RootfsTarget(f"rootfs:{tmp_path}", str(tmp_path)), ["/xdg"], "kscreenlockerrc",
                                {"Daemon": {"Timeout"}})
    theirs = subprocess.run(["kreadconfig5", "--file", "kscreenlockerrc", "--group", "Daemon", "--key", "Timeout"],
                            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                                 "XDG_CONFIG_DIRS": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(tmp_path / "h")},
                            capture_output=True, text=True, check=True)
    assert theirs.stdout.strip() == state["entries"]["Daemon"]["Timeout"]["value"] == "30"


def test_kde_reader_reads_booleans_as_kconfig(tmp_path: Path) -> None:
    """KConfig's bool: false/no/off/0 in any case are false, any other text true (kreadconfig5's exit code)."""
    require_tool("kreadconfig5")
    from checks.screenlock_desktops import kde_bool
    for text in ("true", "Yes", "on", "1", "2", "maybe", "false", "No", "OFF", "0"):
        write_tree(tmp_path / "xdg", {"/kscreenlockerrc": f"[Daemon]\nAutolock={text}\n"})
        rc = subprocess.run(["kreadconfig5", "--file", "kscreenlockerrc", "--group", "Daemon", "--key", "Autolock",
                             "--type", "bool"], env={"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                                                     "XDG_CONFIG_DIRS": str(tmp_path / "xdg"),
                                                     "XDG_CONFIG_HOME": str(tmp_path / "none")}).returncode
        assert kde_bool(text) is (rc == 0), text


# -- Xfce --------------------------------------------------------------------------------------------------

def test_xfce_channel_unlocked_for_root_only_passes(make_rootfs: MakeRootfs) -> None:
    out, facts = ph01(make_rootfs({**XFCE, **PEOPLE, XFC: channel(saver(), ' unlocked="root"')}))
    assert out.status == "pass", out.message.en
    assert "300 s" in out.message.en and "xfce4-screensaver" in out.message.ja
    assert out.evidence["people"] == ["alice", "bob"]  # uid 1000..60000: not root, not nobody
    assert out.evidence["locked"] == {"alice": "channel", "bob": "channel"}


def test_xfce_locked_star_locks_nobody(make_rootfs: MakeRootfs) -> None:
    """xfconfd has no wildcard: locked="*" names a user called "*" (xfconf-locking-utils.c)."""
    out, _ = ph01(make_rootfs({**XFCE, **PEOPLE, XFC: channel(saver(), ' locked="*"')}))
    assert out.status == "fail", out.message.en
    assert "not locked by the administrator" in out.message.en and "/saver/enabled" in out.message.en


def test_xfce_property_locks_for_a_group_leave_others_free(make_rootfs: MakeRootfs) -> None:
    out, _ = ph01(make_rootfs({**XFCE, **PEOPLE, XFC: channel(saver(lock_attr=' locked="@staff"'))}))
    assert out.status == "fail", out.message.en
    assert "(for bob)" in out.message.en and "利用者 bob" in out.message.ja and "alice" not in out.message.en


def test_xfce_defaults_are_not_enforced(make_rootfs: MakeRootfs) -> None:
    out, _ = ph01(make_rootfs({**XFCE, **PEOPLE}))
    assert out.status == "fail" and "not locked" in out.message.en


@pytest.mark.parametrize(("body", "why"), [
    (saver(idle=15), "idle-activation/delay 15 min + saver-activation/delay 0 min > 600 s"),
    (saver(idle=0), "delay=0 (never)"),
    (saver().replace('"enabled" type="bool" value="true"', '"enabled" type="bool" value="false"', 1),
     "/saver/enabled=false"),
])
def test_xfce_weak_values_fail(make_rootfs: MakeRootfs, body: str, why: str) -> None:
    out, _ = ph01(make_rootfs({**XFCE, **PEOPLE, XFC: channel(body, ' unlocked="root"')}))
    assert out.status == "fail" and why in out.message.en, out.message.en


def test_xfce_light_locker_is_checked_by_hand(make_rootfs: MakeRootfs) -> None:
    tree = {k: v for k, v in XFCE.items() if k != "/usr/bin/xfce4-screensaver"}
    out, _ = ph01(make_rootfs({**tree, "/usr/bin/light-locker": b""}))
    assert out.status == "error" and "light-locker" in out.message.en and "手作業" in out.message.ja


@pytest.mark.parametrize(("text", "words"), [
    (channel(saver())[:-12], "malformed XML"),
    (channel(saver()).replace('name="xfce4-screensaver"', 'name="xfwm4"'), "not an xfconf file for channel"),
])
def test_xfce_unreadable_settings_are_errors(make_rootfs: MakeRootfs, text: str, words: str) -> None:
    out, _ = ph01(make_rootfs({**XFCE, **PEOPLE, XFC: text}))
    assert out.status == "error" and words in out.message.en, out.message.en


XFCONF_TREES = {
    "star": [channel(saver(), ' locked="*"')],
    "root by name": [channel(saver(lock_attr=' locked="root"'))],
    "unlocked nobody": [channel(saver(lock_attr=' unlocked="nobody"'))],
    "channel": [channel(saver(idle=3), ' unlocked="nobody"')],
    "two dirs": [channel(saver(idle=9)), channel(saver(idle=4), ' locked="root"')],  # higher priority first
    "refused": [channel(saver(idle=9), ' locked="nobody"'), channel(saver(idle=4), ' locked="root"')],
    "lower locked": [channel(saver(idle=9)), channel(saver(idle=4), ' unlocked="x"').replace(
        '<property name="enabled" type="bool" value="true"/>', '<property name="enabled" type="bool" '
        'value="true" locked="root"/>')],
}


@pytest.mark.parametrize("name", sorted(XFCONF_TREES))
def test_xfce_reader_agrees_with_xfconf_query(tmp_path: Path, name: str) -> None:
    """For this user (root): every property xfconf-query cannot change is one mamoru sees locked for root,
    and the values xfconf-query lists are the ones mamoru reads."""
    require_tool("xfconf-query", "dbus-run-session")
    dirs = []
    for i, text in enumerate(XFCONF_TREES[name]):
        d = tmp_path / f"xdg{i}"
        write_tree(d, {f"/{xfconf.CHANNEL_DIR}/xfce4-screensaver.xml": text})
        dirs.append(d)
    target = RootfsTarget(f"rootfs:{tmp_path}", str(tmp_path))
    files = xfconf.read_channel(target, [f"/{d.name}" for d in dirs], "xfce4-screensaver")
    me = pwd.getpwuid(os.geteuid()).pw_name
    ours = xfconf.view(files, {"name": me, "groups": [g.gr_name for g in grp.getgrall() if me in g.gr_mem]})
    props = sorted(k for k, p in ours["properties"].items() if p["value"] is not None)
    script = "".join(f"xfconf-query -c xfce4-screensaver -p {p} -s 77 || true; " for p in props
                     if ours["properties"][p]["type"] == "int")
    script += "".join(f"xfconf-query -c xfce4-screensaver -p {p} -s false || true; " for p in props
                      if ours["properties"][p]["type"] == "bool")
    script += "xfconf-query -c xfce4-screensaver -lv"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "home"),
           "XDG_CONFIG_DIRS": ":".join(str(d) for d in dirs)}
    run = subprocess.run(["dbus-run-session", "--", "sh", "-c", script], env=env, capture_output=True, text=True,
                         timeout=60)
    listed = dict(line.split(None, 1) for line in run.stdout.splitlines() if line.startswith("/"))
    assert sorted(listed) == props, run.stderr
    for p in props:
        prop = ours["properties"][p]
        held = listed[p].strip() == prop["value"]
        locked = ours["channel_locked"] or prop["locked"]
        assert held is locked, (name, p, listed[p], prop, ours["channel_locked"])


# -- Several desktops ---------------------------------------------------------------------------------------

def test_every_desktop_must_pass(make_rootfs: MakeRootfs) -> None:
    """GNOME enforced, KDE not: the host fails, and the message says it is KDE."""
    tree = {**schemas_from(HARDENED), **dconf_from(HARDENED), "/usr/share/xsessions/gnome.desktop": "x",
            **KDE, **XFCE, **PEOPLE, XFC: channel(saver(), ' unlocked="root"')}
    out, _ = ph01(make_rootfs(tree))
    assert out.status == "fail", out.message.en
    assert out.message.en.startswith("kde: KDE Plasma's screen lock does not meet the policy")
    assert "gnome: pass" in out.message.en and "xfce: pass" in out.message.en
    assert out.evidence["desktops"] == {"gnome": "pass", "kde": "fail", "xfce": "pass"}


def test_a_failing_desktop_outranks_one_that_cannot_be_told(make_rootfs: MakeRootfs) -> None:
    tree = {**schemas_from(HARDENED), **dconf_from(HARDENED), "/usr/share/xsessions/gnome.desktop": "x",
            **KDE, KSL: "[Daemon][$i]\nbad line\n", **XFCE, **PEOPLE}
    out, _ = ph01(make_rootfs(tree))
    assert out.status == "fail", out.message.en
    assert out.message.en.startswith("xfce: Xfce's screen lock does not meet the policy")
    assert "kde: error" in out.message.en and "gnome: pass" in out.message.en


def test_every_desktop_passing_passes(make_rootfs: MakeRootfs) -> None:
    tree = {**schemas_from(HARDENED), **dconf_from(HARDENED), "/usr/share/wayland-sessions/gnome.desktop": "x",
            **KDE, KSL: ENFORCED_KDE}
    out, _ = ph01(make_rootfs(tree))
    assert out.status == "pass", out.message.en
    assert out.evidence["desktops"] == {"gnome": "pass", "kde": "pass"}


def test_gnome_schemas_do_not_make_a_plasma_host_gnome(make_rootfs: MakeRootfs) -> None:
    """Weak GNOME schemas a browser pulled in, on a Plasma-only host: only KDE's lock is judged."""
    out, _ = ph01(make_rootfs({**schemas_from(WEAK), **KDE, KSL: ENFORCED_KDE}))
    assert out.status == "pass", out.message.en
    assert out.evidence["desktop"] == "kde" and out.evidence["session"]["desktop_settings"] == ["gnome", "kde"]
