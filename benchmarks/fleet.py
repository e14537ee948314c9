#!/usr/bin/env python3
"""mamoru scanning N real sshd targets, side by side with OpenSSH's own client fanned out (``xargs -P N``).

For each N (default 1, 8, 32, 64) the script starts N real ``sshd`` on
127.0.0.1 (ports 24000-25999), each with an audit account that may
``sudo -n`` (it exists only inside that sshd's mount namespace), then runs,
alternating:

* ``mamoru scan --inventory <N hosts> --workers N --sudo`` — every Linux check;
* the peer: ``xargs -P N`` starting one ``ssh … sudo -n sh -s`` per host, fed a
  script doing the same reads and commands mamoru's collectors did (recorded
  from a real scan of host 1): ``cat`` per file, one ``stat``/``readlink`` for
  all paths, ``ls`` per directory, and a loop over the live ``/proc/[0-9]*``
  for the per-process reads, as one would write it by hand.

It prints wall time, client CPU seconds (the scanner's own process tree, from
``wait4``), machine CPU seconds (``/proc/stat``: sshd, sftp-server and shells
share these cores), the peak of the summed RSS of each tool's process tree
(sampled every 20 ms) and mamoru's growth per extra target, and the ratio of
mamoru's wall time to OpenSSH's. The targets run on this machine, so each one
sees every other target's sshd in its process table: the per-host work (one
``sshd -T`` per running sshd, the /proc walk) grows with N for both tools. Run
as root:

    .venv/bin/python benchmarks/fleet.py [--sizes 1,8,32,64] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.installed import compile_like_pip  # noqa: E402
from tests.sshd_helpers import LoginUser, Sshd, keygen, public_line, sshd_available, sudo_missing  # noqa: E402

AUDITOR = LoginUser("mm5bench", 45300, "ALL=(ALL) NOPASSWD: ALL")
_PROC = re.compile(r"^/proc/\d+/(.+)$")


def machine_jiffies() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return sum(int(x) for x in fields[:8]) - int(fields[3]) - int(fields[4])  # busy time: all but idle, iowait


def measure(argv: Sequence[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None,
            shell_input: str | None = None) -> dict[str, float]:
    """Wall, client CPU (process + waited-for children), machine CPU and peak RSS of one run."""
    import psutil

    hz = os.sysconf("SC_CLK_TCK")
    j0, t0 = machine_jiffies(), time.perf_counter()
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        """Peak of the summed RSS of the whole process tree (all ssh clients; mamoru and its scanners)."""
        root = psutil.Process(proc.pid)
        while not done.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
            except psutil.Error:
                pass
            peak[0] = max(peak[0], total)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "machine": (machine_jiffies() - j0) / hz,
            "rss_mb": peak[0] / 2**20, "rc": os.waitstatus_to_exitcode(status)}


# -- recording what mamoru's collectors do, to give the peer the same work -------------------------


def record_ops(spec: str, options: dict[str, Any]) -> list[tuple[str, Any]]:
    from agent.registry import collectors
    from agent.runner import run_collector
    from agent.targets import open_target
    from agent.targets.base import Target

    ops: list[tuple[str, Any]] = []
    real = open_target(spec, **options)

    class Recorder(Target):
        kind = "ssh"

        def platform(self) -> Any:
            return real.platform()

        def read_file(self, path: str, *, max_bytes: int = 8 << 20) -> bytes:
            ops.append(("read", path))
            return real.read_file(path, max_bytes=max_bytes)

        def list_dir(self, path: str) -> list[str]:
            ops.append(("list", path))
            return real.list_dir(path)

        def stat(self, path: str) -> Any:
            ops.append(("stat", path))
            return real.stat(path)

        def readlink(self, path: str) -> str:
            ops.append(("readlink", path))
            return real.readlink(path)

        def run(self, argv: Sequence[str], **kw: Any) -> Any:
            ops.append(("run", list(argv)))
            return real.run(argv, **kw)

    rec = Recorder(spec)
    for c in collectors().values():
        if "linux" in c.platforms and not c.active:
            run_collector(c, rec)
    real.close()
    return ops


def peer_script(ops: list[tuple[str, Any]]) -> str:
    """The same reads and commands as a shell script, per-process paths looped over the live /proc."""
    plain: dict[str, list[str]] = {"read": [], "list": [], "stat": [], "readlink": []}
    per_proc: dict[str, list[str]] = {"read": [], "list": [], "stat": [], "readlink": []}
    commands: list[list[str]] = []
    for kind, arg in ops:
        if kind == "run":
            if arg not in commands:
                commands.append(arg)
            continue
        m = _PROC.match(arg)
        bucket, item = (per_proc, re.sub(r"^fd/\d+$", "fd/*", m.group(1))) if m else (plain, arg)
        if item not in bucket[kind]:
            bucket[kind].append(item)
    q = shlex.quote
    lines = ["cd / || exit 1", "LC_ALL=C; export LC_ALL", "h() { printf '\\n@@@ %s\\n' \"$1\"; }", "{"]
    if plain["read"]:
        lines.append(f"for f in {' '.join(map(q, plain['read']))}; do h \"$f\"; cat -- \"$f\"; done")
    if plain["stat"]:
        lines.append(f"stat -L -c '%n %f %u %g %s %Y' -- {' '.join(map(q, plain['stat']))}")
    if plain["list"]:
        lines.append(f"for d in {' '.join(map(q, plain['list']))}; do h \"$d\"; ls -1A -- \"$d\"; done")
    if plain["readlink"]:
        lines.append(f"readlink -- {' '.join(map(q, plain['readlink']))}")
    if any(per_proc.values()):
        lines.append("for p in /proc/[0-9]*; do")
        for s in per_proc["read"]:
            lines.append(f"  h \"$p/{s}\"; cat -- \"$p/{s}\"")
        for s in per_proc["list"]:
            lines.append(f"  h \"$p/{s}\"; ls -1A -- \"$p/{s}\"")
        if per_proc["stat"]:
            lines.append("  stat -L -c '%n %f %u %g %s %Y' -- " + " ".join(f'"$p/{s}"' for s in per_proc["stat"]))
        links = [f'"$p"/{s}' if "*" in s else f'"$p/{s}"' for s in per_proc["readlink"]]
        if links:
            lines.append("  readlink -- " + " ".join(links))
        lines.append("done")
    for argv in commands:
        lines.append(f"h {q(argv[0])}; {' '.join(map(q, argv))} </dev/null")
    lines.append("} 2>&1")
    return "\n".join(lines) + "\n"


# -- one size -------------------------------------------------------------------------------------


def run_size(n: int, *, runs: int, work: Path, client_key: Path, mamoru: list[str]) -> dict[str, Any]:
    servers = [Sshd(work / f"n{n}-{i}", authorized_keys=[public_line(client_key)], users=[AUDITOR]) for i in range(n)]
    try:
        for s in servers:
            s.start()
        known = work / f"known_hosts-{n}"
        known.write_text("".join(s.known_hosts_line() + "\n" for s in servers))
        # Recorded with all N servers up: the collectors' work depends on what runs (sshd -T per sshd found).
        ops = record_ops(servers[0].spec(AUDITOR.name), {"identity_file": str(client_key),
                                                         "known_hosts": str(known), "sudo": True})
        script = peer_script(ops)
        counts = {k: sum(1 for o in ops if o[0] == k) for k in ("read", "stat", "list", "readlink", "run")}
        inv = work / f"inventory-{n}.yaml"
        inv.write_text(f"defaults: {{user: {AUDITOR.name}, identity_file: {client_key}, sudo: true}}\ntargets:\n"
                       + "".join(f"  - {{name: host{i}, address: 127.0.0.1, port: {s.port}}}\n"
                                 for i, s in enumerate(servers)))
        (work / "peer.sh").write_text(script)
        out = work / f"report-{n}.json"
        mamoru_argv = [*mamoru, "scan", "--inventory", str(inv), "--known-hosts", str(known), "--workers", str(n),
                       "--output", str(out), "--quiet", "--no-organisation"]  # hosts only, as the peer
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}", "-o",
               "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-i", str(client_key)]
        fan = (f"{' '.join(map(shlex.quote, ssh))} -p \"$1\" {AUDITOR.name}@127.0.0.1 sudo -n sh -s "
               f"<{shlex.quote(str(work / 'peer.sh'))} >{shlex.quote(str(work))}/peer-out.\"$1\"")
        ports = "".join(f"{s.port}\n" for s in servers).encode()
        peer_argv = ["xargs", "-P", str(n), "-n", "1", "sh", "-c", fan, "sh"]
        results: dict[str, list[dict[str, float]]] = {"mamoru": [], "openssh": []}
        for _ in range(runs):
            results["mamoru"].append(measure(mamoru_argv))
            results["openssh"].append(measure(peer_argv, stdin=ports))
        import json

        doc = json.loads(out.read_text())
        ok = sum(t["status"] == "ok" for t in doc["targets"])  # partial (a collector timed out) is not ok
        partial = sum(t["status"] == "partial" for t in doc["targets"])
        peer_ok = sum((work / f"peer-out.{s.port}").stat().st_size > 10000 for s in servers)
        return {"n": n, "ok": ok, "partial": partial, "peer_ok": peer_ok, "ops": counts,
                **{f"{tool}_{k}": statistics.median(r[k] for r in rs) for tool, rs in results.items()
                   for k in ("wall", "cpu", "machine", "rss_mb")}}
    finally:
        for s in servers:
            s.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,8,32,64")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    compile_like_pip()  # as pip does at install time: see benchmarks/installed.py
    if os.geteuid() != 0:
        ap.error("run as root: it starts sshd instances and test accounts in private mount namespaces")
    if not sshd_available():
        ap.error("needs the OpenSSH server and client (apt-get install openssh-server openssh-client)")
    if (why := sudo_missing()) is not None:
        ap.error(f"{why}; the audit account reads as root through sudo -n, as an office's audit account would")
    sizes = [int(x) for x in args.sizes.split(",")]
    mamoru = [sys.executable, "-m", "agent.cli.main"]
    Path("/run/sshd").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mm5-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        key = keygen(work / "client_key")
        rows = []
        for n in sizes:
            rows.append(run_size(n, runs=args.runs, work=work, client_key=key, mamoru=mamoru))
            print(f"N={n} done; work per host (recorded from a real scan): {rows[-1]['ops']}", file=sys.stderr)
    base_rss = rows[0]["mamoru_rss_mb"]
    base_n = rows[0]["n"]
    print(f"\nmamoru vs OpenSSH fan-out (xargs -P N, ssh … sudo -n sh -s), median of {args.runs} runs, "
          f"{os.cpu_count()} CPUs")
    print("|   N | mamoru wall s | OpenSSH wall s | ratio | mamoru CPU s | OpenSSH CPU s | machine CPU s "
          "(mamoru / OpenSSH) | peak RSS MB (mamoru / OpenSSH) | mamoru RSS per extra target MB | targets ok |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per = (r["mamoru_rss_mb"] - base_rss) / (r["n"] - base_n) if r["n"] > base_n else 0.0
        partial = f" ({r['partial']} partial)" if r["partial"] else ""
        print(f"| {r['n']:3d} | {r['mamoru_wall']:.2f} | {r['openssh_wall']:.2f} | "
              f"{r['mamoru_wall'] / r['openssh_wall']:.2f} | {r['mamoru_cpu']:.2f} | {r['openssh_cpu']:.2f} | "
              f"{r['mamoru_machine']:.1f} / {r['openssh_machine']:.1f} | "
              f"{r['mamoru_rss_mb']:.0f} / {r['openssh_rss_mb']:.0f} | {per:.2f} | "
              f"{r['ok']}/{r['n']}{partial} (peer {r['peer_ok']}/{r['n']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
