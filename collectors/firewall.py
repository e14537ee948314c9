"""The host firewall as the kernel enforces it, or, on an image, as it is configured to start.

Live: ``nft -j list ruleset`` (JSON, so no prose is parsed), which also shows
rules made with iptables-nft; legacy xtables rules, if the kernel has any
(``/proc/net/ip_tables_names``), come from ``iptables-legacy-save``; without
nft, ``iptables-save``/``ip6tables-save``. Every base chain on the input hook is
reduced to what it does with a packet that no rule names: its policy, unless an
unconditional rule (or an unconditional jump to a chain with one) decides
first. Only those summaries enter the facts.

On a target that cannot run commands, the boot-time configuration is read
instead: ufw (``ufw.conf`` + ``/etc/default/ufw``), firewalld (default zone and
its target) and ``/etc/nftables.conf``, each with whether its service is
enabled. That is what the machine *would* enforce, and the check says so. A ``problem`` is a code with its
parts (collectors/problems.py).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from agent.targets.base import CommandTimeout, CommandUnavailable, FileMissing, Target, TargetError
from collectors.base import Collector, Facts
from collectors.problems import Problem, problem, tool_failed, unreadable
from collectors.textfiles import read_optional
from collectors.units import unit_enabled

#: Statements that neither match nor end evaluation: a rule made only of these (and a verdict) is unconditional.
NEUTRAL = {"counter", "log", "notrack", "nftrace", "comment"}
VERDICTS = {"accept", "drop", "reject", "jump", "goto", "return", "continue", "queue"}
MAX_JUMP_DEPTH = 16


class FirewallProblem(Problem, ValueError):
    """A ruleset or configuration mamoru cannot read as the firewall would: a code and its parts."""


def _permission(text: str) -> bool:
    low = text.lower()
    return "operation not permitted" in low or "permission denied" in low or "you must be root" in low


# --- nftables JSON -------------------------------------------------------------------------------------

def _rule_action(expr: list[dict[str, Any]]) -> tuple[str, str | None] | None:
    """(verdict, jump target) of an unconditional rule; None if the rule matches only some packets."""
    verdict: tuple[str, str | None] | None = None
    for stmt in expr:
        if not isinstance(stmt, dict) or len(stmt) != 1:
            raise FirewallProblem("unexpected_statement", detail=repr(stmt)[:120])
        (key, value), = stmt.items()
        if key in NEUTRAL or (key == "xt" and isinstance(value, dict) and value.get("name") == "comment"):
            continue  # iptables-nft shows "-m comment" as an xt match that matches everything
        if key in VERDICTS:
            target = value.get("target") if isinstance(value, dict) and key in ("jump", "goto") else None
            verdict = (key, target)
            break
        return None  # match, limit, quota, set lookups …: a condition
    return verdict


def summarize_nft(doc: Any) -> list[dict[str, Any]]:
    """One summary per base chain on the input hook (filter type), from ``nft -j list ruleset``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("nftables"), list):
        raise FirewallProblem("not_nft_json")
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[list[dict[str, Any]]]] = {}
    for item in doc["nftables"]:
        if not isinstance(item, dict):
            raise FirewallProblem("unexpected_item", detail=repr(item)[:120])
        if "chain" in item:
            c = item["chain"]
            chains[(c["family"], c["table"], c["name"])] = c
        elif "rule" in item:
            r = item["rule"]
            if not isinstance(r.get("expr"), list):
                raise FirewallProblem("rule_without_expr", chain=f"{r.get('table')}/{r.get('chain')}")
            if not all(isinstance(s, dict) and len(s) == 1 for s in r["expr"]):
                raise FirewallProblem("unexpected_statement", detail=f"{r.get('table')}/{r.get('chain')}")
            rules.setdefault((r["family"], r["table"], r["chain"]), []).append(r["expr"])

    def outcome(key: tuple[str, str, str], depth: int) -> tuple[str | None, int]:
        """What the chain does with an unmatched packet: accept/drop/reject, or None to fall through."""
        if depth > MAX_JUMP_DEPTH:
            raise FirewallProblem("jumps_too_deep")
        for n, expr in enumerate(rules.get(key, []), 1):
            act = _rule_action(expr)
            if act is None:
                continue
            verdict, target = act
            if verdict in ("jump", "goto") and target:
                sub, _ = outcome((key[0], key[1], target), depth + 1)
                if sub is not None:
                    return sub, n
                if verdict == "goto":
                    return None, n  # goto does not come back: the base chain's policy applies
                continue
            if verdict in ("accept", "drop", "reject"):
                return verdict, n
            if verdict == "return":
                return None, n
        return None, 0

    out = []
    for key, c in chains.items():
        if c.get("hook") != "input" or c.get("type", "filter") != "filter" or key[0] not in ("ip", "ip6", "inet"):
            continue
        decided, at = outcome(key, 0)
        policy = c.get("policy", "accept")
        effective = decided or policy
        out.append({"family": key[0], "table": key[1], "chain": key[2], "priority": c.get("prio"),
                    "policy": policy, "rules": len(rules.get(key, [])),
                    "decided_by": f"rule {at}" if decided else "policy", "unmatched": effective,
                    "default_deny": effective in ("drop", "reject")})
    return out


