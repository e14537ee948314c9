"""ClamAV: its daemons, the configuration they really use, and how old their signatures are.

The configuration is the file each *running* ``clamd``/``clamonacc`` was
started with (``-c``/``--config-file``), else the distribution's default. The
signature age comes from two places, both recorded: the database files' own
headers (``ClamAV-VDB:<build time>:<version>:…:<epoch>``; the same 512 bytes
``sigtool --info`` reads) and, when clamd is running, the version it has
*loaded*, as ``clamdscan --version`` reports it. A daemon that never reloaded
keeps old signatures in memory even after freshclam updated the files.

``EicarCollector`` is the one *active* collector: it feeds the EICAR test
string to the engine on stdin (``clamdscan -``), so nothing is written to the
target's disk and nothing needs cleaning up.

Every ``problem`` is a code with its parts (``{"code": "example_line", "where": ...}``), worded by the
checks in each language (checks/meta/_facts.yaml).
"""

from __future__ import annotations

import posixpath
import re
import time
from typing import Any

from agent.targets.base import CommandTimeout, CommandUnavailable, FileMissing, Target, TargetError
from collectors.base import Collector, Facts
from collectors.running import config_path, find_daemons
from collectors.textfiles import read_text

BINARIES = {
    "clamd": ("/usr/sbin/clamd", "/usr/local/sbin/clamd", "/usr/bin/clamd"),
    "clamscan": ("/usr/bin/clamscan", "/usr/local/bin/clamscan"),
    "clamdscan": ("/usr/bin/clamdscan", "/usr/local/bin/clamdscan"),
    "clamonacc": ("/usr/sbin/clamonacc", "/usr/local/sbin/clamonacc", "/usr/bin/clamonacc"),
    "freshclam": ("/usr/bin/freshclam", "/usr/local/bin/freshclam"),
}
CLAMD_CONFIGS = ("/etc/clamav/clamd.conf", "/etc/clamd.d/scan.conf", "/etc/clamd.conf",
                 "/usr/local/etc/clamd.conf")
FRESHCLAM_CONFIGS = ("/etc/clamav/freshclam.conf", "/etc/freshclam.conf", "/usr/local/etc/freshclam.conf")
DEFAULT_DB_DIR = "/var/lib/clamav"
MULTI = {"OnAccessIncludePath", "OnAccessExcludePath", "OnAccessMountPath", "OnAccessExcludeUname",
         "OnAccessExcludeUID", "TCPAddr", "DatabaseMirror", "ExcludePath"}
WANTED = {"LocalSocket", "TCPSocket", "TCPAddr", "DatabaseDirectory", "OnAccessIncludePath",
          "OnAccessExcludePath", "OnAccessMountPath", "OnAccessPrevention", "OnAccessExtraScanning",
          "ScanOnAccess", "OnAccessExcludeUname", "OnAccessExcludeUID", "PidFile", "User", "Checks",
          "DatabaseMirror", "NotifyClamd", "OfficialDatabaseOnly"}
CONTAINERS = (".cvd", ".cld", ".cud")
SIGNATURE_FILES = (".hdb", ".hsb", ".mdb", ".msb", ".ndb", ".ldb", ".cdb", ".idb", ".pdb", ".wdb", ".gdb",
                   ".ftm", ".yar", ".yara", ".imp", ".sfp", ".fp", ".cbc")
HEADER = 512
ENGINE_REPLY = re.compile(r"ClamAV (\S+)/(\d+)/(.+)")
#: The EICAR anti-malware test string (eicar.org), kept reversed so this source file is not itself detected.
_EICAR_REVERSED = "*H+H$!ELIF-TSET-SURIVITNA-DRADNATS-RACIE$}7)CC7)^P(45XZP\\4[PA@%P!O5X"


def eicar() -> bytes:
    return _EICAR_REVERSED[::-1].encode("ascii")


class ClamavProblem(ValueError):
    """A ClamAV file or answer that cannot be used: a code and its parts."""

    def __init__(self, code: str, **parts: Any) -> None:
        super().__init__(code)
        self.problem = {"code": code, **parts}


def which(target: Target, paths: tuple[str, ...]) -> str | None:
    return next((p for p in paths if target.exists(p)), None)


