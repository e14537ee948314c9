"""The OpenSSH ``allowed_signers`` file: who may sign what, and when (ssh-keygen(1), ALLOWED SIGNERS).

Parsed the way OpenSSH's sshsig.c does (principals may be quoted; options are
comma-separated, keywords case-insensitive, values double-quoted; a trailing
comment after the key is allowed), so the same file gives the same answer to
``mamoru verify`` and ``ssh-keygen -Y verify``. One difference, on purpose: a
malformed line anywhere is an error naming file and line (ssh-keygen only logs
it and skips the line), because a silently ignored trust line is how a
recipient ends up trusting less, or more, than they meant to.

Everything this module quotes from the file (principals, namespaces, the
file's own name) goes through ``printable`` first: an error is printed on
the recipient's terminal, and the file may come from someone else.

``cert-authority`` lines are parsed but never match: mamoru signs with plain
keys, and certificates in signatures are refused as an unsupported key type.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import dataclasses
import re
import struct
import time
from functools import lru_cache
from pathlib import Path

from reports.safe_text import printable
from reports.signing.errors import (
    AllowedSignersError,
    IdentityMismatch,
    NamespaceNotAllowed,
    SignerExpired,
    SignerNotYetValid,
    UnknownKey,
)
from reports.signing.keys import fingerprint

MAX_FILE = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class AllowedSigner:
    principals: str  # an OpenSSH pattern-list, e.g. "auditor@example.jp,*@office.example.jp"
    key_type: str
    key_blob: bytes
    namespaces: str | None = None  # pattern-list; None = any namespace
    valid_after: int | None = None  # epoch seconds
    valid_before: int | None = None
    cert_authority: bool = False
    source: str = ""  # "file:line", for messages


# --- OpenSSH pattern lists (match.c) -------------------------------------------------------------------

@lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
                      re.DOTALL)


def match_pattern(string: str, pattern: str) -> bool:
    """``*`` any run of characters, ``?`` exactly one; no other metacharacters (match.c match_pattern)."""
    return _pattern_regex(pattern).fullmatch(string) is not None


def match_pattern_list(string: str, patterns: str) -> int:
    """1 if a positive pattern matches and no ``!negated`` one does, -1 if a negated one matches, else 0."""
    got_positive = 0
    for sub in patterns.split(","):
        negated = sub.startswith("!")
        if negated:
            sub = sub[1:]
        if match_pattern(string, sub):
            if negated:
                return -1
            got_positive = 1
    return got_positive


# --- timestamps (misc.c parse_absolute_time) -----------------------------------------------------------

def parse_absolute_time(text: str) -> int:
    """``YYYYMMDD[Z]`` or ``YYYYMMDDHHMM[SS][Z]`` → epoch seconds; local time unless suffixed Z (or UTC)."""
    s, utc = text, False
    if len(s) > 1 and s[-1] in "Zz":
        s, utc = s[:-1], True
    elif len(s) > 3 and s[-3:].upper() == "UTC":
        s, utc = s[:-3], True
    if len(s) not in (8, 12, 14) or not s.isascii() or not s.isdigit():
        raise ValueError(f"invalid time {text!r} (YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z])")
    fields = (s[0:4], s[4:6], s[6:8], s[8:10] or "0", s[10:12] or "0", s[12:14] or "0")
    year, month, day, hour, minute, second = (int(f) for f in fields)
    try:
        parsed = time.strptime(f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}",
                               "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ValueError(f"invalid time {text!r}") from None
    value = calendar.timegm(parsed) if utc else int(time.mktime(parsed))
    if value < 0:
        raise ValueError(f"invalid time {text!r}")
    return value


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# --- the file ------------------------------------------------------------------------------------------

def _token(line: str, pos: int, where: str) -> tuple[str, int]:
    """strdelimw(): a whitespace-delimited token; a double quote runs to the next quote and ends the token."""
    start = pos
    while pos < len(line) and line[pos] not in " \t\r\n\"":
        pos += 1
    token = line[start:pos]
    if pos < len(line) and line[pos] == '"':
        close = line.find('"', pos + 1)
        if close < 0:
            raise AllowedSignersError(f"{where}: unterminated quote in the principals")
        token += line[pos + 1:close]
        pos = close + 1
    while pos < len(line) and line[pos] in " \t\r\n":
        pos += 1
    return token, pos


def _options_end(line: str, pos: int, where: str) -> int:
    """sshkey_advance_past_options(): up to the first blank outside double quotes."""
    quoted = False
    while pos < len(line) and (quoted or line[pos] not in " \t"):
        if line[pos] == "\\" and line[pos + 1:pos + 2] == '"':
            pos += 1
        elif line[pos] == '"':
            quoted = not quoted
        pos += 1
    if quoted:
        raise AllowedSignersError(f"{where}: unterminated quote in the options")
    return pos


def _dequote(opts: str, pos: int, name: str, where: str) -> tuple[str, int]:
    """opt_dequote(): a double-quoted value, ``\\"`` for a literal quote."""
    if pos >= len(opts) or opts[pos] != '"':
        raise AllowedSignersError(f'{where}: {name}= needs a double-quoted value, e.g. {name}="..."')
    out: list[str] = []
    pos += 1
    while pos < len(opts) and opts[pos] != '"':
        if opts[pos] == "\\" and opts[pos + 1:pos + 2] == '"':
            pos += 1
        out.append(opts[pos])
        pos += 1
    if pos >= len(opts):
        raise AllowedSignersError(f"{where}: {name}= value has no closing quote")
    return "".join(out), pos + 1


