"""Windows judges that need the running PC: AV-01/02/03 (Defender, Security Center), AV-04 (updates), PH-02 (BitLocker).

Their facts come from the PowerShell batch (``collectors/windows/live.py``). Each field is checked for its
type before it is believed: a part that timed out, failed or answered garbage makes the judge say
``error``, never ``pass``. Offline (a disk image) Defender's registry switches can show a PC *unprotected*
(service disabled, Defender switched off by policy): that is a ``fail``; nothing in an image can show it
protected, so otherwise the verdict is ``error`` with the reason ("needs the running PC").

Security Center's ``productState`` is an undocumented bit field (Microsoft publishes no layout; the layout
used here is the one every public decoder agrees on): bits 12-15 the product state (1 on, 0 off, 2 snoozed,
3 expired), bit 4 "signatures out of date", bits 8-11 the owner (1 = Windows, i.e. Defender itself).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from agent.config.policy import Policy
from checks import malware, physical
from checks.base import FactSet, Phrase, Status, Verdict, error, phrase
from checks.windows import DISABLED, dword, english, error_phrase, value, with_windows

DAY = 86400.0
#: AMRunningMode values (Microsoft Learn, "Microsoft Defender Antivirus compatibility"): only Normal protects.
ACTIVE_MODE = "Normal"
#: CIM status codes: the namespace or class does not exist on this Windows.
CIM_ABSENT = (3, 5)
CIM_ACCESS_DENIED = 2


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def decode_state(state: Any) -> dict[str, Any] | None:
    """Security Center's productState, decoded; None when it is not a 24-bit number."""
    s = _int(state)
    if s is None or not 0 <= s < 1 << 24:
        return None
    code = (s >> 12) & 0xF
    return {"state": {0: "off", 1: "on", 2: "snoozed", 3: "expired"}.get(code, f"unknown ({code})"),
            "up_to_date": not s & 0x10, "windows": (s >> 8) & 0xF == 1, "hex": f"0x{s:06x}"}


def _offline_off(d: Mapping[str, Any], *, realtime: bool) -> list[Phrase]:
    """What in the registry shows Defender switched off (never what shows it on)."""
    off = []
    if dword(value(d.get("service"), "Start")) == DISABLED:
        off.append(phrase("win.av.service_disabled"))
    if dword(value(d.get("policy"), "DisableAntiSpyware")) == 1:
        off.append(phrase("win.av.policy_off"))
    if realtime and dword(value(d.get("rtp_policy"), "DisableRealtimeMonitoring")) == 1:
        off.append(phrase("win.av.policy_realtime_off"))
    return off


def why_live(err: Mapping[str, Any] | None) -> Any:
    """Why the running PC could not be asked, worded per language ("" when nothing was recorded)."""
    return error_phrase(err) if err else ""


def _state(state: str) -> Any:
    """A Security Center product state in words ("unknown (5)" stays as it is)."""
    return phrase(f"win.av.state.{state}") if state in ("on", "off", "snoozed", "expired") else state


