"""``mamoru schedule``: print (or, with ``--install``, write) a daily signed scan for systemd or cron."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from agent.cli.common import note


def _default_mamoru() -> str:
    found = shutil.which("mamoru")
    return str(Path(found).resolve().parent / "mamoru") if found else str(Path(sys.argv[0]).resolve())


def _write(root: Path, path: str, content: str) -> Path:
    from reports.atomic import write_atomic

    dest = root / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, content.encode("utf-8"), mode=0o644)
    return dest


@click.command("schedule")
@click.option("--kind", type=click.Choice(["systemd", "cron"]), default="systemd", show_default=True,
              help="A systemd service + timer pair, or a line for /etc/cron.d.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Policy file the scheduled scan uses (its schedule.report_dir is where reports go).")
@click.option("--sign-key", "sign_key", default="/etc/mamoru/signing_key", show_default=True,
              help="Key that signs each report (create it with mamoru keygen --output PATH).")
@click.option("--no-sign", is_flag=True, help="Do not sign the reports.")
@click.option("--at", "at", default="03:00", show_default=True, help="Time of day (HH:MM, local time).")
@click.option("--mamoru", "mamoru_path", default=None, help="Path of the mamoru program to run.")
@click.option("--install", is_flag=True,
              help="Write the files instead of printing them (needs root). Never runs systemctl.")
@click.option("--root", "root", type=click.Path(file_okay=False), default="/", show_default=True,
              help="With --install: write under this directory instead of / (an image, a test).")
def schedule(kind: str, policy_path: str | None, sign_key: str, no_sign: bool, at: str, mamoru_path: str | None,
             install: bool, root: str) -> int:
    """Show how to run a signed scan every day; nothing is installed without --install.

    The older, Linux-only form of ``mamoru agent install`` (which adds the run lock, retention, delivery,
    macOS and Windows): kept so that existing timers and cron lines stay understood, and MN-03 reads both.
    """
    from agent.config.policy import load_policy
    from agent.schedule import CRON_PATH, WANTS_LINK, Schedule, cron_line, systemd_units

    policy = load_policy(policy_path)
    s = Schedule(mamoru=mamoru_path or _default_mamoru(), report_dir=policy["schedule"]["report_dir"],
                 policy=str(Path(policy_path).resolve()) if policy_path else None,
                 sign_key=None if no_sign else sign_key, at=at)
    files = systemd_units(s) if kind == "systemd" else {CRON_PATH: cron_line(s)}
    note("mamoru agent install does this too, with a run lock, retention, delivery, and macOS and Windows")
    if not install:
        for path, content in files.items():
            click.echo(f"# {path}\n{content}")
        if kind == "systemd":
            note("install with: mamoru schedule --install, then systemctl daemon-reload && "
                 "systemctl enable --now mamoru-scan.timer")
        if s.sign_key and not os.path.exists(s.sign_key):
            note(f"{s.sign_key} does not exist yet: mamoru keygen --output {s.sign_key}")
        return 0
    base = Path(root)
    for path, content in files.items():
        note(f"wrote {_write(base, path, content)}")
    if kind == "systemd":
        link = base / WANTS_LINK.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(f"/etc/systemd/system/{Path(WANTS_LINK).name}")  # what systemctl enable makes
        note(f"enabled {link}; now run: systemctl daemon-reload && systemctl start mamoru-scan.timer")
    reports = base / s.report_dir.lstrip("/")
    reports.mkdir(parents=True, exist_ok=True, mode=0o750)
    return 0
