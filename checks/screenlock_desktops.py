"""PH-01 judges for KDE Plasma (kscreenlocker) and Xfce (xfce4-screensaver), beside GNOME's in checks/physical.py.

Both judge what the system enforces (collectors/screenlock.py): a value a user can change in their own
settings is no safeguard, exactly as a GNOME key without a dconf lock. Values are read as the desktops read
them: KConfig takes ``false``/``no``/``off``/``0`` (any case) as false and any other text as true (seen with
kreadconfig5), and an empty value as the default; xfconf's booleans are ``true``/``false``.
"""

from __future__ import annotations

import json
from typing import Any

from agent.config.policy import Policy
from checks.base import Phrase, Status, Verdict, error, fact_phrase, phrase

KDE_NEGATIVE = ("false", "no", "off", "0")
#: kscreenlockerrc keys the administrator must make immutable (LockOnResume: locked again after sleep).
KDE_MUST_LOCK = ("Autolock", "Timeout", "Lock", "LockGrace", "RequirePassword", "LockOnResume")
XFCE_MUST_LOCK = ("/saver/enabled", "/saver/idle-activation/enabled", "/saver/idle-activation/delay",
                  "/lock/enabled", "/lock/saver-activation/enabled", "/lock/saver-activation/delay",
                  "/lock/sleep-activation")


class BadValue(Exception):
    pass


def kde_bool(raw: str) -> bool:
    return raw.strip().lower() not in KDE_NEGATIVE


