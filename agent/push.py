"""Deliver the outbox to a dashboard over HTTPS: the client side of ``docs/ingest-api.md``.

urllib3 (not stdlib ``http.client``): it brings what a hand-written client would get wrong — multipart
encoding, Retry-After parsing (seconds or an HTTP date), separate connect/read timeouts, and TLS set up
with certificate and hostname verification by default. Its own retries and redirects are turned off: the
outbox keeps the retry schedule (it must survive a restart), and a redirect could carry the token elsewhere.

Rules: TLS is always verified (``--ca-file`` adds a private CA; there is no way to turn verification off);
``http://`` only to a loopback address; the token comes from a file that must be the user's own and 0600,
and is never printed, logged or stored in the outbox. A report leaves the outbox only when the server
answers 200 or 201 with a JSON body naming its SHA-256 (so a wrong URL answering "200 OK" deletes nothing).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError
from reports.safe_text import printable

if TYPE_CHECKING:
    import urllib3

    from agent.outbox import Item, Outbox

API_PATH = "/api/v1/reports"
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
MAX_TOKEN_BYTES = 4096
#: Statuses of a 4xx that mean "try again later" rather than "no".
TRANSIENT_4XX = frozenset({408, 425, 429})


def read_token(path: str | os.PathLike[str]) -> str:
    """The bearer token from ``path``: a regular file of this user, readable by nobody else (else exit 2)."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise ConfigError(f"--token-file {p}: cannot open it ({e.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"--token-file {p}: not a regular file")
        if st.st_uid != os.geteuid():
            raise ConfigError(f"--token-file {p}: owned by another user (uid {st.st_uid}); it must be yours")
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise ConfigError(f"--token-file {p}: mode {stat.S_IMODE(st.st_mode):04o} lets others read it; "
                              f"run: chmod 600 {p}")
        data = fh.read(MAX_TOKEN_BYTES + 1)
    token = data.decode("ascii", "replace").strip()
    if not token or len(data) > MAX_TOKEN_BYTES or any(not (0x21 <= ord(c) < 0x7F) for c in token):
        raise ConfigError(f"--token-file {p}: not a token (one line of printable ASCII without spaces)")
    return token


def endpoint(url: str) -> str:
    """The ingest URL for ``--to URL`` (its base); refuses what would send the token unprotected."""
    from urllib3.util import parse_url

    try:
        u = parse_url(url)
    except ValueError:
        raise ConfigError(f"--to {printable(url)}: not a URL") from None
    if u.scheme not in ("https", "http") or not u.host:
        raise ConfigError(f"--to {printable(url)}: give an https:// URL")
    if u.auth:
        raise ConfigError("--to: the URL holds credentials; put the token in --token-file instead")
    if u.query or u.fragment:
        raise ConfigError(f"--to {printable(url)}: no query or fragment: give the dashboard's base URL")
    if u.scheme == "http" and not _loopback(u.host):
        raise ConfigError(f"--to {printable(url)}: http:// is refused (the token and the reports would cross "
                          f"the network in clear); use https://")
    base = f"{u.scheme}://{u.netloc}{(u.path or '').rstrip('/')}"
    return base + API_PATH


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class Client:
    url: str
    token: str = dataclasses.field(repr=False)
    pool: urllib3.PoolManager = dataclasses.field(repr=False)

    @classmethod
    def make(cls, to: str, token_file: str | os.PathLike[str], ca_file: str | None = None) -> Client:
        import ssl

        import urllib3

        url = endpoint(to)
        token = read_token(token_file)
        if ca_file is not None and not Path(ca_file).is_file():
            raise ConfigError(f"--ca-file {ca_file}: no such file")
        pool = urllib3.PoolManager(cert_reqs=ssl.CERT_REQUIRED, ca_certs=ca_file, retries=False,
                                   timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S))
        return cls(url=url, token=token, pool=pool)


@dataclasses.dataclass(frozen=True)
class Answer:
    """One attempt: "confirmed" (status 200/201), "refused" (kept, flagged) or "retry" (after ``retry_after``)."""

    outcome: str
    status: int | None
    why: str = ""
    retry_after: float | None = None