class _Av:
    """What the live facts say about Defender and the other products, each field checked."""

    def __init__(self, d: Mapping[str, Any]) -> None:
        self.unknown: list[Phrase] = []
        self.notes: list[Phrase] = []
        df = d.get("defender")
        self.defender: dict[str, Any] | None = None
        if d.get("defender_error"):
            e = d["defender_error"]
            self.unknown.append(phrase("win.av.defender_error", error=error_phrase(e), kind=e.get("kind")))
        elif not isinstance(df, dict):
            self.unknown.append(phrase("win.av.defender_not_cim"))
        elif df.get("available") is False:
            self.notes.append(phrase("win.av.defender_absent", code=df.get("cim_status")))
        elif not isinstance(df.get("AMRunningMode"), str) or _bool(df.get("AntivirusEnabled")) is None \
                or _bool(df.get("AMServiceEnabled")) is None:
            self.unknown.append(phrase("win.av.defender_types"))
        else:
            self.defender = dict(df)
        sc = d.get("security_center")
        self.products: list[dict[str, Any]] | None = None
        self.no_center = False
        if d.get("security_center_error"):
            e = d["security_center_error"]
            self.unknown.append(phrase("win.av.center_error", error=error_phrase(e), kind=e.get("kind")))
        elif not isinstance(sc, dict):
            self.unknown.append(phrase("win.av.center_not_cim"))
        elif sc.get("available") is False and _int(sc.get("cim_status")) in CIM_ABSENT:
            self.no_center = True
            self.notes.append(phrase("win.av.no_center"))
        elif sc.get("available") is True and isinstance(sc.get("products"), list):
            self.products = []
            for p in sc["products"]:
                state = decode_state(p.get("productState")) if isinstance(p, dict) else None
                if state is None:
                    entry = p if isinstance(p, dict) else {}
                    self.unknown.append(phrase("win.av.bad_product", name=str(entry.get("displayName") or "?")[:80],
                                               state=repr(entry.get("productState"))[:40]))
                    continue
                self.products.append({"name": str(p.get("displayName") or "?"), **state})
        else:
            self.unknown.append(phrase("win.av.center_unexpected", detail=str(sc)[:80]))

    @property
    def defender_mode(self) -> str | None:
        return self.defender["AMRunningMode"] if self.defender else None

    @property
    def defender_active(self) -> bool:
        d = self.defender
        return bool(d and d["AMRunningMode"] == ACTIVE_MODE and d["AMServiceEnabled"] and d["AntivirusEnabled"])

    def others_on(self) -> list[dict[str, Any]]:
        return [p for p in self.products or [] if p["state"] == "on" and not p["windows"]]

    def defender_problem(self) -> Phrase:
        d = self.defender
        if d is None:
            return phrase("win.av.not_installed")
        if d["AMRunningMode"] != ACTIVE_MODE:
            return phrase("win.av.mode", mode=d["AMRunningMode"])
        return phrase("win.av.off", service=d["AMServiceEnabled"], antivirus=d["AntivirusEnabled"])

    def evidence(self, d: Mapping[str, Any]) -> dict[str, Any]:
        keep = ("AMRunningMode", "AMServiceEnabled", "AntivirusEnabled", "RealTimeProtectionEnabled",
                "IsTamperProtected", "AntivirusSignatureAge", "AntivirusSignatureLastUpdated",
                "AntivirusSignatureVersion")
        return {"via": d.get("via"), "defender": {k: self.defender.get(k) for k in keep} if self.defender else None,
                "security_center_products": self.products, "notes": [english(n) for n in self.notes],
                "registry": {"WinDefend Start": value(d.get("service"), "Start"),
                             "DisableAntiSpyware": value(d.get("policy"), "DisableAntiSpyware"),
                             "DisableRealtimeMonitoring": value(d.get("rtp_policy"), "DisableRealtimeMonitoring")}}


def _offline(d: Mapping[str, Any], *, realtime: bool, evidence: Any, expected: Any) -> Verdict:
    off = _offline_off(d, realtime=realtime)
    if off:
        return Verdict(status=Status.FAIL, message="win_offline_off", params={"problems": off}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.ERROR, message="win_needs_live", params={"why": why_live(d.get("defender_error"))},
                   evidence=evidence, expected=expected)


def _unknown(av: _Av, evidence: Any, expected: Any) -> Verdict:
    return Verdict(status=Status.ERROR, message="win_unknown", params={"reasons": av.unknown + av.notes},
                   evidence=evidence, expected=expected)


def av01_windows(facts: FactSet, policy: Policy) -> Verdict:
    d = facts.need("win_defender")
    expected = {"Defender": "AMRunningMode Normal, service and anti-virus enabled",
                "or another product": "Security Center productState on"}
    if not d.get("live"):
        return _offline(d, realtime=False, evidence={"registry": _Av(d).evidence(d)["registry"]},
                        expected=expected)
    av = _Av(d)
    evidence = av.evidence(d)
    names = (["Microsoft Defender"] if av.defender_active else []) + [p["name"] for p in av.others_on()]
    if names:
        return Verdict(status=Status.PASS, message="win_pass", params={"products": names}, evidence=evidence,
                       expected=expected)
    if av.unknown or av.no_center:
        return _unknown(av, evidence, expected)
    others = [phrase("win.av.product_state", name=p["name"], state=_state(p["state"]))
              for p in av.products or [] if not p["windows"]]
    return Verdict(status=Status.FAIL, message="win_fail", params={"defender": av.defender_problem(),
                                                                   "others": others}, evidence=evidence,
                   expected=expected)


def av02_windows(facts: FactSet, policy: Policy) -> Verdict:
    d = facts.need("win_defender")
    expected = {"Defender": "AMRunningMode Normal and RealTimeProtectionEnabled",
                "or another product": "Security Center productState on"}
    if not d.get("live"):
        return _offline(d, realtime=True, evidence={"registry": _Av(d).evidence(d)["registry"]},
                        expected=expected)
    av = _Av(d)
    evidence = av.evidence(d)
    rtp = _bool(av.defender.get("RealTimeProtectionEnabled")) if av.defender else None
    names = (["Microsoft Defender"] if av.defender_active and rtp else []) + [p["name"] for p in av.others_on()]
    if names:
        return Verdict(status=Status.PASS, message="win_pass", params={"products": names}, evidence=evidence,
                       expected=expected)
    if av.defender_active and rtp is None:
        av.unknown.append(phrase("win.av.realtime_unrecorded"))
    if av.unknown or av.no_center:
        return _unknown(av, evidence, expected)
    problem = phrase("win.av.realtime_off") if av.defender_active else av.defender_problem()
    return Verdict(status=Status.FAIL, message="win_fail", params={"problems": [problem]}, evidence=evidence,
                   expected=expected)


