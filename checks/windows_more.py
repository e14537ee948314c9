"""Windows judges of LG-03 (audit policy), PM-02 (local administrators) and PM-04 (dormant accounts).

As in ``checks/windows.py``, each registered check is the Linux check (same metadata file, same policy keys)
with a Windows judge beside it, chosen by which facts the target produced. The judges are pure: "now" is the
collection time the facts carry, never the clock at judging time, so a bundle judged later says the same.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from agent.config.policy import Policy
from checks import accounts_admin, logging_more, monitoring, wireless
from checks.base import FactSet, Phrase, Status, Verdict, error, phrase
from checks.windows import error_phrase, with_windows

DAY = 86400

# -- LG-03 audit policy ----------------------------------------------------------------------------------

#: Subcategory GUID -> (name, success needed, failure needed). Logon and File System in both directions
#: (failed logons are guessing; failed opens are probing); Special Logon has only success events (4672/4964).
REQUIRED_AUDIT = {
    "{0CCE9215-69AE-11D9-BED3-505054503030}": ("Logon", True, True),
    "{0CCE921B-69AE-11D9-BED3-505054503030}": ("Special Logon", True, False),
    "{0CCE921D-69AE-11D9-BED3-505054503030}": ("File System", True, True),
}


def _problem_text(e: Mapping[str, Any] | None) -> Any:
    """A collector's error ({kind, message}): English as recorded, Japanese by what it means."""
    return error_phrase(e or {"kind": "error", "message": "unreadable"})


def _audited(setting: Mapping[str, Any]) -> str:
    return {0: "No Auditing", 1: "Success", 2: "Failure", 3: "Success and Failure"}.get(setting.get("value", -1), "?")


def lg03_windows(facts: FactSet, policy: Policy) -> Verdict:
    ap = facts.need("win_audit_policy")
    expected = {name: " and ".join(w for w, need in (("Success", s), ("Failure", f)) if need)
                for name, s, f in REQUIRED_AUDIT.values()}
    expected["data folders"] = "an auditing entry (SACL) for reads and writes"
    pol = ap.get("policy")
    if ap.get("error") or not isinstance(pol, Mapping):
        return error(phrase("win_unreadable", error=_problem_text(ap.get("error"))),
                     evidence={"error": ap.get("error")}, expected=expected)
    settings = pol.get("settings") or {}
    evidence: dict[str, Any] = {"source": ap.get("source"), "key": ap.get("key"), "layout": pol.get("layout"),
                                "required": {}, "audited": sorted(
                                    f"{s.get('category')}/{s.get('name')}: {_audited(s)}"
                                    for s in settings.values() if s.get("value")),
                                "policy_source": pol.get("source")}
    missing: list[Phrase] = []
    for guid, (name, need_s, need_f) in REQUIRED_AUDIT.items():
        s = settings.get(guid)
        if s is None:
            return error(phrase("win_not_decoded", name=name), evidence=evidence, expected=expected)
        evidence["required"][name] = _audited(s)
        lacking = [w for w, need, has in (("success", need_s, s["success"]), ("failure", need_f, s["failure"]))
                   if need and not has]
        if lacking:
            missing.append(phrase("win_" + "_".join(lacking), name=name))
    if missing:
        return Verdict(status=Status.FAIL, message="win_fail", params={"missing": missing}, evidence=evidence,
                       expected=expected)
    paths: list[str] = policy["data_paths"]
    # Object access is recorded only for folders whose SACL asks for it; SACLs are not in the registry.
    if not paths:
        return Verdict(status=Status.MANUAL, message="win_manual_no_paths", evidence=evidence, expected=expected)
    return Verdict(status=Status.MANUAL, message="win_manual_sacl", params={"paths": paths}, evidence=evidence,
                   expected=expected)


# -- PM-02 local administrators --------------------------------------------------------------------------

#: Members that make every user of the PC an administrator.
EVERYONE = {"S-1-1-0", "S-1-5-11", "S-1-5-4", "S-1-5-32-545", "S-1-5-7"}


