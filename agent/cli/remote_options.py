"""Options shared by ``scan`` and ``collect`` for remote targets and fleets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--inventory", type=click.Path(dir_okay=False), default=None,
                 help="YAML inventory of SSH targets (address, port, user, key, sudo, jump host, tags, "
                      "per-target policy overrides)."),
    click.option("--identity-file", "identity_file", type=click.Path(dir_okay=False), default=None,
                 help="Private key for ssh:// targets (default: ssh-agent, then ~/.ssh/id_*). An encrypted key "
                      "must be loaded in ssh-agent: mamoru never asks for passphrases."),
    click.option("--known-hosts", "known_hosts", type=click.Path(dir_okay=False), default=None,
                 help="known_hosts file for host-key checks (default: ~/.ssh/known_hosts).",
                 envvar="MAMORU_KNOWN_HOSTS"),
    click.option("--accept-new", "accept_new", is_flag=True,
                 help="Trust a host seen for the first time and record its key (changed keys are still "
                      "refused)."),
    click.option("--connect-timeout", "connect_timeout", type=click.FloatRange(0.1, 3600), default=10.0,
                 show_default=True, help="Seconds for each step of reaching a host (TCP, SSH, login)."),
    click.option("--command-timeout", "command_timeout", type=click.FloatRange(0.1, 3600), default=None,
                 help="Seconds any one remote command or file operation may take (default: each check's own)."),
    click.option("--sudo", is_flag=True, help="Run remote reads and commands through sudo -n (passwordless)."),
]


def remote_options(f: F) -> F:
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def remote_settings(opts: dict[str, Any]) -> Any:
    """The RemoteSettings the remote options describe (fleet imported here: not at CLI start-up)."""
    from agent.fleet import RemoteSettings

    return RemoteSettings(identity_file=opts.get("identity_file"), known_hosts=opts.get("known_hosts"),
                          accept_new=bool(opts.get("accept_new")), connect_timeout=opts.get("connect_timeout", 10.0),
                          command_timeout=opts.get("command_timeout"), sudo=bool(opts.get("sudo")))


def plan_targets(targets: tuple[str, ...], opts: dict[str, Any]) -> Any:
    """Every target of the run (``--target``s, then the inventory's), checked before any connection."""
    from agent.fleet import plan

    return plan(targets, opts.get("inventory"), remote_settings(opts))


def run_fleet(items: Any, collectors: Any, *, workers: int, policy: Any, quiet: bool) -> Any:
    """Collect with a progress bar on stderr when a person is watching (a TTY) and there is more than one."""
    from agent.cli.common import start_work, stderr_is_tty
    from agent.fleet import Job, ProgressBar, collect_fleet

    start_work()
    jobs = sum(isinstance(it, Job) for it in items)  # a bundle's targets are not collected: nothing to wait for
    show = not quiet and stderr_is_tty() and jobs > 1
    if not show:
        return collect_fleet(items, collectors, workers=workers, policy=policy)
    with ProgressBar(jobs) as bar:
        return collect_fleet(items, collectors, workers=workers, policy=policy, observer=bar)
