"""Time synchronisation: which daemon runs, what it is configured with, and whether it is synchronised.

Running daemons come from /proc. Each chronyd is asked about its own state
through the command socket its own configuration names (``-f`` and
``bindcmdaddress``), with ``chronyc -c`` (CSV, not prose): reference, stratum,
offset of the system clock, leap status. systemd-timesyncd marks a completed
synchronisation with ``/run/systemd/timesync/synchronized``. ntpd's state is
not read (no ntpq parser here), which the check reports as such. On an image
only the configuration and boot-time enablement can be read. A ``problem`` is a code with its parts
(collectors/problems.py).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any

from agent.targets.base import CommandTimeout, CommandUnavailable, Target, TargetError
from collectors.base import Collector, CollectorError, Facts
from collectors.problems import Problem, problem, tool_failed, unreadable
from collectors.processes import find, list_processes, restricted
from collectors.textfiles import glob, read_optional
from collectors.units import unit_enabled

CHRONY_CONFS = ("/etc/chrony/chrony.conf", "/etc/chrony.conf")
CHRONY_DEFAULT_SOCKET = "/run/chrony/chronyd.sock"
TIMESYNCD_CONF = "/etc/systemd/timesyncd.conf"
TIMESYNCD_DROPINS = ("/usr/lib/systemd/timesyncd.conf.d", "/etc/systemd/timesyncd.conf.d")
TIMESYNCD_FLAG = "/run/systemd/timesync/synchronized"
NTP_CONFS = ("/etc/ntpsec/ntp.conf", "/etc/ntp.conf", "/etc/openntpd/ntpd.conf")
DAEMONS = {"chronyd": "chrony", "systemd-timesyncd": "timesyncd", "systemd-timesyn": "timesyncd",
           "ntpd": "ntp", "openntpd": "ntp"}
SOURCE_DIRECTIVES = {"server", "pool", "peer", "refclock"}
#: Reference IDs that are not a time source: 7F7F0101 is chrony's "local" reference (its own clock).
LOCAL_REFIDS = {"7F7F0101", "4C4F434C"}


class ConfProblem(Problem):
    """A configuration or an answer of chronyc that cannot be used: a code and its parts."""


def chrony_conf(target: Target, path: str) -> dict[str, Any]:
    """Sources and the command socket from a chrony.conf and the confdir/sourcedir files it names."""
    out: dict[str, Any] = {"file": path, "files": [], "sources": [], "socket": None, "local": False}

    def read(p: str, depth: int) -> None:
        if depth > 8:
            raise ConfProblem("nested_too_deeply", path=p)
        tf = read_optional(target, p)
        if tf is None:
            if depth == 0:
                raise ConfProblem("missing", path=p)
            return
        out["files"].append(p)
        for n, raw in enumerate(tf.lines, 1):
            line = raw.strip()
            if not line or line[0] in "#!;%":
                continue
            try:
                words = shlex.split(line)
            except ValueError as e:
                raise ConfProblem("quoting", where=f"{p}:{n}") from e
            key = words[0].lower()
            if key in SOURCE_DIRECTIVES:
                if len(words) < 2:
                    raise ConfProblem("needs_address", where=f"{p}:{n}", key=key)
                out["sources"].append(f"{key} {words[1]}")
            elif key == "local":
                out["local"] = True
            elif key == "bindcmdaddress" and len(words) > 1 and words[1].startswith("/"):
                out["socket"] = words[1]
            elif key in ("include", "confdir", "sourcedir") and len(words) > 1:
                for arg in words[1:]:
                    if key == "include":
                        pattern = arg
                    else:
                        pattern = posixpath.join(arg, "*.conf" if key == "confdir" else "*.sources")
                    if not arg.startswith("/run"):  # runtime dirs are not part of a configuration
                        for inc in glob(target, pattern):
                            read(inc, depth + 1)

    read(path, 0)
    return out


def parse_tracking_csv(text: str) -> dict[str, Any]:
    """``chronyc -c tracking``: 14 comma-separated fields."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) != 1:
        raise ConfProblem("tracking_lines", lines=len(lines))
    fields = lines[0].split(",")
    if len(fields) != 14 or not re.fullmatch(r"[0-9A-Fa-f]{8}", fields[0]):
        raise ConfProblem("tracking_output", output=lines[0][:120])
    try:
        return {"reference_id": fields[0].upper(), "reference": fields[1], "stratum": int(fields[2]),
                "system_offset_s": float(fields[4]), "root_dispersion_s": float(fields[11]),
                "leap_status": fields[13]}
    except ValueError as e:
        raise ConfProblem("tracking_output", output=lines[0][:120]) from e


def _cmdline_conf(cmdline: list[str]) -> tuple[str | None, bool]:
    """chronyd's ``-f FILE`` and whether ``-x`` (no control of the system clock) is set."""
    conf, no_control = None, False
    for i, w in enumerate(cmdline[1:], 1):
        if w == "-f" and i + 1 < len(cmdline):
            conf = cmdline[i + 1]
        elif w.startswith("-f") and len(w) > 2:
            conf = w[2:]
        elif w == "-x":
            no_control = True
    return conf, no_control


