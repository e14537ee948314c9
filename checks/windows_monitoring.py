"""MN-01 (log forwarding) and MN-02 (monitoring) on Windows, judged from the registry.

Both checks are the Linux ones with a Windows judge beside them (``checks.windows.with_windows``): the
judge that runs is chosen by whether the target produced ``win_monitoring`` facts.

What the registry can and cannot show. A service key says how the service is set to start (``Start``:
0 boot, 1 system, 2 automatic, 3 manual, 4 disabled), not whether it runs: an offline image has no running
state at all, and the ``winreg`` backend reads the same keys. So:

* A tool that is set to start automatically passes, and the message and evidence say it was judged from
  the configuration (the same rule AC-01 applies to a firewall in an image): a monitoring agent that a
  vendor installs to start at boot and that is still set so is what the image can show, and asking a
  person about every such PC would bury the questions that matter.
* A tool set to start manually is a question for a person (``manual``), never a pass: the vendors install
  these tools to start at boot, so "manual" means someone changed it or the tool was never enrolled
  (Defender for Endpoint's ``Sense`` is manual until the PC is onboarded).
* Microsoft Defender Antivirus never passes from its configuration (``offline_pass: false`` in the data
  file): ``WinDefend`` stays set to start when another product takes over and Defender goes passive. Its
  policy keys (``DisableAntiSpyware``, ``DisableRealtimeMonitoring``) can show it off; otherwise the
  question goes to a person.
* Disabled (4), marked for deletion, or a tool whose driver is missing or disabled: installed but inactive.
* Anything unreadable (a damaged or missing hive, a Start value that is not a start type) is ``error`` unless
  another tool passes on its own: never a pass, never "not installed".

For MN-01, Windows Event Forwarding needs two things on the PC: the Subscription Manager policy that
names the collector, and WinRM, which sends the events; which events go is decided by the subscription on
the collector and cannot be seen from the PC, so the message says that too. A forwarding agent's
destination and log selection live in its own configuration file, which is not read: an agent set to start
automatically passes only when the policy does not require TLS (otherwise that is a question).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from agent.config.policy import Policy
from checks import monitoring
from checks.base import FactSet, Phrase, Status, Text, Verdict, error, phrase
from checks.windows import dword, value, with_windows
from collectors.windows.monitoring import WINRM, tables

COLLECTOR = "win_monitoring"
JUDGED_FROM = "registry configuration (service start types and policy keys); running state not observed"
START_TYPES = {0: "boot", 1: "system", 2: "automatic", 3: "manual", 4: "disabled"}


class State(enum.Enum):
    AUTO = "auto"  # set to start at boot (Start 0, 1, 2)
    MANUAL = "manual"  # Start 3
    OFF = "off"  # disabled, marked for deletion, driver missing or disabled, off by policy
    ABSENT = "absent"  # no service key
    UNKNOWN = "unknown"  # the key or its Start value could not be read


@dataclasses.dataclass(frozen=True)
class ServiceState:
    state: State
    why: Phrase | None = None  # for OFF and UNKNOWN: what makes it so, worded per language
    start: int | None = None
    key: str | None = None  # the service key as read (evidence: which source decided)


def unreadable(answer: Mapping[str, Any]) -> Phrase:
    """Why a registry answer could not be read: the kind in words for ja, the backend's message for en."""
    err = answer.get("error") or {}
    kind = str(err.get("kind", "error"))
    return phrase("win_unreadable", where=answer.get("key", "?"), kind=phrase(f"win_kind_{kind}")
                  if kind in ("hive_missing", "hive_unreadable", "hive_corrupted", "unavailable")
                  else phrase("win_kind_error"), detail=err.get("message", "unreadable"))


def service_state(answer: Mapping[str, Any] | None) -> ServiceState:
    if answer is None:
        return ServiceState(State.UNKNOWN, phrase("win_not_read"))
    key = answer.get("key")
    if answer.get("status") == "missing":
        return ServiceState(State.ABSENT, key=key)
    if answer.get("status") != "ok":
        return ServiceState(State.UNKNOWN, unreadable(answer), key=key)
    raw = value(answer, "Start")
    start = dword(raw)
    if start is None or start not in START_TYPES:
        return ServiceState(State.UNKNOWN, phrase("win_bad_start", where=key or "?",
                                                  value="unset" if raw is None else repr(raw)), key=key)
    if dword(value(answer, "DeleteFlag")) == 1:
        return ServiceState(State.OFF, phrase("win_state_deleted"), start, key)
    if start == 4:
        return ServiceState(State.OFF, phrase("win_state_disabled"), start, key)
    return ServiceState(State.MANUAL if start == 3 else State.AUTO, None, start, key)


