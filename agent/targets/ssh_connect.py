"""Reaching an SSH host safely: TCP or a jump channel, handshake, host-key check, key login.

Host keys are checked before anything else is sent: against known_hosts (the
user's, or ``--known-hosts FILE``), refusing unknown hosts with the key's
SHA256 fingerprint and refusing changed or revoked keys loudly. Trust on
first use (``accept_new``) must be asked for and is written to the known_hosts
file, as OpenSSH's ``StrictHostKeyChecking=accept-new`` does. Never paramiko's
AutoAddPolicy. Keys only (files or ssh-agent): no password is ever taken, so
none can leak into a URI, a process listing, a report or a log. Every failure
is an error with the reason code the report shows (``targets[].reason``).
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import getpass
import hashlib
import hmac
import logging
import os
import re
import socket
import threading
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError
from agent.targets.base import TargetUnreachable

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger("mamoru.ssh")


def _without_invoke() -> None:
    """Keep paramiko from importing invoke.

    paramiko imports invoke (and through it unittest.mock and asyncio: 40-50 ms of CPU at every start,
    measured here) only to run the ``Match exec`` lines of an ssh_config. mamoru never reads an ssh_config:
    its SSH settings come from the command line and the inventory. Marking invoke absent before paramiko's
    first import skips all that; paramiko would only complain if asked to evaluate such a line.
    """
    import sys

    if "paramiko" not in sys.modules:
        sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]


_without_invoke()

DEFAULT_PORT = 22
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")

# -- errors: each has the reason code the report shows in targets[].reason -------------------------


class AuthenticationFailed(TargetUnreachable):
    reason = "auth_failed"


class HostKeyUnknown(TargetUnreachable):
    reason = "host_key_unknown"


class HostKeyChanged(TargetUnreachable):
    reason = "host_key_changed"


class ConnectTimeout(TargetUnreachable):
    reason = "timeout"


class SudoRefused(TargetUnreachable):
    reason = "sudo_refused"


class ConnectionLost(TargetUnreachable):
    reason = "connection_lost"


# -- addresses and options ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class SSHAddress:
    user: str
    host: str
    port: int = DEFAULT_PORT

    @classmethod
    def parse(cls, spec: str) -> SSHAddress:
        """``ssh://user@host:port`` (IPv6 as ``[::1]``). A password in the URI is refused, never echoed."""
        if not spec.startswith("ssh://"):
            raise ConfigError("an SSH target looks like ssh://user@host:port")
        parts = urllib.parse.urlsplit(spec)
        if parts.password is not None or ":" in parts.netloc.rpartition("@")[0]:
            raise ConfigError("an ssh:// target must not contain a password (it would end up in shell history, "
                              "process listings and reports): use a key, e.g. --identity-file, or ssh-agent")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"{spec}: an SSH target is ssh://user@host:port, nothing after the port")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as e:
            raise ConfigError(f"{spec}: bad port") from e
        host = parts.hostname or ""
        if not host:
            raise ConfigError(f"{spec}: no host")
        user = urllib.parse.unquote(parts.username) if parts.username else getpass.getuser()
        return cls(user=user, host=host, port=port)

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH uses for this host in known_hosts."""
        return self.host if self.port == DEFAULT_PORT else f"[{self.host}]:{self.port}"

    @property
    def spec(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{urllib.parse.quote(self.user, safe='')}@{host}:{self.port}"


# -- host keys ------------------------------------------------------------------------------------


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:`` fingerprint (what ``ssh-keygen -l`` prints)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode("ascii").rstrip("=")


def _pattern_match(name: str, pattern: str) -> bool:
    """OpenSSH's match_pattern: only ``*`` and ``?`` are special (``[host]:port`` brackets are literal)."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(rx, name.lower()) is not None


def _host_matches(field: str, name: str) -> bool:
    """OpenSSH known_hosts host field: hashed ``|1|salt|hash``, or patterns with ``*``/``?`` and ``!`` negation."""
    if field.startswith("|1|"):
        try:
            _, _, salt_b64, hash_b64 = field.split("|", 3)
            salt, want = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), want)
    matched = False
    for pat in field.split(","):
        if pat.startswith("!"):
            if _pattern_match(name, pat[1:]):
                return False
        elif _pattern_match(name, pat):
            matched = True
    return matched


@dataclasses.dataclass(frozen=True)
class _KnownKey:
    marker: str  # "" or "@revoked" / "@cert-authority"
    hosts: str
    keytype: str
    blob: bytes
    where: str  # file:line


