"""``mamoru agent install|run|status|uninstall``: the scheduled agent on the platform's own scheduler.

``install`` writes agent.yaml, the scheduler's files and a manifest of exactly what it wrote (files, links
and the directories it had to create), so that ``uninstall`` removes exactly that and nothing else (reports
stay: they are evidence). ``--root DIR`` writes under DIR instead of ``/`` (an image, a test) and then never
calls systemctl, launchctl or schtasks; ``--dry-run`` prints what would be written and writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import ntpath
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from agent.cli.common import note
from agent.errors import ConfigError

MANIFEST_NAME = "agent-install.json"
MANIFEST_SCHEMA = "mamoru-agent-install/1"


def _config_option(f: Any) -> Any:
    return click.option("--config", "config", default=None, metavar="FILE",
                        help="agent.yaml (default: the platform's place, e.g. /etc/mamoru/agent.yaml).")(f)


def _root_option(f: Any) -> Any:
    return click.option("--root", "root", type=click.Path(file_okay=False), default="/", show_default=True,
                        help="Files live under this directory instead of / (an image, a test); then no "
                             "systemctl/launchctl/schtasks is run.")(f)


@click.group("agent")
def agent_group() -> None:
    """The scheduled agent: install it once, then the platform's scheduler runs it."""


def _is_real(root: Path) -> bool:
    """``--root /``: the running system itself (``\\`` is how Windows shows ``/``)."""
    return str(root) in ("/", "\\")


def _under(root: Path, path: str) -> Path:
    """Where ``path`` (POSIX, or Windows with a drive) lives under ``root``; itself on the real system."""
    if _is_real(root):
        return Path(path)
    drive, rest = ntpath.splitdrive(path)
    if drive and len(drive) == 2:
        return root / drive[0].upper() / Path(*[p for p in rest.replace("\\", "/").split("/") if p])
    return root / path.lstrip("/")


def _default_kind() -> str:
    from agent.config.agentfile import host_os

    osname = host_os()
    if osname == "windows":
        return "schtasks"
    if osname == "macos":
        return "launchd"
    return "systemd" if os.path.isdir("/run/systemd/system") else "cron"


def _default_mamoru() -> str:
    found = shutil.which("mamoru")
    return str(Path(found).resolve().parent / Path(found).name) if found else str(Path(sys.argv[0]).resolve())


def _manifest_path(root: Path, config: str) -> Path:
    return _under(root, config).parent / MANIFEST_NAME


@agent_group.command("install")
@click.option("--every", type=click.Choice(["hourly", "daily", "weekly"]), default="daily", show_default=True)
@click.option("--policy", "policy", default=None, help="Policy file (absolute path); default: the built-in one.")
@click.option("--sign-key", "sign_key", default=None, help="Ed25519 key signing each report (absolute path).")
@click.option("--reports", "reports", required=True, help="Directory of the report series (absolute path).")
@click.option("--retention-days", type=click.IntRange(1, 36500), default=None, help="Prune reports older than this.")
@click.option("--retention-count", type=click.IntRange(1, 1000000), default=None, help="Keep at most this many.")
@click.option("--push", "push", default=None, help="Ingest URL the reports are delivered to (https).")
@click.option("--token-file", "token_file", default=None, help="With --push: the 0600 file holding the token.")
@click.option("--lang", type=click.Choice(["ja", "en"]), default="en", show_default=True)
@click.option("--kind", type=click.Choice(["auto", "systemd", "cron", "launchd", "schtasks"]), default="auto",
              show_default=True, help="Which scheduler (auto: the one of this platform).")
