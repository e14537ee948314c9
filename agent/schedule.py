"""The daily signed scan, as a systemd service + timer pair or a cron line.

Only text is produced here; ``mamoru schedule --install`` writes it. Every
path placed in a unit or a crontab must match ``SAFE_PATH`` (no blanks,
quotes, ``%``, ``$`` or backslashes), so nothing from the policy or the
command line can change what the shell or systemd parses. The report file
name carries the UTC time of the run, so the reports of a directory form the
series that ``mamoru verify --chain`` checks. A finding that fails makes
``mamoru scan`` exit 1; the service treats that as success, since the scan
itself worked (the report says what failed).
"""

from __future__ import annotations

import dataclasses
import re

from agent.errors import ConfigError

SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
SAFE_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
UNIT = "mamoru-scan"
SERVICE_PATH = f"/etc/systemd/system/{UNIT}.service"
TIMER_PATH = f"/etc/systemd/system/{UNIT}.timer"
WANTS_LINK = f"/etc/systemd/system/timers.target.wants/{UNIT}.timer"
CRON_PATH = "/etc/cron.d/mamoru"
DEFAULT_KEY = "/etc/mamoru/signing_key"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Schedule:
    mamoru: str
    report_dir: str
    policy: str | None = None
    sign_key: str | None = DEFAULT_KEY
    at: str = "03:00"

    def __post_init__(self) -> None:
        for name in ("mamoru", "report_dir", "policy", "sign_key"):
            value = getattr(self, name)
            if value is not None and not SAFE_PATH.fullmatch(value):
                raise ConfigError(f"{name} {value!r}: use an absolute path of letters, digits, '.', '_', '-' and '/'"
                                  " only, so that it cannot change the generated unit or crontab")
        if not SAFE_TIME.fullmatch(self.at):
            raise ConfigError(f"--at {self.at!r}: give a time as HH:MM (24 h)")

    def scan_argv(self, stamp: str) -> list[str]:
        """The scan command; ``stamp`` is the shell text that expands to the run's time."""
        argv = [self.mamoru, "scan", "--quiet"]
        if self.policy:
            argv += ["--policy", self.policy]
        if self.sign_key:
            argv += ["--sign-key", self.sign_key]
        argv += ["--output", f"{self.report_dir.rstrip('/')}/report-{stamp}.json"]
        return argv


def systemd_units(s: Schedule) -> dict[str, str]:
    """{path: content} of the service and the timer."""
    # systemd expands %specifiers and $VARS itself: %% and $$ reach the shell as % and $.
    command = " ".join(s.scan_argv("$$(date -u +%%Y%%m%%dT%%H%%M%%SZ)"))
    service = f"""[Unit]
Description=mamoru audit of this machine (MLIT personal-information safeguards)
After=network-online.target

[Service]
Type=oneshot
# Exit status 1 means a finding failed: the scan worked, and the report says what failed. Exit 3 (something
# could not be judged: an error finding, an unreachable target) stays a failed run, so that it shows in
# systemctl --failed: a scheduled audit that could not look must never read as green.
SuccessExitStatus=1
Nice=10
IOSchedulingClass=idle
UMask=0027
ExecStartPre=/bin/mkdir -p -m 0750 {s.report_dir}
ExecStart=/bin/sh -c 'exec {command}'
"""
    hour, minute = s.at.split(":")
    timer = f"""[Unit]
Description=Run the mamoru audit daily

[Timer]
OnCalendar=*-*-* {hour}:{minute}:00
RandomizedDelaySec=30min
Persistent=true

[Install]
WantedBy=timers.target
"""
    return {SERVICE_PATH: service, TIMER_PATH: timer}


def cron_line(s: Schedule) -> str:
    """One /etc/cron.d line (cron turns ``\\%`` into ``%``; a bare ``%`` would end the command)."""
    hour, minute = s.at.split(":")
    command = " ".join(s.scan_argv(r"$(date -u +\%Y\%m\%dT\%H\%M\%SZ)"))
    return (f"# mamoru: daily audit of this machine; reports in {s.report_dir}\n"
            f"{int(minute)} {int(hour)} * * * root mkdir -p -m 0750 {s.report_dir} && {command}\n")
