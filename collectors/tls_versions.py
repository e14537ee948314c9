"""``tls_versions``: which TLS protocol versions each TLS service on the network accepts.

One handshake per version, each with a client that offers *only* that version
(minimum = maximum) and every cipher the local OpenSSL has (``@SECLEVEL=0``,
otherwise OpenSSL 3 refuses to even offer TLS 1.0/1.1). A completed handshake
is an acceptance; a protocol alert or a closed connection is a refusal; a
timeout is neither and stays unknown. When the local OpenSSL cannot offer a
version at all, that version is unknown too, never "refused". What happened to each handshake is a code
with its parts (``{"code": "connect_failed", "errno": "ECONNREFUSED"}``), worded by the check.
"""

from __future__ import annotations

import concurrent.futures
import errno
import socket
import ssl
import warnings
from collections.abc import Sequence
from typing import Any

from agent.scope import IPNetwork, guard
from agent.targets.network import NetworkTarget
from collectors.base import Facts
from collectors.lan_discovery import NetworkCollector
from collectors.lan_services import port_table, probe

HANDSHAKE_TIMEOUT = 5.0
WORKERS = 16
VERSIONS: tuple[tuple[str, str, str], ...] = (
    ("TLSv1", "TLSv1", "HAS_TLSv1"),
    ("TLSv1.1", "TLSv1_1", "HAS_TLSv1_1"),
    ("TLSv1.2", "TLSv1_2", "HAS_TLSv1_2"),
    ("TLSv1.3", "TLSv1_3", "HAS_TLSv1_3"),
)


def client_context(version: str) -> ssl.SSLContext | None:
    """A context that offers exactly ``version``; None when this OpenSSL cannot offer it."""
    enum_name, flag = next((e, f) for v, e, f in VERSIONS if v == version)
    if not getattr(ssl, flag, False):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # offering TLS 1.0 is the point here
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            ctx.minimum_version = getattr(ssl.TLSVersion, enum_name)
            ctx.maximum_version = getattr(ssl.TLSVersion, enum_name)
            if version != "TLSv1.3":
                ctx.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            return None
    return ctx


def _os_error(e: OSError) -> dict[str, Any]:
    """A socket error: the errno's name (ECONNREFUSED), which reads the same in every language, and the system's
    own English wording of it."""
    name = errno.errorcode.get(e.errno or 0) or type(e).__name__
    return {"errno": name, "detail": e.strerror or str(e) or name}


def handshake(host: str, port: int, version: str, *, scope: Sequence[IPNetwork],
              timeout: float = HANDSHAKE_TIMEOUT) -> tuple[bool | None, dict[str, Any]]:
    """(accepted?, what happened, as a code with its parts). None when it cannot be told (no connection,
    timeout, local library)."""
    ctx = client_context(version)
    if ctx is None:
        return None, {"code": "local_cannot_offer", "openssl": ssl.OPENSSL_VERSION, "version": version}
    guard(host, scope)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        return None, {"code": "connect_timeout"}
    except OSError as e:
        return None, {"code": "connect_failed", **_os_error(e)}
    try:
        with ctx.wrap_socket(raw, do_handshake_on_connect=False) as tls:
            tls.settimeout(timeout)
            tls.do_handshake()
            got = tls.version()
            return (got == version), {"code": "completed", "version": got}
    except ssl.SSLError as e:
        reason = e.reason or type(e).__name__
        if reason == "NO_PROTOCOLS_AVAILABLE":
            return None, {"code": "local_refused", "version": version}
        return False, {"code": "refused", "reason": reason}
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return False, {"code": "closed"}
    except TimeoutError:
        return None, {"code": "handshake_timeout"}
    except OSError as e:
        return None, {"code": "handshake_failed", **_os_error(e)}
    finally:
        raw.close()


def probe_endpoint(host: str, port: int, service: str, scope: Sequence[IPNetwork]) -> dict[str, Any]:
    versions: dict[str, bool | None] = {}
    details: dict[str, dict[str, Any]] = {}
    for version, _, _ in VERSIONS:
        versions[version], details[version] = handshake(host, port, version, scope=scope)
    return {"address": host, "port": port, "service": service, "versions": versions, "details": details}


class TlsVersions(NetworkCollector):
    id = "tls_versions"
    version = "2"  # 2: each version's detail is a code with its parts
    timeout = 400.0

    def gather(self, target: NetworkTarget, scope: Sequence[IPNetwork]) -> Facts:
        tls_ports = port_table()["tls"]
        states = probe(target, scope)["tcp"]
        todo = sorted(((h, p) for (h, p), s in states.items() if s == "open" and p in tls_ports),
                      key=lambda hp: (tuple(int(x) for x in hp[0].split(".")), hp[1]))
        with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
            endpoints = list(pool.map(lambda hp: probe_endpoint(hp[0], hp[1], tls_ports[hp[1]], scope), todo))
        return {
            "endpoints": endpoints,
            "ports_tested": sorted(tls_ports),
            "client": {v: client_context(v) is not None for v, _, _ in VERSIONS},
            "openssl": ssl.OPENSSL_VERSION,
            "notes": ["STARTTLS services (SMTP 25/587, POP3 110, IMAP 143) are not tested"],
        }


COLLECTOR = TlsVersions()