def number(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise BadValue(raw) from None


def kde(facts: dict[str, Any], policy: Policy) -> Verdict:
    """kscreenlocker locks (with a password) after Timeout minutes idle plus LockGrace seconds."""
    if facts.get("problem"):
        return error(fact_phrase("screenlock", facts["problem"]))
    pol = policy["screen_lock"]
    max_idle = pol["max_idle_seconds"]
    keys = facts["keys"]
    expected = {"Autolock": True, "Lock": True, "RequirePassword": True, "LockOnResume": True,
                "Timeout * 60 + LockGrace": f"1..{max_idle} s",
                "immutable": list(KDE_MUST_LOCK) if pol["require_system_lock"] else []}
    raw = {k: (v["value"] if v["value"] not in (None, "") else facts["defaults"][k]) for k, v in keys.items()}
    evidence = {"files": facts["files"], "config_dirs": facts["config_dirs"], "effective": raw,
                "set_by_system": sorted(k for k, v in keys.items() if v["value"] not in (None, "")),
                "immutable": {k: v["immutable"] for k, v in keys.items() if v["immutable"]},
                "defaults": facts["defaults"], "defaults_source": facts.get("defaults_source"),
                "restriction": facts["restriction"]}
    try:
        minutes, grace = number(raw["Timeout"]), number(raw["LockGrace"])
    except BadValue as e:
        return error(phrase("kde_bad_value", value=str(e)), evidence=evidence)
    bad: list[Phrase] = []
    for key, why in (("Autolock", "kde_why_autolock_off"), ("Lock", "kde_why_no_password"),
                     ("RequirePassword", "kde_why_no_password"), ("LockOnResume", "kde_why_no_resume_lock")):
        if not kde_bool(raw[key]) and phrase(why, setting=key) not in bad:
            bad.append(phrase(why, setting=key))
    restriction = facts["restriction"] or {}
    if restriction.get("value") not in (None, "") and not kde_bool(restriction["value"]):
        bad.append(phrase("kde_why_lock_action_restricted", file=restriction["set_in"]))
    seconds = int(minutes * 60 + max(grace, 0))
    if minutes <= 0:
        bad.append(phrase("kde_why_never", minutes=raw["Timeout"]))
    elif seconds > max_idle:
        bad.append(phrase("kde_why_too_long", minutes=raw["Timeout"], grace=raw["LockGrace"], max=max_idle))
    if pol["require_system_lock"]:
        mutable = [k for k in KDE_MUST_LOCK if not keys[k]["immutable"]]
        if mutable:
            bad.append(phrase("kde_why_not_immutable", keys=mutable))
    if bad:
        return Verdict(status=Status.FAIL, message="kde_fail", params={"problems": bad}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="kde_pass", params={"seconds": seconds}, evidence=evidence,
                   expected=expected)


def _xfce_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low not in ("true", "false"):
        raise BadValue(raw)
    return low == "true"


def _xfce_one(view: dict[str, Any], defaults: dict[str, str], policy: Policy) -> tuple[list[Phrase], int]:
    pol = policy["screen_lock"]
    props = view["properties"]
    eff = {k: (props[k]["value"] if k in props and props[k]["value"] is not None else d) for k, d in defaults.items()}
    bad: list[Phrase] = []
    for key in ("/saver/enabled", "/saver/idle-activation/enabled", "/lock/enabled",
                "/lock/saver-activation/enabled", "/lock/sleep-activation"):
        if not _xfce_bool(eff[key]):
            bad.append(phrase("xfce_why_off", setting=key))
    idle, delay = number(eff["/saver/idle-activation/delay"]), number(eff["/lock/saver-activation/delay"])
    seconds = int((idle + max(delay, 0)) * 60)
    if idle <= 0:
        bad.append(phrase("xfce_why_never", minutes=eff["/saver/idle-activation/delay"]))
    elif seconds > pol["max_idle_seconds"]:
        bad.append(phrase("xfce_why_too_long", idle=eff["/saver/idle-activation/delay"],
                          delay=eff["/lock/saver-activation/delay"], max=pol["max_idle_seconds"]))
    if pol["require_system_lock"] and not view["channel_locked"]:
        unlocked = [k for k in XFCE_MUST_LOCK if not (k in props and props[k]["locked"])]
        if unlocked:
            bad.append(phrase("xfce_why_not_locked", keys=unlocked))
    return bad, seconds


def xfce(facts: dict[str, Any], policy: Policy) -> Verdict:
    """xfce4-screensaver locks after the idle delay plus the lock delay (minutes), for every person."""
    if facts.get("problem"):
        return error(fact_phrase("screenlock", facts["problem"]))
    max_idle = policy["screen_lock"]["max_idle_seconds"]
    expected = {"locker": "xfce4-screensaver", "enabled": list(XFCE_MUST_LOCK[:2] + XFCE_MUST_LOCK[3:5]),
                "(idle-activation/delay + saver-activation/delay) * 60": f"1..{max_idle} s",
                "locked_for_everyone": list(XFCE_MUST_LOCK) if policy["screen_lock"]["require_system_lock"] else []}
    evidence: dict[str, Any] = {"lockers": facts["lockers"], "files": facts["files"],
                                "config_dirs": facts["config_dirs"], "channel": facts["channel"],
                                "defaults": facts["defaults"], "defaults_source": facts.get("defaults_source")}
    if "xfce4-screensaver" not in facts["lockers"]:
        if "light-locker" in facts["lockers"]:
            return error(phrase("xfce_light_locker", paths=facts["lockers"]["light-locker"]), evidence=evidence)
        return Verdict(status=Status.FAIL, message="xfce_fail", params={"problems": [phrase("xfce_why_no_locker")]},
                       evidence=evidence, expected=expected)
    found: dict[str, tuple[Phrase, list[str]]] = {}
    seconds: list[int] = []
    try:
        for view in facts["views"]:
            bad, secs = _xfce_one(view, facts["defaults"], policy)
            seconds.append(secs)
            for p in bad:
                key = json.dumps([p.key, dict(p.params)], sort_keys=True, default=str)
                found.setdefault(key, (p, []))[1].append(view["user"] or "(anyone)")
    except BadValue as e:
        return error(phrase("xfce_bad_value", value=str(e)), evidence=evidence)
    people = [v["user"] or "(anyone)" for v in facts["views"]]
    evidence["people"] = people
    evidence["locked"] = {v["user"] or "(anyone)": ("channel" if v["channel_locked"] else
                                             sorted(k for k, p in v["properties"].items() if p["locked"]))
                          for v in facts["views"]}
    if not facts["views"]:
        return error(phrase("xfce_no_people"), evidence=evidence)
    problems = [p if sorted(users) == sorted(people) else phrase("xfce_for_users", why=p, users=users)
                for p, users in found.values()]
    if problems:
        return Verdict(status=Status.FAIL, message="xfce_fail", params={"problems": problems}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="xfce_pass", params={"seconds": max(seconds)}, evidence=evidence,
                   expected=expected)
