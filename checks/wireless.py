"""MLIT-QA-Q8 wireless LAN (WL-01, WL-02, WL-03) and MLIT-9-5-6 Wi-Fi encryption (TX-01).

Q8 asks two things of a wireless LAN: only registered computers (MAC
addresses) may join, and the traffic is encrypted. The device ledger
(``network.devices``) and the organisation's SSIDs (``wifi.ssids``) come from
the policy; everything else comes from the air, the LAN or the access point's
own configuration. Networks that are not the organisation's are listed in
the evidence and never judged. SSIDs are attacker-chosen bytes: the evidence
keeps them exact (text and hex), messages show them escaped.
"""

from __future__ import annotations

from typing import Any

from agent.config.policy import Policy
from checks.base import FactSet, Status, Verdict, check, error, phrase
from reports.safe_text import printable

WEAK_LABELS = {"open": "open (no encryption)", "wep": "WEP", "wpa": "WPA1 allowed", "wpa/wpa2": "WPA1 allowed"}
WEAK_CIPHERS = {"TKIP": "TKIP allowed", "WEP-40": "WEP cipher", "WEP-104": "WEP cipher"}
PMF_APPLIES = {"wpa2", "wpa2/wpa3", "wpa3", "enterprise", "owe"}
MAX_NEIGHBOURS = 200


# --- shared helpers ---------------------------------------------------------------------------------

def normalise_mac(mac: str) -> str:
    digits = "".join(c for c in str(mac).lower() if c in "0123456789abcdef")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def ledger(policy: Policy) -> dict[str, dict[str, Any]]:
    """MAC -> ledger entry, from ``network.devices``."""
    return {normalise_mac(d["mac"]): d for d in policy.get("network.devices", []) or []}


def ssid_bytes(rec: dict[str, Any]) -> bytes:
    try:
        return bytes.fromhex(rec.get("ssid_hex") or "")
    except ValueError:
        return (rec.get("ssid") or "").encode("utf-8")


def show_ssid(rec: dict[str, Any]) -> str:
    """The SSID as a person may safely read it: invalid UTF-8 as \\xNN, control characters escaped."""
    raw = ssid_bytes(rec)
    if rec.get("hidden") or not raw.strip(b"\x00"):
        return "<hidden>"
    return printable(raw.decode("utf-8", "backslashreplace"))


def ciphers(rec: dict[str, Any]) -> tuple[list[str], bool]:
    """(pairwise + group ciphers of every element or setting, known?) of a network, AP interface or link."""
    found: list[str] = []
    known = True
    parts = [rec.get("rsn"), rec.get("wpa")] if ("rsn" in rec or "wpa" in rec) else [rec]
    for part in parts:
        if not part:
            continue
        pairwise = part.get("pairwise") or []
        if not pairwise:
            known = False
        found += list(pairwise)
        if part.get("group"):
            found.append(part["group"])
    return found, known