@click.option("--mamoru", "mamoru_path", default=None, help="Path of the mamoru program the scheduler starts.")
@click.option("--dry-run", is_flag=True, help="Print what would be written, and where; write nothing.")
@_config_option
@_root_option
def install(every: str, policy: str | None, sign_key: str | None, reports: str, retention_days: int | None,
            retention_count: int | None, push: str | None, token_file: str | None, lang: str, kind: str,
            mamoru_path: str | None, dry_run: bool, config: str | None, root: str) -> int:
    """Write agent.yaml and the scheduler's files (systemd timer, cron, LaunchDaemon or scheduled task)."""
    import yaml

    from agent import install as gen
    from agent.config.agentfile import DEFAULT_PATHS, agent_schema, default_path, load_agent_config
    from agent.config.yamlfile import validate

    if (push is None) != (token_file is None):
        raise click.UsageError("--push and --token-file go together")
    kind = _default_kind() if kind == "auto" else kind
    if config is None:  # the place of the platform the scheduler belongs to (an image may be for another one)
        config = default_path() if kind == _default_kind() else DEFAULT_PATHS[
            {"schtasks": "windows", "launchd": "macos"}.get(kind, "linux")]
    doc: dict[str, Any] = {"every": every, "reports": reports, "policy": policy, "sign_key": sign_key, "lang": lang}
    if retention_days or retention_count:
        doc["retention"] = {k: v for k, v in (("days", retention_days), ("count", retention_count)) if v}
    if push and token_file:
        doc["push"] = {"url": push, "token_file": token_file}
    text = ("# mamoru agent: read by `mamoru agent run` (written by `mamoru agent install`)\n"
            + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    validate(doc, None, agent_schema(), "(command line)")  # the same rules as the file: exit 2 before writing
    job = gen.Job(mamoru=mamoru_path or _default_mamoru(), config=config, reports=reports, every=every)
    files: dict[str, bytes] = {config: text.encode()}
    links: dict[str, str] = {}
    after: list[list[str]] = []
    if kind == "systemd":
        files.update({p: c.encode() for p, c in gen.systemd_units(job).items()})
        links[gen.WANTS_LINK] = gen.TIMER_PATH  # what systemctl enable makes
        after = [["systemctl", "daemon-reload"], ["systemctl", "start", f"{gen.UNIT}.timer"]]
    elif kind == "cron":
        files[gen.CRON_PATH] = gen.cron_file(job).encode()
    elif kind == "launchd":
        files[gen.PLIST_PATH] = gen.launchd_plist(job)
        after = [["launchctl", "bootstrap", "system", gen.PLIST_PATH]]
    else:
        xml_path = ntpath.join(ntpath.dirname(config), "mamoru-agent-task.xml")
        files[xml_path] = gen.task_xml(job)
        after = [gen.schtasks_create(xml_path)]
    base = Path(root)
    for path, content in files.items():
        shown = content.decode("utf-16") if content.startswith(b"\xff\xfe") else content.decode()
        click.echo(f"# {path}\n{shown}")
    for link, link_to in links.items():
        click.echo(f"# {link} -> {link_to}\n")
    if dry_run:
        note("dry run: nothing written")
        return 0
    manifest_file = _manifest_path(base, config)
    if manifest_file.exists():
        raise ConfigError(f"{manifest_file}: the agent is already installed; run mamoru agent uninstall first")
    if _under(base, config).exists():
        raise ConfigError(f"{_under(base, config)}: exists already (not written by agent install); move it away")
    manifest: dict[str, Any] = {"schema": MANIFEST_SCHEMA, "kind": kind, "root": str(base), "files": [],
                                "links": [], "dirs": []}
    from reports.atomic import write_atomic

    for path, content in files.items():
        dest = _under(base, path)
        manifest["dirs"] += _mkdirs(dest.parent)
        write_atomic(dest, content, mode=0o600 if path == config else 0o644)
        manifest["files"].append(path)
        note(f"wrote {dest}")
    for link, link_to in links.items():
        where = _under(base, link)
        manifest["dirs"] += _mkdirs(where.parent)
        if not where.is_symlink():
            where.symlink_to(link_to)
            manifest["links"].append(link)
            note(f"linked {where} -> {link_to}")
    manifest["dirs"] += _mkdirs(_under(base, reports), mode=0o750)
    manifest["dirs"] = [d if _is_real(base) else str(Path(d).relative_to(base)) for d in manifest["dirs"]]
    write_atomic(manifest_file, json.dumps(manifest, indent=1).encode(), mode=0o600)
    note(f"wrote {manifest_file} (what mamoru agent uninstall removes)")
    load_agent_config(_under(base, config))  # what run will read, read back
    _after(after, base, "now run")
    _check_report_dir(base, policy, reports)
    if sign_key and not _under(base, sign_key).exists():
        note(f"{sign_key} does not exist yet: mamoru keygen --output {sign_key}")
    return 0


def _check_report_dir(base: Path, policy: str | None, reports: str) -> None:
    """MN-03 looks for reports in the policy's schedule.report_dir: say so when the agent writes elsewhere."""
    from agent.config.policy import load_policy

    if policy is not None and not _under(base, policy).exists():
        note(f"{policy} does not exist yet: MN-03 will look for reports in its schedule.report_dir ({reports} "
             "here)")
        return
    wanted = load_policy(_under(base, policy) if policy else None)["schedule"].get("report_dir")
    if wanted != reports:
        note(f"the policy's schedule.report_dir is {wanted}, not {reports}: MN-03 will look there; set "
             f"schedule.report_dir: {reports} in the policy")


def _mkdirs(directory: Path, mode: int = 0o755) -> list[str]:
    """Create ``directory`` and its missing parents; returns the ones created, outermost first."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        d.mkdir(mode=mode)
    return [str(d) for d in reversed(missing)]


def _after(commands: list[list[str]], base: Path, what: str) -> None:
    """Run the scheduler's own commands on the real system; under --root only say them."""
    for argv in commands:
        if not _is_real(base):
            note(f"{what}: {subprocess.list2cmdline(argv) if argv[0] == 'schtasks' else ' '.join(argv)}")
            continue
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        except OSError as e:
            note(f"could not run {argv[0]}: {e.strerror}; run it yourself: {' '.join(argv)}")
            continue
        note(f"ran {' '.join(argv)}: exit {res.returncode} {res.stderr.strip()[:200]}")


@agent_group.command("uninstall")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@_config_option
@_root_option
def uninstall(dry_run: bool, config: str | None, root: str) -> int:
    """Remove exactly what agent install wrote (reports stay)."""
    from agent import install as gen
    from agent.config.agentfile import default_path

    base = Path(root)
    manifest_file = _manifest_path(base, config or default_path())
    try:
        manifest = json.loads(manifest_file.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{manifest_file}: no install manifest; nothing to uninstall (or give --config)") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{manifest_file}: cannot read the install manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise ConfigError(f"{manifest_file}: not a {MANIFEST_SCHEMA} manifest")
    kind = manifest.get("kind")
    before = {"systemd": [["systemctl", "stop", f"{gen.UNIT}.timer"]],
              "launchd": [["launchctl", "bootout", f"system/{gen.PLIST_LABEL}"]],
              "schtasks": [gen.schtasks_delete()]}.get(str(kind), [])
    paths = [_under(base, p) for p in (*manifest.get("links", []), *manifest.get("files", []))]
    for p in paths:
        click.echo(f"remove {p}")
    if dry_run:
        return 0
    _after(before, base, "first run")
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    manifest_file.unlink()
    for d in reversed(manifest.get("dirs", [])):
        with contextlib.suppress(OSError):  # not empty (reports, someone's file): kept
            (Path(d) if _is_real(base) else base / d).rmdir()
    if kind == "systemd":
        _after([["systemctl", "daemon-reload"]], base, "then run")
    note(f"removed what mamoru agent install wrote ({len(paths)} files and links)")
    return 0


@agent_group.command("run")
@_config_option
def run_cmd(config: str | None) -> int:
    """One scheduled run: lock, scan, sign, chain, queue, prune, log (what the scheduler starts)."""
    from agent.agent_run import EXIT_LOCKED, AlreadyRunning, log_line, run, say_locked
    from agent.config.agentfile import default_path, load_agent_config

    cfg = load_agent_config(config or default_path())
    try:
        code, record = run(cfg)
    except AlreadyRunning as e:
        say_locked(str(e), sys.stderr)
        return EXIT_LOCKED
    log_line(cfg, record)
    return code


@agent_group.command("status")
@_config_option
@_root_option
def status(config: str | None, root: str) -> int:
    """Last run, next run, whether the chain verifies, the outbox. Exit 1 when the chain does not verify."""
    from agent.agent_run import load_state, outbox_for
    from agent.config.agentfile import default_path, load_agent_config

    base = Path(root)
    cfg = load_agent_config(_under(base, config or default_path()))
    directory = Path(cfg["reports"])
    state = load_state(directory)
    if state is None:
        click.echo("last run: none recorded")
    else:
        click.echo(f"last run: {state.get('started')} exit {state.get('exit')} report {state.get('report')}"
                   + (f" pruned {len(state['pruned'])}" if state.get("pruned") else ""))
    click.echo(f"next run: {_next_run(base, config or default_path(), cfg)}")
    ok, summary = _chain(directory, cfg)
    click.echo(f"chain: {summary}")
    outbox = outbox_for(cfg)
    if outbox is None:  # HOOK (A1): the outbox answers once it is wired in agent_run.outbox_for
        click.echo("outbox: not configured" + (" (delivery not available yet)" if cfg.get("push") else ""))
        click.echo("last delivery: not configured")
    else:
        click.echo(f"outbox: {outbox.size()} report(s) waiting")
        click.echo(f"last delivery: {outbox.last_delivery() or 'never'}")
    return 0 if ok else 1


def _next_run(base: Path, config: str, cfg: Any) -> str:
    from agent import install as gen

    try:
        manifest = json.loads(_manifest_path(base, config).read_bytes())
    except (OSError, ValueError):
        return "unknown (not installed with mamoru agent install)"
    kind = manifest.get("kind") if isinstance(manifest, dict) else None
    if kind == "cron":
        return gen.next_cron_run(cfg.get("every", "daily"), dt.datetime.now()).isoformat(timespec="minutes") + \
            " (local time, from the cron line)"
    if kind == "systemd" and _is_real(base):
        try:
            res = subprocess.run(["systemctl", "show", "-p", "NextElapseUSecRealtime", "--value",
                                  f"{gen.UNIT}.timer"], capture_output=True, text=True, timeout=30, check=False)
        except OSError as e:
            return f"unknown (systemctl: {e.strerror})"
        return res.stdout.strip() or f"unknown (systemctl: {res.stderr.strip()[:120]})"
    return {"launchd": "see: launchctl print system/" + gen.PLIST_LABEL,
            "schtasks": "see: schtasks /Query /TN " + gen.TASK_NAME + " /V"}.get(str(kind), "unknown")


def _chain(directory: Path, cfg: Any) -> tuple[bool, str]:
    """verify --chain's own check, with the public half of the agent's key as the only allowed signer."""
    from reports.chain import verify_chain

    if not directory.is_dir():
        return False, f"{directory} does not exist (no run yet)"
    check = _signature_check(cfg["sign_key"]) if cfg.get("sign_key") else (lambda r: None)
    result = verify_chain(directory, check)
    total = sum(len(m) for m in result.series.values())
    if result.problems:
        return False, f"BROKEN ({len(result.problems)} problem(s); first: {result.problems[0].message})"
    what = "every signature and link" if cfg.get("sign_key") else "links only (the series is unsigned)"
    return True, f"intact: {total} report(s), {what} verified"


def _public_blob(sign_key: str) -> bytes:
    """The key's public half: from ``KEY.pub`` (keygen writes it) when it is there, so that status needs no
    passphrase; else from the key itself."""
    import base64
    import binascii

    from agent.cli.keygen_cmd import load_key_for_cli

    with contextlib.suppress(OSError, ValueError, IndexError, binascii.Error):
        fields = Path(f"{sign_key}.pub").read_text(encoding="ascii").split()
        if fields[0] == "ssh-ed25519":
            return base64.b64decode(fields[1], validate=True)
    return load_key_for_cli(sign_key).public_blob


def _signature_check(sign_key: str) -> Any:
    from reports.signing import sshsig
    from reports.signing.allowed_signers import AllowedSigner
    from reports.signing.errors import VerificationError

    signers = [AllowedSigner(principals="*", key_type="ssh-ed25519", key_blob=_public_blob(sign_key))]

    def check(r: Any) -> str | None:
        try:
            sshsig.verify(r.data, Path(f"{r.path}.sig").read_bytes(), signers)
        except FileNotFoundError:
            return "no signature file"
        except (OSError, VerificationError) as e:
            return str(e)
        return None

    return check
