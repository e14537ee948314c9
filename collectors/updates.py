"""Security updates this host has not installed (apt/dpkg), worked out offline.

``apt-get -s upgrade`` would answer too, but it rebuilds apt's cache on every
call where none is kept (seconds), and cannot run on a directory target. The
same answer comes from the files apt already has: every package installed
(``/var/lib/dpkg/status``) for which a *security* suite's package index in
``/var/lib/apt/lists`` holds a newer version (dpkg's version ordering) has a
security update pending. A suite is a security suite when its Release file says
so (Debian's ``Label: Debian-Security``, Ubuntu's ``Suite: *-security``).

Nothing here asks the network: the answer is only as current as the lists, so
the facts carry each security index's own ``Date:`` (when the archive produced
it). The check judges that age too; missing lists are reported, never guessed. A ``problem`` is a code with
its parts (collectors/problems.py).
"""

from __future__ import annotations

import bz2
import email.utils
import lzma
import posixpath
import re
import time
import zlib
from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors.base import Collector, Facts
from collectors.problems import Problem, problem, unreadable

DPKG_STATUS = "/var/lib/dpkg/status"
LISTS = "/var/lib/apt/lists"
AUTO_UPGRADES = ("/etc/apt/apt.conf.d/20auto-upgrades", "/etc/apt/apt.conf.d/50unattended-upgrades")
MAX_INDEX_BYTES = 256 * 1024 * 1024
MAX_LISTED = 200  # pending packages kept in facts; the total is always exact


class ListProblem(Problem):
    """A package index that cannot be used: a code and its parts."""


# --- dpkg version ordering (deb-version(7), lib/dpkg/version.c) -------------

def _order(c: str) -> int:
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256 if c else 0


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split(v: str) -> tuple[int, str, str]:
    epoch = 0
    if ":" in v:
        e, v = v.split(":", 1)
        epoch = int(e) if e.isdigit() else 0
    upstream, _, revision = v.rpartition("-") if "-" in v else (v, "", "")
    return epoch, upstream, revision