def parse_clamd_conf(lines: list[str], where: str) -> dict[str, Any]:
    """clamd.conf/freshclam.conf: ``Key value`` lines; an ``Example`` line means the file is not set up."""
    out: dict[str, Any] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        key, value = key.strip(), value.strip()
        if key == "Example":
            raise ClamavProblem("example_line", where=f"{where}:{n}")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key in MULTI:
            out.setdefault(key, []).append(value)
        elif key in WANTED:
            out[key] = value
    return out


def parse_header(raw: bytes) -> dict[str, Any]:
    """The 512-byte ClamAV-VDB header: build time text, version, signature count and build epoch."""
    text = raw[:HEADER].decode("ascii", "replace").rstrip("\0 \n")
    f = text.split(":")
    if len(f) < 9 or f[0] != "ClamAV-VDB":
        raise ClamavProblem("no_header")
    try:
        return {"build_time_text": f[1], "version": int(f[2]), "signatures": int(f[3]), "flevel": int(f[4]),
                "builder": f[7], "build_time": float(int(f[8]))}
    except ValueError as e:
        raise ClamavProblem("bad_header", detail=str(e)) from e


def read_header(target: Target, path: str, size: int) -> bytes:
    """The first 512 bytes, without reading a 100 MB daily.cld whole where a command can cut it."""
    if size <= 1 << 20 or not target.can_run:
        return target.read_file(path, max_bytes=max(size, HEADER) + 1)[:HEADER]
    res = target.run(["head", "-c", str(HEADER), path], timeout=10, max_output=HEADER)
    if not res.ok:
        raise ClamavProblem("head_failed", path=path, exit=res.returncode)
    return res.stdout


def database_files(target: Target, directory: str) -> dict[str, Any]:
    try:
        names = target.list_dir(directory)
    except FileMissing:
        return {"dir": directory, "exists": False, "files": [], "problem": None}
    except TargetError as e:
        return {"dir": directory, "exists": True, "files": [], "problem": {"code": "unreadable", "error": str(e)}}
    files = []
    for name in names:
        if not name.endswith(CONTAINERS + SIGNATURE_FILES):
            continue
        path = posixpath.join(directory, name)
        st = target.stat(path)
        if st is None:
            continue
        entry: dict[str, Any] = {"name": name, "size": st.size, "mtime": st.mtime,
                                 "container": name.endswith(CONTAINERS)}
        if entry["container"]:
            try:
                entry.update(parse_header(read_header(target, path, st.size)))
                entry["problem"] = None
            except ClamavProblem as e:
                entry["problem"] = {**e.problem, "path": path}
            except TargetError as e:
                entry["problem"] = {"code": "unreadable", "error": str(e)}
        files.append(entry)
    return {"dir": directory, "exists": True, "files": files, "problem": None}


def engine_version(target: Target, config: str) -> dict[str, Any]:
    """What the running clamd says it has loaded (``clamdscan --version`` asks it over its socket)."""
    try:
        res = target.run(["clamdscan", f"--config-file={config}", "--version"], timeout=10, max_output=4096)
    except (CommandUnavailable, CommandTimeout) as e:
        return {"reply": None, "problem": {"code": "command_failed", "error": str(e)}}
    reply = res.stdout.decode("utf-8", "replace").strip()
    m = ENGINE_REPLY.fullmatch(reply)
    if not m:
        return {"reply": reply[:200] or None, "problem": {"code": "no_loaded_version"}}
    out: dict[str, Any] = {"reply": reply, "engine": m.group(1), "version": int(m.group(2)), "problem": None}
    try:
        # clamd prints ctime() in its own local time zone: hours off at most, which a days-long limit absorbs.
        out["build_time"] = float(time.mktime(time.strptime(m.group(3).strip(), "%a %b %d %H:%M:%S %Y")))
    except ValueError:
        out["build_time"] = None
    return out


def read_config(target: Target, path: str) -> dict[str, Any]:
    try:
        return {"settings": parse_clamd_conf(read_text(target, path).lines, path), "problem": None}
    except FileMissing:
        return {"settings": {}, "problem": {"code": "missing", "path": path}}
    except ClamavProblem as e:
        return {"settings": {}, "problem": e.problem}
    except TargetError as e:
        return {"settings": {}, "problem": {"code": "unreadable", "error": str(e)}}