class KnownHosts:
    """known_hosts files, read like OpenSSH reads them; only the user's file is ever written."""

    def __init__(self, path: str | None, *, accept_new: bool) -> None:
        self.path = Path(os.path.expanduser(path or USER_KNOWN_HOSTS))
        self.explicit = path is not None
        self.accept_new = accept_new
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        files = [self.path]
        if not self.explicit:
            files.append(Path(SYSTEM_KNOWN_HOSTS))
        return files

    def entries(self) -> list[_KnownKey]:
        out: list[_KnownKey] = []
        for f in self._files():
            try:
                text = f.read_text("utf-8", errors="replace")
            except FileNotFoundError:
                continue
            except OSError as e:
                raise HostKeyUnknown(f"cannot read known_hosts file {f}: {e.strerror}") from e
            for n, raw in enumerate(text.splitlines(), 1):
                fields = raw.split()
                if not fields or fields[0].startswith("#"):
                    continue
                marker = ""
                if fields[0].startswith("@"):
                    marker, fields = fields[0], fields[1:]
                if len(fields) < 3:
                    continue
                try:
                    blob = base64.b64decode(fields[2], validate=True)
                except ValueError:
                    continue
                out.append(_KnownKey(marker, fields[0], fields[1], blob, f"{f}:{n}"))
        return out

    def known_types(self, name: str) -> list[str]:
        return [e.keytype for e in self.entries() if not e.marker and _host_matches(e.hosts, name)]

    def verify(self, name: str, key: paramiko.PKey) -> None:
        """Return if ``key`` is the known key of ``name``; raise HostKeyUnknown/HostKeyChanged otherwise."""
        keytype, blob, fp = key.get_name(), key.asbytes(), fingerprint(key)
        with self._lock:
            entries = self.entries()
            for e in entries:
                if e.marker == "@revoked" and e.blob == blob:
                    raise HostKeyChanged(f"{name}: the host presented a REVOKED key ({keytype} {fp}, "
                                         f"marked @revoked in {e.where}); refused")
            mine = [e for e in entries if not e.marker and _host_matches(e.hosts, name)]
            if any(e.keytype == keytype and e.blob == blob for e in mine):
                return
            if mine:
                known = ", ".join(f"{e.keytype} at {e.where}" for e in mine)
                raise HostKeyChanged(
                    f"WARNING: HOST KEY CHANGED for {name}: it presented {keytype} {fp}, but known_hosts has "
                    f"{known}. Someone may be intercepting the connection (man-in-the-middle), or the host was "
                    f"reinstalled. Refused: check the new fingerprint with the host's administrator, then "
                    f"remove the old line (ssh-keygen -R '{name}' -f {self.path})."
                )
            if not self.accept_new:
                raise HostKeyUnknown(
                    f"{name}: host key not in {self.path} ({keytype} {fp}). Compare this fingerprint with the "
                    f"one the host's administrator gives you (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "
                    f"then add it, or pass --accept-new to trust it on first use."
                )
            self._record(name, key)
        log.warning("added %s host key %s for %s to %s (trust on first use)", keytype, fp, name, self.path)

    def _record(self, name: str, key: paramiko.PKey) -> None:
        """Append one line under an exclusive lock, so parallel workers never interleave writes."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = f"{name} {key.get_name()} {key.get_base64()}\n".encode("ascii")
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(fd, "rb", closefd=False) as fh:  # another worker may have recorded it meanwhile
                if line in fh.read().splitlines(keepends=True):
                    return
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def _prefer_aead(transport: paramiko.Transport) -> None:
    """AES-GCM first: no separate HMAC, which paramiko computes and compares per packet in Python.

    On a fleet, that per-packet work is a good part of the scanner's CPU time. The server still chooses
    among what both sides allow, so a server without GCM gets the usual ciphers.
    """
    opts = transport.get_security_options()
    gcm = [c for c in ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com") if c in opts.ciphers]
    opts.ciphers = gcm + [c for c in opts.ciphers if c not in gcm]


def _prefer_known_types(transport: paramiko.Transport, types: Sequence[str]) -> None:
    """Ask the server for the key type we already know, as OpenSSH does, so a known host never looks changed."""
    if not types:
        return
    opts = transport.get_security_options()
    available = list(opts.key_types)
    wanted: list[str] = []
    for t in types:
        for name in (("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa") if t == "ssh-rsa" else (t,)):
            if name in available and name not in wanted:
                wanted.append(name)
    if wanted:
        opts.key_types = wanted + [t for t in available if t not in wanted]


# -- connecting -----------------------------------------------------------------------------------


def _load_identity(path: str) -> tuple[list[paramiko.PKey], str | None]:
    """Keys from an identity file; an encrypted file is looked up in ssh-agent by its public half."""
    import paramiko

    p = os.path.expanduser(path)
    try:
        return [paramiko.PKey.from_path(p)], None
    except (paramiko.PasswordRequiredException, TypeError):  # TypeError: newer cryptography, same meaning
        pub = Path(p + ".pub")
        agent_keys = _agent_keys()
        try:
            blob = base64.b64decode(pub.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            blob = b""
        match = [k for k in agent_keys if blob and k.asbytes() == blob]
        if match:
            return match, None
        return [], f"{path} is encrypted and not loaded in ssh-agent (run: ssh-add {path})"
    except FileNotFoundError:
        return [], f"{path}: no such file"
    except (OSError, paramiko.SSHException, ValueError) as e:
        return [], f"{path}: not a usable private key ({e})"


def _agent_keys() -> list[paramiko.PKey]:
    import paramiko

    if not os.environ.get("SSH_AUTH_SOCK"):
        return []
    try:
        return list(paramiko.Agent().get_keys())
    except paramiko.SSHException:
        return []


def _authenticate(transport: paramiko.Transport, addr: SSHAddress, identity_file: str | None) -> None:
    import paramiko

    notes: list[str] = []
    keys: list[tuple[str, paramiko.PKey]] = []
    if identity_file:
        found, note = _load_identity(identity_file)
        keys += [(identity_file, k) for k in found]
        if note:
            notes.append(note)
    else:
        keys += [("ssh-agent", k) for k in _agent_keys()]
        for candidate in DEFAULT_IDENTITIES:
            if os.path.exists(os.path.expanduser(candidate)):
                found, note = _load_identity(candidate)
                keys += [(candidate, k) for k in found]
                if note:
                    notes.append(note)
    tried: list[str] = []
    for label, key in keys:
        try:
            remaining = transport.auth_publickey(addr.user, key)
        except paramiko.BadAuthenticationType as e:
            raise AuthenticationFailed(f"{addr.user}@{addr.known_hosts_name}: the server does not accept keys "
                                       f"(it allows: {', '.join(e.allowed_types) or 'nothing'})") from None
        except paramiko.AuthenticationException:
            tried.append(f"{label} ({key.get_name()} {fingerprint(key)})")
            continue
        if not remaining:
            return
        notes.append(f"the server wants more factors after the key: {', '.join(remaining)}")
    what = "; ".join(tried) if tried else "no key was available"
    extra = f" ({'; '.join(notes)})" if notes else ""
    raise AuthenticationFailed(f"{addr.user}@{addr.known_hosts_name}: the server refused the key(s): {what}{extra}")


def open_transport(addr: SSHAddress, *, identity_file: str | None, known_hosts: KnownHosts, timeout: float,
                    sock: Any = None) -> paramiko.Transport:
    """TCP (or a jump channel), SSH handshake, host key check, key authentication — in that order."""
    import paramiko

    where = f"{addr.host}:{addr.port}"
    if sock is None:
        try:
            sock = socket.create_connection((addr.host, addr.port), timeout=timeout)
        except TimeoutError as e:
            raise ConnectTimeout(f"{where}: no TCP answer within {timeout:g} s") from e
        except socket.gaierror as e:
            raise TargetUnreachable(f"{where}: cannot resolve the host name ({e.strerror})") from e
        except OSError as e:
            raise TargetUnreachable(f"{where}: cannot connect ({e.strerror or e})") from e
    if isinstance(sock, socket.socket):
        # Requests are small and pipelined: Nagle would hold each one back until the previous is acknowledged.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    _prefer_aead(transport)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    transport.channel_timeout = timeout
    try:
        _prefer_known_types(transport, known_hosts.known_types(addr.known_hosts_name))
        handshake = threading.Event()
        transport.start_client(event=handshake)  # returns at once; the transport thread negotiates
        done = handshake.wait(timeout)
        if not done or not transport.is_active():
            problem = transport.get_exception()
            text = str(problem or "").lower()
            if not done or "banner" in text or "timeout" in text or isinstance(problem, TimeoutError):
                raise ConnectTimeout(f"{where}: accepted the connection but did not speak SSH within "
                                     f"{timeout:g} s")
            if isinstance(problem, (EOFError, OSError)) or problem is None:
                raise TargetUnreachable(f"{where}: the connection closed during the SSH handshake")
            raise TargetUnreachable(f"{where}: SSH handshake failed ({problem})")
        known_hosts.verify(addr.known_hosts_name, transport.get_remote_server_key())
        try:
            _authenticate(transport, addr, identity_file)
        except paramiko.SSHException as e:
            if not transport.is_active():
                raise ConnectionLost(f"{where}: the connection closed during authentication") from e
            raise AuthenticationFailed(f"{where}: authentication failed ({e})") from e
        except (EOFError, OSError) as e:
            raise ConnectionLost(f"{where}: the connection closed during authentication") from e
    except BaseException:
        transport.close()
        raise
    transport.set_keepalive(15)
    return transport
