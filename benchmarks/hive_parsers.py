#!/usr/bin/env python3
"""regipy against python-registry on the corpus hives: speed, and what each does with a damaged hive.

mamoru reads offline Windows images through one hive parser (``agent/targets/registry_offline.py``). This
script is how it was chosen: for every hive in ``shared/corpus/windows-registry`` it times, per library,

* ``open``: parse the header and the root key from the bytes already in memory (the backend reads hives
  through the target's file primitives, so a parser must accept bytes; regipy only opens a path, so it is
  given a file in a private temporary directory and that copy is part of its time);
* ``lookups``: the keys and values mamoru's Windows collectors read (ControlSet from ``Select\\Current``,
  firewall profiles, SMBv1, the Security event log, Defender, the SAM domain and every account ``F``);
* ``walk``: every key and every value decoded, as a whole-hive stress test;

and, on the corrupted SYSTEM hive, records what each parser answers for the same lookups (a value, "missing",
or an exception) and how many key names in a full walk are not printable text, i.e. garbage presented as keys.

    .venv/bin/python benchmarks/hive_parsers.py [--runs 5]

Needs both libraries installed (``pip install regipy python-registry``); only python-registry is a mamoru
dependency.
"""

from __future__ import annotations

import argparse
import io
import logging
import lzma
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "windows-registry"
HIVES = {
    "SYSTEM (Win7)": "regipy__SYSTEM.xz",
    "SYSTEM (Win10 1709)": "regipy__SYSTEM_WIN_10_1709.xz",
    "SYSTEM (corrupted)": "regipy__corrupted_system_hive.xz",
    "SAM": "regipy__SAM.xz",
    "SECURITY": "regipy__SECURITY.xz",
    "NTUSER.DAT": "regipy__NTUSER.DAT.xz",
    "user Software (partial)": "regipy__ntuser_software_partial.xz",
}
SYSTEM_LOOKUPS = [
    ("Control\\ComputerName\\ComputerName", "ComputerName"),
    *[(f"Services\\SharedAccess\\Parameters\\FirewallPolicy\\{p}Profile", v)
      for p in ("Domain", "Standard", "Public") for v in ("EnableFirewall", "DefaultInboundAction")],
    ("Services\\LanmanServer\\Parameters", "SMB1"),
    ("Services\\mrxsmb10", "Start"),
    *[("Services\\EventLog\\Security", v) for v in ("MaxSize", "Retention", "AutoBackupLogFiles")],
    ("Services\\WinDefend", "Start"),
    ("Control\\Lsa", "LimitBlankPasswordUse"),
]
NTUSER_LOOKUPS = [("Control Panel\\Desktop", v) for v in ("ScreenSaveActive", "ScreenSaverIsSecure",
                                                          "ScreenSaveTimeOut")]
NTUSER_LOOKUPS += [("Software\\Policies\\Microsoft\\Windows\\Control Panel\\Desktop", v)
                   for v in ("ScreenSaveActive", "ScreenSaverIsSecure", "ScreenSaveTimeOut")]
SECURITY_LOOKUPS = [("Policy\\PolAdtEv", "")]


class Outcome:
    VALUE = "value"
    MISSING = "missing"


def lookups_for(label: str) -> list[tuple[str, str]]:
    if label.startswith("SYSTEM"):
        return SYSTEM_LOOKUPS  # prefixed with the current control set by each adapter
    if label == "NTUSER.DAT":
        return NTUSER_LOOKUPS
    if label == "SECURITY":
        return SECURITY_LOOKUPS
    return []


class PythonRegistry:
    name = "python-registry"

    def __init__(self) -> None:
        from Registry import Registry, RegistryParse

        self.R = Registry
        self.P = RegistryParse

    def open(self, data: bytes) -> Any:
        return self.R.Registry(io.BytesIO(data))

    def get(self, hive: Any, key: str, value: str) -> Any:
        try:
            k = hive.open(key)
        except self.R.RegistryKeyNotFoundException:
            return Outcome.MISSING
        try:
            return k.value(value).value()
        except self.R.RegistryValueNotFoundException:
            return Outcome.MISSING

    def current_set(self, hive: Any) -> str:
        return f"ControlSet{self.get(hive, 'Select', 'Current'):03d}"

    def subkeys(self, hive: Any, key: str) -> list[str]:
        return [k.name() for k in hive.open(key).subkeys()]

    def walk(self, hive: Any) -> Iterator[tuple[str, int]]:
        stack = [hive.root()]
        while stack:
            k = stack.pop()
            n = 0
            for v in k.values():
                # the type and the raw bytes, as mamoru's backend reads them (it decodes the types itself;
                # ``value()`` raises on value types python-registry does not know, e.g. 0x12 in Win10 SYSTEM)
                v.value_type()
                v.raw_data()
                n += 1
            yield k.name(), n
            stack.extend(k.subkeys())