_RANK = {State.AUTO: 0, State.MANUAL: 1, State.UNKNOWN: 2, State.OFF: 3, State.ABSENT: 4}


def best(states: list[ServiceState]) -> ServiceState:
    """The service of a tool that shows it most active (a tool ships one of several service names)."""
    return min(states, key=lambda s: _RANK[s.state]) if states else ServiceState(State.ABSENT)


def tool_state(tool: Mapping[str, Any], services: Mapping[str, Any]) -> ServiceState:
    """A tool's state: its best service, then each required driver (Sysmon sees nothing without its own)."""
    main = best([service_state(services.get(n)) for n in tool["services"]])
    if main.state in (State.ABSENT, State.OFF, State.UNKNOWN):
        return main
    for driver in tool.get("drivers", ()):
        d = service_state(services.get(driver))
        if d.state == State.UNKNOWN:
            return d
        if d.state == State.ABSENT:
            return ServiceState(State.OFF, phrase("win_state_driver_missing", driver=driver), main.start, main.key)
        if d.state == State.OFF:
            return ServiceState(State.OFF, phrase("win_state_driver_off", driver=driver, why=d.why), main.start,
                                main.key)
    return main


def defender_state(mon: Mapping[str, Any], base: ServiceState) -> ServiceState:
    """Defender's service state, turned off by its Group Policy keys; unknown when the policy is unreadable."""
    if base.state in (State.ABSENT, State.OFF, State.UNKNOWN):
        return base
    for key, name, why in (("defender_policy", "DisableAntiSpyware", "win_state_policy_off"),
                           ("defender_rtp_policy", "DisableRealtimeMonitoring", "win_state_realtime_off")):
        answer = mon[key]
        if answer.get("status") == "error":
            return ServiceState(State.UNKNOWN, unreadable(answer), base.start, base.key)
        if dword(value(answer, name)) == 1:
            return ServiceState(State.OFF, phrase(why), base.start, base.key)
    return base


def _name(tool: Mapping[str, Any]) -> Text:
    return Text(ja=tool["name"]["ja"], en=tool["name"]["en"])


def _evidence(mon: Mapping[str, Any], states: Mapping[str, ServiceState]) -> dict[str, Any]:
    return {"judged_from": JUDGED_FROM, "backend": mon.get("backend"), "source": mon.get("source"),
            "tools": {k: {"state": s.state.value, "key": s.key, "start": s.start,
                          "start_type": START_TYPES.get(s.start) if s.start is not None else None}
                      for k, s in states.items() if s.state != State.ABSENT}}


#: A damaged hive gives the same reason for every service key: the first few say it, the rest are counted.
SHOWN_REASONS = 3


def _cannot_tell(reasons: list[Phrase], **kw: Any) -> Verdict:
    shown: list[Phrase] = reasons[:SHOWN_REASONS]
    if len(reasons) > SHOWN_REASONS:
        shown.append(phrase("win_more", count=len(reasons) - SHOWN_REASONS))
    return error(phrase("win_reasons", reasons=shown), **kw)


# -- MN-02 -----------------------------------------------------------------------------------------------


def mn02_windows(facts: FactSet, policy: Policy) -> Verdict:
    mon = facts.need(COLLECTOR)
    table = tables()["monitors"]
    accepted = [k for k in policy["monitoring"]["accepted_tools"] if k in table]
    expected = {"accepted_tools (Windows)": accepted,
                "state": "at least one set to start automatically (Defender Antivirus: confirmed by a person)"}
    states: dict[str, ServiceState] = {}
    for key in accepted:
        st = tool_state(table[key], mon["services"])
        states[key] = defender_state(mon, st) if key == "defender" else st
    evidence = _evidence(mon, states)
    active = [_name(table[k]) for k, s in states.items()
              if s.state == State.AUTO and table[k].get("offline_pass", True)]
    if active:
        return Verdict(status=Status.PASS, message="win_pass", params={"tools": active}, evidence=evidence,
                       expected=expected)
    unknown = [phrase("win_tool_reason", tool=_name(table[k]), why=s.why) for k, s in states.items()
               if s.state == State.UNKNOWN]
    if unknown:
        return _cannot_tell(unknown, evidence=evidence, expected=expected)
    questions = [phrase("win_item_defender" if k == "defender" else "win_item_manual", tool=_name(table[k]))
                 for k, s in states.items() if s.state in (State.AUTO, State.MANUAL)]
    if questions:
        return Verdict(status=Status.MANUAL, message="win_manual", params={"items": questions}, evidence=evidence,
                       expected=expected)
    off = [phrase("win_tool_reason", tool=_name(table[k]), why=s.why) for k, s in states.items()
           if s.state == State.OFF]
    if off:
        return Verdict(status=Status.FAIL, message="win_fail_inactive", params={"tools": off}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.FAIL, message="win_fail_none", evidence=evidence, expected=expected)


