"""Offline Windows images for tests, built at test time from the real corpus hives.

The corpus (``shared/corpus/windows-registry``, see SOURCES.md) has SYSTEM, SAM, SECURITY and user hives but no
machine SOFTWARE hive. Where a test needs one (ProfileList SIDs, Group Policy keys), it is written by hivex
(``hivexsh -w``, libguestfs' registry writer) into a copy of the corpus SECURITY hive emptied of its keys: a
real REGF file written by a real tool, read back by mamoru's real backend. Keys a test adds to a copy of a
corpus hive (a policy in NTUSER.DAT) go the same way. Corpus files are decompressed into tmp_path, never
copied into the project.
"""

from __future__ import annotations

import lzma
import shutil
import subprocess
from pathlib import Path

from tests.conftest import require_corpus, require_tool

WIN7_SYSTEM = "regipy__SYSTEM.xz"
WIN10_SYSTEM = "regipy__SYSTEM_WIN_10_1709.xz"
CORRUPTED_SYSTEM = "regipy__corrupted_system_hive.xz"
SAM = "regipy__SAM.xz"
SECURITY = "regipy__SECURITY.xz"
NTUSER = "regipy__NTUSER.DAT.xz"
#: The corpus NTUSER.DAT names its own file \??\C:\Users\vibranium\ntuser.dat.
USER_FOLDER = "vibranium"
USER_SID = "S-1-5-21-1004336348-1177238915-682003330-1001"

Value = tuple[str, str]  # (name, hivexsh value: "string:…", "dword:0x…", "expandstring:…")


def corpus_hive(name: str) -> bytes:
    return lzma.decompress(require_corpus("windows-registry", name).read_bytes())


def build_tree(root: Path, *, system: str | None = WIN10_SYSTEM, sam: bool = True, ntuser: bool = True,
               software: dict[str, list[Value]] | None = None, lowercase: bool = False) -> Path:
    """A folder laid out like a Windows volume: config hives and Users/vibranium/NTUSER.DAT."""
    config = root / ("windows/system32/CONFIG" if lowercase else "Windows/System32/config")
    config.mkdir(parents=True, exist_ok=True)
    if system:
        (config / ("system" if lowercase else "SYSTEM")).write_bytes(corpus_hive(system))
    if sam:
        (config / "SAM").write_bytes(corpus_hive(SAM))
    if ntuser:
        user = root / "Users" / USER_FOLDER
        user.mkdir(parents=True, exist_ok=True)
        (user / "NTUSER.DAT").write_bytes(corpus_hive(NTUSER))
    if software is not None:
        make_software(config / "SOFTWARE", software)
    return root


def profile_list(sid: str = USER_SID, folder: str = rf"C:\Users\{USER_FOLDER}") -> dict[str, list[Value]]:
    base = r"Microsoft\Windows NT\CurrentVersion"
    return {base: [("ProductName", "string:Windows 10 Pro"), ("DisplayVersion", "string:22H2"),
                   ("CurrentBuild", "string:19045"), ("SystemRoot", r"string:C:\WINDOWS")],
            rf"{base}\ProfileList\S-1-5-18": [("ProfileImagePath", r"expandstring:%systemroot%\system32\config\systemprofile")],
            rf"{base}\ProfileList\{sid}": [("ProfileImagePath", f"expandstring:{folder}")]}


def make_software(dest: Path, keys: dict[str, list[Value]]) -> None:
    """A SOFTWARE hive holding exactly ``keys`` (path -> values), written by hivexsh."""
    require_tool("hivexsh")
    dest.write_bytes(corpus_hive(SECURITY))
    script = ["cd \\Cache", "del", "cd \\Policy", "del", "cd \\RXACT", "del"]
    hivex_write(dest, script + _add_keys(keys, existing=set()))


def add_keys(hive: Path, keys: dict[str, list[Value]]) -> None:
    """Add keys (and set their values) in a copy of a real hive."""
    require_tool("hivexsh")
    from Registry import Registry

    reg = Registry.Registry(str(hive))
    existing = set()
    for path in keys:
        parts = path.split("\\")
        for i in range(1, len(parts) + 1):
            try:
                reg.open("\\".join(parts[:i]))
                existing.add("\\".join(parts[:i]).lower())
            except Registry.RegistryKeyNotFoundException:
                break
    hivex_write(hive, _add_keys(keys, existing=existing))


def set_values(hive: Path, key: str, values: list[Value]) -> None:
    """Replace every value of an existing key (hivexsh's setval replaces them all)."""
    hivex_write(hive, [f"cd \\{key}", f"setval {len(values)}", *[x for v in values for x in v]])


def _add_keys(keys: dict[str, list[Value]], *, existing: set[str]) -> list[str]:
    lines: list[str] = []
    made = set(existing)
    for path, values in keys.items():
        parts = path.split("\\")
        for i, part in enumerate(parts):
            here = "\\".join(parts[: i + 1]).lower()
            if here not in made:
                lines += ["cd \\" + "\\".join(parts[:i]) if i else "cd \\", f"add {part}"]
                made.add(here)
        if values:
            lines += ["cd \\" + path, f"setval {len(values)}", *[x for v in values for x in v]]
    return lines


def hivex_write(hive: Path, lines: list[str]) -> None:
    out = subprocess.run([shutil.which("hivexsh") or "hivexsh", "-w", str(hive)],
                         input="\n".join([*lines, "commit", ""]).encode(), capture_output=True, timeout=60)
    assert out.returncode == 0 and not out.stderr, out.stderr.decode(errors="replace")