class ClamavCollector(Collector):
    id = "clamav"
    reads = (*CLAMD_CONFIGS, *FRESHCLAM_CONFIGS)
    lists = (DEFAULT_DB_DIR, "/etc/clamav")
    probes = tuple(p for paths in BINARIES.values() for p in paths)
    version = "2"
    timeout = 20.0

    def collect(self, target: Target) -> Facts:
        installed = {name: which(target, paths) for name, paths in BINARIES.items()}
        facts: Facts = {"collected_at": time.time(), "installed": installed, "daemons": [], "configs": {},
                        "databases": [], "engine": None, "processes_visible": target.can_run}
        if not any(installed.values()):
            return facts
        procs = find_daemons(target, {"clamd", "clamonacc", "freshclam"})
        for p in procs:
            if p["comm"] == "freshclam":
                conf = config_path(target, p, None, "--config-file", FRESHCLAM_CONFIGS[0])
            else:
                conf = config_path(target, p, "-c", "--config-file", CLAMD_CONFIGS[0])
            facts["daemons"].append({"pid": p["pid"], "comm": p["comm"], "config": conf})
        clamd_confs = [d["config"] for d in facts["daemons"] if d["comm"] in ("clamd", "clamonacc")]
        if not clamd_confs:
            clamd_confs = [c for c in CLAMD_CONFIGS if target.exists(c)][:1]
        fresh_confs = [d["config"] for d in facts["daemons"] if d["comm"] == "freshclam"]
        if not fresh_confs:
            fresh_confs = [c for c in FRESHCLAM_CONFIGS if target.exists(c)][:1]
        for path in dict.fromkeys(clamd_confs + fresh_confs):
            facts["configs"][path] = read_config(target, path)
        dirs = [c["settings"].get("DatabaseDirectory", DEFAULT_DB_DIR) for c in facts["configs"].values()]
        for d in dict.fromkeys(dirs or [DEFAULT_DB_DIR]):
            facts["databases"].append(database_files(target, d))
        clamd = [d for d in facts["daemons"] if d["comm"] == "clamd"]
        if clamd and installed["clamdscan"]:
            facts["engine"] = engine_version(target, clamd[0]["config"])
        return facts


class EicarCollector(Collector):
    """Active: does the engine actually detect the EICAR test string? Opt-in only (``--active-tests``)."""

    id = "clamav_eicar"
    version = "2"
    timeout = 150.0
    active = True

    def collect(self, target: Target) -> Facts:
        facts: Facts = {"engine": None, "detected": None, "signature": None, "output": None, "problem": None}
        if not target.can_run:
            facts["problem"] = {"code": "cannot_run"}
            return facts
        clamd = find_daemons(target, {"clamd"})
        if clamd and which(target, BINARIES["clamdscan"]):
            conf = config_path(target, clamd[0], "-c", "--config-file", CLAMD_CONFIGS[0])
            argv = ["clamdscan", f"--config-file={conf}", "--no-summary", "-"]
            facts["engine"] = "clamd"
            timeout = 30.0
        elif which(target, BINARIES["clamscan"]):
            # No daemon: clamscan loads the whole database itself, which takes a while with the official one.
            argv = ["clamscan", "--no-summary", "-"]
            facts["engine"] = "clamscan"
            timeout = 140.0
        else:
            return facts
        try:
            res = target.run(argv, stdin=eicar(), timeout=timeout, max_output=65536)
        except (CommandUnavailable, CommandTimeout) as e:
            facts["problem"] = {"code": "command_failed", "error": str(e)}
            return facts
        out = res.stdout.decode("utf-8", "replace").strip()
        facts["output"] = out[:500]
        m = re.search(r"^stream: (.+) FOUND$", out, re.M)
        if res.returncode == 1 and m:
            facts["detected"], facts["signature"] = True, m.group(1)
        elif res.returncode == 0 and re.search(r"^stream: OK$", out, re.M):
            facts["detected"] = False
        else:
            err = res.stderr.decode("utf-8", "replace").strip()
            facts["problem"] = {"code": "scan_failed", "command": argv[0], "exit": res.returncode,
                                "output": (err or out)[:300]}
        return facts


COLLECTOR = ClamavCollector()
EICAR_COLLECTOR = EicarCollector()
