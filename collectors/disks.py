"""Is the storage under each personal-data path encrypted at rest?

On a running system (a target that can run commands): the mount holding each
path comes from ``/proc/self/mountinfo``; its block device's stack is walked
in ``/sys/dev/block/MAJ:MIN`` down through ``slaves/``. A device-mapper layer
whose ``dm/uuid`` starts with ``CRYPT-`` (LUKS1/2, plain dm-crypt, BitLocker,
TrueCrypt) encrypts everything above it, LVM-on-LUKS and LUKS-on-LVM alike;
``CRYPT-VERITY``/``CRYPT-INTEGRITY`` protect integrity only and do not count.
This is the tree ``lsblk`` prints, read from the same sysfs files. Overlay
mounts are followed to their upper directory; memory filesystems never reach
the disk; network filesystems are encrypted (or not) on another machine.

On a directory target there is no kernel to ask: ``/etc/fstab`` and
``/etc/crypttab`` say what *would* be mounted and unlocked at boot.
Without ``data_paths`` in the policy the root filesystem is judged.

Each path's ``why`` and the collector's ``problem`` are codes with their parts
(``{"code": "dm_crypt", "type": "LUKS2", ...}``), worded by the checks in each language.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors.base import Collector, Facts

MEMORY_FS = {"tmpfs", "ramfs", "devtmpfs", "proc", "sysfs"}
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "fuse.sshfs", "afs", "virtiofs"}
ENCRYPTING_FS = {"ecryptfs", "fuse.gocryptfs", "fuse.encfs", "fuse.cryfs", "fuse.securefs"}
NOT_ENCRYPTION = ("CRYPT-VERITY", "CRYPT-INTEGRITY")
MAX_STACK = 16


class MountinfoProblem(ValueError):
    """A /proc/self/mountinfo line that is not one: the mounts cannot be trusted."""

    def __init__(self, line: int) -> None:
        super().__init__(f"/proc/self/mountinfo:{line}: malformed line")
        self.line = line


def unescape(field: str) -> str:
    """mountinfo escapes blanks and backslashes as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[dict[str, str]]:
    mounts = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        left, sep, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if not sep or len(lf) < 6 or len(rf) < 2:
            raise MountinfoProblem(n)
        mounts.append({"mount": unescape(lf[4]), "dev": lf[2], "fstype": rf[0], "source": unescape(rf[1]),
                       "options": rf[2] if len(rf) > 2 else ""})
    return mounts


def covering(mounts: list[dict[str, str]], path: str, key: str = "mount") -> dict[str, str] | None:
    """The mount whose mount point is the longest prefix of ``path`` (the last one mounted wins a tie)."""
    best: dict[str, str] | None = None
    for m in mounts:
        mp = m[key]
        covers = path == mp or path.startswith(mp.rstrip("/") + "/") or mp == "/"
        if covers and (best is None or len(mp) >= len(best[key])):
            best = m
    return best


class SysBlock:
    """Block-device stacks from sysfs."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def _read(self, path: str) -> str | None:
        try:
            return self.target.read_file(path, max_bytes=65536).decode("utf-8", "replace").strip()
        except TargetError:
            return None

    def name_of(self, dev: str) -> str | None:
        try:
            return posixpath.basename(self.target.readlink(f"/sys/dev/block/{dev}"))
        except TargetError:
            return None

    def name_of_source(self, source: str) -> str | None:
        """``/dev/mapper/NAME`` or ``/dev/NAME`` to the kernel's name (dm-3, sda2)."""
        if source.startswith("/dev/mapper/"):
            want = source[len("/dev/mapper/"):]
            try:
                for n in self.target.list_dir("/sys/block"):
                    if n.startswith("dm-") and self._read(f"/sys/block/{n}/dm/name") == want:
                        return n
            except TargetError:
                return None
            return None
        if source.startswith("/dev/"):
            name = posixpath.basename(source)
            return name if self.target.exists(f"/sys/class/block/{name}") else None
        return None

    def stack(self, name: str, depth: int = 0) -> list[dict[str, Any]]:
        """This device and everything below it, each with its dm uuid prefix (if device-mapper)."""
        if depth > MAX_STACK:
            return []
        base = f"/sys/class/block/{name}"
        uuid = self._read(f"{base}/dm/uuid")
        layer: dict[str, Any] = {"name": name, "dm_uuid": None, "dm_name": None}
        if uuid is not None:
            # "CRYPT-LUKS2-<uuid>-<name>": keep the type, drop the identifiers.
            layer["dm_uuid"] = "-".join(uuid.split("-")[:2]) if uuid else ""
            layer["dm_name"] = self._read(f"{base}/dm/name")
        out = [layer]
        try:
            slaves = self.target.list_dir(f"{base}/slaves")
        except TargetError:
            slaves = []
        for s in slaves:
            out += self.stack(s, depth + 1)
        return out


