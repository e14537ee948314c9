"""MLIT-9-5-6: protection in transfer (TX-02 plaintext services, TX-04 SSH cryptography, TX-05 SMBv1)."""

from __future__ import annotations

import fnmatch

from agent.config.policy import Policy
from checks.base import (
    FactSet,
    FactsUnavailable,
    Phrase,
    Status,
    Text,
    Verdict,
    check,
    error,
    explain,
    fact_phrase,
    phrase,
)
from checks.identification import first, merge_instances, sshd_configs

LISTS = (("ciphers", "forbidden_ciphers"), ("macs", "forbidden_macs"), ("kexalgorithms", "forbidden_kex"))


@check("TX-04", needs=("sshd",))
def TX_04(facts: FactSet, policy: Policy) -> Verdict:
    configs = sshd_configs(facts)
    if isinstance(configs, Verdict):
        return configs
    return merge_instances([(label, _tx04_one(settings, policy)) for label, settings in configs])


def _tx04_one(settings: dict[str, list[str]], policy: Policy) -> Verdict:
    pol = policy["sshd"]
    expected = {key: {"forbidden": pol[pk]} for key, pk in LISTS}
    evidence: dict[str, list[str]] = {}
    weak: list[str] = []
    for key, pk in LISTS:
        value = first(settings, key)
        if not value:
            return error(phrase("not_reported", setting=key))
        algos = [a for a in value.split(",") if a]
        evidence[key] = algos
        weak += [a for a in algos if any(fnmatch.fnmatchcase(a, p) for p in pol[pk])]
    if weak:
        return Verdict(status=Status.FAIL, message="fail", params={"algorithms": weak},
                       evidence={**evidence, "weak": weak}, expected=expected)
    return Verdict(status=Status.PASS, message="pass", evidence=evidence, expected=expected)


def _plaintext_ports(policy: Policy) -> dict[str, str]:
    """'port/proto' -> service: the data file's knowledge, plus the policy's additions, minus its exemptions."""
    from collectors import data

    table = {k: v["service"] for k, v in data.load("plaintext_ports.yaml").items()}
    pol = policy["plaintext_services"]
    table.update(pol["extra_ports"])
    for key in pol["allowed_ports"]:
        table.pop(key, None)
    return table


def _loopback(address: str) -> bool:
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@check("TX-02", needs=("listening", "lan_services"))
def TX_02(facts: FactSet, policy: Policy) -> Verdict:
    sources = [s for s in ("listening", "lan_services") if facts.has(s)]
    if not sources:
        return error(phrase("no_sources"))
    ports = _plaintext_ports(policy)
    include_loopback = policy["plaintext_services"]["include_loopback"]
    expected = {"plaintext_services": "none listening", "ports": sorted(ports, key=lambda k: int(k.split("/")[0])),
                "include_loopback": include_loopback}
    found: list[str] = []
    found_said: list[Phrase] = []
    ignored: list[str] = []
    problems: list[Phrase] = []
    problems_en: list[str] = []  # the same, as evidence
    no_system: list[str] = []  # sources with nothing to look at: an offline Windows image has no sockets
    checked = 0
    for source in sources:
        try:
            data = facts.need(source)
            endpoints = data["endpoints"]
        except FactsUnavailable as e:
            reason = e.reason if isinstance(e.reason, Text) else explain(e.reason)
            problems.append(phrase("source_problem", source=source, reason=reason))
            problems_en.append(f"{source}: {reason.en}")
            continue
        if data.get("no_running_system"):
            no_system.append(f"{source}: {data['no_running_system']}")
            continue
        for ep in endpoints:
            checked += 1
            service = ports.get(f"{ep['port']}/{ep['proto']}")
            if service is None:
                continue
            socket = f"{service} {ep['address']}:{ep['port']}/{ep['proto']}"
            where = f"{socket} ({ep.get('process') or 'process unknown'})"
            if _loopback(ep["address"]) and not include_loopback:
                ignored.append(where)
            else:
                found.append(where)
                found_said.append(phrase("endpoint", socket=socket, process=ep.get("process") or
                                         phrase("process_unknown")))
    evidence = {"sources": sources, "endpoints_checked": checked, "plaintext": found,
                "loopback_only_ignored": ignored, "problems": problems_en, "not_looked_at": no_system}
    if found:
        return Verdict(status=Status.FAIL, message="fail", params={"services": found_said}, evidence=evidence,
                       expected=expected)
    if problems:
        return error(phrase("sources_unreadable", problems=problems), evidence=evidence, expected=expected)
    if no_system and len(no_system) == len(sources):
        return Verdict(status=Status.NOT_APPLICABLE, message="no_running_system", evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"count": checked}, evidence=evidence,
                   expected=expected)


SMB1_LEVELS = {"CORE", "COREPLUS", "LANMAN1", "LANMAN2", "NT1"}
SMB2_DEFAULT_SINCE = (4, 11)  # Samba 4.11 raised the default floor to SMB2_02


def _protocol(value: str) -> str | None:
    """'smb1' / 'smb2+' / None (unknown) for a Samba protocol name."""
    v = value.strip().upper()
    if v in SMB1_LEVELS:
        return "smb1"
    if v.startswith(("SMB2", "SMB3")):
        return "smb2+"
    return None


@check("TX-05", needs=("samba",))
def TX_05(facts: FactSet, policy: Policy) -> Verdict:
    sb = facts.need("samba")
    if not sb["installed"]:
        return Verdict(status=Status.NOT_APPLICABLE, message="no_samba")
    expected = {"server min protocol": "SMB2_02 or higher"}
    if sb["problem"]:
        return error(phrase("smb_conf_problem", error=fact_phrase("samba", sb["problem"])), expected=expected)
    settings = sb["settings"]
    evidence = {"files": sb["files"], "settings": settings, "version": sb["version"],
                "version_source": sb["version_source"], "dynamic_includes": sb["dynamic_includes"]}
    mx = settings.get("server max protocol")
    if mx and _protocol(mx["value"]) == "smb1":
        return Verdict(status=Status.FAIL, message="fail", params={"value": f"server max protocol = {mx['value']}",
                                                                   "where": mx["where"]},
                       evidence=evidence, expected=expected)
    mn = settings.get("server min protocol")
    if mn and mn["value"].strip().lower() != "default":
        kind = _protocol(mn["value"])
        if kind is None:
            return error(phrase("unknown_protocol", value=mn["value"], where=mn["where"]), evidence=evidence,
                         expected=expected)
        if kind == "smb1":
            return Verdict(status=Status.FAIL, message="fail", params={"value": f"server min protocol = {mn['value']}",
                                                                       "where": mn["where"]},
                           evidence=evidence, expected=expected)
        return Verdict(status=Status.PASS, message="pass", params={"value": mn["value"], "where": mn["where"]},
                       evidence=evidence, expected=expected)
    if sb["dynamic_includes"]:
        return error(phrase("dynamic_includes"), evidence=evidence, expected=expected)
    if not sb["version"]:
        return error(phrase("version_unknown"), evidence=evidence, expected=expected)
    major, minor = (int(x) for x in sb["version"].split(".")[:2])
    if (major, minor) >= SMB2_DEFAULT_SINCE:
        return Verdict(status=Status.PASS, message="pass_default", params={"version": sb["version"]},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.FAIL, message="fail_default", params={"version": sb["version"]}, evidence=evidence,
                   expected=expected)
