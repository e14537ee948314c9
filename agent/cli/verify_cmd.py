"""``mamoru verify``: is this report (or this whole series) the one its signer wrote?

Exit 0 good · 1 the evidence does not hold (each cause has its own message) ·
2 usage or configuration (a file that is not there, a malformed allowed_signers).
Results go to stdout, the reason for a failure to stderr as one line plus a hint.

Everything shown comes from files someone else wrote (the report, its .sig,
its name, even allowed_signers): every such string is passed through
``reports.safe_text.printable``, as the scan summary is, and so is the text
of every error this command raises, so an ESC or BEL in a namespace, a file
name or a run id is shown as ``\x1b`` and never obeyed by the terminal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli.common import lang_option, say
from agent.errors import ConfigError, MamoruError
from reports.safe_text import printable

if TYPE_CHECKING:
    from reports.chain import ReportFile
    from reports.signing.allowed_signers import AllowedSigner
    from reports.signing.sshsig import Verified

MAX_SIG_BYTES = 64 * 1024  # an Ed25519 SSHSIG is ~300 bytes


def _read_signature(path: Path, *, explicit: bool) -> bytes:
    from reports.signing.errors import MalformedSignature, SignatureMissing

    try:
        if path.stat().st_size > MAX_SIG_BYTES:
            raise MalformedSignature(f"{path}: {path.stat().st_size} bytes is far too large for an SSH signature")
        return path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"signature file {path}: no such file") from None
        raise SignatureMissing(f"no signature file {path}: the report is unsigned or the .sig was not sent "
                               f"with it") from None
    except IsADirectoryError:
        raise ConfigError(f"signature file {path}: is a directory") from None
    except OSError as e:
        raise ConfigError(f"signature file {path}: cannot read it ({e.strerror})") from None


def _verify_bytes(data: bytes, sig_path: Path, signers: list[AllowedSigner], identity: str | None,
                  when: float, *, explicit: bool) -> Verified:
    from reports.signing import sshsig

    return sshsig.verify(data, _read_signature(sig_path, explicit=explicit), signers, identity=identity,
                         when=when)


def _parse_when(verify_time: str | None) -> float:
    from reports.signing.allowed_signers import parse_absolute_time

    if verify_time is None:
        return time.time()
    try:
        return float(parse_absolute_time(verify_time))
    except ValueError as e:
        raise ConfigError(f"--verify-time: {e}") from None


@click.command("verify")
@click.argument("report", required=False, type=click.Path(dir_okay=False))
@click.option("--allowed-signers", "allowed_signers", required=True, type=click.Path(dir_okay=False),
              help="OpenSSH allowed_signers file: the keys you trust (the key inside a signature never counts).")
@click.option("--identity", default=None,
              help="Require this signer principal (like ssh-keygen -I); default: any principal listed for the key.")
@click.option("--signature", "signature", type=click.Path(dir_okay=False), default=None,
              help="Signature file (default: REPORT.sig).")
@click.option("--chain", "chain_dir", type=click.Path(file_okay=False), default=None,
              help="Verify every report in this directory and every link of its hash chain.")
@click.option("--scope", default=None, help="With --chain: only the series of this scope.")
@click.option("--verify-time", default=None,
              help="Check the signers' valid-after/valid-before at this time instead of now "
                   "(YYYYMMDD[HHMM[SS]][Z], as ssh-keygen -O verify-time).")
@lang_option
def verify(report: str | None, allowed_signers: str, identity: str | None, signature: str | None,
           chain_dir: str | None, scope: str | None, verify_time: str | None, lang: str = "en") -> int:
    """Verify a signed report (or a directory of them) against an allowed_signers file."""
    try:
        return _verify(report, allowed_signers, identity, signature, chain_dir, scope, verify_time, lang)
    except MamoruError as e:
        raise _escaped(e) from None


def _escaped(e: MamoruError) -> MamoruError:
    """The same error (type, exit code, hint) with its text, and its cause's, made safe for a terminal."""
    message = str(e)
    cause = e.__cause__
    if cause is not None and str(cause) and str(cause) not in message:
        message += f" ({type(cause).__name__}: {cause})"
    return type(e)(printable(message))


def _verify(report: str | None, allowed_signers: str, identity: str | None, signature: str | None,
            chain_dir: str | None, scope: str | None, verify_time: str | None, lang: str) -> int:
    from reports.signing import allowed_signers as allowed
    from reports.signing.errors import VerificationError

    if (report is None) == (chain_dir is None):
        raise click.UsageError("give either REPORT or --chain DIR")
    if chain_dir is not None and signature is not None:
        raise click.UsageError("--signature applies to one REPORT, not to --chain")
    if scope is not None and chain_dir is None:
        raise click.UsageError("--scope applies to --chain only")
    when = _parse_when(verify_time)
    signers = allowed.load(allowed_signers)
    if chain_dir is not None:
        return _verify_chain(Path(chain_dir), signers, identity, when, scope, lang)
    assert report is not None
    path = Path(report)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"report {path}: no such file") from None
    except OSError as e:
        raise ConfigError(f"report {path}: cannot read it ({e.strerror})") from None
    sig_path = Path(signature) if signature else Path(f"{path}.sig")
    try:
        good = _verify_bytes(data, sig_path, signers, identity, when, explicit=signature is not None)
    except VerificationError as e:
        message = str(e) if str(sig_path) in str(e) else f"{sig_path}: {e}"
        raise type(e)(message) from None
    who = printable(identity or ", ".join(good.principals))
    click.echo(f'Good "{printable(good.namespace)}" signature for {who} with ED25519 key {good.fingerprint} '
               f"({printable(good.hash_alg)}): {printable(str(path))}")
    return 0


def _verify_chain(directory: Path, signers: list[AllowedSigner], identity: str | None, when: float,
                  scope: str | None, lang: str) -> int:
    from reports.chain import verify_chain
    from reports.signing.errors import ChainBroken, VerificationError

    if not directory.is_dir():
        raise ConfigError(f"--chain {directory}: not a directory")
    signed_by: dict[str, str] = {}

    def check(r: ReportFile) -> str | None:
        try:
            good = _verify_bytes(r.data, Path(f"{r.path}.sig"), signers, identity, when, explicit=False)
        except VerificationError as e:
            return str(e)
        signed_by[r.name] = f"{printable(', '.join(good.principals))} {good.fingerprint}"
        return None

    result = verify_chain(directory, check, scope=scope)
    if not result.series and not result.problems:
        raise ConfigError(f"--chain {directory}: no mamoru reports there"
                          + (f" with scope {scope!r}" if scope is not None else ""))
    for name, members in result.series.items():
        click.echo(f"series {printable(name)!r}: {len(members)} reports")
        for r in members:
            status = "signed by " + signed_by[r.name] if r.name in signed_by else "NOT VERIFIED"
            click.echo(f"  {printable(r.name)}  run {printable(r.run_id)}  {printable(r.started)}  {status}")
        if members:
            newest = members[-1]
            click.echo(f"  newest: {printable(newest.name)} run {printable(newest.run_id)} sha256 {newest.sha256}")
    if result.problems:
        click.echo(f"{len(result.problems)} problem(s), earliest first:")
        for p in result.problems:
            click.echo(f"  {printable(p.message)}")
        first = result.first
        assert first is not None
        raise ChainBroken(f"chain broken at {first.file}: {first.message}")
    total = sum(len(m) for m in result.series.values())
    click.echo(f"chain OK: {total} reports, every signature and every link verified")
    from reports.notes import note

    say(note("chain_newest_note"), lang)
    return 0
