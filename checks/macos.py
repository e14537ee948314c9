"""macOS judges, and the checks that judge Linux, Windows and macOS with one policy.

Each registered check here is the check it extends (same metadata file, same policy keys) with a macOS judge
beside it, chosen by which facts the target produced: only a Mac runs the ``mac_*`` collectors (they declare
``platforms = {"darwin"}``), so a bundle judged later picks the same judge. What counts follows the macOS
Security Compliance Project rules (their IDs go in the evidence, ``mscp``); their texts are not copied.

A judge never reads a tool's words itself: the collectors record answers with a status (``ok``, ``missing``,
``error`` and a problem code), and an answer that is not ``ok`` is never a pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from agent.config.policy import Policy
from checks import windows, windows_live
from checks.base import Check, FactSet, Judge, Phrase, Status, Verdict, error, fact_phrase, phrase


def with_macos(other: Check, collector: str, judge: Judge) -> Check:
    """``other`` (a Linux or Linux+Windows check) plus a macOS judge that runs when ``collector``'s facts exist."""

    def dispatch(facts: FactSet, policy: Policy) -> Verdict:
        if facts.has(collector):
            return judge(facts, policy)
        return other.judge(facts, policy)

    if "darwin" not in other.meta.platforms:
        raise ValueError(f"{other.id}: its metadata must list darwin in platforms to judge macOS")
    dispatch.__doc__ = f"{other.id}: the judge of other platforms, or macOS's when {collector!r} ran."
    return Check(meta=other.meta, needs=(*other.needs, collector), judge=dispatch)


# -- reading answers in facts (collectors/macos/base.py Answer) ----------------------------------------------


def ok(answer: Mapping[str, Any] | None) -> bool:
    return isinstance(answer, Mapping) and answer.get("status") == "ok"


def why_not(answer: Mapping[str, Any] | None) -> Phrase:
    """Why an answer is not ``ok``, worded per language: its problem code (``mac.<code>`` in _facts.yaml)."""
    if not isinstance(answer, Mapping):
        return phrase("mac.not_collected")
    source = str(answer.get("source", "?"))
    prob = answer.get("problem")
    if answer.get("status") == "missing" and not isinstance(prob, Mapping):
        return phrase("mac.absent", source=source)
    if not isinstance(prob, Mapping) or "code" not in prob:
        return phrase("mac.unreadable_source", source=source)
    if prob["code"] != "unreadable" or source in str(prob.get("error", "")):  # the problem names its source
        return fact_phrase("mac", prob)
    return phrase("mac.at", source=source, what=fact_phrase("mac", prob))


def cannot_tell(reasons: list[Phrase], *, evidence: Any, expected: Any) -> Verdict:
    """``error``: the settings needed could not be read (never a pass, never a guess)."""
    return error(phrase("mac.cannot_tell", reasons=reasons), evidence=evidence, expected=expected)