# --- iptables-save ---------------------------------------------------------------------------------------

def summarize_iptables_save(text: str, family: str) -> list[dict[str, Any]]:
    """The filter table's INPUT chain from iptables-save output, as the same summary."""
    policies: dict[str, str] = {}
    rules: dict[str, list[list[str]]] = {}
    table = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:]
        elif line == "COMMIT":
            table = None
        elif table != "filter":
            continue
        elif line.startswith(":"):
            parts = line[1:].split()
            if len(parts) < 2:
                raise FirewallProblem("bad_chain_line", line=n, text=line[:120])
            policies[parts[0]] = parts[1].lower()
        elif line.startswith("-A "):
            try:
                words = shlex.split(line)
            except ValueError as e:
                raise FirewallProblem("quoting", line=n) from e
            rules.setdefault(words[1], []).append(words[2:])
        else:
            raise FirewallProblem("unexpected_line", line=n, text=line[:120])
    if "INPUT" not in policies:
        return []

    def outcome(chain: str, depth: int) -> tuple[str | None, int]:
        if depth > MAX_JUMP_DEPTH:
            raise FirewallProblem("jumps_too_deep")
        for n, words in enumerate(rules.get(chain, []), 1):
            rest = list(words)
            if "-m" in rest and rest[rest.index("-m") + 1:rest.index("-m") + 2] == ["comment"]:
                i = rest.index("-m")
                rest = rest[:i] + rest[i + 4:]  # -m comment --comment TEXT
            if len(rest) != 2 or rest[0] not in ("-j", "-g"):
                continue
            target = rest[1]
            if target in ("ACCEPT", "DROP", "REJECT"):
                return target.lower(), n
            if target == "RETURN":
                return None, n
            if target in rules or target in policies:
                sub, _ = outcome(target, depth + 1)
                if sub is not None:
                    return sub, n
        return None, 0

    decided, at = outcome("INPUT", 0)
    effective = decided or policies["INPUT"]
    return [{"family": family, "table": "filter", "chain": "INPUT", "priority": 0, "policy": policies["INPUT"],
             "rules": len(rules.get("INPUT", [])), "decided_by": f"rule {at}" if decided else "policy",
             "unmatched": effective, "default_deny": effective in ("drop", "reject")}]


# --- boot-time configuration (images) ------------------------------------------------------------------

