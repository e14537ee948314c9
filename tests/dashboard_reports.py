"""Real reports for the dashboard's tests: one real ``mamoru scan`` of this machine, and daily series made from it.

A year of daily scans cannot be run in a test, so a series is made the way the agent makes one: the real
report of this machine is taken as it is, and each day gets a new run id, new time stamps, new check durations
and the previous report's SHA-256 — exactly what changes between two scans of an unchanged host. Each report
is signed with mamoru's own signer (``reports.signing.sshsig.sign``, the code ``scan --sign-key`` uses).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reports.signing import sshsig
from reports.signing.keys import allowed_signers_line, ed25519_blob

ROOT = Path(__file__).resolve().parents[1]
IDENTITY = "agent@example.jp"


@dataclasses.dataclass
class Signer:
    """An Ed25519 key as ``mamoru keygen`` makes one, and the allowed_signers line that trusts it."""

    key: Ed25519PrivateKey = dataclasses.field(default_factory=Ed25519PrivateKey.generate)
    identity: str = IDENTITY

    @property
    def allowed(self) -> str:
        return allowed_signers_line(self.identity, ed25519_blob(self.key.public_key()), sshsig.NAMESPACE) + "\n"

    def sign(self, data: bytes) -> bytes:
        return sshsig.sign(data, self.key)


@functools.cache
def scanned_report() -> tuple[bytes, bytes, str]:
    """(report bytes, .sig bytes, allowed_signers line) of a real ``mamoru scan --sign-key`` of this machine,
    run once per test session from this tree's code."""
    work = Path(tempfile.mkdtemp(prefix="mamoru-dashboard-scan-"))
    key = work / "key"
    code = "import sys; from agent.cli.main import main; sys.exit(main(sys.argv[1:]))"
    made = subprocess.run([sys.executable, "-c", code, "keygen", "--output", str(key), "--identity", IDENTITY],
                          cwd=ROOT, check=True, capture_output=True, timeout=120)
    line = next(t for t in made.stdout.decode().splitlines() if t.startswith(IDENTITY + " "))
    out = work / "r" / "report.json"
    out.parent.mkdir()
    proc = subprocess.run([sys.executable, "-c", code, "scan", "--quiet", "--sign-key", str(key),
                           "--output", str(out)], cwd=ROOT, capture_output=True, timeout=300)
    assert out.exists(), proc.stderr.decode(errors="replace")
    return out.read_bytes(), Path(f"{out}.sig").read_bytes(), line


@functools.cache
def base_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(scanned_report()[0])
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


@dataclasses.dataclass
class Made:
    data: bytes
    sig: bytes
    sha256: str
    doc: dict[str, Any]


class SeriesMaker:
    """Daily reports of one operator host (one series), chained as the agent chains them."""

    def __init__(self, signer: Signer, *, operator_host: str = "office-pc-01", scope: str = "/var/lib/mamoru",
                 machine_id: str | None = None, hostname: str | None = None,
                 start: datetime.datetime | None = None, seed: int = 1) -> None:
        self.signer = signer
        self.operator_host = operator_host
        self.scope = scope
        self.machine_id = machine_id if machine_id is not None else uuid.uuid5(uuid.NAMESPACE_DNS,
                                                                                operator_host).hex
        self.hostname = hostname if hostname is not None else operator_host
        self.day0 = start or datetime.datetime(2026, 4, 1, 9, 0, tzinfo=datetime.UTC)
        self.random = random.Random(seed)
        self.previous: Made | None = None

    def make(self, day: int, *, previous: Made | bool | None = True,
             change: Any = None) -> Made:
        """The report of ``day`` (0-based); ``previous`` True: chained to the last one made; a Made: to that
        one; None/False: first of a chain. ``change(doc)`` may alter the findings (a host that changed)."""
        doc = copy.deepcopy(base_doc())
        when = self.day0 + datetime.timedelta(days=day)
        run = doc["run"]
        run["id"] = str(uuid.UUID(int=self.random.getrandbits(128), version=4))
        run["started"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        run["finished"] = (when + datetime.timedelta(seconds=1)).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
        run["operator"]["host"] = self.operator_host
        run["scope"] = self.scope
        prev = self.previous if previous is True else (previous or None)
        run["previous"] = ({"sha256": prev.sha256, "run_id": prev.doc["run"]["id"], "file": "report.json"}
                           if prev else None)
        for t in doc["targets"]:
            if t["kind"] == "local":
                t["machine_id"] = self.machine_id
                t["hostname"] = self.hostname
        for f in doc["findings"]:
            f["duration_ms"] = round(self.random.uniform(0.01, 30.0), 3)
        if change is not None:
            change(doc)
        data = encode(doc)
        made = Made(data=data, sig=self.signer.sign(data), sha256=hashlib.sha256(data).hexdigest(), doc=doc)
        self.previous = made
        return made