def evidence_of(answer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An answer as the evidence shows it: what was asked, its status, and the problem code if any."""
    if not isinstance(answer, Mapping):
        return None
    return {k: answer[k] for k in ("source", "status", "exit", "value", "problem") if k in answer}


def _settings(answers: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The computer-level managed settings (the first answer), or {} when no profile installed that domain."""
    v = answers[0].get("value") if answers and ok(answers[0]) else None
    return dict(v) if isinstance(v, Mapping) else {}


def _release(facts: Mapping[str, Any]) -> str | None:
    v = facts.get("release", {}).get("value") if isinstance(facts.get("release"), Mapping) else None
    return str(v.get("ProductVersion")) if isinstance(v, Mapping) and v.get("ProductVersion") else None


def _major(facts: Mapping[str, Any]) -> int | None:
    version = _release(facts)
    head = version.split(".")[0] if version else ""
    return int(head) if head.isdigit() else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _seconds(v: Any) -> int | None:
    """A number of seconds as a profile writes it (an integer, never negative), else None."""
    n = _int(v)
    return n if n is not None and n >= 0 else None


def _flag(v: Any) -> bool | None:
    """A boolean as profiles write it: <true/>/<false/> or the integers 1/0."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    return None


def _when(text: Any) -> dt.datetime | None:
    """A plist date as facts keep it (ISO text; plistlib gives UTC without a zone), as an aware datetime."""
    if not isinstance(text, str):
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _days(now: Any, then: dt.datetime) -> float | None:
    if not isinstance(now, int | float) or isinstance(now, bool):
        return None
    return round(max(0.0, (now - then.timestamp()) / 86400), 1)


# -- PH-01 screen saver password ---------------------------------------------------------------------------

SCREENSAVER_KEYS = ("askForPassword", "askForPasswordDelay", "idleTime")


def ph01_macos(facts: FactSet, policy: Policy) -> Verdict:
    sl = facts.need("mac_screenlock")
    max_idle, require = policy["screen_lock"]["max_idle_seconds"], policy["screen_lock"]["require_system_lock"]
    expected = {"com.apple.screensaver (configuration profile)": {
        "askForPassword": True, "idleTime": f"1..{max_idle} s", "idleTime + askForPasswordDelay": f"<= {max_idle} s"},
        "enforced by a profile": bool(require)}
    managed = list(sl["managed"])
    evidence: dict[str, Any] = {"mscp": sl.get("mscp"), "release": _release(sl),
                                "managed": [evidence_of(a) for a in managed],
                                "managed_byhost": [evidence_of(a) for a in sl.get("managed_byhost", [])],
                                "sysadminctl": evidence_of(sl.get("sysadminctl"))}
    unreadable = [why_not(a) for a in managed if a.get("status") == "error"]
    if unreadable:
        return cannot_tell(unreadable, evidence=evidence, expected=expected)
    settings = _settings(managed)
    raw_ask, raw_delay, raw_idle = (settings.get(k) for k in SCREENSAVER_KEYS)
    ask, delay, idle = _flag(raw_ask), _seconds(raw_delay), _seconds(raw_idle)
    wrong = [k for k, raw, v in (("askForPassword", raw_ask, ask), ("askForPasswordDelay", raw_delay, delay),
                                 ("idleTime", raw_idle, idle)) if raw is not None and v is None]
    if wrong:
        return cannot_tell([phrase("mac.wrong_type", where=str(managed[0].get("source")), setting=k,
                                   type=type(settings[k]).__name__) for k in wrong],
                           evidence=evidence, expected=expected)
    missing = [k for k in SCREENSAVER_KEYS if k not in settings]
    bad: list[Phrase] = []
    lock = sl.get("sysadminctl")
    lock_v = lock.get("value") if ok(lock) and isinstance(lock, Mapping) else None
    if ask is False:
        bad.append(phrase("mac_no_password"))
    if isinstance(lock_v, Mapping) and lock_v.get("state") == "off":
        bad.append(phrase("mac_lock_off"))
    if idle == 0:
        bad.append(phrase("mac_never_idle"))
    elif idle is not None and idle + (delay or 0) > max_idle:
        bad.append(phrase("mac_too_long", idle=idle, delay=delay or 0, max=max_idle))
    if missing and require:
        bad.append(phrase("mac_not_enforced", keys=missing))
    if bad:
        return Verdict(status=Status.FAIL, message="mac_fail", params={"problems": bad}, evidence=evidence,
                       expected=expected)
    if missing:  # the profile leaves some to the users, and the policy allows that: what each user set is not read
        return Verdict(status=Status.MANUAL, message="mac_manual_users", params={"keys": missing},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="mac_pass", params={"seconds": (idle or 0) + (delay or 0)},
                   evidence=evidence, expected=expected)


# -- PH-02 FileVault ---------------------------------------------------------------------------------------


def ph02_macos(facts: FactSet, policy: Policy) -> Verdict:
    fv = facts.need("mac_filevault")
    paths = list(policy["data_paths"])
    expected = {"fdesetup status": "FileVault is On. (no encryption or decryption in progress)",
                "com.apple.MCX dontAllowFDEDisable": True}
    answer = fv["fdesetup"]
    profile = _settings(fv.get("profile") or [])
    enforced = _flag(profile.get("dontAllowFDEDisable")) is True
    evidence = {"mscp": fv.get("mscp"), "release": _release(fv), "fdesetup": evidence_of(answer),
                "profile": [evidence_of(a) for a in fv.get("profile") or []], "dontAllowFDEDisable": enforced,
                "data_paths": paths}
    if not ok(answer):
        return cannot_tell([why_not(answer)], evidence=evidence, expected=expected)
    s = answer["value"]
    if s.get("progress") == "decrypting":
        return Verdict(status=Status.FAIL, message="mac_decrypting", params={"percent": _pct(s)},
                       evidence=evidence, expected=expected)
    if s.get("progress") == "encrypting":
        return Verdict(status=Status.FAIL, message="mac_encrypting", params={"percent": _pct(s)},
                       evidence=evidence, expected=expected)
    if not s.get("on"):
        return Verdict(status=Status.FAIL, message="mac_deferred" if s.get("deferred") else "mac_off",
                       evidence=evidence, expected=expected)
    other = [p for p in paths if p == "/Volumes" or p.startswith("/Volumes/")]
    if other:  # FileVault is the startup disk's: other volumes are encrypted (or not) on their own
        return Verdict(status=Status.MANUAL, message="mac_other_volumes", params={"paths": other},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="mac_pass_enforced" if enforced else "mac_pass",
                   evidence=evidence, expected=expected)


def _pct(s: Mapping[str, Any]) -> Any:
    return phrase("mac_pending") if s.get("pending") or s.get("percent") is None else f"{s['percent']:g} %"


# -- AC-01 application firewall ----------------------------------------------------------------------------


def ac01_macos(facts: FactSet, policy: Policy) -> Verdict:
    fw = facts.need("mac_firewall")
    expected = {"socketfilterfw --getglobalstate": "State = 1 (on) or 2 (block all incoming)"}
    live, alf = fw["globalstate"], fw["alf"]
    evidence = {"mscp": fw.get("mscp"), "release": _release(fw), "globalstate": evidence_of(live),
                "alf": evidence_of(alf), "profile": [evidence_of(a) for a in fw.get("profile") or []]}
    state: int | None = None
    if ok(live):
        state, evidence["from"] = _int(live["value"].get("state")), "socketfilterfw"
    elif ok(alf) and _int(alf["value"].get("globalstate")) is not None and (_major(fw) or 99) < 15:
        # Before 15 the firewall kept its state in this file; socketfilterfw not answering leaves it as evidence.
        state, evidence["from"] = _int(alf["value"]["globalstate"]), ALF
    if state is None:
        return cannot_tell([why_not(live)], evidence=evidence, expected=expected)
    if state == 0:
        return Verdict(status=Status.FAIL, message="mac_fail_off", params={"source": evidence["from"]},
                       evidence=evidence, expected=expected)
    if state == 2:
        return Verdict(status=Status.PASS, message="mac_pass_block_all", params={"source": evidence["from"]},
                       evidence=evidence, expected=expected)
    if state == 1:
        return Verdict(status=Status.PASS, message="mac_pass", params={"source": evidence["from"]},
                       evidence=evidence, expected=expected)
    return cannot_tell([phrase("mac_unknown_state", state=state)], evidence=evidence, expected=expected)


ALF = "/Library/Preferences/com.apple.alf.plist"


# -- AV-01 XProtect and Gatekeeper -------------------------------------------------------------------------


def av01_macos(facts: FactSet, policy: Policy) -> Verdict:
    xp = facts.need("mac_xprotect")
    expected = {"xprotect status (15+)": "launch scans: enabled, background scans: enabled",
                "launchctl list (before 15)": list(XPROTECT_JOBS), "spctl --status": "assessments enabled"}
    status, jobs, gk = xp["status"], xp["launchctl"], xp["gatekeeper"]
    evidence = {"mscp": xp.get("mscp"), "release": _release(xp), "xprotect_status": evidence_of(status),
                "launchctl": evidence_of(jobs), "gatekeeper": evidence_of(gk)}
    bad: list[Phrase] = []
    unknown: list[Phrase] = []
    major = _major(xp)
    if ok(status):
        off = [k for k in ("launch_scans", "background_scans") if not status["value"].get(k)]
        if off:
            bad.append(phrase("mac_scans_off", scans=[phrase(f"mac_{k}") for k in off]))
    elif status.get("status") == "missing" and major is not None and major < 15:
        if ok(jobs):
            missing = [j for j, loaded in jobs["value"]["jobs"].items() if not loaded]
            if missing:
                bad.append(phrase("mac_jobs_missing", jobs=missing))
        else:
            unknown.append(why_not(jobs))
    else:
        unknown.append(why_not(status))
    if ok(gk):
        if not gk["value"].get("enabled"):
            bad.append(phrase("mac_gatekeeper_off"))
    else:
        unknown.append(why_not(gk))
    if bad:
        return Verdict(status=Status.FAIL, message="mac_fail", params={"problems": bad}, evidence=evidence,
                       expected=expected)
    if unknown:
        return cannot_tell(unknown, evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="mac_pass", evidence=evidence, expected=expected)


XPROTECT_JOBS = ("com.apple.XprotectFramework.PluginService", "com.apple.XProtect.daemon.scan")


# -- AV-03 XProtect data -----------------------------------------------------------------------------------

def _effective(su: Mapping[str, Any], key: str) -> tuple[Any, str]:
    """A Software Update setting in force: the profile's, else the preferences file's, else unset."""
    prof = _settings(su.get("profile") or [])
    if key in prof:
        return prof[key], "profile"
    prefs = su.get("prefs")
    v = prefs.get("value") if ok(prefs) and isinstance(prefs, Mapping) else None
    if isinstance(v, Mapping) and key in v:
        return v[key], "local"
    return None, "unset"


def av03_macos(facts: FactSet, policy: Policy) -> Verdict:
    xp = facts.need("mac_xprotect")
    max_days = policy["antivirus"]["xprotect_max_age_days"]  # Apple's feed is weekly, not daily: its own limit
    expected = {"XProtect data age (days)": f"<= {max_days}", "ConfigDataInstall": "true or unset (on by default)"}
    major = _major(xp)
    bundles = xp["bundles"]
    order = ["protected", "coreservices"] if major is None or major >= 15 else ["coreservices"]
    used = next((n for n in order if ok(bundles.get(n))), None)
    evidence: dict[str, Any] = {"mscp": xp.get("mscp"), "release": _release(xp),
                                "bundles": {n: {**(evidence_of(b) or {}), **({"mtime": b["mtime"]} if "mtime" in b
                                                                              else {})}
                                            for n, b in bundles.items()},
                                "history": (xp["history"].get("value") or [])[:5]}
    config, c_from = _effective(xp.get("software_update") or {}, "ConfigDataInstall")
    evidence["ConfigDataInstall"] = {"value": config, "from": c_from}
    unknown = [why_not(bundles.get(n)) for n in order if bundles.get(n, {}).get("status") == "error"]
    if used is None:
        if unknown:
            return cannot_tell(unknown, evidence=evidence, expected=expected)
        return Verdict(status=Status.FAIL, message="mac_no_data", evidence=evidence, expected=expected)
    b = bundles[used]
    version = str(b["value"].get("CFBundleShortVersionString") or b["value"].get("CFBundleVersion") or "?")
    installed = [t for e in (xp["history"].get("value") or []) if ok(xp["history"])
                 and str(e.get("displayVersion")) == version and (t := _when(e.get("date"))) is not None]
    when, w_from = (max(installed), "history") if installed else (
        (dt.datetime.fromtimestamp(b["mtime"], dt.UTC), "mtime") if _number(b.get("mtime")) else (None, None))
    evidence.update({"bundle_used": used, "version": version, "installed": when.isoformat() if when else None,
                     "installed_from": w_from})
    if when is None:
        return cannot_tell([phrase("mac_no_date", version=version)], evidence=evidence, expected=expected)
    days = _days(xp.get("collected_at"), when)
    if days is None:
        return cannot_tell([phrase("mac.not_collected")], evidence=evidence, expected=expected)
    bad: list[Phrase] = []
    if _flag(config) is False:
        bad.append(phrase("mac_config_data_off", source=phrase(f"mac.from.{c_from}")))
    if days > max_days:
        bad.append(phrase("mac_data_old", version=version, days=days, max=max_days))
    params = {"version": version, "date": when.date().isoformat(), "days": days}
    if bad:
        return Verdict(status=Status.FAIL, message="mac_fail", params={"problems": bad, **params},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="mac_pass", params=params, evidence=evidence, expected=expected)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# -- AV-04 software updates --------------------------------------------------------------------------------


def av04_macos(facts: FactSet, policy: Policy) -> Verdict:
    up = facts.need("mac_updates")
    max_days = policy["updates"]["max_pending_days"]
    expected = {"LastFullSuccessfulDate": f"within {max_days} days", "RecommendedUpdates": "none pending",
                "CriticalUpdateInstall": "true or unset (on by default)"}
    prefs = up["prefs"]
    history = up.get("history") or {}
    evidence: dict[str, Any] = {"mscp": up.get("mscp"), "release": _release(up), "prefs": evidence_of(prefs),
                                "profile": [evidence_of(a) for a in up.get("profile") or []],
                                "installed": (history.get("value") or [])[:10] if ok(history) else
                                evidence_of(history)}
    if prefs.get("status") == "error":
        return cannot_tell([why_not(prefs)], evidence=evidence, expected=expected)
    v = prefs.get("value") if ok(prefs) else {}
    v = v if isinstance(v, Mapping) else {}
    bad: list[Phrase] = []
    last = _when(v.get("LastFullSuccessfulDate"))
    days = _days(up.get("collected_at"), last) if last else None
    if last is None:
        bad.append(phrase("mac_never_checked"))
    elif days is None:
        return cannot_tell([phrase("mac.not_collected")], evidence=evidence, expected=expected)
    elif days > max_days:
        bad.append(phrase("mac_check_old", date=last.date().isoformat(), days=days, max=max_days))
    pending = v.get("RecommendedUpdates")
    names = [_update_name(u) for u in pending if isinstance(u, Mapping)] if isinstance(pending, list) else []
    count = _int(v.get("LastRecommendedUpdatesAvailable"))
    if names:
        bad.append(phrase("mac_pending", updates=names))
    elif not isinstance(pending, list) and count:  # the counter alone can lag behind the list: only without it
        bad.append(phrase("mac_pending_count", count=count))
    critical, c_from = _effective(up, "CriticalUpdateInstall")
    evidence["CriticalUpdateInstall"] = {"value": critical, "from": c_from}
    if _flag(critical) is False:
        bad.append(phrase("mac_critical_off", source=phrase(f"mac.from.{c_from}")))
    if bad:
        return Verdict(status=Status.FAIL, message="mac_fail", params={"problems": bad}, evidence=evidence,
                       expected=expected)
    assert last is not None
    return Verdict(status=Status.PASS, message="mac_pass", params={"date": last.date().isoformat(), "days": days},
                   evidence=evidence, expected=expected)


def _update_name(u: Mapping[str, Any]) -> str:
    """"macOS Sequoia 15.1.1" (the version only when the name does not already say it)."""
    name = str(u.get("Display Name") or u.get("Identifier") or "?")
    version = str(u.get("Display Version") or "")
    return name if not version or version in name else f"{name} {version}"


PH_01 = with_macos(windows.PH_01, "mac_screenlock", ph01_macos)
PH_02 = with_macos(windows_live.PH_02, "mac_filevault", ph02_macos)
AC_01 = with_macos(windows.AC_01, "mac_firewall", ac01_macos)
AV_01 = with_macos(windows_live.AV_01, "mac_xprotect", av01_macos)
AV_03 = with_macos(windows_live.AV_03, "mac_xprotect", av03_macos)
AV_04 = with_macos(windows_live.AV_04, "mac_updates", av04_macos)
