"""MLIT-9-4-2: anti-theft — screen lock (PH-01; KDE and Xfce judges in checks/screenlock_desktops.py),
disk encryption (PH-02), removable storage (PH-03)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from agent.config.policy import Policy
from checks import screenlock_desktops
from checks.base import FactSet, Phrase, Status, Verdict, check, error, fact_phrase, phrase
from collectors.processes import find

SS = "/org/gnome/desktop/screensaver/"
LOCK_ENABLED = SS + "lock-enabled"
LOCK_DELAY = SS + "lock-delay"
IDLE_ACTIVATION = SS + "idle-activation-enabled"
IDLE_DELAY = "/org/gnome/desktop/session/idle-delay"
DISABLE_LOCK = "/org/gnome/desktop/lockdown/disable-lock-screen"
MUST_LOCK = (LOCK_ENABLED, LOCK_DELAY, IDLE_DELAY, IDLE_ACTIVATION)


def _gnome(gnome: dict[str, Any], policy: Policy) -> Verdict:
    """GNOME's screen lock as the administrator imposes it (dconf system databases and their locks)."""
    if gnome.get("problem"):
        return error(fact_phrase("screenlock", gnome["problem"]))
    pol = policy["screen_lock"]
    max_idle = pol["max_idle_seconds"]
    expected = {"lock-enabled": True, "idle-delay + lock-delay": f"1..{max_idle} s",
                "locked_keys": list(MUST_LOCK) if pol["require_system_lock"] else []}
    eff = {**gnome.get("defaults", {}), **gnome.get("system", {})}
    missing = [k for k in (LOCK_ENABLED, LOCK_DELAY, IDLE_DELAY) if k not in eff]
    if missing:
        return error(phrase("no_value", keys=missing))
    evidence = {"effective": {k: eff.get(k) for k in (*MUST_LOCK, DISABLE_LOCK) if k in eff},
                "set_by_system": sorted(gnome.get("system", {})), "locked": gnome.get("locks", []),
                "databases": gnome.get("databases", [])}
    idle, delay = eff[IDLE_DELAY], eff[LOCK_DELAY]
    if not isinstance(idle, int) or not isinstance(delay, int) or not isinstance(eff[LOCK_ENABLED], bool):
        return error(phrase("bad_types"), evidence=evidence)
    bad: list[Phrase] = []
    if eff[LOCK_ENABLED] is not True:
        bad.append(phrase("why_lock_disabled"))
    if eff.get(IDLE_ACTIVATION) is False:
        bad.append(phrase("why_idle_activation_off"))
    if eff.get(DISABLE_LOCK) is True:
        bad.append(phrase("why_lock_screen_disabled"))
    if idle == 0:
        bad.append(phrase("why_never_idle"))
    elif idle + delay > max_idle:
        bad.append(phrase("why_too_long", idle=idle, delay=delay, max=max_idle))
    if pol["require_system_lock"]:
        unlocked = [k.rsplit("/", 1)[1] for k in MUST_LOCK if k not in gnome.get("locks", [])]
        if unlocked:
            bad.append(phrase("why_not_locked", keys=unlocked))
    if bad:
        return Verdict(status=Status.FAIL, message="fail", params={"problems": bad}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"seconds": idle + delay}, evidence=evidence,
                   expected=expected)


#: The desktops whose screen lock mamoru reads, each with its judge (facts ``desktops.<name>``).
DESKTOPS: dict[str, Callable[[dict[str, Any], Policy], Verdict]] = {
    "gnome": _gnome, "kde": screenlock_desktops.kde, "xfce": screenlock_desktops.xfce}
#: Worst first: when several desktops can be logged into, the weakest screen lock decides. A desktop that
#: certainly fails makes the host fail even when another cannot be told (that one is named in the message).
_ORDER = (Status.FAIL, Status.ERROR, Status.MANUAL, Status.PASS, Status.NOT_APPLICABLE)