def akms(rec: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for part in (rec.get("rsn"), rec.get("wpa")):
        if part:
            out += [a for a in part.get("akm") or [] if a not in out]
    return out


def assess(rec: dict[str, Any], policy: Policy) -> tuple[list[str], str | None]:
    """(weaknesses, reason it cannot be told) for one network, AP interface or link."""
    label = rec.get("security") or "unknown"
    weak: list[str] = []
    if label in WEAK_LABELS:
        weak.append(WEAK_LABELS[label])
        if label == "open" and rec.get("owe_transition"):
            weak[-1] += " — OWE transition: legacy clients connect unencrypted"
    found, known = ciphers(rec)
    for c in found:
        reason = WEAK_CIPHERS.get(c)
        if reason and reason not in weak and not (label == "wep" and reason == "WEP cipher"):
            weak.append(reason)
    if weak:
        return weak, None
    if label == "unknown":
        return [], "its security could not be read"
    if label not in ("open", "wep") and not known:
        return [], "its ciphers are not reported by this source"
    if policy.get("wifi.require_pmf", False) and label in PMF_APPLIES:
        if rec.get("pmf") is None:
            return [], "PMF is required by the policy but this source does not report it"
        if rec["pmf"] not in ("required", "capable"):
            return ["no protected management frames (PMF)"], None
    return [], None


def describe(rec: dict[str, Any]) -> str:
    """'wpa2/wpa3 (PSK+SAE, CCMP, PMF capable)'."""
    found, _ = ciphers(rec)
    bits = ["+".join(akms(rec))] if akms(rec) else []
    uniq: list[str] = []
    for c in found:
        if c not in uniq:
            uniq.append(c)
    if uniq:
        bits.append("/".join(uniq))
    if rec.get("pmf"):
        bits.append(f"PMF {rec['pmf']}")
    label = str(rec.get("security") or "unknown")
    return f"{label} ({', '.join(bits)})" if bits else label


def summary(rec: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """A network as evidence: exact SSID, raw elements, the verdict and why."""
    weak, unknown = assess(rec, policy)
    keys = ("bssid", "ssid", "ssid_hex", "hidden", "security", "pmf", "privacy", "rsn", "wpa", "owe_transition",
            "frames", "seen_in", "interface", "anomalies")
    out: dict[str, Any] = {k: rec.get(k) for k in keys if k in rec}
    out["weaknesses"] = weak
    if unknown:
        out["undetermined"] = unknown
    return out


def neighbour(rec: dict[str, Any]) -> dict[str, Any]:
    return {"bssid": rec.get("bssid"), "ssid": rec.get("ssid"), "ssid_hex": rec.get("ssid_hex"),
            "security": rec.get("security"), "pmf": rec.get("pmf"), "akm": akms(rec), "ciphers": ciphers(rec)[0]}


def org_networks(survey: dict[str, Any], ssids: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    wanted = {s.encode("utf-8") for s in ssids}
    ours: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for rec in survey.get("networks", []):
        (ours if ssid_bytes(rec) in wanted else others).append(rec)
    return ours, others


def unread(survey: dict[str, Any]) -> list[dict[str, Any]]:
    """What of the survey's input was not read ([] when all of it was): a capture cut short, damaged or snapped.

    Live scanners give a list, not a file, and record nothing here; a capture that does not say whether it
    was read whole is treated as read in part.
    """
    integrity = survey.get("integrity")
    if not isinstance(integrity, dict):
        return [{"kind": "unrecorded", "problem": "whether the whole capture was read is not recorded"}] \
            if survey.get("source") == "capture" else []
    problems = [p for p in integrity.get("problems") or [] if isinstance(p, dict)]
    if not problems and integrity.get("complete") is not True:
        problems.append({"kind": "unrecorded", "problem": "the capture was not read completely"})
    return problems


def unread_params(problems: list[dict[str, Any]]) -> dict[str, str]:
    """The ``partial`` message's parameters: each problem in both languages (phrases in WL-03's metadata)."""
    texts = WL_03.meta.messages
    ja, en = [], []
    for p in problems:
        record = p["record"] if isinstance(p.get("record"), int) else 1
        params = {"offset": p.get("offset", "?"), "count": p.get("count", 1), "record": record, "after": record - 1}
        text = texts.get(f"unread_{p.get('kind')}") or texts["unread_unrecorded"]
        ja.append(text.format(params).ja)
        en.append(text.format(params).en)
    return {"problems_ja": "／".join(ja), "problems_en": "; ".join(en)}


def _label(rec: dict[str, Any], where: str) -> str:
    ident = rec.get("bssid") or rec.get("section") or rec.get("interface") or "?"
    return f"{show_ssid(rec)} [{where} {ident}]"


# --- WL-03 the organisation's networks in the air -------------------------------------------------

@check("WL-03", needs=("wifi_survey",))
def WL_03(facts: FactSet, policy: Policy) -> Verdict:
    survey = facts.need("wifi_survey")
    ssids = list(policy.get("wifi.ssids", []) or [])
    ours, others = org_networks(survey, ssids)
    evidence = {
        "source": survey.get("source"), "organisation_ssids": ssids,
        "organisation": [summary(r, policy) for r in ours],
        "neighbours": [neighbour(r) for r in others[:MAX_NEIGHBOURS]], "neighbours_total": len(others),
        "notes": survey.get("notes", []), "unread": unread(survey),
    }
    expected = {"security": "WPA2 (CCMP), WPA3, OWE or Enterprise; no open, WEP, WPA1 or TKIP",
                "require_pmf": policy.get("wifi.require_pmf", False)}
    if not ssids:
        return Verdict(status=Status.ERROR, message="no_ssids", evidence=evidence, expected=expected)
    weak, unknown = [], []
    for rec in ours:
        reasons, why = assess(rec, policy)
        if reasons:
            weak.append(f"{_label(rec, 'BSSID')}: {', '.join(reasons)}")
        elif why:
            unknown.append(f"{_label(rec, 'BSSID')}: {why}")
    if weak:  # what was read already fails: reading the rest could not make it pass
        return Verdict(status=Status.FAIL, message="fail", params={"networks": weak}, evidence=evidence,
                       expected=expected)
    if evidence["unread"]:  # the part not read may hold the weak announcement: never a pass, nor "not seen"
        return Verdict(status=Status.ERROR, message="partial", params=unread_params(evidence["unread"]),
                       evidence=evidence, expected=expected)
    if not ours:
        return Verdict(status=Status.ERROR, message="not_seen", params={"ssids": [printable(s) for s in ssids],
                                                                        "count": len(others)},
                       evidence=evidence, expected=expected)
    if unknown:
        return error("; ".join(unknown), "暗号化方式を判定できません: " + "; ".join(unknown), evidence=evidence,
                     expected=expected)
    return Verdict(status=Status.PASS, message="pass",
                   params={"networks": [f"{_label(r, 'BSSID')}: {describe(r)}" for r in ours]},
                   evidence=evidence, expected=expected)


# --- TX-01 every Wi-Fi link the organisation uses is encrypted ----------------------------------------

@check("TX-01", needs=("wifi_survey", "access_point"))
def TX_01(facts: FactSet, policy: Policy) -> Verdict:
    links: list[tuple[str, dict[str, Any]]] = []
    evidence: dict[str, Any] = {}
    ssids = list(policy.get("wifi.ssids", []) or [])
    expected = {"security": "WPA2 (CCMP), WPA3, OWE or Enterprise; no open, WEP, WPA1 or TKIP"}
    if facts.has("access_point"):
        ap = facts.need("access_point")
        if ap["found"]:
            enabled = [i for i in ap["interfaces"] if not i["disabled"]]
            links += [(f"{i['mode']} {i['section']}", i) for i in enabled]
            evidence["access_point"] = {"vendor": ap["vendor"], "source": ap["source"],
                                        "interfaces": [_iface_evidence(i, policy) for i in ap["interfaces"]]}
    survey_seen = facts.has("wifi_survey")
    missed: list[dict[str, Any]] = []
    if survey_seen:
        survey = facts.need("wifi_survey")
        missed = unread(survey)
        evidence["unread"] = missed
        ours, _ = org_networks(survey, ssids)
        links += [("BSSID " + str(r.get("bssid")), r) for r in ours]
        links += [("this machine's link on " + str(c.get("interface") or c.get("source")), c)
                  for c in survey.get("connected", [])]
        evidence["air"] = [summary(r, policy) for r in ours]
        evidence["connected"] = [{**c, "weaknesses": assess(c, policy)[0]} for c in survey.get("connected", [])]
        evidence["source"] = survey.get("source")
    if not links and not (missed and ssids):  # an unread part may hold the organisation's SSIDs: see below
        if survey_seen:
            return Verdict(status=Status.ERROR, message="no_ssids" if not ssids else "not_seen",
                           params={"ssids": [printable(s) for s in ssids], "count": 0},
                           evidence=evidence, expected=expected)
        return Verdict(status=Status.NOT_APPLICABLE, message="no_wifi", evidence=evidence, expected=expected)
    weak, unknown, good = [], [], []
    for where, rec in links:
        reasons, why = assess(rec, policy)
        text = f"{show_ssid(rec)} [{where}]"
        if reasons:
            weak.append(f"{text}: {', '.join(reasons)}")
        elif why:
            unknown.append(f"{text}: {why}")
        else:
            good.append(f"{text}: {describe(rec)}")
    if weak:  # what was read already fails: reading the rest could not make it pass
        return Verdict(status=Status.FAIL, message="fail", params={"links": weak}, evidence=evidence,
                       expected=expected)
    if missed:  # the part of the capture not read may hold a weak link: never a pass
        return Verdict(status=Status.ERROR, message="partial", params=unread_params(missed), evidence=evidence,
                       expected=expected)
    if unknown:
        return error("; ".join(unknown), "暗号化方式を判定できません: " + "; ".join(unknown), evidence=evidence,
                     expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"links": good}, evidence=evidence, expected=expected)


def _iface_evidence(iface: dict[str, Any], policy: Policy) -> dict[str, Any]:
    keep = ("section", "device", "mode", "ssid", "ssid_hex", "disabled", "encryption", "security", "pairwise",
            "group", "pmf", "macfilter", "maclist", "macfile", "key_set")
    out = {k: iface.get(k) for k in keep}
    out["weaknesses"] = assess(iface, policy)[0]
    return out


# --- WL-01 access points admit only registered MACs -----------------------------------------------

@check("WL-01", needs=("access_point",))
def WL_01(facts: FactSet, policy: Policy) -> Verdict:
    # No AP configuration here (a PC, the air): this target is no access point it can judge. Whether the
    # office's APs filter by MAC is then a question for the organisation (OR-16), asked once per report
    # rather than on every host (issue 13).
    if not facts.has("access_point"):
        return Verdict(status=Status.NOT_APPLICABLE, message="no_ap_config",
                       evidence={"reason": "no access-point configuration can be read from this target",
                                 "asked_of_organisation": "OR-16"})
    ap = facts.need("access_point")
    if not ap["found"]:
        return Verdict(status=Status.NOT_APPLICABLE, message="no_ap_config",
                       evidence={"tried": ap.get("tried", []), "asked_of_organisation": "OR-16"})
    book = ledger(policy)
    aps = [i for i in ap["interfaces"] if i["mode"] == "ap" and not i["disabled"]]
    evidence = {"vendor": ap["vendor"], "source": ap["source"], "ledger_size": len(book),
                "interfaces": [_iface_evidence(i, policy) for i in ap["interfaces"]]}
    expected = {"macfilter": "allow", "maclist": "only MAC addresses in network.devices"}
    if not aps:
        return Verdict(status=Status.NOT_APPLICABLE, message="no_ap", evidence=evidence, expected=expected)
    bad, unknown = [], []
    for i in aps:
        name = f"{show_ssid(i)} [{i['section']}]"
        mf = i.get("macfilter")
        if mf != "allow":
            bad.append(phrase("deny_list_only" if mf == "deny" else "no_filter", name=name))
            continue
        if i.get("macfile"):
            unknown.append(phrase("macfile", name=name, file=printable(str(i["macfile"]))))
            continue
        if i.get("maclist_invalid"):
            unknown.append(phrase("maclist_invalid", name=name, entries=printable(", ".join(i["maclist_invalid"]))))
            continue
        if not i["maclist"]:
            unknown.append(phrase("maclist_empty", name=name))
            continue
        strangers = [m for m in i["maclist"] if m not in book]
        if strangers:
            bad.append(phrase("strangers", name=name, macs=strangers))
    if bad:
        return Verdict(status=Status.FAIL, message="fail", params={"interfaces": bad}, evidence=evidence,
                       expected=expected)
    if unknown:
        return error(phrase("undetermined", reasons=unknown), evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"count": len(aps)}, evidence=evidence,
                   expected=expected)


# --- WL-02 no unregistered device on the LAN -----------------------------------------------------

@check("WL-02", needs=("lan_discovery",))
def WL_02(facts: FactSet, policy: Policy) -> Verdict:
    lan = facts.need("lan_discovery")
    book = ledger(policy)
    devices = [d for d in lan["devices"] if not d.get("self")]
    rows = []
    for d in lan["devices"]:
        entry = book.get(d["mac"]) if d.get("mac") else None
        rows.append({**d, "registered": entry is not None if d.get("mac") else None,
                     "name": entry.get("name") if entry else None, "owner": entry.get("owner") if entry else None})
    seen = {d["mac"] for d in devices if d.get("mac")}
    ips_by_mac: dict[str, list[str]] = {}
    macs_by_ip: dict[str, list[str]] = {}
    for d in devices:
        if d.get("mac"):
            ips_by_mac.setdefault(d["mac"], []).append(d["ip"])
            macs_by_ip.setdefault(d["ip"], []).append(d["mac"])
    evidence = {
        "network": lan["network"], "method": lan["method"], "devices": rows,
        "ledger_not_seen": [{"mac": m, "name": e.get("name"), "owner": e.get("owner")}
                            for m, e in sorted(book.items()) if m not in seen],
        "ip_conflicts": {ip: macs for ip, macs in macs_by_ip.items() if len(macs) > 1},
        "notes": lan.get("notes", []),
    }
    expected = {"devices": "only MAC addresses listed in network.devices", "ledger_size": len(book)}
    if not devices:
        return Verdict(status=Status.ERROR, message="nothing_seen", params={"network": lan["network"]},
                       evidence=evidence, expected=expected)
    strangers = [d for d in devices if d.get("mac") and d["mac"] not in book]
    unknown = [d for d in devices if not d.get("mac")]
    if strangers:
        return Verdict(status=Status.FAIL, message="fail",
                       params={"devices": [_stranger(d) for d in strangers], "count": len(strangers)},
                       evidence=evidence, expected=expected)
    if unknown:
        return Verdict(status=Status.ERROR, message="no_mac", params={"hosts": [d["ip"] for d in unknown]},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"count": len(devices)}, evidence=evidence,
                   expected=expected)


def _stranger(d: dict[str, Any]) -> str:
    if d.get("vendor"):
        who = printable(d["vendor"])
    elif d.get("locally_administered"):
        who = "locally administered / randomised MAC"
    else:
        who = "vendor unknown"
    return f"{d['mac']} {d['ip']} ({who})"
