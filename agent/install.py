"""``mamoru agent install``: the platform's own scheduler runs ``mamoru agent run``; no daemon of ours.

What is generated, per scheduler (text only here; ``agent.cli.agent_cmd`` writes it and keeps a manifest):

- systemd: ``mamoru-agent.service`` (oneshot, ``Nice=10``, ``IOSchedulingClass=idle``, hardened so that the
  audit can still read the whole system: ``ProtectSystem=strict`` makes it all read-only except the reports
  directory, ``ProtectHome=read-only`` still lets it read ``authorized_keys``) and ``mamoru-agent.timer``
  (``Persistent=true``: a run missed while the machine was off happens at the next boot;
  ``RandomizedDelaySec`` spreads a fleet's runs);
- cron, where systemd is absent: one ``/etc/cron.d`` line;
- macOS: a LaunchDaemon plist with ``StartCalendarInterval``, made with ``plistlib``;
- Windows: a Task Scheduler XML (``StartWhenAvailable``, SYSTEM, ``HighestAvailable``), made with
  ``xml.etree``, registered with ``schtasks /Create /XML`` (an argv list, never a shell string).

Every POSIX path that goes into a unit or a crontab must match ``agent.schedule.SAFE_PATH``, so nothing in
the config can change what systemd or the shell parses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import plistlib
import subprocess
import xml.etree.ElementTree as ET

from agent.errors import ConfigError
from agent.schedule import SAFE_PATH

UNIT = "mamoru-agent"
UNIT_DIR = "/etc/systemd/system"
SERVICE_PATH = f"{UNIT_DIR}/{UNIT}.service"
TIMER_PATH = f"{UNIT_DIR}/{UNIT}.timer"
WANTS_LINK = f"{UNIT_DIR}/timers.target.wants/{UNIT}.timer"
CRON_PATH = "/etc/cron.d/mamoru-agent"
PLIST_LABEL = "jp.mamoru.agent"
PLIST_PATH = f"/Library/LaunchDaemons/{PLIST_LABEL}.plist"
TASK_NAME = r"\mamoru\agent"
TASK_NS = "http://schemas.microsoft.com/windows/2004/02/mit/task"
EVERY = ("hourly", "daily", "weekly")
#: The minute and hour the schedules aim at (03:17 local; the timer adds up to RandomizedDelaySec to it).
MINUTE, HOUR = 17, 3
RANDOM_DELAY = {"hourly": "5min", "daily": "30min", "weekly": "1h"}
KINDS = ("systemd", "cron", "launchd", "schtasks")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job:
    mamoru: str  # the program the scheduler starts
    config: str  # agent.yaml
    reports: str
    every: str = "daily"

    def argv(self) -> list[str]:
        return [self.mamoru, "agent", "run", "--config", self.config]

    def check_posix(self) -> None:
        for name in ("mamoru", "config", "reports"):
            value = getattr(self, name)
            if not SAFE_PATH.fullmatch(value):
                raise ConfigError(f"{name} {value!r}: use an absolute path of letters, digits, '.', '_', '-' and "
                                  "'/' only, so that it cannot change the generated unit or crontab")
        if self.every not in EVERY:
            raise ConfigError(f"--every {self.every!r}: one of {', '.join(EVERY)}")


def systemd_units(job: Job) -> dict[str, str]:
    """{path: content} of the service and its timer."""
    job.check_posix()
    calendar = {"hourly": "hourly", "daily": f"*-*-* {HOUR:02d}:{MINUTE:02d}:00",
                "weekly": f"Sun *-*-* {HOUR:02d}:{MINUTE:02d}:00"}[job.every]
    service = f"""[Unit]
Description=mamoru audit of this machine (MLIT personal-information safeguards)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart={" ".join(job.argv())}
# 1: a finding failed (the scan worked; the report says what failed). 4: another run was still going, so this
# one did nothing. 3 (something could not be judged) stays a failed run, visible in systemctl --failed.
SuccessExitStatus=1 4
Nice=10
IOSchedulingClass=idle
CPUSchedulingPolicy=batch
UMask=0027
# Read everything, write only the reports: the audit must read /etc, /proc, /sys and home directories.
ProtectSystem=strict
ReadWritePaths={job.reports}
ProtectHome=read-only
PrivateTmp=true
NoNewPrivileges=true
RestrictSUIDSGID=true
ProtectKernelModules=true
ProtectKernelTunables=true
ProtectControlGroups=true
ProtectClock=true
LockPersonality=true
RestrictRealtime=true
RestrictNamespaces=true
SystemCallArchitectures=native
StandardOutput=journal
StandardError=journal
"""
    timer = f"""[Unit]
Description=Run the mamoru audit {job.every}

[Timer]
OnCalendar={calendar}
RandomizedDelaySec={RANDOM_DELAY[job.every]}
Persistent=true
Unit={UNIT}.service