@check("PH-01", needs=("screenlock",))
def PH_01(facts: FactSet, policy: Policy) -> Verdict:
    sl = facts.need("screenlock")
    session = sl["session"]
    seen = {"display_managers": session["display_managers"], "session_files": session["session_files"],
            "looked_for": session["looked_for"],
            "desktop_settings": sorted(k for k, d in sl["desktops"].items() if d.get("installed"))}
    if not session["possible"]:
        if session.get("problem"):
            return error(fact_phrase("screenlock", session["problem"]), evidence={"session": seen})
        return Verdict(status=Status.NOT_APPLICABLE, message="no_session", evidence={"session": seen},
                       params={"display_managers": sorted(session["looked_for"]["display_managers"]),
                               "session_dirs": session["looked_for"]["session_dirs"]})
    # The session files say which desktops someone can log into; only without any that mamoru knows do the
    # installed settings decide (a display manager alone, as a GNOME host with gdm3 and no session file).
    by_session = session.get("desktops", {})
    seen["desktop_sessions"] = by_session
    names = (sorted(n for n in by_session if n in DESKTOPS) if by_session else
             [n for n, d in sl["desktops"].items() if d.get("installed") and n in DESKTOPS])
    judged = [(name, DESKTOPS[name](sl["desktops"].get(name, {"problem": {"code": "no_settings"}}), policy))
              for name in names]
    if not judged:
        return error(phrase("no_known_desktop", desktops=sorted(DESKTOPS)), evidence={"session": seen})
    name, worst = min(judged, key=lambda nv: _ORDER.index(nv[1].status))
    evidence = {"session": seen, "desktop": name,
                **(worst.evidence if isinstance(worst.evidence, dict) else {})}
    if len(judged) == 1:
        return dataclasses.replace(worst, evidence=evidence)
    # Every desktop someone can log into must lock: the weakest decides, and the message names it.
    evidence["desktops"] = {n: str(v.status) for n, v in judged}
    return dataclasses.replace(worst, evidence=evidence, message="several_desktops", params={
        "desktop": name, "verdict": phrase(worst.message, **worst.params),
        "judged": [f"{n}: {v.status}" for n, v in judged]})


@check("PH-02", needs=("disks",))
def PH_02(facts: FactSet, policy: Policy) -> Verdict:
    d = facts.need("disks")
    data_paths = list(policy.get("data_paths") or [])
    expected = {"storage_under": data_paths or ["/ (no data_paths in the policy)"], "encrypted": True}
    if d["data_paths"] != data_paths:
        return error(phrase("other_paths", collected=d["data_paths"] or ["/"], wanted=data_paths),
                     expected=expected)
    if d["problem"]:
        return error(fact_phrase("disks", d["problem"]), expected=expected)
    rows = [{k: p.get(k) for k in ("path", "mount", "fstype", "source", "class", "why")} for p in d["paths"]]
    evidence = {"mode": d["mode"], "paths": rows, "crypttab": d["crypttab"]}
    plain = [r for r in rows if r["class"] == "plain"]
    unknown = [r for r in rows if r["class"] not in ("plain", "encrypted", "memory")]
    if plain:
        return Verdict(status=Status.FAIL, message="fail",
                       params={"paths": [f"{r['path']} ({r['source']})" for r in plain]},
                       evidence=evidence, expected=expected)
    if unknown:
        return error(phrase("unknown_paths", reasons=[phrase("path_why", path=r["path"], why=fact_phrase(
            "disks", r["why"])) for r in unknown]), evidence=evidence, expected=expected)
    how = {json.dumps(r["why"], sort_keys=True): r["why"] for r in rows}
    return Verdict(status=Status.PASS, message="pass",
                   params={"paths": [r["path"] for r in rows],
                           "how": [fact_phrase("disks", how[k]) for k in sorted(how)]},
                   evidence=evidence, expected=expected)


@check("PH-03", needs=("removable", "processes"))
def PH_03(facts: FactSet, policy: Policy) -> Verdict:
    if not policy["removable_storage"]["required"]:
        return Verdict(status=Status.NOT_APPLICABLE, message="not_required")
    rm = facts.need("removable")
    expected = {"usb_storage": "install usb-storage /bin/false (or blacklist), not loaded; or USBGuard blocking"}
    us = rm["modprobe"]["modules"]["usb_storage"]
    controls = []
    if us["install"] and us["install"]["denies"]:
        controls.append(f"install usb-storage {us['install']['command']} ({us['install']['where']})")
    if us["blacklist"]:
        controls.append(f"blacklist usb-storage ({', '.join(us['blacklist'])})")
    ug = rm["usbguard"]
    evidence: dict[str, Any] = {"modprobe_files": rm["modprobe"]["files"], "usb_storage": us,
                                "usbguard": ug, "kernel": rm["kernel"]}
    guard = False
    if ug["installed"] and str(ug["implicit_policy"]).lower() in ("block", "reject"):
        procs = facts.need("processes")
        guard = bool(find(procs["processes"], {"usbguard-daemon"}))
        evidence["usbguard_running"] = guard
        if guard:
            controls.append(f"USBGuard (ImplicitPolicyTarget={ug['implicit_policy']})")
    kernel = rm["kernel"] or {}
    if not guard and kernel.get("readable"):
        if "usb_storage" in kernel.get("builtin", []):
            return Verdict(status=Status.FAIL, message="fail_builtin", evidence=evidence, expected=expected)
        if "usb_storage" in kernel.get("loaded", []):
            return Verdict(status=Status.FAIL, message="fail_loaded", params={"controls": controls},
                           evidence=evidence, expected=expected)
        if kernel.get("modular") is False:
            # No module loading and no built-in driver: this kernel cannot drive USB storage at all.
            return Verdict(status=Status.PASS, message="pass_no_driver", evidence=evidence, expected=expected)
    if not controls:
        return Verdict(status=Status.FAIL, message="fail", evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"controls": controls}, evidence=evidence,
                   expected=expected)
