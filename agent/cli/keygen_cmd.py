"""``mamoru keygen``: a new Ed25519 signing key, and the allowed_signers line for the recipients.

Also home of ``load_key_for_cli``, which ``scan --sign-key`` uses: it asks for
a passphrase only when there is a terminal to ask on, so a scheduled scan with
a protected key fails with a plain message instead of hanging.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli.common import note
from agent.errors import ConfigError

if TYPE_CHECKING:
    from reports.signing.keys import SigningKey


def default_key_path() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return str(Path(base) / "mamoru" / "signing_key")


def default_identity() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "mamoru"
    return f"{user}@{socket.gethostname()}"


def _ask_passphrase(path: str) -> str | None:
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    value: str = click.prompt(f"passphrase for {path}", hide_input=True, default="", show_default=False, err=True)
    return value or None


def load_key_for_cli(path: str) -> SigningKey:
    """Load ``--sign-key`` (prompting for a passphrase on a terminal); returns a SigningKey."""
    from reports.signing.keys import load_signing_key

    return load_signing_key(path, ask_passphrase=lambda: _ask_passphrase(path))


@click.command("keygen")
@click.option("--output", "output", type=click.Path(dir_okay=False), default=default_key_path,
              show_default="~/.config/mamoru/signing_key",
              help="Private key file to create (0600); the public key goes to OUTPUT.pub. Never overwritten.")
@click.option("--identity", default=default_identity, show_default="USER@HOST",
              help="Principal for the allowed_signers line, e.g. auditor@example.jp.")
@click.option("--passphrase", "protect", is_flag=True,
              help="Protect the key with a passphrase (asked twice, or taken from $MAMORU_KEY_PASSPHRASE). "
                   "Scheduled scans then need that variable.")
def keygen(output: str, identity: str, protect: bool) -> int:
    """Create an Ed25519 signing key (OpenSSH format) for signed reports."""
    from reports.signing.keys import PASSPHRASE_ENV, allowed_signers_line, create_key_files
    from reports.signing.sshsig import NAMESPACE

    if not identity or re.search(r'[\s,"#]', identity):
        raise ConfigError(f"--identity {identity!r}: a principal has no spaces, commas, quotes or '#'")
    passphrase = None
    if protect:
        passphrase = os.environ.get(PASSPHRASE_ENV)
        if not passphrase:
            if not sys.stdin.isatty():
                raise ConfigError(f"--passphrase needs a terminal to ask on, or ${PASSPHRASE_ENV}")
            passphrase = click.prompt("new passphrase", hide_input=True, confirmation_prompt=True, err=True)
    key = create_key_files(output, comment=identity, passphrase=passphrase)
    note(f"private key written to {key.path} (mode 0600; keep it secret, never send it)")
    note(f"public key written to {key.path}.pub")
    note(f"key fingerprint: {key.fingerprint}")
    note("give recipients this allowed_signers line (stdout) so they can verify your reports:")
    click.echo(allowed_signers_line(identity, key.public_blob, NAMESPACE))
    return 0