def send(client: Client, item: Item) -> Answer:
    """POST one report and its signature; never raises for what the network or the server does."""
    import urllib3

    body, content_type = urllib3.encode_multipart_formdata({
        "sha256": item.sha256,
        "report": (item.name, item.report, "application/json"),
        "signature": (f"{item.name}.sig", item.sig, "application/octet-stream"),
    })
    headers = {"Authorization": f"Bearer {client.token}", "Content-Type": content_type,
               "Accept": "application/json", "User-Agent": "mamoru-push/1"}
    try:
        r = client.pool.request("POST", client.url, body=body, headers=headers, redirect=False,
                                preload_content=True)
    except urllib3.exceptions.SSLError as e:
        return Answer("retry", None, f"TLS: the server's certificate could not be verified ({_short(e)})")
    except urllib3.exceptions.HTTPError as e:  # connection refused or reset, timeouts, a cut-off answer
        return Answer("retry", None, f"{type(e).__name__}: {_short(e)}")
    return _judge(r.status, r.data[:65536], r.headers.get("Retry-After"), item.sha256)


def _short(e: BaseException) -> str:
    return printable(str(e))[:300]


def _judge(status: int, data: bytes, retry_after: str | None, sha256: str) -> Answer:
    reason = _server_reason(data)
    if status in (200, 201):
        doc = _json(data)
        if isinstance(doc, dict) and doc.get("sha256") == sha256:
            return Answer("confirmed", status)
        return Answer("refused", status, f"HTTP {status} without confirming the SHA-256: is --to the dashboard?")
    if status in TRANSIENT_4XX or status >= 500:
        return Answer("retry", status, f"HTTP {status}{reason}", _retry_after(retry_after))
    return Answer("refused", status, f"HTTP {status}{reason}")


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _server_reason(data: bytes) -> str:
    doc = _json(data)
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return f": {printable(doc['error'])[:300]}"
    return ""


def _retry_after(value: str | None) -> float | None:
    from urllib3.exceptions import InvalidHeader
    from urllib3.util import Retry

    if value is None:
        return None
    try:
        return max(0.0, float(Retry(0).parse_retry_after(value)))
    except InvalidHeader:
        return None


@dataclasses.dataclass
class Delivery:
    """What one ``deliver`` did."""

    confirmed: list[str] = dataclasses.field(default_factory=list)  # names, 201 or 200
    already_had: int = 0  # of those, answered 200 (the server had it)
    refused: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (name, why), this time
    failures: list[str] = dataclasses.field(default_factory=list)  # transient, this time
    busy: bool = False  # another delivery held the lock: nothing was sent


def deliver(outbox: Outbox, client: Client, *, wait_s: float = 0.0, retry_refused: bool = False) -> Delivery:
    """Send what is due, oldest report first; what ``agent run`` and ``mamoru push`` call.

    With ``wait_s`` it keeps going until that many seconds have passed, sleeping until the next scheduled
    retry; without, it makes one pass. ``retry_refused``: also try items the server refused before (an
    operator's explicit ``mamoru push``, who may have fixed the token). Holds the outbox's delivery lock.
    """
    result = Delivery()
    deadline = time.monotonic() + wait_s
    with outbox.delivery_lock() as held:
        if not held:
            result.busy = True
            return result
        first = True
        while True:
            for item in outbox.due(include_refused=retry_refused and first):
                answer = send(client, item)
                if answer.outcome == "confirmed":
                    outbox.confirm(item.sha256, answer.status or 0)
                    result.confirmed.append(item.name)
                    result.already_had += answer.status == 200
                elif answer.outcome == "refused":
                    outbox.refuse(item.sha256, answer.why)
                    result.refused.append((item.name, answer.why))
                else:
                    when = outbox.retry_later(item.sha256, answer.why, retry_after=answer.retry_after)
                    result.failures.append(answer.why)
                    outbox.hold_until(when)  # the server is unwell: nothing else before then
                    break
            first = False
            nxt = outbox.status().next_attempt_at
            if nxt is None:
                return result
            pause = nxt - time.time()
            if time.monotonic() + max(0.0, pause) > deadline:
                return result
            time.sleep(max(0.0, pause))