def _accounts_by_rid(acc: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    return {a["rid"]: a for a in acc.get("accounts", []) if isinstance(a.get("rid"), int)}


def pm02_windows(facts: FactSet, policy: Policy) -> Verdict:
    adm = facts.need("win_admins")
    acc = facts.need("win_accounts")
    approved = sorted(set(policy["accounts"]["approved_admins"]))
    expected = {"administrators": approved or "(approved_admins not set)",
                "group": "Administrators (S-1-5-32-544), enabled members"}
    if adm.get("error") or adm.get("members") is None:
        return error(phrase("win_unreadable", error=_problem_text(adm.get("error"))),
                     evidence={"error": adm.get("error")}, expected=expected)
    if acc.get("accounts_error"):
        return error(phrase("win_unreadable", error=_problem_text(acc["accounts_error"])),
                     evidence={"error": acc["accounts_error"]}, expected=expected)
    by_rid = _accounts_by_rid(acc)
    admins: dict[str, set[str]] = {}  # shown label -> the identifiers approved_admins may name (name, SID)
    skipped: dict[str, str] = {}
    unknown: list[str] = []
    damaged = any(x.get("error") for x in acc.get("accounts", []))
    for m in adm["members"]:
        sid, rid, name = m["sid"], m.get("rid"), m.get("name")
        label = str(name or sid)
        if rid is None:  # a domain account or group, or a well-known SID: shown and approved by SID
            admins[f"{name} ({sid})" if name else sid] = {sid.casefold()}
            continue
        a = by_rid.get(rid)
        if a is None:
            # A deleted account's SID left in the group cannot log on, unless its account key was unreadable.
            if damaged:
                unknown.append(f"{label} ({sid})")
            else:
                skipped[sid] = "no such account (deleted)"
        elif a.get("error"):
            unknown.append(f"{label} ({sid})")
        elif a.get("disabled"):
            skipped[label] = "disabled"
        else:
            admins[label] = {label.casefold(), sid.casefold()}
    evidence = {"administrators": sorted(admins), "not_counted": skipped, "approved": approved,
                "domain_sid": adm.get("domain_sid"), "members": adm["members"], "source": adm.get("source"),
                "members_source": adm.get("members_source", "SAM")}
    everyone = [m["sid"] for m in adm["members"] if m["sid"] in EVERYONE]
    if everyone:
        return Verdict(status=Status.FAIL, message="win_fail_everyone", params={"members": everyone},
                       evidence=evidence, expected=expected)
    if unknown:
        return error(phrase("win_members_unknown", members=unknown), evidence=evidence, expected=expected)
    names = sorted(admins)
    if not names:
        return Verdict(status=Status.PASS, message="win_pass_none", evidence=evidence, expected=expected)
    if not approved:
        return Verdict(status=Status.MANUAL, message="manual", params={"admins": names}, evidence=evidence,
                       expected=expected)
    ok = {a.casefold() for a in approved}
    unapproved = [n for n in names if not admins[n] & ok]
    if unapproved:
        return Verdict(status=Status.FAIL, message="fail", params={"admins": unapproved}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"admins": names}, evidence=evidence,
                   expected=expected)


