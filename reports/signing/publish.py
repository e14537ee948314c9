"""Write a report the way evidence must be written: linked to its predecessor, signed, then renamed into place.

Order matters. The link to the previous report goes *into* the report before
it is rendered (so the signature covers it). Both files are complete and
synced as temp files before either is renamed; the signature is made over the
bytes read back from the temp report, so what is signed is exactly what a
recipient will hash. Then the ``.sig`` is renamed into place, the directory
synced, and only then the report. A process killed (or a machine that loses
power) at any step leaves one of:

- before the ``.sig`` rename: the old files and temp files, which the next run removes;
- between the two renames: a ``.sig`` whose report is not there (a new report's
  name: no report, so no link and nothing for ``verify --chain`` to read), or the
  old report beside the new ``.sig`` when a scan overwrites its own path, which
  ``verify --chain`` names as a bad signature;
- after the report rename: the new report and its ``.sig``.

Never a new report without its signature, which the next scan would have linked
onto for good. A signed scan also never links onto a report of a signed series
that has no ``.sig`` (``find_previous(signed=True)``), whatever put it there.

The directory stays locked from finding the predecessor to the last rename, so
two scans cannot both claim the same predecessor. Linking depends on other
files in the directory; if it fails for any reason the report is still written,
unlinked, and the caller is told (``Published.link_error``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import ScanError
from reports.atomic import Staged, clean_stale_temps, fsync_dir, stage
from reports.chain import INDEX_NAME, SIG_SUFFIX, find_previous, series_lock
from reports.json_report import render_json
from reports.model import Report
from reports.safe_text import printable

if TYPE_CHECKING:
    from reports.notes import Note
    from reports.signing.keys import SigningKey

#: TEST ONLY: name a step of ``publish`` here and it stops there (after saying so on stderr) until killed,
#: so that tests can ``kill -9`` it at that exact point. Never set it outside the tests.
TEST_PAUSE_ENV = "MAMORU_TEST_ONLY_PAUSE_PUBLISH_AT"
STEPS = ("linked", "report-staged", "sig-staged", "sig-renamed", "report-renamed")


def _step(name: str) -> None:
    if os.environ.get(TEST_PAUSE_ENV) == name:
        sys.stderr.write(f"{TEST_PAUSE_ENV}: paused at {name}\n")
        sys.stderr.flush()
        time.sleep(3600)


class ReportNotLinked(ScanError):
    """The report was written, but not linked to its predecessor. Exit 3."""


@dataclasses.dataclass(frozen=True)
class Published:
    report: Path
    signature: Path | None  # None: written unsigned
    previous: dict[str, str] | None
    warnings: list[Note]
    removed_stale_signature: bool = False
    link_error: str = ""  # not empty: the report was written without a link to its predecessor, because of this
    cleaned: list[str] = dataclasses.field(default_factory=list)  # temp files of killed runs, removed


def _link(report: Report, directory: Path, signed: bool, stack: contextlib.ExitStack
          ) -> tuple[dict[str, str] | None, list[Note], str]:
    """Lock the directory and find the predecessor: (link, warnings, "") or (None, [], why it failed).

    Whatever goes wrong here is about the other files in the directory, never about this scan's result,
    so it must not cost the report.
    """
    try:
        stack.enter_context(series_lock(directory))
        previous, warnings = find_previous(directory, report.run.scope, signed=signed)
    except Exception as e:  # any failure to link still writes the report (unlinked)
        return None, [], f"{type(e).__name__}: {e}"
    return previous, warnings, ""


def publish(report: Report, output: str | os.PathLike[str], key: SigningKey | None) -> Published:
    try:
        return _publish(report, Path(output), key)
    except OSError as e:
        raise ScanError(f"cannot write the report {printable(os.fspath(output))}: {e.strerror or e}") from None


def _publish(report: Report, out: Path, key: SigningKey | None) -> Published:
    directory = out.parent if str(out.parent) else Path(".")
    sig_path = Path(f"{out}{SIG_SUFFIX}")
    with contextlib.ExitStack() as stack:
        previous, warnings, link_error = _link(report, directory, key is not None, stack)
        cleaned = clean_stale_temps(directory, names=(INDEX_NAME, out.name, sig_path.name))
        report.run.previous = previous
        _step("linked")
        staged = stage(out, render_json(report))
        stack.callback(staged.discard)  # no-op once committed
        _step("report-staged")
        if key is None:
            # A .sig left from an earlier run at this path can only be wrong now; keeping it would make an
            # unsigned report look signed-but-tampered. Removed first, so no moment shows it beside the new one.
            stale = sig_path.exists()
            with contextlib.suppress(FileNotFoundError):
                sig_path.unlink()
            staged.commit()
            fsync_dir(directory)
            return Published(out, None, previous, warnings, removed_stale_signature=stale, link_error=link_error,
                             cleaned=cleaned)
        _commit_signed(staged, sig_path, key)
    return Published(out, sig_path, previous, warnings, link_error=link_error, cleaned=cleaned)


def _commit_signed(staged: Staged, sig_path: Path, key: SigningKey) -> None:
    from reports.signing import sshsig  # only when signing: an unsigned scan never loads it

    signature = stage(sig_path, sshsig.sign(staged.read_back(), key.private))
    try:
        _step("sig-staged")
        signature.commit()
    except BaseException:
        signature.discard()
        raise
    directory = staged.target.parent
    fsync_dir(directory)  # the .sig is on disk before the report can be
    _step("sig-renamed")
    staged.commit()
    _step("report-renamed")
    fsync_dir(directory)


def publish_notes(published: Published, key: SigningKey | None) -> list[Note]:
    """What the person running the scan should know about the file just written (stderr lines, rendered in
    the operator's language by the caller).

    File names and run ids come from files in the directory, which anyone who can write there chose: every
    value is shown through ``printable`` when the note is rendered (``reports.notes``).
    """
    from reports.notes import note

    lines = list(published.warnings)
    prev = published.previous
    if published.link_error:
        lines.append(note("chain_not_linked", why=published.link_error))
    elif prev is None:
        lines.append(note("chain_first"))
    elif prev.get("file") == published.report.name:
        lines.append(note("chain_replaced", run_id=prev["run_id"]))
    else:
        lines.append(note("chain_follows", file=prev.get("file", "?"), run_id=prev["run_id"],
                          sha256=prev["sha256"][:16]))
    if published.cleaned:
        lines.append(note("temps_removed", count=len(published.cleaned), names=list(published.cleaned)))
    if published.signature is not None and key is not None:
        lines.append(note("signature_written", path=str(published.signature), fingerprint=key.fingerprint))
    else:
        lines.append(note("unsigned"))
        if published.removed_stale_signature:
            lines.append(note("stale_signature_removed", path=str(published.report)))
    return lines
