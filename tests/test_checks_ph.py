"""PH-02 (storage encryption under the data paths) and PH-03 (USB storage control)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config.policy import load_policy
from agent.targets.local import LocalTarget
from agent.targets.rootfs import RootfsTarget
from checks import physical
from checks.base import FactSet, Outcome
from collectors.disks import COLLECTOR as DISKS
from collectors.removable import COLLECTOR as REMOVABLE
from tests.conftest import finding, require_tool

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
MakeRootfs = Callable[[dict[str, str | bytes]], Path]


class LiveDirectory(RootfsTarget):
    """A directory standing in for a running kernel's /proc and /sys.

    dm-crypt cannot exist on this machine (no device-mapper in its kernel), so the
    encrypted layouts are sysfs trees written as the kernel lays them out:
    /sys/dev/block/MAJ:MIN links to the device, dm/uuid names the target type
    (``CRYPT-LUKS2-<uuid>-<name>``, ``LVM-<uuid>``), slaves/ lists what is below.
    """

    @property
    def can_run(self) -> bool:
        return True


def ph02(target: RootfsTarget | LocalTarget, data_paths: list[str]) -> Outcome:
    facts = DISKS.collect_with(target, {"data_paths": data_paths})
    return physical.PH_02.evaluate(FactSet({"disks": facts}, {}), load_policy(overrides={"data_paths": data_paths}))


def sysfs_tree(make_rootfs: MakeRootfs, *, crypt_uuid: str) -> Path:
    mountinfo = ("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
                 "40 27 253:1 / /srv/data rw,relatime - ext4 /dev/mapper/vg-data rw\n"
                 "41 27 0:40 / /srv/scratch rw - tmpfs tmpfs rw\n"
                 "42 27 0:41 / /srv/nfs rw - nfs4 files.example:/share rw\n")
    root = make_rootfs({
        "/proc/self/mountinfo": mountinfo,
        "/sys/devices/virtual/block/dm-1/dm/uuid": "LVM-Qx3kL9abcdefQx3kL9abcdefQx3kL9abcdefQx3kL9abcdef\n",
        "/sys/devices/virtual/block/dm-1/dm/name": "vg-data\n",
        "/sys/devices/virtual/block/dm-0/dm/uuid": f"{crypt_uuid}-4f1b2c3d4e5f46a7b8c9d0e1f2a3b4c5-luks-data\n",
        "/sys/devices/virtual/block/dm-0/dm/name": "luks-data\n",
        "/sys/devices/pci0000:00/block/sda/sda3/partition": "3\n",
        "/sys/devices/pci0000:00/block/vda/size": "1\n",
    })
    (root / "sys/class/block").mkdir(parents=True)
    for name, target in (("dm-1", "../../devices/virtual/block/dm-1"), ("dm-0", "../../devices/virtual/block/dm-0"),
                         ("sda3", "../../devices/pci0000:00/block/sda/sda3"),
                         ("vda", "../../devices/pci0000:00/block/vda")):
        (root / "sys/class/block" / name).symlink_to(target)
    (root / "sys/dev/block").mkdir(parents=True)
    (root / "sys/dev/block/253:1").symlink_to("../../devices/virtual/block/dm-1")
    (root / "sys/dev/block/254:0").symlink_to("../../devices/pci0000:00/block/vda")
    for holder, below in (("dm-1", "dm-0"), ("dm-0", "sda3")):
        slaves = root / f"sys/devices/virtual/block/{holder}/slaves"
        slaves.mkdir(parents=True)
        (slaves / below).symlink_to(f"../../{below}")
    return root


def test_lvm_on_luks_is_encrypted(make_rootfs: MakeRootfs) -> None:
    root = sysfs_tree(make_rootfs, crypt_uuid="CRYPT-LUKS2")
    out = ph02(LiveDirectory(f"rootfs:{root}", str(root)), ["/srv/data/tenants", "/srv/scratch"])
    assert out.status == "pass", out.message.en
    assert "dm-crypt LUKS2 (dm-0, luks-data)" in out.message.en


def test_integrity_only_layer_is_not_encryption(make_rootfs: MakeRootfs) -> None:
    root = sysfs_tree(make_rootfs, crypt_uuid="CRYPT-VERITY")
    assert ph02(LiveDirectory(f"rootfs:{root}", str(root)), ["/srv/data"]).status == "fail"


def test_one_plain_disk_fails(make_rootfs: MakeRootfs) -> None:
    root = sysfs_tree(make_rootfs, crypt_uuid="CRYPT-LUKS2")
    out = ph02(LiveDirectory(f"rootfs:{root}", str(root)), ["/srv/data", "/home/office"])
    assert out.status == "fail" and "/home/office (/dev/vda)" in out.message.en


def test_network_storage_cannot_be_judged(make_rootfs: MakeRootfs) -> None:
    root = sysfs_tree(make_rootfs, crypt_uuid="CRYPT-LUKS2")
    out = ph02(LiveDirectory(f"rootfs:{root}", str(root)), ["/srv/nfs/contracts"])
    assert out.status == "error" and "another machine" in out.message.en


def test_malformed_mountinfo_is_error(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/proc/self/mountinfo": "this is not mountinfo\n"})
    assert ph02(LiveDirectory(f"rootfs:{root}", str(root)), []).status == "error"


@pytest.mark.needs_service
def test_this_machine_agrees_with_lsblk() -> None:
    """The device under / and whether any dm-crypt layer is above it: ours against util-linux's lsblk."""
    require_tool("lsblk")
    facts = DISKS.collect_with(LocalTarget(), {})
    root = facts["paths"][0]
    tree = json.loads(subprocess.run(["lsblk", "-J", "-o", "NAME,TYPE,MOUNTPOINTS"], capture_output=True,
                                     text=True, check=True, env={"LC_ALL": "C"}).stdout)

    def walk(nodes: list[dict[str, Any]], above: list[str]) -> list[tuple[str, list[str]]]:
        out = []
        for n in nodes:
            if "/" in (n.get("mountpoints") or []):
                out.append((n["name"], [*above, n["type"]]))
            out += walk(n.get("children", []), [*above, n["type"]])
        return out

    found = walk(tree["blockdevices"], [])
    if root.get("stack"):
        assert found, "lsblk shows no device mounted on /"
        name, types = found[0]
        assert root["stack"][0]["name"] == name
        assert (root["class"] == "encrypted") == ("crypt" in types)
        out = physical.PH_02.evaluate(FactSet({"disks": facts}, {}), load_policy())
        assert out.status == ("pass" if "crypt" in types else "fail")
    else:  # / on an overlay or a network file system: lsblk knows no device either
        assert root["class"] in ("unknown", "memory") and not found