# -- PM-04 dormant accounts ------------------------------------------------------------------------------


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _date(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d")


def pm04_windows(facts: FactSet, policy: Policy) -> Verdict:
    acc = facts.need("win_accounts")
    days = policy["accounts"]["dormant_days"]
    exempt = {e.casefold() for e in policy["accounts"]["dormant_exempt"]}
    expected = {"last_login_within_days": days, "or": "account disabled or expired"}
    now = acc.get("collected_at")
    if acc.get("accounts_error"):
        return error(phrase("win_unreadable", error=_problem_text(acc["accounts_error"])),
                     evidence={"error": acc["accounts_error"]}, expected=expected)
    if not isinstance(now, int) or isinstance(now, bool):
        return error(phrase("win_no_time"), expected=expected)
    report: dict[str, str] = {}
    dormant: list[Phrase] = []
    unknown: list[str] = []
    for a in acc.get("accounts", []):
        name = str(a.get("name") or f"RID {a.get('rid', a.get('rid_key'))}")
        if a.get("error"):
            unknown.append(name)
            continue
        if a.get("disabled"):
            report[name] = "disabled"
            continue
        if name.casefold() in exempt:
            report[name] = "exempt (policy dormant_exempt)"
            continue
        if a.get("last_logon_error"):  # live: ADSI could not tell this enabled account's last logon
            unknown.append(name)
            continue
        expires = _epoch(a.get("account_expires"))
        if expires is not None and expires <= now:
            report[name] = f"disabled (expired {_date(expires)})"
            continue
        last = _epoch(a.get("last_logon"))
        if last is not None:
            idle = int((now - last) // DAY)
            report[name] = f"last logon {_date(last)} ({idle} days ago)"
            if idle > days:
                dormant.append(phrase("dormant_idle", name=name, days=idle))
            continue
        changed = _epoch(a.get("password_last_set"))
        if changed is not None:
            idle = int((now - changed) // DAY)
            report[name] = f"never logged on; password set {_date(changed)} ({idle} days ago)"
            if idle > days:
                dormant.append(phrase("dormant_never", name=name))
        else:
            report[name] = "never logged on; no password date"
            dormant.append(phrase("dormant_never", name=name))
    evidence = {"accounts": report, "collected_at": _date(now), "exempt": sorted(policy["accounts"]["dormant_exempt"]),
                "undetermined": unknown, "source": acc.get("source"),
                "last_logon_source": acc.get("last_logon_source", "SAM")}
    if dormant:
        return Verdict(status=Status.FAIL, message="fail", params={"accounts": dormant, "days": days},
                       evidence=evidence, expected=expected)
    if unknown:
        return error(phrase("win_undetermined", accounts=unknown), evidence=evidence, expected=expected)
    enabled = [n for n, r in report.items() if not r.startswith(("disabled", "exempt"))]
    if not enabled:
        return Verdict(status=Status.PASS, message="pass_none", evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="win_pass", params={"count": len(enabled), "days": days},
                   evidence=evidence, expected=expected)


# -- TX-01 saved Wi-Fi profiles --------------------------------------------------------------------------

#: WLANProfile authentication -> the security label the Wi-Fi judges use; encryption -> their cipher name.
WLAN_AUTH = {"open": "open", "shared": "wep", "wpa": "wpa", "wpapsk": "wpa", "wpa2": "enterprise",
             "wpa2psk": "wpa2", "wpa3sae": "wpa3", "wpa3": "enterprise", "wpa3ent": "enterprise",
             "wpa3ent192": "enterprise", "owe": "owe"}
WLAN_CIPHER = {"wep": "WEP-104", "tkip": "TKIP", "aes": "CCMP", "gcmp": "GCMP", "gcmp256": "GCMP-256"}


def _wlan_record(p: Mapping[str, Any]) -> dict[str, Any]:
    """A saved profile in the shape ``checks.wireless.assess`` judges (no PMF: profiles do not say)."""
    auth = str(p.get("authentication") or "").casefold()
    enc = str(p.get("encryption") or "").casefold()
    label = WLAN_AUTH.get(auth, "unknown")
    if label == "open" and enc == "wep":
        label = "wep"
    cipher = WLAN_CIPHER.get(enc)
    known = enc == "none" or cipher is not None
    return {"ssid": p.get("ssid") or p.get("name"), "ssid_hex": p.get("ssid_hex"),
            "security": label if known else "unknown", "pairwise": [cipher] if cipher else []}


#: What ``checks.wireless.assess`` says of a network (English), as a phrase of TX-01's metadata.
WIFI_WORDS = {"open (no encryption)": "win_weak_open", "WEP": "win_weak_wep", "WPA1 allowed": "win_weak_wpa1",
              "TKIP allowed": "win_weak_tkip", "WEP cipher": "win_weak_wep_cipher",
              "no protected management frames (PMF)": "win_weak_no_pmf",
              "its security could not be read": "win_why_security",
              "its ciphers are not reported by this source": "win_why_ciphers",
              "PMF is required by the policy but this source does not report it": "win_why_pmf"}


def _wifi_words(reason: str) -> Any:
    """A weakness or an unknown, worded per language (a wording not in the table is shown as it is)."""
    key = WIFI_WORDS.get(reason)
    return phrase(key) if key else reason


def _guid(name: Any) -> str:
    return str(name or "").strip("{}").casefold()


def _connected_profile(c: Mapping[str, Any], profiles: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The saved profile a connection uses: in its adapter's folder, named (or with the SSID) as the network."""
    net = str(c.get("network") or "")
    mine = [p for p in profiles if _guid(p.get("adapter")) == _guid(c.get("adapter_guid"))]
    for key in ("name", "ssid"):
        hit = [p for p in mine if p.get(key) == net]
        if hit:
            return hit[0]
    return None


def _current(wp: Mapping[str, Any], profiles: list[Mapping[str, Any]]
             ) -> tuple[list[tuple[str, Mapping[str, Any]]], list[tuple[str, Phrase]], dict[str, Any]]:
    """(connected networks with their saved profile, problems, evidence) of the Wi-Fi association now."""
    cur = wp.get("current")
    if not isinstance(cur, Mapping):  # facts from before the live association was read
        return [], [], {"status": "not_collected"}
    err = cur.get("error")
    if not cur.get("live"):
        return [], [], {"status": "not_applicable", "why": "an offline image has no current Wi-Fi association"}
    if err is not None:
        why = err.get("message", "unreadable") if isinstance(err, Mapping) else str(err)
        said = error_phrase(err if isinstance(err, Mapping) else {"message": why})
        return [], [(f"current Wi-Fi association: {why}", phrase("win_current_unreadable", why=said))], \
            {"status": "error", "why": why}
    adapters, connected = cur.get("wifi_adapters") or [], cur.get("connected") or []
    if not adapters:
        return [], [], {"status": "not_applicable", "why": "this PC has no Wi-Fi adapter"}
    found: list[tuple[str, Mapping[str, Any]]] = []
    problems: list[tuple[str, Phrase]] = []
    for c in connected:
        p = _connected_profile(c, profiles)
        if p is None:
            problems.append((f"connected now to {c.get('network')!r} on {c.get('adapter')}, but its saved profile "
                             "was not read", phrase("win_current_no_profile", network=str(c.get("network")),
                                                    adapter=str(c.get("adapter")))))
        else:
            found.append((str(c.get("network")), p))
    status = "connected" if connected else "not_connected"
    return found, problems, {"status": status, "connected": list(connected),
                             "adapters": [a.get("name") for a in adapters if isinstance(a, Mapping)]}


def tx01_windows(facts: FactSet, policy: Policy) -> Verdict:
    wp = facts.need("win_wifi_profiles")
    expected = {"saved profiles": "WPA2 (AES), WPA3, OWE or Enterprise; no open, WEP, WPA1 or TKIP",
                "connected now": "the same, whatever its SSID"}
    ssids = [s.encode("utf-8") for s in (policy.get("wifi.ssids", []) or [])]
    profiles = list(wp.get("profiles") or [])
    judged = [p for p in profiles if not ssids or wireless.ssid_bytes(_wlan_record(p)) in ssids]
    current, current_problems, current_evidence = _current(wp, profiles)
    weak: list[Phrase] = []
    unknown: list[Phrase] = []
    good: list[Any] = []
    # The network in use now is judged whatever its SSID: it is the link the PC's data goes over.
    for network, p in [(None, p) for p in judged] + current:
        rec = _wlan_record(p)
        reasons, why = wireless.assess(rec, policy)
        where = f"{wireless.show_ssid(rec)} ({p.get('authentication')}/{p.get('encryption')}, " \
                f"{p.get('connection_mode') or '?'})"
        said: Any = where if network is None else phrase("win_connected", link=where)
        if reasons:
            link = phrase("win_link", where=where, what=[_wifi_words(r) for r in reasons])
            weak.append(link if network is None else phrase("win_connected", link=link))
        elif why:
            unknown.append(phrase("win_link", where=where, what=_wifi_words(why)))
        elif said not in good:
            good.append(said)
    problems = [f"{x.get('path')}: {x.get('error')}" for x in wp.get("problems") or []] + \
        [text for text, _ in current_problems]
    problem_words = [error_phrase({"kind": "file", "message": str(x.get("error"))}, x.get("path") or None)
                     for x in wp.get("problems") or []] + [words for _, words in current_problems]
    evidence = {"folder": wp.get("folder"), "organisation_ssids": policy.get("wifi.ssids", []),
                "profiles": [{k: v for k, v in p.items() if k != "path"} | {"judged": p in judged} for p in profiles],
                "current": current_evidence, "problems": problems}
    if weak:
        return Verdict(status=Status.FAIL, message="fail", params={"links": weak}, evidence=evidence,
                       expected=expected)
    if problems or unknown:
        return error(phrase("win_unreadable", problems=problem_words + unknown), evidence=evidence,
                     expected=expected)
    if not judged and not current:
        return Verdict(status=Status.NOT_APPLICABLE, message="win_no_profiles",
                       params={"ssids": policy.get("wifi.ssids", []) or []}, evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"links": good}, evidence=evidence, expected=expected)


# -- MN-03 scheduled mamoru task ------------------------------------------------------------------------


def mn03_windows(facts: FactSet, policy: Policy) -> Verdict:
    """The Linux MN-03 judge on the scheduled tasks' facts (same shape), with the Windows wording."""
    if (central := monitoring.scheduled_centrally(policy)) is not None:
        return central
    ws = facts.need("win_schedule")
    if (ws.get("problems") and not any(j.get("enabled") for j in ws.get("jobs", []))) or ws.get("reports") is None:
        return error(phrase("win_unreadable", problems=[error_phrase({"kind": "file", "message": str(x)})
                                                        for x in ws.get("problems") or []]),
                     evidence={"jobs": ws.get("jobs"), "report_dir": ws.get("report_dir")})
    verdict = monitoring.MN_03.judge(FactSet({"schedule_state": ws}, {}), policy)
    if verdict.message in ("fail_no_schedule", "pass", "fail_stale", "fail_no_report"):
        return dataclasses.replace(verdict, message="win_" + verdict.message)
    return verdict


LG_03 = with_windows(logging_more.LG_03, "win_audit_policy", lg03_windows)
_PM_02 = with_windows(accounts_admin.PM_02, "win_admins", pm02_windows)
PM_02 = dataclasses.replace(_PM_02, needs=(*_PM_02.needs, "win_accounts"))  # disabled members are not counted
PM_04 = with_windows(accounts_admin.PM_04, "win_accounts", pm04_windows)
MN_03 = with_windows(monitoring.MN_03, "win_schedule", mn03_windows)
TX_01 = with_windows(wireless.TX_01, "win_wifi_profiles", tx01_windows)