def compare_versions(a: str, b: str) -> int:
    """<0, 0, >0 as dpkg --compare-versions orders a and b."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


# --- files -----------------------------------------------------------------

_SEPARATOR = re.compile(r"\n(?:[ \t]*\n)+")


def parse_control(text: str, fields: tuple[str, ...], *,
                  packages: set[str] | frozenset[str] | None = None) -> list[dict[str, str]]:
    """deb822 stanzas (separated by empty or blank lines), keeping only ``fields``; continuation lines ignored.

    ``packages``: skip, unread, the stanzas of other packages. A security index lists thousands of packages
    of which a host has installed a few hundred; reading only theirs halves the work (measured: 12.9 ms
    against 6.4 ms for Debian 12's security index).
    """
    out: list[dict[str, str]] = []
    prefixes = tuple(f + ":" for f in fields)
    for stanza in _SEPARATOR.split(text):
        if packages is not None and stanza.startswith("Package:"):
            end = stanza.find("\n")
            if stanza[8:end if end >= 0 else len(stanza)].strip() not in packages:
                continue
        cur: dict[str, str] = {}
        for line in stanza.split("\n"):
            if line.startswith(prefixes):
                k, _, v = line.partition(":")
                cur[k] = v.strip()
        if cur:
            out.append(cur)
    return out


def parse_release(text: str) -> dict[str, str]:
    """The header fields of an (In)Release file; the signature armour is skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("-----BEGIN PGP SIGNED") or line.startswith("Hash:"):
            continue
        if not line.strip():
            if out:
                break
            continue
        if line[0] in " \t":
            continue
        k, sep, v = line.partition(":")
        if not sep:
            break
        out[k.strip()] = v.strip()
    return out


def is_security(rel: dict[str, str]) -> bool:
    label = rel.get("Label", "")
    suite = rel.get("Suite", "")
    codename = rel.get("Codename", "")
    return "security" in label.lower() or suite.endswith("-security") or codename.endswith("-security")


def release_date(rel: dict[str, str]) -> float | None:
    raw = rel.get("Date")
    if not raw:
        return None
    try:
        return email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None


def _decompressor(path: str) -> Any:
    """The streaming decompressor for an index file's name, or None for a plain one.

    lz4 and zstd are what apt itself writes when it keeps lists compressed; they are opened here with the
    formats' libraries, as gz, xz and bz2 are with Python's, so no command has to run on the target.
    """
    if path.endswith(".gz"):
        return zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    if path.endswith(".xz"):
        return lzma.LZMADecompressor()
    if path.endswith(".bz2"):
        return bz2.BZ2Decompressor()
    if path.endswith(".lz4"):
        import lz4.frame

        return lz4.frame.LZ4FrameDecompressor()
    if path.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj()
    return None


def _decompress(path: str, raw: bytes, limit: int) -> bytes:
    """The whole index, refusing more than ``limit`` bytes (a hostile host's "index" may be a decompression
    bomb) and a stream that stops short (a truncated download)."""
    d = _decompressor(path)
    if d is None:
        return raw
    data: bytes
    if path.endswith(".gz"):
        data = d.decompress(raw, limit + 1)
    elif path.endswith(".zst"):  # no output bound of its own: fed in slices, stopped once past the limit
        out = bytearray()
        for i in range(0, len(raw), 1 << 16):
            out += d.decompress(raw[i:i + (1 << 16)])
            if len(out) > limit:
                break
        data = bytes(out)
    else:
        data = bytes(d.decompress(raw, max_length=limit + 1))
    if len(data) > limit:
        raise ListProblem("too_large", path=path, limit=limit)
    if not getattr(d, "eof", True):
        raise ListProblem("truncated", path=path)
    return data


def read_index(target: Target, path: str) -> str:
    """A Packages index, decompressed, at most MAX_INDEX_BYTES either way."""
    raw = target.read_file(path, max_bytes=MAX_INDEX_BYTES)
    try:
        data = _decompress(path, raw, MAX_INDEX_BYTES)
    except ListProblem:
        raise
    except Exception as e:  # each format's own error class; a broken index is a problem, never a crash
        raise ListProblem("cannot_decompress", path=path, detail=f"{type(e).__name__}: {e}") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ListProblem("not_utf8", path=path) from e


def installed_packages(target: Target) -> list[dict[str, str]]:
    text = target.read_file(DPKG_STATUS, max_bytes=MAX_INDEX_BYTES).decode("utf-8", "replace")
    pkgs = parse_control(text, ("Package", "Status", "Architecture", "Version"))
    return [p for p in pkgs if p.get("Status", "").endswith(" installed") and "Version" in p and "Package" in p]


def auto_upgrades(target: Target) -> dict[str, Any]:
    """Whether unattended-upgrades is switched on (APT::Periodic::Unattended-Upgrade "1"); evidence only."""
    settings: dict[str, str] = {}
    for path in AUTO_UPGRADES:
        try:
            text = target.read_file(path, max_bytes=1 << 20).decode("utf-8", "replace")
        except TargetError:
            continue
        for m in re.finditer(r'^\s*(APT::Periodic::[\w-]+)\s+"([^"]*)"\s*;', text, re.M):
            settings[m.group(1)] = m.group(2)
    return {"unattended_upgrade": settings.get("APT::Periodic::Unattended-Upgrade"),
            "update_package_lists": settings.get("APT::Periodic::Update-Package-Lists")}


class UpdatesCollector(Collector):
    id = "updates"
    reads = AUTO_UPGRADES
    lists = (LISTS, "/etc/apt/apt.conf.d", "/var/lib/dpkg")
    version = "2"  # 2: problems are codes with their parts
    timeout = 30.0

    def collect(self, target: Target) -> Facts:
        facts: Facts = {"collected_at": time.time(), "manager": None, "suites": [], "pending": [],
                        "pending_total": 0, "problem": None, "auto_upgrades": {}}
        if not target.exists(DPKG_STATUS):
            return facts
        facts["manager"] = "apt"
        facts["auto_upgrades"] = auto_upgrades(target)
        try:
            names = target.list_dir(LISTS)
        except FileMissing:
            facts["problem"] = problem("no_lists", dir=LISTS)
            return facts
        except TargetError as e:
            facts["problem"] = unreadable(e)
            return facts
        releases = [n for n in names if n.endswith(("_InRelease", "_Release"))]
        security_indexes: list[tuple[str, str]] = []
        for rname in releases:
            prefix = rname.rsplit("_", 1)[0] + "_"
            if rname.endswith("_Release") and prefix + "InRelease" in names:
                continue
            try:
                rel = parse_release(target.read_file(posixpath.join(LISTS, rname), max_bytes=1 << 24)
                                    .decode("utf-8", "replace"))
            except TargetError as e:
                facts["suites"].append({"release_file": rname, "problem": unreadable(e), "security": None})
                continue
            sec = is_security(rel)
            pk = [n for n in names if n.startswith(prefix) and "_binary-" in n and "_Packages" in n
                  and n[len(prefix):].count("_") >= 2]
            facts["suites"].append({"release_file": rname, "origin": rel.get("Origin"), "label": rel.get("Label"),
                                    "suite": rel.get("Suite"), "codename": rel.get("Codename"),
                                    "date": release_date(rel), "security": sec, "packages_files": pk,
                                    "problem": None})
            if sec:
                security_indexes += [(rel.get("Suite") or rel.get("Codename") or rname, n) for n in pk]
        if not releases:
            facts["problem"] = problem("no_releases", dir=LISTS)
            return facts
        try:
            facts.update(self._pending(target, security_indexes))
        except ListProblem as e:
            facts["problem"] = e.problem
        except TargetError as e:
            facts["problem"] = unreadable(e)
        return facts

    def _pending(self, target: Target, indexes: list[tuple[str, str]]) -> dict[str, Any]:
        installed = installed_packages(target)
        names = {p["Package"] for p in installed}
        newest: dict[tuple[str, str], tuple[str, str]] = {}
        for suite, name in indexes:
            text = read_index(target, posixpath.join(LISTS, name))
            for p in parse_control(text, ("Package", "Version", "Architecture"), packages=names):
                if "Package" not in p or "Version" not in p:
                    raise ListProblem("stanza", path=name)
                key = (p["Package"], p.get("Architecture", ""))
                if key not in newest or compare_versions(p["Version"], newest[key][0]) > 0:
                    newest[key] = (p["Version"], suite)
        pending = []
        for inst in installed:
            arch = inst.get("Architecture", "")
            cand = newest.get((inst["Package"], arch))
            if cand and compare_versions(cand[0], inst["Version"]) > 0:
                pending.append({"package": inst["Package"], "arch": arch, "installed": inst["Version"],
                                "candidate": cand[0], "suite": cand[1]})
        pending.sort(key=lambda p: p["package"])
        return {"pending": pending[:MAX_LISTED], "pending_total": len(pending)}


COLLECTOR = UpdatesCollector()