# -- MN-01 -----------------------------------------------------------------------------------------------


def _state_words(s: ServiceState) -> Phrase:
    if s.state == State.ABSENT:
        return phrase("win_state_absent")
    if s.state == State.MANUAL:
        return phrase("win_state_manual")
    return s.why or phrase("win_state_disabled")


def mn01_windows(facts: FactSet, policy: Policy) -> Verdict:
    mon = facts.need(COLLECTOR)
    pol = policy["log_forwarding"]
    table = tables()["forwarders"]
    expected = {"forwarding": "WEF Subscription Manager policy with WinRM set to start automatically, or a "
                "forwarding agent set to start automatically", "tls": "required" if pol["require_tls"] else
                "recommended"}
    wef = mon["wef"]
    subs = wef["subscriptions"]
    usable = [s for s in subs if s["problem"] is None]
    secure = [s for s in usable if s["scheme"] == "https" or not pol["require_tls"]]
    winrm = service_state(mon["services"].get(WINRM))
    agents = {k: tool_state(t, mon["services"]) for k, t in table.items()}
    evidence = _evidence(mon, agents)
    evidence.update(wef_policy={k: wef["policy"].get(k) for k in ("key", "status")}, subscriptions=subs,
                    winrm={"state": winrm.state.value, "key": winrm.key, "start": winrm.start})
    servers = sorted({str(s["server"]) for s in secure})
    unknown: list[Phrase] = []
    questions: list[Phrase] = []
    problems: list[Phrase] = []

    if secure and winrm.state == State.AUTO:
        return Verdict(status=Status.PASS, message="win_pass_wef", params={"servers": servers}, evidence=evidence,
                       expected=expected)
    auto = [_name(table[k]) for k, s in agents.items() if s.state == State.AUTO]
    if auto and not pol["require_tls"]:
        return Verdict(status=Status.PASS, message="win_pass_agent", params={"agents": auto}, evidence=evidence,
                       expected=expected)

    if wef["policy"].get("status") == "error":
        unknown.append(unreadable(wef["policy"]))
    unknown += [phrase("win_wef_garbage", name=s["name"], problem=phrase(f"win_wef_{s['problem']}"))
                for s in subs if s["problem"] is not None]
    if secure:
        if winrm.state == State.UNKNOWN and winrm.why is not None:
            unknown.append(winrm.why)
        elif winrm.state == State.MANUAL:
            questions.append(phrase("win_item_wef_manual", servers=servers))
        else:
            problems.append(phrase("win_problem_winrm", servers=servers, state=_state_words(winrm)))
    elif usable:  # every server is plain HTTP and the policy requires TLS
        problems.append(phrase("win_problem_tls", servers=sorted({str(s["server"]) for s in usable})))
    for k, s in agents.items():
        if s.state == State.UNKNOWN and s.why is not None:
            unknown.append(phrase("win_tool_reason", tool=_name(table[k]), why=s.why))
        elif s.state == State.AUTO:
            questions.append(phrase("win_item_agent_tls", agent=_name(table[k])))
        elif s.state == State.MANUAL:
            questions.append(phrase("win_item_agent_manual", agent=_name(table[k])))
        elif s.state == State.OFF:
            problems.append(phrase("win_tool_reason", tool=_name(table[k]), why=_state_words(s)))

    if unknown:
        return _cannot_tell(unknown, evidence=evidence, expected=expected)
    if not pol["required"]:
        return Verdict(status=Status.NOT_APPLICABLE, message="not_required", evidence=evidence, expected=expected)
    if questions:
        return Verdict(status=Status.MANUAL, message="win_manual", params={"items": questions}, evidence=evidence,
                       expected=expected)
    if problems:
        return Verdict(status=Status.FAIL, message="win_fail", params={"problems": problems}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.FAIL, message="win_fail_none", evidence=evidence, expected=expected)


MN_01 = with_windows(monitoring.MN_01, COLLECTOR, mn01_windows)
MN_02 = with_windows(monitoring.MN_02, COLLECTOR, mn02_windows)
