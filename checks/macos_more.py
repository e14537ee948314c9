"""macOS judges for IA-02, IA-03 (account policies), PM-02 (the admin group), LG-02 (the audit trail's
retention) and TX-01 (the connected Wi-Fi network), beside the Linux and Windows judges of the same checks.

Each registered check is the check it extends (``checks.windows`` / ``checks.windows_more``) with a macOS
judge chosen by ``checks.macos.with_macos``: only a Mac runs the ``mac_*`` collectors, so a bundle judged
later picks the same judge. What counts follows the mSCP rules named in the evidence (``mscp``); a predicate,
a security mode or a setting this module does not recognise is never read as a pass.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from agent.config.policy import Policy
from checks import windows, windows_more
from checks.base import FactSet, Phrase, Status, Verdict, phrase
from checks.macos import cannot_tell, evidence_of, ok, why_not, with_macos

# -- IA-02 / IA-03: pwpolicy account policies ------------------------------------------------------------------

_MATCHES = re.compile(r"^\s*policyAttributePassword\s+matches\s+'(.*)'\s*$", re.S)
_LENGTH = re.compile(r"^\^?\.\{(\d+),(\d*)\}\+?\$?$")
_CLASS = re.compile(r"^\^?\(\.\*(\[[^\]]+\]|\\d)\.\*\)\{(\d+),\d*\}\+?\$?$")
#: The character class of a "(.*[X].*){n,}" rule, as mSCP's pwpolicy_* rules and Apple's profiles write them.
CLASSES = {"[A-Z]": "upper", "[a-z]": "lower", "[0-9]": "digit", "\\d": "digit", "[^a-zA-Z0-9]": "special",
           "[^A-Za-z0-9]": "special", "[a-zA-Z]": "letter", "[A-Za-z]": "letter"}
PASSWORD = "policyCategoryPasswordContent"
AUTH = "policyCategoryAuthentication"
MAX_FAILED = "policyAttributeMaximumFailedAuthentications"
_LOCK = "policyAttributeFailedAuthentications < policyAttributeMaximumFailedAuthentications"
_LOCK_AUTO = (f"({_LOCK}) OR (policyAttributeCurrentTime > "
              "(policyAttributeLastFailedAuthenticationTime + autoEnableInSeconds))")


def _alternatives(regex: str) -> list[str]:
    """A regex split at its top-level ``|`` (outside groups and brackets)."""
    out, depth, in_class, cur, i = [], 0, False, "", 0
    while i < len(regex):
        c = regex[i]
        if c == "\\" and i + 1 < len(regex):
            cur += regex[i:i + 2]
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            out.append(cur)
            cur = ""
            i += 1
            continue
        cur += c
        i += 1
    return [*out, cur]


def password_rule(content: str | None) -> dict[str, Any]:
    """What one password-content predicate demands: ``{"min_length", "classes"}``, or ``{"understood": False}``.

    A rule with alternatives holds when any of them does, so it demands only what every alternative demands:
    ``'^$|.{4,}+'`` accepts an empty password."""
    m = _MATCHES.match(content or "")
    if not m:
        return {"understood": False}
    lengths: list[int] = []
    classes: list[set[str]] = []
    for alt in _alternatives(m.group(1)):
        if alt in ("", "^$", "^", "$"):
            lengths.append(0)
            classes.append(set())
        elif lm := _LENGTH.match(alt):
            lengths.append(int(lm.group(1)))
            classes.append(set())
        elif (cm := _CLASS.match(alt)) and cm.group(1) in CLASSES:
            lengths.append(int(cm.group(2)))
            classes.append({CLASSES[cm.group(1)]})
        else:
            return {"understood": False}
    return {"understood": True, "min_length": min(lengths),
            "classes": sorted(set.intersection(*classes)) if classes else []}


def _policies(facts: FactSet, expected: Any) -> tuple[list[dict[str, Any]], dict[str, Any], Verdict | None]:
    pw = facts.need("mac_pwpolicy")
    answer = pw.get("policies")
    evidence: dict[str, Any] = {"source": evidence_of(answer), "mscp": pw.get("mscp")}
    if not ok(answer):
        return [], evidence, cannot_tell([why_not(answer)], evidence=evidence, expected=expected)
    return list(answer["value"]), evidence, None


def _label(p: Mapping[str, Any]) -> str:
    return str(p.get("identifier") or p.get("content") or "?")[:160]


def ia02_macos(facts: FactSet, policy: Policy) -> Verdict:
    want_len, want_classes = policy["password"]["min_length"], policy["password"]["min_classes"]
    expected = {"min_length": f">= {want_len}", "character classes": f">= {want_classes}",
                "source": "pwpolicy -getaccountpolicies (local policy and configuration profiles)"}
    policies, evidence, err = _policies(facts, expected)
    if err is not None:
        return err
    rules, unknown = [], []
    for p in policies:
        if p["category"] != PASSWORD:
            continue
        r = password_rule(p.get("content"))
        rules.append({"identifier": p.get("identifier"), "content": p.get("content"), **r})
        if not r["understood"]:
            unknown.append(_label(p))
    known = [r for r in rules if r["understood"]]
    length = max((r["min_length"] for r in known), default=0)
    found: set[str] = set().union(*(set(r["classes"]) for r in known)) if known else set()
    n_classes = len(found & {"upper", "lower", "digit", "special"}) + (
        1 if "letter" in found and not found & {"upper", "lower"} else 0)
    evidence.update({"rules": rules, "min_length": length, "classes": sorted(found)})
    bad: list[Phrase] = []
    if length < want_len:
        bad.append(phrase("mac_min_length", length=length, want=want_len) if known
                   else phrase("mac_no_length_rule"))
    if n_classes < want_classes:
        bad.append(phrase("mac_classes", classes=n_classes, want=want_classes))
    empty = [_label(r) for r in known if r["min_length"] == 0]
    if empty:
        bad.append(phrase("mac_empty_allowed", rules=empty))
    if bad and unknown:  # a rule not understood may demand more: never fail (or pass) on a guess
        return cannot_tell([phrase("mac_rules_unknown", rules=unknown)], evidence=evidence, expected=expected)
    if bad:
        return Verdict(status=Status.FAIL, message="mac_fail", params={"problems": bad}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="mac_pass", params={"length": length, "classes": n_classes},
                   evidence=evidence, expected=expected)


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def ia03_macos(facts: FactSet, policy: Policy) -> Verdict:
    max_tries, min_unlock = policy["lockout"]["max_tries"], policy["lockout"]["min_unlock_seconds"]
    expected = {"lockout threshold": f"1..{max_tries}", "lockout": f">= {min_unlock} s or until unlocked",
                "source": "pwpolicy -getaccountpolicies (local policy and configuration profiles)"}
    policies, evidence, err = _policies(facts, expected)
    if err is not None:
        return err
    locks: list[dict[str, Any]] = []
    unknown: list[str] = []
    for p in policies:
        content = " ".join(str(p.get("content") or "").split())
        params = p.get("parameters") or {}
        if p["category"] != AUTH or (MAX_FAILED not in content and MAX_FAILED not in params):
            continue
        n, auto = _int(params.get(MAX_FAILED)), _int(params.get("autoEnableInSeconds"))
        if content == _LOCK and n is not None:
            locks.append({"identifier": p.get("identifier"), "tries": n, "auto_enable_seconds": None})
        elif content == _LOCK_AUTO and n is not None and auto is not None:
            locks.append({"identifier": p.get("identifier"), "tries": n, "auto_enable_seconds": auto})
        else:
            unknown.append(_label(p))
    evidence.update({"lockout_rules": locks, "not_understood": unknown})
    if unknown:
        return cannot_tell([phrase("mac_rules_unknown", rules=unknown)], evidence=evidence, expected=expected)
    if not locks:
        return Verdict(status=Status.FAIL, message="mac_fail", params={"problems": [phrase("mac_never_locked")]},
                       evidence=evidence, expected=expected)
    tries = min(r["tries"] for r in locks)
    # The shortest automatic unlock among the rules that lock first: conservative when several apply.
    autos = [r["auto_enable_seconds"] for r in locks if r["tries"] == tries and r["auto_enable_seconds"] is not None]
    duration = min(autos) if autos else None
    evidence.update({"threshold": tries, "lockout_seconds": duration})
    bad: list[Phrase] = []
    if tries > max_tries or tries < 1:
        bad.append(phrase("win_threshold", threshold=tries, max=max_tries))
    if duration is not None and duration < min_unlock:
        bad.append(phrase("win_short", duration=duration, min=min_unlock))
    if bad:
        return Verdict(status=Status.FAIL, message="mac_fail", params={"problems": bad}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="mac_pass",
                   params={"tries": tries, "duration": phrase("win_until_unlocked") if duration is None
                           else phrase("win.seconds", seconds=duration)}, evidence=evidence, expected=expected)


# -- PM-02: the admin group ---------------------------------------------------------------------------------

#: Built-in groups whose GeneratedUID is ABCDEFAB-CDEF-ABCD-EFAB-CDEF + the GID in hex: nested in admin, they
#: make every (local) user an administrator.
EVERY_USER_GROUPS = {"ABCDEFAB-CDEF-ABCD-EFAB-CDEF0000000C": "everyone",
                     "ABCDEFAB-CDEF-ABCD-EFAB-CDEF00000014": "staff",
                     "ABCDEFAB-CDEF-ABCD-EFAB-CDEF0000003D": "localaccounts",
                     "ABCDEFAB-CDEF-ABCD-EFAB-CDEF00000032": "authedusers"}


def pm02_macos(facts: FactSet, policy: Policy) -> Verdict:
    approved = sorted(set(policy["accounts"]["approved_admins"]))
    expected = {"administrators": approved or "(approved_admins not set)", "group": "admin (GID 80)"}
    answer = facts.need("mac_admins").get("group")
    if not ok(answer):
        return cannot_tell([why_not(answer)], evidence={"source": evidence_of(answer)}, expected=expected)
    group = answer["value"]
    admins = sorted({m for m in group["members"] if m != "root"})  # root: PM-01's business
    nested = list(group["nested"])
    evidence = {"source": answer["source"], "members": group["members"], "nested_groups": nested,
                "administrators": admins, "approved": approved}
    everyone = [f"{EVERY_USER_GROUPS[g.upper()]} ({g})" for g in nested if g.upper() in EVERY_USER_GROUPS]
    if everyone:
        return Verdict(status=Status.FAIL, message="mac_fail_everyone", params={"groups": everyone},
                       evidence=evidence, expected=expected)
    if nested:
        return cannot_tell([phrase("mac_nested", groups=nested)], evidence=evidence, expected=expected)
    if not admins:
        return Verdict(status=Status.PASS, message="pass_root_only", evidence=evidence, expected=expected)
    if not approved:
        return Verdict(status=Status.MANUAL, message="manual", params={"admins": admins}, evidence=evidence,
                       expected=expected)
    unapproved = [a for a in admins if a not in approved]
    if unapproved:
        return Verdict(status=Status.FAIL, message="fail", params={"admins": unapproved}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"admins": admins}, evidence=evidence,
                   expected=expected)


# -- LG-02: the BSM audit trail's retention -----------------------------------------------------------------------

_TERM = re.compile(r"^(\d+)([sShHdDyYBKMG])$")
_SECONDS = {"s": 1, "h": 3600, "d": 86400, "y": 365 * 86400}


def expire_after(value: str) -> dict[str, Any] | None:
    """``expire-after`` (audit_control(5)): ``{"days", "size", "join"}``, or None when not understood.

    ``60d``, ``5G``, ``60d OR 5G`` (whichever comes first), ``60d AND 5G`` (only when both are reached)."""
    parts = value.split()
    if len(parts) not in (1, 3) or (len(parts) == 3 and parts[1].upper() not in ("AND", "OR")):
        return None
    out: dict[str, Any] = {"days": None, "size": None, "join": parts[1].upper() if len(parts) == 3 else None}
    for term in parts[::2]:
        m = _TERM.match(term)
        if not m:
            return None
        unit = m.group(2)
        if unit.lower() in _SECONDS and unit not in "M":
            if out["days"] is not None:
                return None
            out["days"] = int(m.group(1)) * _SECONDS[unit.lower()] // 86400
        else:
            if out["size"] is not None:
                return None
            out["size"] = term
    return out


def _flags_ok(flags: str) -> list[str]:
    """The classes (lo: login/logout, aa: authentication) the trail does not record in full."""
    tokens = {t.strip() for t in flags.split(",")}
    return [c for c in ("lo", "aa") if c not in tokens and "all" not in tokens]


def _oldest_age(facts: Mapping[str, Any]) -> tuple[float | None, str | None, Phrase | None]:
    trail, now = facts.get("trail"), facts.get("collected_at")
    if trail is None or not ok(trail):
        return None, None, why_not(trail)
    start = trail["value"].get("oldest_start")
    if start is None or not isinstance(now, int | float):
        return None, None, None
    try:
        t = dt.datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    except ValueError:
        return None, None, phrase("mac.unknown_answer", tool=str(trail.get("source")), output=str(start)[:40])
    return round(max((now - t.timestamp()) / 86400, 0.0), 1), str(start), None


def lg02_macos(facts: FactSet, policy: Policy) -> Verdict:
    au = facts.need("mac_audit")
    want = policy["logging"]["retention_days"]
    expected = {"retention_days": f">= {want}", "audit_control": "flags with lo,aa; expire-after a time of at "
                f"least {want} days (or the oldest trail file that old)"}
    control, auditing = au.get("control"), au.get("auditing")
    evidence: dict[str, Any] = {"control": evidence_of(control), "auditing": evidence_of(auditing),
                                "trail": evidence_of(au.get("trail")), "mscp": au.get("mscp")}
    store = phrase("mac_store", dir=((control or {}).get("value") or {}).get("dir") or "/var/audit")
    if isinstance(control, Mapping) and control.get("status") == "missing":
        return Verdict(status=Status.MANUAL, message="mac_no_audit", evidence=evidence, expected=expected)
    if not ok(control) or not ok(auditing):
        return cannot_tell([why_not(a) for a in (control, auditing) if not ok(a)], evidence=evidence,
                           expected=expected)
    if auditing["value"] != "auditing":
        return Verdict(status=Status.MANUAL, message="mac_not_auditing", evidence=evidence, expected=expected)
    settings = control["value"]
    missing = _flags_ok(settings.get("flags", ""))
    if missing:
        return Verdict(status=Status.FAIL, message="mac_fail_flags", params={"classes": missing},
                       evidence=evidence, expected=expected)
    raw = settings.get("expire-after", "")
    if not raw:
        return Verdict(status=Status.PASS, message="pass_unlimited", params={"store": store}, evidence=evidence,
                       expected=expected)
    rule = expire_after(raw)
    evidence["expire_after"] = {"value": raw, "parsed": rule}
    if rule is None:
        return cannot_tell([phrase("mac_expire_unknown", value=raw)], evidence=evidence, expected=expected)
    days, size, join = rule["days"], rule["size"], rule["join"]
    if days is not None and (size is None or join == "AND") and days >= want:
        return Verdict(status=Status.PASS, message="pass", params={"store": store, "days": days},
                       evidence=evidence, expected=expected)
    if (days is not None and size is None) or (join == "OR" and days is not None and days < want):
        return Verdict(status=Status.FAIL, message="fail_short", params={"store": store, "days": days, "want": want},
                       evidence=evidence, expected=expected)
    # A size decides (alone, or with a time that is not enough by itself): how far back the trail reaches now.
    age, start, why = _oldest_age(au)
    evidence["oldest_trail"] = {"start": start, "age_days": age}
    if why is not None:
        return cannot_tell([why], evidence=evidence, expected=expected)
    if age is None:
        return Verdict(status=Status.FAIL, message="mac_fail_no_trail", params={"rule": raw}, evidence=evidence,
                       expected=expected)
    if age >= want:
        return Verdict(status=Status.PASS, message="mac_pass_oldest", params={"days": age, "want": want,
                                                                             "time": start, "rule": raw},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.FAIL, message="mac_fail_oldest", params={"days": age, "want": want,
                                                                         "time": start, "rule": raw},
                   evidence=evidence, expected=expected)


# -- TX-01: the connected Wi-Fi network ----------------------------------------------------------------------

#: system_profiler's security-mode codes (without their ``spairport_security_mode_`` prefix) -> the verdict.
#: WPA3 (SAE, and its transition mode) forbids TKIP; WPA2's cipher is not reported, so a person confirms it.
SECURITY = {"none": "weak_open", "wep": "weak_wep", "wpa_personal": "weak_wpa1", "wpa_enterprise": "weak_wpa1",
            "wpa_personal_mixed": "weak_wpa1", "wpa_enterprise_mixed": "weak_wpa1",
            "wpa2_personal": "wpa2", "wpa2_enterprise": "wpa2",
            "wpa3_personal": "strong", "wpa3_enterprise": "strong", "wpa3_transition": "strong"}
_PREFIX = re.compile(r"^s?pairport_security_mode_")  # one real output drops the leading "s"


def tx01_macos(facts: FactSet, policy: Policy) -> Verdict:
    expected = {"connected network": "WPA3, or WPA2 with AES (CCMP) only; never open, WEP, WPA1 or TKIP"}
    answer = facts.need("mac_wifi").get("airport")
    if not ok(answer):
        return cannot_tell([why_not(answer)], evidence={"source": evidence_of(answer)}, expected=expected)
    links = [{"interface": i.get("interface"), **i["current"]} for i in answer["value"] if i.get("current")]
    evidence: dict[str, Any] = {"source": answer["source"], "interfaces": answer["value"]}
    if not answer["value"]:
        return Verdict(status=Status.NOT_APPLICABLE, message="mac_no_wifi", evidence=evidence, expected=expected)
    if not links:
        return Verdict(status=Status.NOT_APPLICABLE, message="mac_not_connected", evidence=evidence,
                       expected=expected)
    weak, manual, good, unknown = [], [], [], []
    for link in links:
        code = _PREFIX.sub("", str(link.get("security") or ""))
        kind = SECURITY.get(code)
        words = phrase("mac_link", ssid=link.get("ssid") or "?", interface=link.get("interface") or "?",
                       mode=code or "?")
        link["judged"] = kind or "unknown"
        if kind is None:
            unknown.append(words)
        elif kind.startswith("weak_"):
            weak.append(phrase("win_link", where=words, what=phrase(f"win_{kind}")))
        elif kind == "wpa2" or (policy.get("wifi.require_pmf", False) and code == "wpa3_transition"):
            manual.append(words)
        else:
            good.append(words)
    evidence["links"] = links
    if weak:
        return Verdict(status=Status.FAIL, message="fail", params={"links": weak}, evidence=evidence,
                       expected=expected)
    if unknown:
        return cannot_tell([phrase("mac_mode_unknown", links=unknown)], evidence=evidence, expected=expected)
    if manual:
        return Verdict(status=Status.MANUAL, message="mac_manual_wpa2", params={"links": manual},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"links": good}, evidence=evidence, expected=expected)


IA_02 = with_macos(windows.IA_02, "mac_pwpolicy", ia02_macos)
IA_03 = with_macos(windows.IA_03, "mac_pwpolicy", ia03_macos)
PM_02 = with_macos(windows_more.PM_02, "mac_admins", pm02_macos)
LG_02 = with_macos(windows.LG_02, "mac_audit", lg02_macos)
TX_01 = with_macos(windows_more.TX_01, "mac_wifi", tx01_macos)
