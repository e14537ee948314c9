"""Write a report the way evidence must be written: linked to its predecessor, atomically, then signed.

Order matters. The link to the previous report goes *into* the report before
it is rendered (so the signature covers it); the signature is made over the
bytes read back from the file just written, so what is signed is exactly what
a recipient will hash. The directory stays locked from finding the predecessor
to the last rename, so two scans cannot both claim the same predecessor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from reports.atomic import write_atomic
from reports.chain import SIG_SUFFIX, find_previous, series_lock
from reports.json_report import render_json
from reports.model import Report

if TYPE_CHECKING:
    from reports.signing.keys import SigningKey


@dataclasses.dataclass(frozen=True)
class Published:
    report: Path
    signature: Path | None  # None: written unsigned
    previous: dict[str, str] | None
    warnings: list[str]
    removed_stale_signature: bool = False


def publish(report: Report, output: str | os.PathLike[str], key: SigningKey | None) -> Published:
    out = Path(output)
    directory = out.parent if str(out.parent) else Path(".")
    sig_path = Path(f"{out}{SIG_SUFFIX}")
    with series_lock(directory):
        previous, warnings = find_previous(directory, report.run.scope)
        report.run.previous = previous
        write_atomic(out, render_json(report))
        if key is None:
            # A .sig left from an earlier run at this path can only be wrong now; keeping it would make an
            # unsigned report look signed-but-tampered.
            stale = sig_path.exists()
            with contextlib.suppress(FileNotFoundError):
                sig_path.unlink()
            return Published(out, None, previous, warnings, removed_stale_signature=stale)
        from reports.signing import sshsig  # only when signing: an unsigned scan never loads it

        written = out.read_bytes()
        write_atomic(sig_path, sshsig.sign(written, key.private))
    return Published(out, sig_path, previous, warnings)


def publish_notes(published: Published, key: SigningKey | None) -> list[str]:
    """What the person running the scan should know about the file just written (stderr lines)."""
    lines = list(published.warnings)
    prev = published.previous
    if prev is None:
        lines.append("hash chain: first report of this series (no previous report of the same scope here)")
    elif prev.get("file") == published.report.name:
        lines.append(f"hash chain: this report replaced the previous report of the series at the same path "
                     f"(run {prev['run_id']}); mamoru verify --chain will show it as gone. Write each scan to a "
                     f"new file (e.g. report-$(date +%F).json) to keep the whole history.")
    else:
        lines.append(f"hash chain: follows {prev.get('file', '?')} (run {prev['run_id']}, "
                     f"sha256 {prev['sha256'][:16]}…)")
    if published.signature is not None and key is not None:
        lines.append(f"signature written to {published.signature} (Ed25519 key {key.fingerprint})")
    else:
        lines.append("the report is UNSIGNED: nobody can check it was not changed; use --sign-key KEY "
                     "(make one with: mamoru keygen)")
        if published.removed_stale_signature:
            lines.append(f"removed the old {published.report}.sig, which belonged to an earlier report")
    return lines
