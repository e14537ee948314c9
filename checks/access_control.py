"""MLIT-9-5-2: access control (AC-01 host firewall, AC-02 personal-data permissions, AC-03 SSH allow-lists)."""

from __future__ import annotations

import fnmatch
from typing import Any

from agent.config.policy import Policy
from checks.base import FactSet, Phrase, Status, Verdict, check, error, explain, fact_phrase, phrase
from checks.identification import sshd_configs

V4, V6 = ("ip", "inet"), ("ip6", "inet")


@check("AC-01", needs=("firewall",))
def AC_01(facts: FactSet, policy: Policy) -> Verdict:
    fw = facts.need("firewall")
    expected = {"inbound_default": "drop or reject, for IPv4 and (unless disabled) IPv6"}
    if fw.get("problem"):
        if fw.get("permission_denied"):
            return Verdict(status=Status.ERROR, message="needs_root", params={"path": phrase("firewall_ruleset")},
                           expected=expected)
        return error(phrase("firewall_problem", problem=fact_phrase("firewall", fw["problem"])), expected=expected)
    if not fw.get("live"):
        return _configured(fw.get("configured", {}), expected)
    if fw.get("source") == "none":
        return Verdict(status=Status.FAIL, message="fail_no_tool", expected=expected)
    chains = fw.get("chains", [])
    evidence: dict[str, Any] = {"source": fw["source"], "input_chains": chains, "ipv6_disabled": fw["ipv6_disabled"]}
    if not chains:
        return Verdict(status=Status.FAIL, message="fail_no_chain", evidence=evidence, expected=expected)
    open_families = []
    if not any(c["default_deny"] for c in chains if c["family"] in V4):
        open_families.append("IPv4")
    if not fw.get("ipv6_disabled") and not any(c["default_deny"] for c in chains if c["family"] in V6):
        open_families.append("IPv6")
    if open_families:
        return Verdict(status=Status.FAIL, message="fail_open", params={"families": open_families},
                       evidence=evidence, expected=expected)
    deny = [_denying_chain(c) for c in chains if c["default_deny"]]
    return Verdict(status=Status.PASS, message="pass", params={"chains": deny}, evidence=evidence, expected=expected)


def _denying_chain(c: dict[str, Any]) -> Phrase:
    """``ip filter/input (drop by rule 3)``: the chain, and what decides the fate of a packet no rule names."""
    chain = f"{c['family']} {c['table']}/{c['chain']}"
    rule = str(c["decided_by"]).removeprefix("rule ")
    if rule.isdigit():
        return phrase("chain_by_rule", chain=chain, verdict=c["unmatched"], rule=int(rule))
    return phrase("chain_by_policy", chain=chain, verdict=c["unmatched"])


def _configured(conf: dict[str, Any], expected: dict[str, Any]) -> Verdict:
    """An image: judge what would be enforced at boot, and say that it was not seen running."""
    evidence = {"configured": conf, "note": "boot-time configuration; the running ruleset cannot be read here"}
    deny = sorted(name for name, c in conf.items() if c.get("default_deny"))
    if deny:
        return Verdict(status=Status.PASS, message="pass_configured", params={"firewalls": deny},
                       evidence=evidence, expected=expected)
    nft = conf.get("nftables", {})
    if nft.get("enabled") and nft.get("includes"):
        return error(phrase("nft_includes"), evidence=evidence, expected=expected)
    if not conf:
        return Verdict(status=Status.FAIL, message="fail_none_configured", evidence=evidence, expected=expected)
    why = [phrase("firewall_enabled" if c.get("enabled") else "firewall_not_enabled", name=name)
           for name, c in sorted(conf.items())]
    return Verdict(status=Status.FAIL, message="fail_configured", params={"firewalls": why}, evidence=evidence,
                   expected=expected)


def not_collected(paths: list[str], collected: list[str]) -> list[str]:
    """Policy paths the facts were not collected for (a bundle judged with another policy)."""
    return [p for p in paths if p not in collected]


@check("AC-02", needs=("data_permissions",))
def AC_02(facts: FactSet, policy: Policy) -> Verdict:
    dp = facts.need("data_permissions")
    paths: list[str] = policy["data_paths"]
    expected = {"others": "no read, write or listing access", "data_paths": paths}
    if not paths:
        return Verdict(status=Status.NOT_APPLICABLE, message="no_data_paths", expected=expected)
    missing = not_collected(paths, dp.get("data_paths", []))
    if missing:
        return error(phrase("data_paths_not_collected", paths=missing), expected=expected)
    records = [dp["paths"][p] for p in paths]
    existing = [r for r in records if r["exists"]]
    evidence: dict[str, Any] = {
        r["path"]: {"exists": r["exists"], **({k: r[k] for k in ("top", "closed_above", "entries", "counts",
                                                                  "world_readable", "world_writable",
                                                                  "world_listable", "unreadable", "truncated",
                                                                  "links_not_followed")
                                              if k in r} if r["exists"] else {})}
        for r in records}
    if not existing:
        return Verdict(status=Status.NOT_APPLICABLE, message="none_here", params={"paths": paths},
                       evidence=evidence, expected=expected)
    exposed = [phrase(kind, path=r["path"], count=r["counts"][kind])
               for r in existing for kind in ("world_writable", "world_readable", "world_listable")
               if r["counts"][kind]]
    if exposed:
        return Verdict(status=Status.FAIL, message="fail", params={"problems": exposed}, evidence=evidence,
                       expected=expected)
    unreadable = [u for r in existing for u in r["unreadable"]]
    if unreadable:
        if any("denied" in u.lower() for u in unreadable):
            return Verdict(status=Status.ERROR, message="needs_root", params={"path": unreadable[0].split(":")[0]},
                           evidence=evidence, expected=expected)
        return error(phrase("not_examined", errors=[explain(u) for u in unreadable[:5]]), evidence=evidence,
                     expected=expected)
    if any(r["truncated"] for r in existing):
        return error(phrase("truncated"), evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass",
                   params={"paths": [r["path"] for r in existing], "entries": sum(r["entries"] for r in existing)},
                   evidence=evidence, expected=expected)


def _named(entries: list[str]) -> list[str]:
    """AllowUsers/AllowGroups patterns that name someone (``*`` or ``*@host`` names nobody)."""
    out = []
    for value in entries:
        for pattern in value.split():
            user = pattern.split("@", 1)[0]
            if user and user.strip("*?!") and not fnmatch.fnmatchcase("", user):
                out.append(pattern)
    return out


@check("AC-03", needs=("sshd",))
def AC_03(facts: FactSet, policy: Policy) -> Verdict:
    configs = sshd_configs(facts)
    if isinstance(configs, Verdict):
        return configs
    expected = {"sshd": "AllowUsers or AllowGroups naming the people or groups allowed in"}
    evidence: dict[str, Any] = {}
    open_configs = []
    for label, settings in configs:
        users = _named(settings.get("allowusers", []))
        groups = _named(settings.get("allowgroups", []))
        evidence[label] = {"allowusers": users, "allowgroups": groups,
                           "denyusers": settings.get("denyusers", []), "denygroups": settings.get("denygroups", [])}
        if not users and not groups:
            open_configs.append(label)
    if open_configs:
        return Verdict(status=Status.FAIL, message="fail", params={"configs": open_configs}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"configs": sorted(evidence)}, evidence=evidence,
                   expected=expected)
