"""The outbox and ``mamoru push`` against a real HTTP(S) server on 127.0.0.1 that stores what it receives."""

from __future__ import annotations

import datetime
import email.parser
import email.policy
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.cli.main import main
from agent.outbox import Outbox
from reports.signing.keys import create_key_files
from tests.signing_helpers import HARDENED, IDENTITY

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-" + "s3cr3t" * 6


class Ingest:
    """A tiny dashboard: POST /api/v1/reports, stores each SHA-256 once; ``plan`` scripts the next answers."""

    def __init__(self, port: int = 0, *, tls: ssl.SSLContext | None = None, delay: float = 0.0) -> None:
        self.stored: dict[str, tuple[bytes, bytes]] = {}
        self.created: dict[str, int] = {}
        self.posts = 0
        self.plan: list[str] = []
        self.delay = delay
        self.lock = threading.Lock()
        ingest = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                ingest.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.posts += 1
            action = self.plan.pop(0) if self.plan else "ok"
        length = int(h.headers["Content-Length"])
        if action == "cut":  # read half the body, then hang up
            h.rfile.read(length // 2)
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        body = h.rfile.read(length)
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.answer(h, 401, {"error": "bad token"})
        if action in ("500", "503"):
            return self.answer(h, int(action), {"error": "busy"}, {"Retry-After": "1"} if action == "503" else {})
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + h.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                 for p in msg.iter_parts()}
        report, sig, sha = parts["report"], parts["signature"], parts["sha256"].decode()
        if hashlib.sha256(report).hexdigest() != sha:
            return self.answer(h, 400, {"error": "sha256 does not match"})
        time.sleep(self.delay)
        with self.lock:
            if sha in self.stored:
                return self.answer(h, 200, {"sha256": sha, "status": "exists"})
            self.stored[sha] = (report, sig)
            self.created[sha] = self.created.get(sha, 0) + 1
        self.answer(h, 201, {"sha256": sha, "status": "created"})

    def answer(self, h: BaseHTTPRequestHandler, status: int, doc: dict[str, str],
               headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


KEY_PATH: list[str] = []  # the module's signing key, set by ``reports``


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five signed reports of one series, written by real scans."""
    base = tmp_path_factory.mktemp("push")
    key = create_key_files(base / "signing_key", comment=IDENTITY)
    KEY_PATH[:] = [key.path]
    directory = base / "reports"
    directory.mkdir()
    for n in range(1, 6):
        rc = main(["scan", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--quiet", "--sign-key", key.path,
                   "--output", str(directory / f"report-{n}.json")])
        assert rc == 0
    (directory / "unsigned.json").write_bytes((directory / "report-1.json").read_bytes().replace(b"PM-01", b"PM-01 "))
    return directory


@pytest.fixture
def rdir(reports: Path, tmp_path: Path) -> Path:
    d = tmp_path / "reports"
    d.mkdir()
    for f in reports.iterdir():
        if f.is_file():
            (d / f.name).write_bytes(f.read_bytes())
    return d


@pytest.fixture
def token(tmp_path: Path) -> Path:
    p = tmp_path / "token"
    p.write_text(TOKEN + "\n")
    p.chmod(0o600)
    return p


@pytest.fixture
def server() -> Iterator[Ingest]:
    s = Ingest()
    yield s
    s.close()


def expected(rdir: Path) -> dict[str, tuple[bytes, bytes]]:
    return {hashlib.sha256(p.read_bytes()).hexdigest(): (p.read_bytes(), Path(f"{p}.sig").read_bytes())
            for p in sorted(rdir.glob("report-*.json"))}


def push(rdir: Path, url: str, token: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", "push", str(rdir), "--to", url,
                           "--token-file", str(token), "--lang", "en", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def outbox_empty(rdir: Path) -> bool:
    with Outbox.open(rdir / ".mamoru-outbox") as box:
        return box.status().queued == 0


def assert_once(server: Ingest, rdir: Path) -> None:
    assert server.stored == expected(rdir)  # bytes and signatures identical
    assert all(n == 1 for n in server.created.values())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_down_at_first_then_up(rdir: Path, token: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = push(rdir, url, token)
    assert proc.returncode == 3, proc.stderr
    assert "still queued" in proc.stderr
    waiting = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "push", str(rdir), "--to", url,
                                "--token-file", str(token), "--wait", "60", "--lang", "en"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    server = Ingest(port)
    try:
        out, err = waiting.communicate(timeout=90)
        assert waiting.returncode == 0, err
        assert_once(server, rdir)
        assert outbox_empty(rdir)
        again = push(rdir, url, token)
        assert again.returncode == 0 and "5 already sent" in again.stderr
        assert server.posts == 5
    finally:
        server.close()


def test_cut_mid_upload_then_500_then_503_are_retried(rdir: Path, token: Path, server: Ingest) -> None:
    server.plan = ["cut", "500", "503"]
    proc = push(rdir, server.url(), token, "--wait", "60")
    assert proc.returncode == 0, proc.stderr
    assert_once(server, rdir)
    assert outbox_empty(rdir)


def test_duplicate_attempts_are_answered_200_and_emptied(rdir: Path, token: Path, server: Ingest) -> None:
    first = push(rdir, server.url(), token)
    assert first.returncode == 0, first.stderr
    (rdir / ".mamoru-outbox" / "outbox.sqlite3").unlink()  # forget what was sent: every report goes again
    for suffix in ("-wal", "-shm"):
        (rdir / ".mamoru-outbox" / f"outbox.sqlite3{suffix}").unlink(missing_ok=True)
    again = push(rdir, server.url(), token)
    assert again.returncode == 0, again.stderr
    assert "(5 the server already had)" in again.stderr
    assert_once(server, rdir)
    assert outbox_empty(rdir)


def test_a_refusal_keeps_the_report_flagged(rdir: Path, tmp_path: Path, server: Ingest) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    wrong.chmod(0o600)
    proc = push(rdir, server.url(), wrong)
    assert proc.returncode == 3
    assert "refused by the server" in proc.stderr and "HTTP 401: bad token" in proc.stderr
    with Outbox.open(rdir / ".mamoru-outbox") as box:
        assert box.status().queued == 5 and box.status().refused == 5
    token = tmp_path / "token2"
    token.write_text(TOKEN)
    token.chmod(0o600)
    assert push(rdir, server.url(), token).returncode == 0
    assert_once(server, rdir)


def one_more_report(rdir: Path, n: int) -> None:
    """A new signed report for the queue (another run id), so every round of kills has work to interrupt."""
    from reports.signing.keys import load_signing_key
    from reports.signing.sshsig import sign

    doc = json.loads((rdir / "report-1.json").read_bytes())
    doc["run"]["id"] = f"kill-round-{n}"
    data = (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode()
    key = load_signing_key(KEY_PATH[0])
    (rdir / f"report-k{n:02d}.json").write_bytes(data)
    Path(f"{rdir}/report-k{n:02d}.json.sig").write_bytes(sign(data, key.private))


def test_kill_9_at_random_moments_loses_nothing_sends_nothing_twice(rdir: Path, token: Path) -> None:
    server = Ingest(delay=0.15)
    rng = random.Random(1414)
    kills = 0
    try:
        for n in range(20):
            one_more_report(rdir, n)
            proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "push", str(rdir), "--to", server.url(),
                                     "--token-file", str(token)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, 1.2))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
        final = push(rdir, server.url(), token)
        assert final.returncode == 0, final.stderr
        assert_once(server, rdir)
        assert outbox_empty(rdir)
        assert server.posts - len(server.stored) <= kills  # a repeat only after a kill between store and confirm
        db = sqlite3.connect(rdir / ".mamoru-outbox" / "outbox.sqlite3")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
        assert kills >= 5
    finally:
        server.close()


def test_the_cap_drops_the_oldest_and_records_the_gap(rdir: Path, tmp_path: Path) -> None:
    from reports.chain import read_reports

    signed = [r for r in read_reports(rdir) if r.name.startswith("report-")]
    signed.sort(key=lambda r: r.started)
    with Outbox.open(tmp_path / "box", max_items=3) as box:
        outcomes = [box.enqueue(sha256=r.sha256, name=r.name, run_id=r.run_id, started=r.started, report=r.data,
                                sig=b"sig") for r in signed]
        assert outcomes == ["queued"] * 5
        assert box.enqueue(sha256=signed[4].sha256, name="x", run_id="x", started="x", report=signed[4].data,
                           sig=b"sig") == "already_queued"
        status = box.status()
        assert status.queued == 3
        assert [g.run_id for g in status.gaps] == [signed[0].run_id, signed[1].run_id]
        assert {g.sha256 for g in status.gaps} == {signed[0].sha256, signed[1].sha256}
        assert all("outbox full" in g.reason for g in status.gaps)
        assert [i.name for i in box.due()] == [r.name for r in signed[2:]]
    assert (tmp_path / "box").stat().st_mode & 0o777 == 0o700
    for f in (tmp_path / "box").iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f


def test_backoff_is_stored_and_survives_a_restart(rdir: Path, tmp_path: Path) -> None:
    from reports.chain import read_reports

    r = next(r for r in read_reports(rdir) if r.name == "report-1.json")
    with Outbox.open(tmp_path / "box") as box:
        box.enqueue(sha256=r.sha256, name=r.name, run_id=r.run_id, started=r.started, report=r.data, sig=b"s")
        t1 = box.retry_later(r.sha256, "down", now=1000.0)
        t2 = box.retry_later(r.sha256, "down", now=1000.0)
        t3 = box.retry_later(r.sha256, "busy", retry_after=120.0, now=1000.0)
    assert 1001.0 <= t1 <= 1002.0 and 1002.0 <= t2 <= 1004.0 and t3 == 1120.0
    with Outbox.open(tmp_path / "box") as box:
        assert box.due(now=1119.0) == [] and len(box.due(now=1120.0)) == 1


def test_token_file_readable_by_others_is_refused(rdir: Path, token: Path, server: Ingest) -> None:
    token.chmod(0o644)
    proc = push(rdir, server.url(), token)
    assert proc.returncode == 2
    assert "chmod 600" in proc.stderr
    assert server.posts == 0


def test_plain_http_is_refused_beyond_loopback(rdir: Path, token: Path) -> None:
    proc = push(rdir, "http://192.0.2.1", token)
    assert proc.returncode == 2 and "http:// is refused" in proc.stderr


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_self_signed_fails_unless_ca_file(rdir: Path, token: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = Ingest(tls=ctx)
    try:
        bad = push(rdir, server.url("https"), token)
        assert bad.returncode == 3
        assert "certificate" in bad.stderr
        assert server.stored == {}
        good = push(rdir, server.url("https"), token, "--ca-file", str(cert), "--wait", "30")
        assert good.returncode == 0, good.stderr
        assert_once(server, rdir)
    finally:
        server.close()


def test_the_token_never_appears_in_output_or_the_outbox(rdir: Path, token: Path, tmp_path: Path) -> None:
    port = free_port()
    outputs = []
    for _ in range(2):
        proc = push(rdir, f"http://127.0.0.1:{port}", token)
        outputs += [proc.stdout, proc.stderr]
    server = Ingest(port)
    try:
        proc = push(rdir, server.url(), token, "--wait", "30")
        outputs += [proc.stdout, proc.stderr]
    finally:
        server.close()
    assert TOKEN not in "".join(outputs)
    assert "s3cr3t" not in "".join(outputs)
    for f in (rdir / ".mamoru-outbox").iterdir():
        assert b"s3cr3t" not in f.read_bytes(), f
