"""The global account policies of a Mac (``pwpolicy -getaccountpolicies``): what IA-02 and IA-03 judge.

``pwpolicy`` prints one line ("Getting global account policies") and then an XML property list; mSCP's
pwpolicy_* rules skip that line and read the plist, and so does this collector, with ``plistlib``. Policies a
configuration profile installed (com.apple.mobiledevice.passwordpolicy) appear here too, with identifiers
``ProfilePayload:<uuid>:<key>``, so this one answer covers both the local policy and the MDM one.

Each policy is kept as its category, identifier, content (the predicate macOS evaluates) and parameters;
``policyContentDescription`` is dropped, since it is localized text for people, not what macOS enforces.
Reading the policies needs root (``sudo mamoru scan``); a policy's content never holds a secret.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict

from agent.targets.base import CommandResult, Target
from collectors.base import Facts
from collectors.macos.base import Answer, MacCollector, parse_plist, run_tool
from collectors.problems import Problem

ARGV = ("/usr/bin/pwpolicy", "-getaccountpolicies")
MSCP = ["pwpolicy_minimum_length_enforce", "pwpolicy_alpha_numeric_enforce", "pwpolicy_special_character_enforce",
        "pwpolicy_upper_case_character_enforce", "pwpolicy_lower_case_character_enforce",
        "pwpolicy_account_lockout_enforce", "pwpolicy_account_lockout_timeout_enforce"]


class Policy(TypedDict):
    category: str
    identifier: str | None
    content: str | None
    parameters: dict[str, Any]


def parse_policies(stdout: bytes) -> list[Policy]:
    """The policies in ``pwpolicy -getaccountpolicies`` output (its banner line skipped), or ``Problem``."""
    start = stdout.find(b"<?xml")
    if start < 0:
        start = stdout.find(b"<plist")
    if start < 0:
        first = stdout.decode("utf-8", "replace").strip().splitlines()[:1]
        raise Problem("unknown_answer", tool="pwpolicy", output=(first[0] if first else "")[:120])
    doc = parse_plist(stdout[start:], "pwpolicy -getaccountpolicies")
    if not isinstance(doc, dict):
        raise Problem("wrong_type", where="pwpolicy -getaccountpolicies", key="(root)", type=type(doc).__name__)
    out: list[Policy] = []
    for category, items in doc.items():
        if not isinstance(items, list):
            raise Problem("wrong_type", where="pwpolicy -getaccountpolicies", key=str(category),
                          type=type(items).__name__)
        for item in items:
            if not isinstance(item, dict):
                raise Problem("wrong_type", where="pwpolicy -getaccountpolicies", key=str(category),
                              type=type(item).__name__)
            ident, content, params = item.get("policyIdentifier"), item.get("policyContent"), \
                item.get("policyParameters", {})
            if not isinstance(params, dict) or not isinstance(content, str | None) \
                    or not isinstance(ident, str | None):
                raise Problem("wrong_type", where="pwpolicy -getaccountpolicies", key=f"{category}[{ident}]",
                              type="policy")
            out.append({"category": str(category), "identifier": ident, "content": content,
                        "parameters": {str(k): v for k, v in params.items()
                                       if isinstance(v, int | str | bool | float)}})
    return out


def _parse(res: CommandResult) -> list[Policy]:
    return parse_policies(res.stdout)


class PwpolicyCollector(MacCollector):
    id: ClassVar[str] = "mac_pwpolicy"

    def collect(self, target: Target) -> Facts:
        answer: Answer = run_tool(target, ARGV, _parse)
        return {"policies": answer, "mscp": MSCP}


COLLECTOR = PwpolicyCollector()
