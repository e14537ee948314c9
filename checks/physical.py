"""MLIT-9-4-2: anti-theft — a password-protected screen lock when away (PH-01, GNOME)."""

from __future__ import annotations

from agent.config.policy import Policy
from checks.base import FactSet, Status, Verdict, check, error

SS = "/org/gnome/desktop/screensaver/"
LOCK_ENABLED = SS + "lock-enabled"
LOCK_DELAY = SS + "lock-delay"
IDLE_ACTIVATION = SS + "idle-activation-enabled"
IDLE_DELAY = "/org/gnome/desktop/session/idle-delay"
DISABLE_LOCK = "/org/gnome/desktop/lockdown/disable-lock-screen"
MUST_LOCK = (LOCK_ENABLED, LOCK_DELAY, IDLE_DELAY, IDLE_ACTIVATION)


@check("PH-01", needs=("screenlock",))
def PH_01(facts: FactSet, policy: Policy) -> Verdict:
    sl = facts.need("screenlock")
    if not sl.get("desktop"):
        return Verdict(status=Status.NOT_APPLICABLE, message="no_desktop")
    if sl.get("problem"):
        return error(f"GNOME settings: {sl['problem']}", f"GNOME の設定を読めません: {sl['problem']}")
    pol = policy["screen_lock"]
    max_idle = pol["max_idle_seconds"]
    expected = {"lock-enabled": True, "idle-delay + lock-delay": f"1..{max_idle} s",
                "locked_keys": list(MUST_LOCK) if pol["require_system_lock"] else []}
    eff = {**sl.get("defaults", {}), **sl.get("system", {})}
    missing = [k for k in (LOCK_ENABLED, LOCK_DELAY, IDLE_DELAY) if k not in eff]
    if missing:
        return error(f"no value found for {missing}", f"{missing} の値が見つかりません")
    evidence = {"effective": {k: eff.get(k) for k in (*MUST_LOCK, DISABLE_LOCK) if k in eff},
                "set_by_system": sorted(sl.get("system", {})), "locked": sl.get("locks", []),
                "databases": sl.get("databases", [])}
    idle, delay = eff[IDLE_DELAY], eff[LOCK_DELAY]
    if not isinstance(idle, int) or not isinstance(delay, int) or not isinstance(eff[LOCK_ENABLED], bool):
        return error("unexpected value types in GNOME settings", "GNOME 設定の値の型が不正です", evidence=evidence)
    bad = []
    if eff[LOCK_ENABLED] is not True:
        bad.append("lock-enabled=false")
    if eff.get(IDLE_ACTIVATION) is False:
        bad.append("idle-activation-enabled=false")
    if eff.get(DISABLE_LOCK) is True:
        bad.append("disable-lock-screen=true")
    if idle == 0:
        bad.append("idle-delay=0 (never)")
    elif idle + delay > max_idle:
        bad.append(f"idle-delay {idle} s + lock-delay {delay} s > {max_idle} s")
    if pol["require_system_lock"]:
        unlocked = [k.rsplit("/", 1)[1] for k in MUST_LOCK if k not in sl.get("locks", [])]
        if unlocked:
            bad.append("not locked by the administrator: " + ", ".join(unlocked))
    if bad:
        return Verdict(status=Status.FAIL, message="fail", params={"problems": bad}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"seconds": idle + delay}, evidence=evidence,
                   expected=expected)
