"""Helpers for reading config files through a target, shared by all collectors.

Config files on an audited host are untrusted input: they may be missing,
unreadable, huge, or not UTF-8. These helpers turn each of those into a
recorded problem instead of an exception deep inside a parser.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass

from agent.targets.base import FileMissing, Target, TargetError


@dataclass(frozen=True)
class TextFile:
    path: str
    lines: list[str]


class UndecodableFile(TargetError):
    """The file is not valid UTF-8; we refuse to guess what it says."""


def read_text(target: Target, path: str) -> TextFile:
    """Read a UTF-8 config file. Raises FileMissing, FileUnreadable, FileTooLarge or UndecodableFile."""
    data = target.read_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UndecodableFile(f"{path}: not valid UTF-8 (byte {e.start})") from e
    if "\x00" in text:
        raise UndecodableFile(f"{path}: contains NUL bytes")
    return TextFile(path=path, lines=text.splitlines())


def read_optional(target: Target, path: str) -> TextFile | None:
    """Like read_text, but a missing file is None (every other problem still raises)."""
    try:
        return read_text(target, path)
    except FileMissing:
        return None


def glob(target: Target, pattern: str) -> list[str]:
    """Expand a shell glob on the target, sorted, as glob(3) does for sshd's and logrotate's includes."""
    if not pattern.startswith("/"):
        raise ValueError(f"glob pattern must be absolute: {pattern}")
    parts = [p for p in pattern.split("/") if p]
    paths = ["/"]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if not last and not any(c in part for c in "*?["):
            # Each candidate is checked below: ask for them all at once (over SSH: one round trip, not one each).
            target.prefetch((posixpath.join(base, part) for base in paths), op="stat")
        nxt: list[str] = []
        for base in paths:
            if any(c in part for c in "*?["):
                try:
                    names = target.list_dir(base)
                except TargetError:
                    continue
                for name in names:
                    if name.startswith(".") and not part.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(name, part):
                        nxt.append(posixpath.join(base, name))
            else:
                candidate = posixpath.join(base, part)
                if last or target.exists(candidate):
                    nxt.append(candidate)
        paths = nxt
    target.prefetch(paths, op="stat")
    return sorted(p for p in paths if target.exists(p))
