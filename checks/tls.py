"""MLIT-9-5-6: TLS services on the network accept only TLS 1.2 and later (TX-03).

TLS 1.0 and 1.1 were deprecated by RFC 8996 (2021) and are refused by every
current browser; a server that still accepts them lets a downgraded client
protect personal data with broken cryptography. The judge reads which
versions each service accepted in a real handshake: an accepted old version
fails, an untestable one (timeout, local library) cannot be passed.
"""

from __future__ import annotations

from agent.config.policy import Policy
from checks.base import FactSet, Phrase, Status, Verdict, check, error, fact_phrase, phrase

OLD = ("TLSv1", "TLSv1.1")
CURRENT = ("TLSv1.2", "TLSv1.3")


@check("TX-03", needs=("tls_versions",))
def TX_03(facts: FactSet, policy: Policy) -> Verdict:
    tls = facts.need("tls_versions")
    endpoints = tls["endpoints"]
    evidence = {"endpoints": endpoints, "ports_tested": tls.get("ports_tested"), "client": tls.get("client"),
                "notes": tls.get("notes", [])}
    expected = {"accepted_versions": list(CURRENT), "refused_versions": list(OLD)}
    if not endpoints:
        return Verdict(status=Status.NOT_APPLICABLE, message="no_tls", evidence=evidence, expected=expected)
    bad: list[Phrase] = []
    unknown: list[Phrase] = []
    good: list[str] = []
    for ep in endpoints:
        where = f"{ep['address']}:{ep['port']} ({ep['service']})"
        v = ep["versions"]
        old = [name for name in OLD if v.get(name) is True]
        if old:
            bad.append(phrase("accepts", where=where, versions=old))
        elif any(v.get(name) is None for name in OLD):
            missing = [name for name in OLD if v.get(name) is None]
            unknown.append(phrase("untested", where=where, versions=missing,
                                  reasons=[fact_phrase("tls_versions", ep["details"][n]) for n in missing]))
        elif not any(v.get(name) for name in CURRENT):
            unknown.append(phrase("no_handshake", where=where))
        else:
            good.append(f"{where}: {', '.join(n for n in CURRENT if v.get(n))}")
    if bad:
        return Verdict(status=Status.FAIL, message="fail", params={"services": bad}, evidence=evidence,
                       expected=expected)
    if unknown:
        return error(phrase("unknown", problems=unknown), evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"services": good}, evidence=evidence,
                   expected=expected)
