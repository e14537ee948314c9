"""Controls on USB mass storage: modprobe rules for ``usb-storage``, USBGuard, and what the kernel has loaded.

``install usb-storage /bin/false`` makes every load fail, by hand or by
udev; ``blacklist usb-storage`` stops only automatic loading by alias (which
is how a plugged stick loads it). Module names treat ``-`` and ``_`` alike.
modprobe reads ``*.conf`` from /etc, /run and /usr/lib (and /lib) modprobe.d,
a file in /etc hiding a same-named one in the others. A rule changes nothing
if the module is already loaded or built into the kernel, so on a running
system ``/proc/modules`` and ``/sys/module`` are read too. USBGuard is the
other common control: its daemon config says what happens to devices no rule
allows (``ImplicitPolicyTarget``). A ``problem`` is a code with its parts (collectors/problems.py).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors.base import Collector, Facts
from collectors.problems import problem, unreadable
from collectors.textfiles import read_text

MODPROBE_DIRS = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/usr/lib/modprobe.d",
                 "/lib/modprobe.d")
MODULES = ("usb_storage", "uas")
DENY_COMMANDS = ("/bin/false", "/usr/bin/false", "/bin/true", "/usr/bin/true", "false", "true")
USBGUARD_CONF = "/etc/usbguard/usbguard-daemon.conf"
USBGUARD_BINARIES = ("/usr/sbin/usbguard-daemon", "/usr/bin/usbguard-daemon")


def module(name: str) -> str:
    return name.replace("-", "_")


def modprobe_files(target: Target) -> list[str]:
    chosen: dict[str, str] = {}
    for d in MODPROBE_DIRS:
        try:
            names = target.list_dir(d)
        except TargetError:
            continue
        for n in names:
            if n.endswith(".conf"):
                chosen.setdefault(n, posixpath.join(d, n))  # the first directory in the order wins
    files = [chosen[n] for n in sorted(chosen)]
    target.prefetch(files)  # all read next
    return files


def modprobe_rules(target: Target) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {m: {"install": None, "blacklist": []} for m in MODULES}
    files = modprobe_files(target)
    for path in files:
        try:
            lines = read_text(target, path).lines
        except TargetError:
            continue
        for n, raw in enumerate(lines, 1):
            words = raw.split("#", 1)[0].split()
            if len(words) < 2:
                continue
            mod = module(words[1])
            if mod not in rules:
                continue
            if words[0] == "blacklist":
                rules[mod]["blacklist"].append(f"{path}:{n}")
            elif words[0] == "install" and rules[mod]["install"] is None:  # the first install line is used
                cmd = " ".join(words[2:])
                rules[mod]["install"] = {"where": f"{path}:{n}", "command": cmd[:200],
                                         "denies": bool(words[2:]) and words[2] in DENY_COMMANDS}
    return {"files": files, "modules": rules}


def kernel_state(target: Target) -> dict[str, Any]:
    """Loaded and built-in USB storage drivers. No /proc/modules: a kernel without module loading."""
    modular = True
    try:
        text = target.read_file("/proc/modules", max_bytes=4 << 20).decode("utf-8", "replace")
    except FileMissing:
        text, modular = "", False
    except TargetError as e:
        return {"readable": False, "problem": unreadable(e)}
    loaded = {line.split()[0] for line in text.splitlines() if line.strip()}
    out: dict[str, Any] = {"readable": True, "modular": modular, "loaded": sorted(m for m in MODULES if m in loaded)}
    # In /sys/module but not in /proc/modules: compiled into the kernel, so modprobe rules cannot stop it.
    out["builtin"] = sorted(m for m in MODULES if m not in loaded and target.exists(f"/sys/module/{m}")
                            and not target.exists(f"/sys/module/{m}/initstate"))
    return out


def usbguard(target: Target) -> dict[str, Any]:
    installed = any(target.exists(b) for b in USBGUARD_BINARIES)
    out: dict[str, Any] = {"installed": installed, "implicit_policy": None, "problem": None}
    if not installed:
        return out
    try:
        for line in read_text(target, USBGUARD_CONF).lines:
            m = re.match(r"\s*ImplicitPolicyTarget\s*=\s*(\w+)", line)
            if m:
                out["implicit_policy"] = m.group(1)
    except FileMissing:
        out["problem"] = problem("missing", path=USBGUARD_CONF)
    except TargetError as e:
        out["problem"] = unreadable(e)
    return out


class RemovableCollector(Collector):
    id = "removable"
    reads = (USBGUARD_CONF,)
    lists = MODPROBE_DIRS
    probes = USBGUARD_BINARIES
    version = "2"  # 2: problems are codes with their parts

    def collect(self, target: Target) -> Facts:
        facts: Facts = {"modprobe": modprobe_rules(target), "usbguard": usbguard(target), "kernel": None}
        if target.can_run:
            facts["kernel"] = kernel_state(target)
        return facts


COLLECTOR = RemovableCollector()