def test_rootfs_uses_fstab_and_crypttab(make_rootfs: MakeRootfs, tmp_path: Path, run_cli: Cli) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("data_paths: [/srv/data]\n")
    enc = make_rootfs({"/etc/os-release": "ID=debian\n",
                       "/etc/fstab": "UUID=1 / ext4 defaults 0 1\n/dev/mapper/data_crypt /srv/data ext4 defaults 0 2\n",
                       "/etc/crypttab": "# <name> <device> <key> <opts>\ndata_crypt UUID=abcd none luks,discard\n"})
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{enc}", "--check", "PH-02", "--policy", str(policy))
    assert doc is not None
    f = finding(doc, "PH-02")
    assert f["status"] == "pass" and f["evidence"]["mode"] == "fstab/crypttab", f
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{enc}", "--check", "PH-02")  # no data_paths: judges /
    assert doc is not None
    assert finding(doc, "PH-02")["status"] == "error"  # / may sit on LVM over data_crypt: unknown from files


def test_rootfs_without_crypttab_fails(make_rootfs: MakeRootfs) -> None:
    plain = make_rootfs({"/etc/fstab": "/dev/sda1 / ext4 defaults 0 1\n"})
    assert ph02(RootfsTarget(f"rootfs:{plain}", str(plain)), ["/srv/data"]).status == "fail"
    nofstab = make_rootfs({"/etc/hostname": "x\n"})
    (nofstab / "etc/fstab").unlink(missing_ok=True)
    assert ph02(RootfsTarget(f"rootfs:{nofstab}", str(nofstab)), ["/srv/data"]).status == "error"