def classify_stack(stack: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    for layer in stack:
        u = layer.get("dm_uuid") or ""
        if u.startswith("CRYPT-") and not u.startswith(NOT_ENCRYPTION):
            device = layer["name"] + (f", {layer['dm_name']}" if layer.get("dm_name") else "")
            return "encrypted", {"code": "dm_crypt", "type": u[6:] or "?", "device": device}
    return "plain", {"code": "no_crypt_layer", "devices": [layer["name"] for layer in stack]}


def live(target: Target, paths: list[str]) -> list[dict[str, Any]]:
    text = target.read_file("/proc/self/mountinfo", max_bytes=16 * 1024 * 1024).decode("utf-8", "replace")
    mounts = parse_mountinfo(text)
    sysb = SysBlock(target)
    out = []
    for path in paths:
        entry: dict[str, Any] = {"path": path, "exists": target.exists(path)}
        entry.update(_classify_live(target, mounts, sysb, path, 0))
        out.append(entry)
    return out


def _classify_live(target: Target, mounts: list[dict[str, str]], sysb: SysBlock, path: str,
                   depth: int) -> dict[str, Any]:
    m = covering(mounts, path)
    if m is None:
        return {"class": "unknown", "why": {"code": "no_mount"}}
    info: dict[str, Any] = {"mount": m["mount"], "fstype": m["fstype"], "source": m["source"], "device": m["dev"]}
    fs = m["fstype"]
    if fs in ENCRYPTING_FS:
        return {**info, "class": "encrypted", "why": {"code": "fs_encryption", "fstype": fs}}
    if fs in MEMORY_FS:
        return {**info, "class": "memory", "why": {"code": "memory_fs", "fstype": fs}}
    if fs in NETWORK_FS or fs.startswith("fuse."):
        return {**info, "class": "unknown", "why": {"code": "network_fs", "fstype": fs}}
    if fs == "overlay":
        upper = re.search(r"(?:^|,)upperdir=([^,]+)", m["options"])
        if upper and depth < 4:
            below = _classify_live(target, mounts, sysb, unescape(upper.group(1)), depth + 1)
            return {**info, **{k: v for k, v in below.items() if k in ("class", "why", "stack")},
                    "via": below.get("mount")}
        return {**info, "class": "unknown", "why": {"code": "overlay_no_upper"}}
    major = m["dev"].split(":")[0]
    name = sysb.name_of_source(m["source"]) if major == "0" else sysb.name_of(m["dev"])
    if name is None:
        return {**info, "class": "unknown", "why": {"code": "no_block_device", "source": m["source"], "dev": m["dev"]}}
    stack = sysb.stack(name)
    cls, why = classify_stack(stack)
    return {**info, "stack": stack, "class": cls, "why": why}


def parse_tab(lines: list[str], fields: int) -> list[list[str]]:
    rows = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if line:
            parts = line.split()
            if len(parts) >= fields:
                rows.append(parts)
    return rows


def from_config(target: Target, paths: list[str], crypttab: list[str]) -> list[dict[str, Any]]:
    try:
        fstab = target.read_file("/etc/fstab", max_bytes=1 << 20).decode("utf-8", "replace").splitlines()
    except FileMissing:
        fstab = []
    mounts = [{"mount": unescape(r[1]), "source": r[0], "fstype": r[2]} for r in parse_tab(fstab, 3)
              if r[1].startswith("/")]
    out = []
    for path in paths:
        m = covering(mounts, path)
        entry: dict[str, Any] = {"path": path, "exists": target.exists(path)}
        if m is None:
            entry.update({"class": "unknown", "why": {"code": "no_fstab_entry"}})
        else:
            entry.update({"mount": m["mount"], "source": m["source"], "fstype": m["fstype"]})
            mapper = m["source"][len("/dev/mapper/"):] if m["source"].startswith("/dev/mapper/") else None
            if m["fstype"] in ENCRYPTING_FS:
                entry.update({"class": "encrypted", "why": {"code": "fs_encryption", "fstype": m["fstype"]}})
            elif mapper and mapper in crypttab:
                entry.update({"class": "encrypted", "why": {"code": "crypttab_unlocks", "mapper": mapper}})
            elif crypttab:
                entry.update({"class": "unknown", "why": {"code": "crypttab_unclear", "crypttab": crypttab,
                                                          "source": m["source"]}})
            else:
                entry.update({"class": "plain", "why": {"code": "no_crypttab"}})
        out.append(entry)
    return out


class DisksCollector(Collector):
    id = "disks"
    reads = ("/proc/self/mountinfo", "/etc/fstab", "/etc/crypttab")
    version = "2"
    inputs = ("data_paths",)

    def collect(self, target: Target) -> Facts:
        return self.collect_with(target, {})

    def collect_with(self, target: Target, inputs: Mapping[str, Any]) -> Facts:
        data_paths = [p for p in (inputs.get("data_paths") or []) if isinstance(p, str) and p.startswith("/")]
        paths = data_paths or ["/"]
        facts: Facts = {"data_paths": data_paths, "judged_paths": paths, "mode": None, "paths": [],
                        "crypttab": [], "problem": None}
        try:
            lines = target.read_file("/etc/crypttab", max_bytes=1 << 20).decode("utf-8", "replace").splitlines()
            facts["crypttab"] = [r[0] for r in parse_tab(lines, 2)]
        except FileMissing:
            pass
        except TargetError as e:
            facts["problem"] = {"code": "unreadable", "error": str(e)}
            return facts
        try:
            if target.can_run and target.exists("/proc/self/mountinfo"):
                facts["mode"] = "running system"
                facts["paths"] = live(target, paths)
            else:
                facts["mode"] = "fstab/crypttab"
                facts["paths"] = from_config(target, paths, facts["crypttab"])
        except MountinfoProblem as e:
            facts["problem"] = {"code": "mountinfo_line", "line": e.line}
        except TargetError as e:
            facts["problem"] = {"code": "unreadable", "error": str(e)}
        return facts


COLLECTOR = DisksCollector()
