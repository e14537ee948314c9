"""Host-supplied text made safe to show on a terminal.

Hostnames, SSIDs, user names and file contents are attacker-controlled. JSON
escapes them by itself; a terminal does not: an ESC byte in an SSID could
rewrite the screen or the title bar. Every control character is shown as a
visible escape instead.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """Replace control, bidi-override and lone-surrogate characters with \\xNN / \\uNNNN escapes."""

    def esc(m: re.Match[str]) -> str:
        cp = ord(m.group())
        return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"

    return _CONTROL.sub(esc, text)


def printable_lines(text: str) -> str:
    """``printable`` line by line: the newlines a message is laid out with stay, every other control goes."""
    return "\n".join(printable(line) for line in text.split("\n"))