@dataclasses.dataclass
class _Options:
    namespaces: str | None = None
    valid_after: int | None = None
    valid_before: int | None = None
    cert_authority: bool = False


def _parse_options(opts: str, where: str) -> _Options:
    """sshsigopt_parse(): cert-authority, namespaces="..", valid-after="..", valid-before=".."."""
    result = _Options()
    seen: set[str] = set()
    pos = 0
    while pos < len(opts):
        lower = opts[pos:].lower()
        if lower.startswith("cert-authority"):
            result.cert_authority = True
            pos += len("cert-authority")
        else:
            for name in ("namespaces", "valid-after", "valid-before"):
                if lower.startswith(name + "="):
                    break
            else:
                raise AllowedSignersError(f"{where}: unknown option {opts[pos:].split(',')[0]!r}")
            if name in seen:
                raise AllowedSignersError(f'{where}: multiple "{name}" options')
            seen.add(name)
            value, pos = _dequote(opts, pos + len(name) + 1, name, where)
            if name == "namespaces":
                result.namespaces = value
            else:
                try:
                    stamp = parse_absolute_time(value)
                except ValueError as e:
                    raise AllowedSignersError(f'{where}: invalid "{name}": {e}') from None
                if name == "valid-after":
                    result.valid_after = stamp
                else:
                    result.valid_before = stamp
        if pos >= len(opts):
            break
        if opts[pos] != ",":
            raise AllowedSignersError(f"{where}: unknown option text {opts[pos:]!r}")
        pos += 1
        if pos >= len(opts):
            raise AllowedSignersError(f"{where}: options end with a comma")
    if (result.valid_after is not None and result.valid_before is not None
            and result.valid_before <= result.valid_after):
        raise AllowedSignersError(f'{where}: "valid-before" is not after "valid-after"')
    return result


def _parse_key(key_type: str, b64: str, where: str) -> bytes:
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise AllowedSignersError(f"{where}: the key's base64 does not decode") from None
    # The blob starts with its own type name; it must agree with the one written before it.
    if len(blob) < 4:
        raise AllowedSignersError(f"{where}: the key is truncated")
    (n,) = struct.unpack(">I", blob[:4])
    if blob[4:4 + n].decode("ascii", "replace") != key_type:
        raise AllowedSignersError(f"{where}: the key data is not a {key_type} key")
    if key_type == "ssh-ed25519":
        rest = blob[4 + n:]
        if len(rest) != 4 + 32 or struct.unpack(">I", rest[:4])[0] != 32:
            raise AllowedSignersError(f"{where}: malformed ssh-ed25519 key")
    return blob


def _looks_like_key_type(word: str) -> bool:
    return bool(re.fullmatch(r"(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+)(@[a-z0-9.-]+)?", word))