class Regipy:
    name = "regipy"

    def __init__(self) -> None:
        from regipy import exceptions
        from regipy.registry import RegistryHive

        logging.getLogger("regipy").setLevel(logging.CRITICAL)
        self.H = RegistryHive
        self.E = exceptions
        self.tmp = tempfile.mkdtemp(prefix="hive-bench-")

    def open(self, data: bytes) -> Any:
        path = os.path.join(self.tmp, "hive")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            return self.H(path)
        finally:
            os.unlink(path)

    def get(self, hive: Any, key: str, value: str) -> Any:
        try:
            k = hive.get_key("\\" + key)
        except self.E.RegistryKeyNotFoundException:
            return Outcome.MISSING
        for v in k.iter_values(trim_values=False):
            if v.name.lower() == (value or "(default)").lower():
                return v.value
        return Outcome.MISSING

    def current_set(self, hive: Any) -> str:
        return f"ControlSet{self.get(hive, 'Select', 'Current'):03d}"

    def subkeys(self, hive: Any, key: str) -> list[str]:
        return [k.name for k in hive.get_key("\\" + key).iter_subkeys()]

    def walk(self, hive: Any) -> Iterator[tuple[str, int]]:
        for sk in hive.recurse_subkeys(fetch_values=True):
            yield sk.subkey_name, len(sk.values)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        try:
            result = fn()
        except Exception as e:
            result = e
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def run_lookups(lib: Any, hive: Any, label: str) -> list[Any]:
    out: list[Any] = []
    prefix = lib.current_set(hive) + "\\" if label.startswith("SYSTEM") else ""
    for key, value in lookups_for(label):
        try:
            out.append(lib.get(hive, prefix + key, value))
        except Exception as e:
            out.append(f"{type(e).__name__}: {str(e)[:60]}")
    if label == "SAM":
        names = lib.subkeys(hive, "SAM\\Domains\\Account\\Users")
        out.append(sorted(n for n in names if n != "Names"))
        for rid in names:
            if rid != "Names":
                out.append(len(lib.get(hive, f"SAM\\Domains\\Account\\Users\\{rid}", "F")))
    return out


def walk(lib: Any, hive: Any) -> tuple[int, int, int, str]:
    keys = values = garbage = 0
    error = ""
    try:
        for name, n in lib.walk(hive):
            keys += 1
            values += n
            if not name.isprintable() or len(name) > 255:
                garbage += 1
    except Exception as e:
        error = f"{type(e).__name__}: {str(e)[:70]}"
    return keys, values, garbage, error


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    libs = [PythonRegistry(), Regipy()]
    print("| hive | MB | parser | open ms | lookups ms | walk ms | keys | values | garbage names | walk error |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    answers: dict[str, dict[str, Any]] = {}
    damaged: dict[str, str] = {}
    for label, file in HIVES.items():
        data = lzma.decompress((CORPUS / file).read_bytes())
        for lib in libs:
            t_open, hive = timed(lambda lib=lib, data=data: lib.open(data), args.runs)
            if isinstance(hive, Exception):
                print(f"| {label} | {len(data) / 2**20:.1f} | {lib.name} | {t_open * 1000:.1f} | open failed: "
                      f"{type(hive).__name__} | | | | | |")
                continue
            t_look, found = timed(lambda lib=lib, hive=hive, label=label: run_lookups(lib, hive, label), args.runs)
            answers.setdefault(label, {})[lib.name] = found
            if label == "SYSTEM (corrupted)":
                try:
                    names = lib.subkeys(hive, lib.current_set(hive) + "\\Services")
                    damaged[lib.name] = (f"{len(names)} subkeys listed, "
                                         f"{sum(not n.isprintable() or len(n) > 255 for n in names)} of them garbage")
                except Exception as e:
                    damaged[lib.name] = f"{type(e).__name__}: {str(e)[:60]}"
            t_walk, (keys, values, garbage, err) = timed(lambda lib=lib, hive=hive: walk(lib, hive),
                                                         max(1, args.runs // 2))
            print(f"| {label} | {len(data) / 2**20:.1f} | {lib.name} | {t_open * 1000:.1f} | {t_look * 1000:.1f} | "
                  f"{t_walk * 1000:.0f} | {keys} | {values} | {garbage} | {err or '-'} |")
    print()
    for name, what in damaged.items():
        print(f"corrupted SYSTEM, ControlSet001\\Services: {name}: {what}")
    for label, by_lib in answers.items():
        a, b = (by_lib.get(lib.name) for lib in libs)
        if a != b:
            print(f"{label}: lookups differ")
            for (key, value), x, y in zip(lookups_for(label), a or [], b or [], strict=False):
                if x != y:
                    print(f"  {key}\\{value}: python-registry={x!r:.70} regipy={y!r:.70}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
