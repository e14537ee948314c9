"""Where a live Windows PC keeps a file that collectors name by its path from the system volume's root.

Collectors name Windows files as they lie in an image (``/Windows/System32/Tasks``, found case-insensitively
with ``find_ci``): the same path on a ``rootfs:`` image, on the PC itself and over SSH. Each Windows target
maps it ONCE, here, instead of every collector knowing the forms:

- over SSH, Win32-OpenSSH's SFTP server names a drive as the first component: ``/C:/Windows/System32/Tasks``;
- on the PC, Python opens ``C:\\Windows\\System32\\Tasks`` under ``%SystemDrive%``.

The system drive comes from the PC (``%SystemDrive%``); anything that is not a drive letter falls back to
``C:``. A path with ``..`` is refused: a mapped path never leaves the system drive.
"""

from __future__ import annotations

import re

DEFAULT_DRIVE = "C:"
_DRIVE = re.compile(r"[A-Za-z]:")


def system_drive(value: str | None) -> str:
    """``%SystemDrive%`` as told by the PC (``C:``), or ``C:`` when it told nothing usable."""
    v = (value or "").strip()
    return v.upper() if _DRIVE.fullmatch(v) else DEFAULT_DRIVE


def _parts(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"{path}: not a path from the system volume's root")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts or any("\\" in p or ":" in p for p in parts):
        raise ValueError(f"{path}: '..', '\\\\' or ':' in a path from the system volume's root")
    return parts


def sftp_path(path: str, drive: str) -> str:
    """``/Windows/System32`` -> ``/C:/Windows/System32`` (and ``/`` -> ``/C:/``, the drive's root)."""
    return f"/{system_drive(drive)}/" + "/".join(_parts(path))


def local_path(path: str, drive: str) -> str:
    """``/Windows/System32`` -> ``C:\\Windows\\System32`` (and ``/`` -> ``C:\\``)."""
    return f"{system_drive(drive)}\\" + "\\".join(_parts(path))