def parse_line(line: str, where: str) -> AllowedSigner | None:
    pos = len(line) - len(line.lstrip(" \t\r\n"))
    if pos >= len(line) or line[pos] == "#":
        return None
    principals, pos = _token(line, pos, where)
    if not principals or pos >= len(line):
        raise AllowedSignersError(f"{where}: a line needs principals and a key")
    options = _Options()
    rest = line[pos:].split()
    if not rest or not _looks_like_key_type(rest[0]):
        end = _options_end(line, pos, where)
        options = _parse_options(line[pos:end], where)
        rest = line[end:].split()
        if not rest:
            raise AllowedSignersError(f"{where}: missing key after the options")
        if not _looks_like_key_type(rest[0]):
            raise AllowedSignersError(f"{where}: {rest[0][:40]!r} is not an SSH key type")
    if len(rest) < 2:
        raise AllowedSignersError(f"{where}: missing base64 key after {rest[0]}")
    key_type, b64 = rest[0], rest[1]  # anything after is the key's comment
    blob = _parse_key(key_type, b64, where)
    return AllowedSigner(principals=principals, key_type=key_type, key_blob=blob, source=where,
                         namespaces=options.namespaces, valid_after=options.valid_after,
                         valid_before=options.valid_before, cert_authority=options.cert_authority)


def parse(text: str, name: str = "allowed_signers") -> list[AllowedSigner]:
    signers = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = parse_line(line, f"{printable(name)}:{number}")
        if entry is not None:
            signers.append(entry)
    return signers


def load(path: str | Path) -> list[AllowedSigner]:
    p = Path(path)
    shown = printable(str(p))
    try:
        if p.stat().st_size > MAX_FILE:
            raise AllowedSignersError(f"{shown}: larger than {MAX_FILE} bytes; not an allowed_signers file")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise AllowedSignersError(f"allowed signers file {shown}: no such file") from None
    except IsADirectoryError:
        raise AllowedSignersError(f"allowed signers file {shown}: is a directory") from None
    except OSError as e:
        raise AllowedSignersError(f"allowed signers file {shown}: cannot read it ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise AllowedSignersError(f"{shown}:{line}: not UTF-8 text") from None
    signers = parse(text, str(p))
    if not signers:
        raise AllowedSignersError(f"{shown}: lists no signer (only blank lines and comments)")
    return signers


# --- the trust decision --------------------------------------------------------------------------------

def authorize(signers: list[AllowedSigner], key_blob: bytes, *, identity: str | None, namespace: str,
              when: float) -> tuple[str, ...]:
    """The principals fields that vouch for ``key_blob`` (for ``identity``, in ``namespace``, at ``when``).

    Raises the most specific reason when none does: the key is unknown; known but for another identity;
    known but not for this namespace; outside its validity window.
    """
    fp = fingerprint(key_blob)
    same_key = [s for s in signers if not s.cert_authority and s.key_blob == key_blob]
    if not same_key:
        raise UnknownKey(f"the signing key {fp} is not listed in the allowed signers file")
    for_identity = [s for s in same_key if identity is None or match_pattern_list(identity, s.principals) == 1]
    if not for_identity:
        listed = ", ".join(sorted({printable(s.principals) for s in same_key}))
        raise IdentityMismatch(f'the signing key {fp} is listed for "{listed}", not for identity '
                               f'"{printable(identity or "")}"')
    in_namespace = [s for s in for_identity
                    if s.namespaces is None or match_pattern_list(namespace, s.namespaces) == 1]
    if not in_namespace:
        first = for_identity[0]
        raise NamespaceNotAllowed(f'{first.source}: the signing key {fp} is allowed only for namespaces '
                                  f'"{printable(first.namespaces or "")}", not "{printable(namespace)}"')
    valid = [s for s in in_namespace
             if (s.valid_after is None or when >= s.valid_after)
             and (s.valid_before is None or when <= s.valid_before)]
    if not valid:
        first = in_namespace[0]
        if first.valid_before is not None and when > first.valid_before:
            raise SignerExpired(f"{first.source}: the signing key {fp} expired at {format_time(first.valid_before)} "
                                f"(valid-before); checked at {format_time(when)}")
        assert first.valid_after is not None
        raise SignerNotYetValid(f"{first.source}: the signing key {fp} is valid only from "
                                f"{format_time(first.valid_after)} (valid-after); checked at {format_time(when)}")
    return tuple(dict.fromkeys(s.principals for s in valid))
