"""MLIT-9-5-6: protection in transfer (TX-04 SSH cryptography)."""

from __future__ import annotations

import fnmatch

from agent.config.policy import Policy
from checks.base import FactSet, Status, Verdict, check, error
from checks.identification import first, sshd_settings

LISTS = (("ciphers", "forbidden_ciphers"), ("macs", "forbidden_macs"), ("kexalgorithms", "forbidden_kex"))


@check("TX-04", needs=("sshd",))
def TX_04(facts: FactSet, policy: Policy) -> Verdict:
    settings = sshd_settings(facts)
    if isinstance(settings, Verdict):
        return settings
    pol = policy["sshd"]
    expected = {key: {"forbidden": pol[pk]} for key, pk in LISTS}
    evidence: dict[str, list[str]] = {}
    weak: list[str] = []
    for key, pk in LISTS:
        value = first(settings, key)
        if not value:
            return error(f"sshd did not report {key}", f"sshd の {key} を取得できません")
        algos = [a for a in value.split(",") if a]
        evidence[key] = algos
        weak += [a for a in algos if any(fnmatch.fnmatchcase(a, p) for p in pol[pk])]
    if weak:
        return Verdict(status=Status.FAIL, message="fail", params={"algorithms": weak},
                       evidence={**evidence, "weak": weak}, expected=expected)
    return Verdict(status=Status.PASS, message="pass", evidence=evidence, expected=expected)
