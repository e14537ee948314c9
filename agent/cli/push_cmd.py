"""``mamoru push DIR --to URL --token-file F``: queue every signed report of DIR not yet sent, and deliver.

Exit 0 everything delivered (the outbox is empty) · 3 something is still queued (the server was down,
refused a report, or asked to wait) · 2 configuration (token file, URL, outbox).
The outbox is ``DIR/.mamoru-outbox`` unless ``--outbox`` names another; it remembers its destination, so
reports sent to one dashboard are never taken as sent to another.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from agent.cli.common import lang_option, say
from agent.errors import ConfigError

OUTBOX_DIR = ".mamoru-outbox"


@click.command("push")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--to", "to", required=True, help="Base URL of the dashboard (https://; http:// only to loopback).")
@click.option("--token-file", "token_file", required=True, type=click.Path(dir_okay=False),
              help="File holding the API token (yours, mode 0600). Never give the token on the command line.")
@click.option("--ca-file", "ca_file", default=None, type=click.Path(dir_okay=False),
              help="PEM file of the CA that signed the server's certificate (a private CA).")
@click.option("--outbox", "outbox_dir", default=None, type=click.Path(file_okay=False),
              help=f"Outbox directory (default: DIR/{OUTBOX_DIR}).")
@click.option("--wait", "wait_s", default=0.0, type=click.FloatRange(0, 86400), show_default=True,
              help="Keep retrying for this many seconds (the backoff schedule is kept across runs either way).")
@lang_option
def push(directory: str, to: str, token_file: str, ca_file: str | None, outbox_dir: str | None, wait_s: float,
         lang: str = "en") -> int:
    """Deliver the signed reports of DIR to a dashboard, each once, through a crash-safe outbox."""
    from agent import outbox as ob
    from agent.push import Client, deliver
    from reports.notes import note

    client = Client.make(to, token_file, ca_file)
    reports_dir = Path(directory)
    if not reports_dir.is_dir():  # before the outbox is made inside it
        raise ConfigError(f"{directory}: not a directory of reports")
    with ob.Outbox.open(Path(outbox_dir) if outbox_dir else reports_dir / OUTBOX_DIR) as box:
        known = box.destination()
        if known is None:
            box.set_destination(client.url)
        elif known != client.url:
            raise ConfigError(f"the outbox {box.directory} delivers to {known}; give another --outbox for "
                              f"{client.url}")
        try:
            queued, sent, unsigned = ob.queue_directory(box, reports_dir)
        except OSError as e:
            raise ConfigError(f"{directory}: cannot list it ({e.strerror})") from None
        say(note("push_queued", directory=directory, queued=queued, sent=sent, unsigned=unsigned), lang)
        result = deliver(box, client, wait_s=wait_s, retry_refused=True)
        if result.busy:
            say(note("push_busy"), lang)
        if result.confirmed:
            say(note("push_delivered", count=len(result.confirmed), had=result.already_had), lang)
        for name, why in result.refused:
            say(note("push_refused", name=name, why=why), lang)
        if result.failures:
            say(note("push_failed", why=result.failures[-1]), lang)
        status = box.status()
        for gap in status.gaps:
            say(note("push_gap", name=gap.name, run_id=gap.run_id, why=gap.reason), lang)
        if status.queued:
            when = (time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(status.next_attempt_at))
                    if status.next_attempt_at is not None else "-")
            say(note("push_pending", count=status.queued, refused=status.refused, when=when), lang)
            return 3
        say(note("push_all_delivered"), lang)
        return 0