def test_facts_for_other_paths_are_refused(make_rootfs: MakeRootfs) -> None:
    plain = make_rootfs({"/etc/fstab": "/dev/sda1 / ext4 defaults 0 1\n"})
    facts = DISKS.collect_with(RootfsTarget(f"rootfs:{plain}", str(plain)), {"data_paths": ["/a"]})
    out = physical.PH_02.evaluate(FactSet({"disks": facts}, {}), load_policy(overrides={"data_paths": ["/b"]}))
    assert out.status == "error"


# --- PH-03 -------------------------------------------------------------------

def ph03(target: RootfsTarget | LocalTarget, procs: list[str] | None = None, **over: Any) -> Outcome:
    data: dict[str, Any] = {"removable": REMOVABLE.collect(target)}
    errors = {}
    if procs is None:
        errors["processes"] = "no /proc on this target"
    else:
        data["processes"] = {"processes": [{"pid": 1, "comm": p, "exe": None, "cmdline": [p]} for p in procs],
                             "restricted": False}
    policy = load_policy(overrides={"removable_storage": {"required": True}, **over})
    return physical.PH_03.evaluate(FactSet(data, errors), policy)


@pytest.mark.parametrize(("conf", "status"), [
    ("install usb-storage /bin/false\n", "pass"),
    ("blacklist usb_storage\n", "pass"),
    ("# install usb-storage /bin/false\n", "fail"),
    ("install usb-storage /sbin/modprobe --ignore-install usb-storage\n", "fail"),
    ("install usb-storage\n", "fail"),
    ("blacklist uas\n", "fail"),
])
def test_modprobe_rules(make_rootfs: MakeRootfs, conf: str, status: str) -> None:
    root = make_rootfs({"/etc/modprobe.d/usb.conf": conf, "/lib/modprobe.d/aliases.conf": "alias foo bar\n"})
    assert ph03(RootfsTarget(f"rootfs:{root}", str(root))).status == status


def test_etc_overrides_lib(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/usr/lib/modprobe.d/usb.conf": "install usb-storage /bin/false\n",
                        "/etc/modprobe.d/usb.conf": "# the administrator re-allowed USB sticks\n"})
    assert ph03(RootfsTarget(f"rootfs:{root}", str(root))).status == "fail"


def test_loaded_or_builtin_module_defeats_the_rule(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/etc/modprobe.d/usb.conf": "install usb-storage /bin/false\n",
                        "/proc/modules": "usb_storage 81920 1 uas, Live 0x0000000000000000\n"})
    out = ph03(LiveDirectory(f"rootfs:{root}", str(root)))
    assert out.status == "fail" and "loaded now" in out.message.en
    built = make_rootfs({"/etc/modprobe.d/usb.conf": "install usb-storage /bin/false\n", "/proc/modules": "",
                         "/sys/module/usb_storage/parameters/delay_use": "1\n"})
    out = ph03(LiveDirectory(f"rootfs:{built}", str(built)))
    assert out.status == "fail" and "built into the kernel" in out.message.en


def test_usbguard(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/usr/sbin/usbguard-daemon": b"",
                        "/etc/usbguard/usbguard-daemon.conf": "RuleFile=/etc/usbguard/rules.conf\n"
                                                              "ImplicitPolicyTarget=block\n"})
    target = RootfsTarget(f"rootfs:{root}", str(root))
    assert ph03(target, ["usbguard-daemon"]).status == "pass"
    assert ph03(target, []).status == "fail"
    assert ph03(target).status == "error"  # needs the process list, which a directory has not


def test_not_required_by_default(make_rootfs: MakeRootfs, run_cli: Cli) -> None:
    root = make_rootfs({"/etc/os-release": "ID=debian\n"})
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "PH-03")
    assert doc is not None
    assert finding(doc, "PH-03")["status"] == "not_applicable"


