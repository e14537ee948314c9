"""Text files written by Windows tools: ``secedit /export`` writes UTF-16 LE with a BOM, ``auditpol`` CSV may be
UTF-8 (with or without a BOM) or UTF-16; PowerShell redirection writes UTF-16 LE."""

from __future__ import annotations

import codecs

MAX_TEXT_BYTES = 4 * 1024 * 1024


def decode_text(raw: bytes) -> str:
    """The text of a tool's output file; ValueError when it is not text in one of those encodings."""
    if len(raw) > MAX_TEXT_BYTES:
        raise ValueError(f"{len(raw)} bytes is more than a settings export holds")
    try:
        if raw.startswith(codecs.BOM_UTF16_LE):
            return raw[2:].decode("utf-16-le")
        if raw.startswith(codecs.BOM_UTF16_BE):
            return raw[2:].decode("utf-16-be")
        if raw.startswith(codecs.BOM_UTF8):
            return raw[3:].decode("utf-8")
        if len(raw) >= 2 and raw[1:2] == b"\x00" and raw[0:1] != b"\x00":
            return raw.decode("utf-16-le")  # no BOM, but ASCII text in UTF-16 LE
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not text ({e.reason} at byte {e.start})") from e