def _timesyncd(target: Target) -> dict[str, Any]:
    settings: dict[str, str] = {}
    files = [TIMESYNCD_CONF] + [f for d in TIMESYNCD_DROPINS for f in glob(target, d + "/*.conf")]
    for path in files:
        tf = read_optional(target, path)
        if tf is None:
            continue
        for n, raw in enumerate(tf.lines, 1):
            line = raw.strip()
            if not line or line[0] in "#;" or line.startswith("["):
                continue
            key, eq, value = line.partition("=")
            if not eq:
                raise ConfProblem("not_key_value", where=f"{path}:{n}")
            settings[key.strip()] = value.strip()
    return {"ntp": settings.get("NTP", ""), "fallback_ntp": settings.get("FallbackNTP", "(built-in)"),
            "enabled_at_boot": unit_enabled(target, "systemd-timesyncd.service")}


def configured(target: Target) -> dict[str, Any]:
    conf: dict[str, Any] = {}
    path = next((p for p in CHRONY_CONFS if target.exists(p)), None)
    if path is not None:
        conf["chrony"] = {**chrony_conf(target, path), "enabled_at_boot": unit_enabled(target, "chrony.service")
                          or unit_enabled(target, "chronyd.service")}
    if target.exists(TIMESYNCD_CONF) or target.exists("/lib/systemd/systemd-timesyncd") \
            or target.exists("/usr/lib/systemd/systemd-timesyncd"):
        conf["timesyncd"] = _timesyncd(target)
    for p in NTP_CONFS:
        if target.exists(p):
            conf["ntp"] = {"file": p, "enabled_at_boot": any(unit_enabled(target, u) for u in
                                                               ("ntp.service", "ntpsec.service", "openntpd.service"))}
            break
    return conf


class TimesyncCollector(Collector):
    id = "timesync"
    reads = (*CHRONY_CONFS, TIMESYNCD_CONF, *NTP_CONFS, TIMESYNCD_FLAG)
    lists = ("/etc/chrony/conf.d", "/etc/chrony/sources.d", *TIMESYNCD_DROPINS, "/etc/systemd/system")
    probes = ("/lib/systemd/systemd-timesyncd", "/usr/lib/systemd/systemd-timesyncd")
    version = "2"  # 2: problems are codes with their parts

    def collect(self, target: Target) -> Facts:
        facts: Facts = {"live": target.can_run, "daemons": [], "processes_error": None, "problem": None,
                        "restricted": False}
        try:
            facts["configured"] = configured(target)
        except ConfProblem as e:
            facts["configured"] = {}
            facts["problem"] = e.problem
        except TargetError as e:
            facts["configured"] = {}
            facts["problem"] = unreadable(e)
        try:
            procs = list_processes(target)
        except CollectorError as e:
            facts["processes_error"] = str(e)
            return facts
        facts["processes_seen"] = len(procs)
        seen_sockets: set[str] = set()
        for p in find(procs, frozenset(DAEMONS)):
            kind = DAEMONS.get(p["comm"]) or DAEMONS.get((p.get("exe") or "").rsplit("/", 1)[-1], "ntp")
            d: dict[str, Any] = {"pid": p["pid"], "daemon": kind, "state": None, "problem": None}
            if kind == "chrony":
                conf_path, no_control = _cmdline_conf(p["cmdline"])
                d["controls_clock"] = not no_control
                try:
                    conf = chrony_conf(target, conf_path or next((c for c in CHRONY_CONFS if target.exists(c)),
                                                                 CHRONY_CONFS[0]))
                except ConfProblem as e:
                    d["problem"] = e.problem
                    facts["daemons"].append(d)
                    continue
                except TargetError as e:
                    d["problem"] = unreadable(e)
                    facts["daemons"].append(d)
                    continue
                d.update(config=conf["file"], sources=conf["sources"])
                socket = conf["socket"] or CHRONY_DEFAULT_SOCKET
                if socket in seen_sockets:
                    continue  # chronyd's privilege-separated helper shares its parent's socket
                seen_sockets.add(socket)
                d.update(self._chrony_state(target, conf["socket"]))
            elif kind == "timesyncd":
                try:
                    d["state"] = {"synchronized": target.exists(TIMESYNCD_FLAG)}
                except TargetError as e:
                    d["problem"] = unreadable(e)
            facts["daemons"].append(d)
        facts["restricted"] = restricted(target)
        return facts

    @staticmethod
    def _chrony_state(target: Target, socket: str | None) -> dict[str, Any]:
        argv = ["chronyc", *(["-h", socket] if socket else []), "-n", "-c", "tracking"]
        try:
            res = target.run(argv, timeout=10)
        except (CommandUnavailable, CommandTimeout) as e:
            return {"problem": problem("command_failed", error=str(e))}
        out = res.stdout.decode("utf-8", "replace")
        err = res.stderr.decode("utf-8", "replace").strip()
        if not res.ok or not out.strip():
            return {"problem": tool_failed("chronyc", res.returncode, err or out),
                    "permission_denied": "permission denied" in (err + out).lower()}
        try:
            return {"state": parse_tracking_csv(out)}
        except ConfProblem as e:
            return {"problem": e.problem}


COLLECTOR = TimesyncCollector()