def test_this_kernel_is_read() -> None:
    facts = REMOVABLE.collect(LocalTarget())
    assert facts["kernel"]["readable"] is True
    modules = Path("/proc/modules")
    assert facts["kernel"]["modular"] == modules.exists()
    loaded = {line.split()[0] for line in modules.read_text().splitlines() if line.strip()} if modules.exists() else set()
    assert ("usb_storage" in loaded) == ("usb_storage" in facts["kernel"]["loaded"])
    assert ("usb_storage" in facts["kernel"]["builtin"]) == (
        Path("/sys/module/usb_storage").exists() and not Path("/sys/module/usb_storage/initstate").exists())


def test_kernel_without_modules_or_driver(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/sys/module/loop/parameters/max_loop": "0\n"})  # no /proc/modules at all
    out = ph03(LiveDirectory(f"rootfs:{root}", str(root)))
    assert out.status == "pass" and "no USB storage driver" in out.message.en
    (root / "sys/module/usb_storage/parameters").mkdir(parents=True)
    assert ph03(LiveDirectory(f"rootfs:{root}", str(root))).status == "fail"


# --- PH-01 against dconf itself -------------------------------------------------

HARDENED = Path(__file__).resolve().parent / "fixtures/rootfs/hardened"
KEYFILES = {
    "fixture": (HARDENED / "etc/dconf/db/local.d/00-screensaver").read_text(),
    "weak": "[org/gnome/desktop/screensaver]\nlock-enabled=false\nlock-delay=uint32 1800\n"
            "# a comment\n[org/gnome/desktop/session]\nidle-delay=uint32 0\n",
    "typed": "[org/gnome/desktop/session]\nidle-delay=uint32 600\n[org/gnome/desktop/lockdown]\n"
             "disable-lock-screen=false\n[org/gnome/desktop/screensaver]\nlock-enabled=true\n",
}


@pytest.mark.needs_service
@pytest.mark.parametrize("name", sorted(KEYFILES))
def test_screenlock_reads_keyfiles_as_dconf_compiles_them(tmp_path: Path, name: str) -> None:
    """Compile the keyfile with the real dconf and read every key back: the collector must agree."""
    from collectors.screenlock import COLLECTOR as SCREENLOCK
    from collectors.screenlock import parse_gvariant

    require_tool("dconf")
    root = tmp_path / "root"
    shutil.copytree(HARDENED / "usr/share", root / "usr/share")
    (root / "etc/dconf/profile").mkdir(parents=True)
    (root / "etc/dconf/profile/user").write_text("user-db:user\nsystem-db:local\n")
    keyfiles = root / "etc/dconf/db/local.d"
    keyfiles.mkdir(parents=True)
    (keyfiles / "00-screensaver").write_text(KEYFILES[name])
    subprocess.run(["dconf", "compile", str(tmp_path / "local"), str(keyfiles)], check=True, timeout=30)
    profile = tmp_path / "profile"
    profile.write_text(f"file-db:{tmp_path / 'local'}\n")
    facts = SCREENLOCK.collect(RootfsTarget(f"rootfs:{root}", str(root)))["desktops"]["gnome"]
    assert facts["problem"] is None and facts["system"]
    for key, value in facts["system"].items():
        res = subprocess.run(["dconf", "read", key], capture_output=True, text=True, timeout=30,
                             env={"DCONF_PROFILE": str(profile), "PATH": "/usr/bin:/bin"})
        assert parse_gvariant(res.stdout) == value, (key, res.stdout)


@pytest.mark.needs_service
def test_screenlock_rejects_what_dconf_rejects(tmp_path: Path) -> None:
    from collectors.screenlock import COLLECTOR as SCREENLOCK

    require_tool("dconf")
    root = tmp_path / "root"
    shutil.copytree(HARDENED / "usr/share", root / "usr/share")
    shutil.copytree(HARDENED / "etc/dconf", root / "etc/dconf")
    (root / "etc/dconf/db/local.d/01-broken").write_text("[org/gnome/desktop/session\nidle-delay=uint32 60\n")
    res = subprocess.run(["dconf", "compile", str(tmp_path / "local"), str(root / "etc/dconf/db/local.d")],
                         capture_output=True, timeout=30)
    assert res.returncode != 0
    assert SCREENLOCK.collect(RootfsTarget(f"rootfs:{root}", str(root)))["desktops"]["gnome"]["problem"]