def _age_days(df: Mapping[str, Any], now: Any) -> float | None:
    """Defender's signature age in days: from AntivirusSignatureLastUpdated when readable, else the Age field."""
    last = df.get("AntivirusSignatureLastUpdated")
    if isinstance(last, str) and isinstance(now, (int, float)):
        try:
            when = dt.datetime.fromisoformat(last.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, (now - when.timestamp()) / DAY)
    age = _int(df.get("AntivirusSignatureAge"))
    return float(age) if age is not None and age < 1 << 31 else None


def av03_windows(facts: FactSet, policy: Policy) -> Verdict:
    d = facts.need("win_defender")
    max_days = policy["antivirus"]["signature_max_age_days"]
    expected = {"signature_age_days": f"<= {max_days}", "other products": "Security Center: up to date"}
    if not d.get("live"):
        return Verdict(status=Status.ERROR, message="win_needs_live",
                       params={"why": why_live(d.get("defender_error"))}, expected=expected)
    av = _Av(d)
    evidence = av.evidence(d)
    judged: list[Phrase] = []
    stale: list[Phrase] = []
    if av.defender_active and av.defender is not None:
        age = _age_days(av.defender, d.get("collected_at"))
        evidence["defender_signature_age_days"] = None if age is None else round(age, 1)
        if age is None:
            av.unknown.append(phrase("win.av.no_signature_date"))
        else:
            judged.append(phrase("win.av.defender_age", days=f"{age:.1f}"))
            if age > max_days:
                stale.append(phrase("win.av.defender_stale", days=f"{age:.1f}", max=max_days))
    for p in av.others_on():
        judged.append(phrase("win.av.center_current" if p["up_to_date"] else "win.av.center_outdated",
                             name=p["name"]))
        if not p["up_to_date"]:
            stale.append(phrase("win.av.center_stale", name=p["name"]))
    if stale:
        return Verdict(status=Status.FAIL, message="win_fail", params={"problems": stale}, evidence=evidence,
                       expected=expected)
    if judged and not av.unknown:
        return Verdict(status=Status.PASS, message="win_pass", params={"products": judged}, evidence=evidence,
                       expected=expected)
    if av.unknown or av.no_center:
        return _unknown(av, evidence, expected)
    return Verdict(status=Status.FAIL, message="no_product", evidence=evidence, expected=expected)


# -- PH-02 BitLocker -------------------------------------------------------------------------------------

_DRIVE = re.compile(r"^([A-Za-z]):")
PROTECTION = {0: "off", 1: "on", 2: "unknown (locked?)"}
FIXED_TYPES = (0, 1)  # VolumeType: 0 operating system, 1 fixed data, 2 removable