[Install]
WantedBy=timers.target
"""
    return {SERVICE_PATH: service, TIMER_PATH: timer}


def cron_fields(every: str) -> str:
    return {"hourly": f"{MINUTE} * * * *", "daily": f"{MINUTE} {HOUR} * * *", "weekly": f"{MINUTE} {HOUR} * * 0"}[every]


def cron_file(job: Job) -> str:
    job.check_posix()
    return (f"# mamoru: {job.every} audit of this machine; reports in {job.reports}\n"
            f"{cron_fields(job.every)} root {' '.join(job.argv())}\n")


def next_cron_run(every: str, now: dt.datetime) -> dt.datetime:
    """The next time the cron line above fires after ``now`` (local, naive)."""
    t = now.replace(second=0, microsecond=0, minute=MINUTE)
    if every == "hourly":
        return t if t > now else t + dt.timedelta(hours=1)
    t = t.replace(hour=HOUR)
    step = dt.timedelta(days=1)
    while t <= now or (every == "weekly" and t.isoweekday() != 7):
        t += step
    return t


def launchd_plist(job: Job) -> bytes:
    """The LaunchDaemon (runs as root); ``StartCalendarInterval`` fires a missed run when the Mac wakes."""
    interval: dict[str, int] = {"Minute": MINUTE}
    if job.every != "hourly":
        interval["Hour"] = HOUR
    if job.every == "weekly":
        interval["Weekday"] = 0
    doc = {"Label": PLIST_LABEL, "ProgramArguments": job.argv(), "StartCalendarInterval": interval,
           "RunAtLoad": False, "Nice": 10, "LowPriorityIO": True, "ProcessType": "Background",
           "StandardOutPath": f"{job.reports}/mamoru-agent.stdout.log",
           "StandardErrorPath": f"{job.reports}/mamoru-agent.stderr.log"}
    return plistlib.dumps(doc, fmt=plistlib.FMT_XML)


def task_xml(job: Job) -> bytes:
    """Task Scheduler 1.2 XML, UTF-16 as ``schtasks /XML`` expects it."""
    ET.register_namespace("", TASK_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{TASK_NS}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    task = ET.Element(f"{{{TASK_NS}}}Task", {"version": "1.2"})
    info = sub(task, "RegistrationInfo")
    sub(info, "Description", "mamoru audit of this PC (MLIT personal-information safeguards)")
    sub(info, "URI", TASK_NAME)
    trigger = sub(sub(task, "Triggers"), "CalendarTrigger")
    sub(trigger, "StartBoundary", f"2026-01-04T{HOUR:02d}:{MINUTE:02d}:00")  # a Sunday, for weekly
    sub(trigger, "Enabled", "true")
    sub(trigger, "RandomDelay", {"hourly": "PT5M", "daily": "PT30M", "weekly": "PT1H"}[job.every])
    if job.every == "hourly":
        rep = sub(trigger, "Repetition")
        sub(rep, "Interval", "PT1H")
        sub(rep, "StopAtDurationEnd", "false")
    if job.every == "weekly":
        week = sub(trigger, "ScheduleByWeek")
        sub(week, "WeeksInterval", "1")
        sub(sub(week, "DaysOfWeek"), "Sunday")
    else:
        sub(sub(trigger, "ScheduleByDay"), "DaysInterval", "1")
    principal = sub(sub(task, "Principals"), "Principal", id="System")
    sub(principal, "UserId", "S-1-5-18")  # LocalSystem
    sub(principal, "RunLevel", "HighestAvailable")
    settings = sub(task, "Settings")
    for tag, text in (("MultipleInstancesPolicy", "IgnoreNew"), ("DisallowStartIfOnBatteries", "false"),
                      ("StopIfGoingOnBatteries", "false"), ("StartWhenAvailable", "true"),
                      ("RunOnlyIfNetworkAvailable", "false"), ("ExecutionTimeLimit", "PT2H"),
                      ("Enabled", "true"), ("Priority", "7")):
        sub(settings, tag, text)
    exec_ = sub(sub(task, "Actions", Context="System"), "Exec")
    sub(exec_, "Command", job.mamoru)
    sub(exec_, "Arguments", subprocess.list2cmdline(job.argv()[1:]))
    ET.indent(task)
    return b"\xff\xfe" + ET.tostring(task, encoding="unicode", xml_declaration=False).join(
        ['<?xml version="1.0" encoding="UTF-16"?>\n', "\n"]).encode("utf-16-le")


def schtasks_create(xml_path: str) -> list[str]:
    return ["schtasks", "/Create", "/XML", xml_path, "/TN", TASK_NAME, "/F"]


def schtasks_delete() -> list[str]:
    return ["schtasks", "/Delete", "/TN", TASK_NAME, "/F"]