def _shell_vars(lines: list[str], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise FirewallProblem("conf_not_key_value", where=f"{where}:{n}")
        try:
            words = shlex.split(value, comments=True)
        except ValueError as e:
            raise FirewallProblem("conf_quoting", where=f"{where}:{n}") from e
        out[key.strip()] = words[0] if words else ""
    return out


def configured(target: Target) -> dict[str, Any]:
    conf: dict[str, Any] = {}
    ufw_conf = read_optional(target, "/etc/ufw/ufw.conf")
    if ufw_conf is not None:
        main = _shell_vars(ufw_conf.lines, ufw_conf.path)
        default = read_optional(target, "/etc/default/ufw")
        defaults = _shell_vars(default.lines, default.path) if default else {}
        policy = defaults.get("DEFAULT_INPUT_POLICY", "DROP").upper()
        if policy not in ("DROP", "REJECT", "ACCEPT"):
            raise FirewallProblem("ufw_policy", value=policy)
        enabled = main.get("ENABLED", "no").lower() == "yes"
        conf["ufw"] = {"enabled": enabled, "input_policy": policy.lower(), "ipv6": defaults.get("IPV6", "yes"),
                       "default_deny": enabled and policy in ("DROP", "REJECT")}
    fwd = read_optional(target, "/etc/firewalld/firewalld.conf")
    if fwd is not None:
        zone = _shell_vars(fwd.lines, fwd.path).get("DefaultZone", "public")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", zone):
            raise FirewallProblem("firewalld_zone", value=zone)
        zone_target = None
        for d in ("/etc/firewalld/zones", "/usr/lib/firewalld/zones"):
            zf = read_optional(target, f"{d}/{zone}.xml")
            if zf is not None:
                m = re.search(r"<zone\b[^>]*\btarget=\"([^\"]+)\"", "\n".join(zf.lines))
                zone_target = m.group(1) if m else "default"
                break
        enabled = unit_enabled(target, "firewalld.service")
        # A zone's "default" target rejects what its services and ports do not allow.
        conf["firewalld"] = {"enabled": enabled, "zone": zone, "target": zone_target,
                             "default_deny": enabled and zone_target in ("default", "%%REJECT%%", "DROP")}
    for path in ("/etc/nftables.conf", "/etc/sysconfig/nftables.conf"):
        nf = read_optional(target, path)
        if nf is None:
            continue
        text = "\n".join(line.split("#", 1)[0] for line in nf.lines)
        hooks = re.findall(r"type\s+filter\s+hook\s+input\s+priority\s+[^;]+;\s*policy\s+(accept|drop)\s*;", text)
        enabled = unit_enabled(target, "nftables.service")
        conf["nftables"] = {"enabled": enabled, "file": path, "input_policies": hooks,
                            "includes": bool(re.search(r"^\s*include\s", text, re.MULTILINE)),
                            "default_deny": enabled and "drop" in hooks}
        break
    return conf


class FirewallCollector(Collector):
    id = "firewall"
    reads = ("/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/net/ip_tables_names", "/etc/ufw/ufw.conf")
    version = "2"  # 2: problems are codes with their parts

    def collect(self, target: Target) -> Facts:
        facts: Facts = {"live": target.can_run, "source": None, "chains": [], "problem": None,
                        "permission_denied": False, "ipv6_disabled": None, "configured": {}}
        if not target.can_run:
            try:
                facts["configured"] = configured(target)
            except FirewallProblem as e:
                facts["problem"] = e.problem
            except TargetError as e:
                facts["problem"] = unreadable(e)
            return facts
        facts["ipv6_disabled"] = self._ipv6_disabled(target)
        try:
            res = target.run(["nft", "-j", "list", "ruleset"], timeout=20)
        except CommandUnavailable:
            res = None
        except CommandTimeout as e:
            facts["problem"] = problem("command_failed", error=str(e))
            return facts
        if res is not None:
            err = res.stderr.decode("utf-8", "replace").strip()
            if not res.ok:
                facts["problem"] = tool_failed("nft", res.returncode, err)
                facts["permission_denied"] = _permission(err)
                return facts
            try:
                facts["chains"] = summarize_nft(json.loads(res.stdout))
            except FirewallProblem as e:
                facts["problem"] = {**e.problem, "tool": "nft -j"}
                return facts
            except (ValueError, KeyError, TypeError) as e:  # JSON that is not what nft writes
                facts["problem"] = problem("output_not_understood", tool="nft -j", detail=f"{type(e).__name__}: {e}")
                return facts
            facts["source"] = "nft"
            if self._legacy_tables(target):
                self._add_iptables(target, facts, legacy=True)
            return facts
        self._add_iptables(target, facts, legacy=False)
        return facts

    @staticmethod
    def _ipv6_disabled(target: Target) -> bool:
        try:
            return target.read_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", max_bytes=64).strip() == b"1"
        except FileMissing:
            return True  # no IPv6 in this kernel
        except TargetError:
            return False

    @staticmethod
    def _legacy_tables(target: Target) -> bool:
        try:
            return bool(target.read_file("/proc/net/ip_tables_names", max_bytes=4096).strip())
        except TargetError:
            return False

    def _add_iptables(self, target: Target, facts: Facts, *, legacy: bool) -> None:
        suffix = "-legacy-save" if legacy else "-save"
        for tool, family in (("iptables", "ip"), ("ip6tables", "ip6")):
            argv = [tool + suffix]
            try:
                res = target.run(argv, timeout=20)
            except CommandUnavailable:
                if facts["source"] is None and family == "ip":
                    facts["source"] = "none"  # neither nft nor iptables: nothing can have set rules up
                    return
                continue
            except CommandTimeout as e:
                facts["problem"] = problem("command_failed", error=str(e))
                return
            err = res.stderr.decode("utf-8", "replace").strip()
            if not res.ok:
                facts["problem"] = tool_failed(argv[0], res.returncode, err)
                facts["permission_denied"] = _permission(err)
                return
            try:
                facts["chains"] += summarize_iptables_save(res.stdout.decode("utf-8", "replace"), family)
            except FirewallProblem as e:
                facts["problem"] = {**e.problem, "tool": argv[0]}
                return
            if facts["source"] in (None, "none"):
                facts["source"] = "iptables-save"
            elif legacy:
                facts["source"] = "nft+iptables-legacy"


COLLECTOR = FirewallCollector()