def ph02_windows(facts: FactSet, policy: Policy) -> Verdict:
    b = facts.need("win_bitlocker")
    paths = [p for p in (policy.get("data_paths") or []) if isinstance(p, str)]
    letters = sorted({m.group(1).upper() + ":" for p in paths if (m := _DRIVE.match(p))})
    expected = {"volumes": letters or "every fixed volume", "GetProtectionStatus()": "1 (protection on)"}
    if not b.get("live"):
        return Verdict(status=Status.ERROR, message="win_needs_live", params={"why": why_live(b.get("error"))},
                       expected=expected)
    if b.get("error"):
        e = b["error"]
        return error(phrase("win_status_error", error=error_phrase(e), kind=e.get("kind")), evidence={"error": e},
                     expected=expected)
    v = b.get("value")
    if isinstance(v, dict) and v.get("available") is False:
        code = _int(v.get("cim_status"))
        msg = "win_access_denied" if code == CIM_ACCESS_DENIED else "win_no_bitlocker"
        return Verdict(status=Status.ERROR, message=msg, params={"code": code}, evidence={"via": b.get("via")},
                       expected=expected)
    if not (isinstance(v, dict) and isinstance(v.get("volumes"), list)):
        return error(f"BitLocker status: unexpected answer {str(v)[:80]}", "BitLocker の状態の形式が不正です",
                     expected=expected)
    rows, on, off = [], [], []
    unknown: list[Phrase] = []
    for vol in v["volumes"]:
        if not isinstance(vol, dict):
            unknown.append(phrase("win_bad_volume", entry=str(vol)[:60]))
            continue
        raw_letter = vol.get("DriveLetter")
        letter = raw_letter if isinstance(raw_letter, str) else None
        vtype = _int(vol.get("VolumeType"))
        name = letter or str(vol.get("DeviceID") or "?")
        if letters and (letter or "").upper() not in letters:
            continue
        if not letters and vtype is not None and vtype not in FIXED_TYPES:
            continue
        status, rc = _int(vol.get("ProtectionStatus")), _int(vol.get("protection_rc"))
        rows.append({"volume": name, "VolumeType": vtype, "ProtectionStatus": status, "rc": rc,
                     "ConversionStatus": vol.get("ConversionStatus"),
                     "EncryptionPercentage": vol.get("EncryptionPercentage"),
                     "cached_ProtectionStatus": vol.get("cached_ProtectionStatus")})
        if rc != 0 or status not in (0, 1):
            said = PROTECTION.get(status, status) if status is not None else "none"
            unknown.append(phrase("win_protection_unknown", volume=name, status=phrase(f"win_protection_{said}")
                                  if said in ("off", "on", "none") else phrase("win_protection_locked")
                                  if status == 2 else said, rc=rc))
        elif status == 1:
            on.append(name)
        else:
            off.append(name)
    missing = [x for x in letters if x not in {str(r["volume"]).upper() for r in rows}]
    unknown += [phrase("win_no_volume", volume=x) for x in missing]
    evidence = {"via": b.get("via"), "volumes": rows, "data_paths": paths}
    if off:
        return Verdict(status=Status.FAIL, message="win_fail", params={"volumes": off}, evidence=evidence,
                       expected=expected)
    if unknown or not on:
        return error(phrase("win_undetermined", reasons=unknown) if unknown else phrase("win_no_fixed_volume"),
                     evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="win_pass", params={"volumes": on}, evidence=evidence,
                   expected=expected)


AV_01 = with_windows(malware.AV_01, "win_defender", av01_windows)
AV_02 = with_windows(malware.AV_02, "win_defender", av02_windows)
AV_03 = with_windows(malware.AV_03, "win_defender", av03_windows)
PH_02 = with_windows(physical.PH_02, "win_bitlocker", ph02_windows)


# -- AV-04 updates ---------------------------------------------------------------------------------------

#: Windows quality updates come once a month (the second Tuesday): a fully patched PC's newest update can
#: be this many days old before the next one is even published.
RELEASE_CYCLE_DAYS = 31


def av04_windows(facts: FactSet, policy: Policy) -> Verdict:
    h = facts.need("win_hotfix")
    window = policy["updates"]["max_pending_days"]
    limit = window + RELEASE_CYCLE_DAYS
    expected = {"newest installed update": f"<= {limit} days old (monthly release + max_pending_days {window})"}
    if not h.get("live"):
        return Verdict(status=Status.ERROR, message="win_needs_live", params={"why": why_live(h.get("error"))},
                       expected=expected)
    if h.get("error"):
        e = h["error"]
        return error(phrase("win_status_error", error=error_phrase(e), kind=e.get("kind")), evidence={"error": e},
                     expected=expected)
    v = h.get("value")
    rows = v.get("hotfixes") if isinstance(v, dict) else None
    now = h.get("collected_at")
    if not isinstance(rows, list) or not isinstance(now, (int, float)):
        return error(f"installed updates: unexpected answer {str(v)[:80]}", "適用済みの更新の形式が不正です",
                     expected=expected)
    dated: list[tuple[float, str]] = []
    for r in rows:
        on = r.get("InstalledOn") if isinstance(r, dict) else None
        try:
            when = dt.datetime.fromisoformat(on.replace("Z", "+00:00")) if isinstance(on, str) else None
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            dated.append((when.timestamp(), str(r.get("HotFixID") or "?")))
    evidence = {"via": h.get("via"), "updates": len(rows), "dated": len(dated)}
    if not dated:
        return error("no installed update with an installation date", "インストール日の分かる更新がありません",
                     evidence=evidence, expected=expected)
    newest, kb = max(dated)
    days = max(0, int((now - newest) // DAY))
    evidence.update(newest=kb, newest_installed=dt.datetime.fromtimestamp(newest, dt.UTC).date().isoformat(),
                    age_days=days)
    if days > limit:
        return Verdict(status=Status.FAIL, message="win_fail", params={"kb": kb, "days": days, "limit": limit},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="win_pass", params={"kb": kb, "days": days}, evidence=evidence,
                   expected=expected)


AV_04 = with_windows(malware.AV_04, "win_hotfix", av04_windows)
