"""``mamoru push`` (the real client, as a subprocess) into a live dashboard: two hosts, duplicates, out of order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dashboard import storage
from dashboard.models import Chain, Host, Organisation, Rejection, Report
from dashboard.tokens import create_token
from tests.dashboard_reports import ROOT, Made, SeriesMaker, Signer

pytestmark = pytest.mark.django_db(transaction=True)

CODE = "import sys; from agent.cli.main import main; sys.exit(main(sys.argv[1:]))"


def write(directory: Path, name: str, made: Made) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(made.data)
    (directory / f"{name}.sig").write_bytes(made.sig)


def push(directory: Path, url: str, token_file: Path, *extra: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-c", CODE, "push", str(directory), "--to", url, "--token-file",
                           str(token_file), *extra], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, LANG="C.UTF-8"))
    return proc.returncode, proc.stdout + proc.stderr


def test_two_hosts_push_with_duplicates_and_out_of_order(live_server: Any, tmp_path: Path) -> None:
    signer = Signer()
    org = Organisation.objects.create(slug="a", name="A 不動産", allowed_signers=signer.allowed)
    secret, _ = create_token(org, "office")
    token_file = tmp_path / "token"
    token_file.write_text(secret + "\n")
    token_file.chmod(0o600)
    a, b = SeriesMaker(signer, operator_host="pc-a", seed=1), SeriesMaker(signer, operator_host="pc-b", seed=2)
    a_reports = [a.make(d) for d in range(3)]
    b_reports = [b.make(d) for d in range(3)]
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"

    # Host A delivers its newest report first (the older ones were still being copied): a gap.
    write(dir_a, "report-2.json", a_reports[2])
    rc, out = push(dir_a, live_server.url, token_file)
    assert rc == 0, out
    assert Report.objects.get(sha256=a_reports[2].sha256).chain == Chain.GAP
    for day in (0, 1):
        write(dir_a, f"report-{day}.json", a_reports[day])
    rc, out = push(dir_a, live_server.url, token_file)
    assert rc == 0, out
    assert [Report.objects.get(sha256=m.sha256).chain for m in a_reports] == \
        [Chain.FIRST, Chain.LINKED, Chain.LINKED]  # the gap healed when its previous report arrived

    # Host B in order; then everything delivered again through a fresh outbox: the server already has it all.
    for day, made in enumerate(b_reports):
        write(dir_b, f"report-{day}.json", made)
    rc, out = push(dir_b, live_server.url, token_file)
    assert rc == 0, out
    rc, out = push(dir_b, live_server.url, token_file, "--outbox", str(tmp_path / "second-outbox"))
    assert rc == 0, out
    rc, out = push(dir_a, live_server.url, token_file)  # nothing new: the outbox remembers what was sent
    assert rc == 0, out

    assert Report.objects.filter(organisation=org).count() == 6
    assert not Rejection.objects.exists()
    assert [Report.objects.get(sha256=m.sha256).chain for m in b_reports] == \
        [Chain.FIRST, Chain.LINKED, Chain.LINKED]
    locals_ = Host.objects.filter(organisation=org, kind="local")
    assert sorted(h.hostname for h in locals_) == ["pc-a", "pc-b"]
    for h, newest in ((locals_.get(hostname="pc-a"), a_reports[2]), (locals_.get(hostname="pc-b"), b_reports[2])):
        assert h.latest is not None and h.latest.report.sha256 == newest.sha256
    for made in a_reports + b_reports:
        assert storage.report_bytes(Report.objects.get(sha256=made.sha256)) == made.data
    for outbox in (dir_a / ".mamoru-outbox", dir_b / ".mamoru-outbox", tmp_path / "second-outbox"):
        assert outbox.is_dir()


def test_a_refused_report_stays_queued_with_the_reason(live_server: Any, tmp_path: Path) -> None:
    org = Organisation.objects.create(slug="a", name="A", allowed_signers=Signer().allowed)
    secret, _ = create_token(org, "office")
    token_file = tmp_path / "token"
    token_file.write_text(secret)
    token_file.chmod(0o600)
    stranger = SeriesMaker(Signer())  # signed by a key the organisation does not trust
    write(tmp_path / "r", "report.json", stranger.make(0))
    rc, out = push(tmp_path / "r", live_server.url, token_file)
    assert rc == 3, out
    assert "signature refused" in out
    assert not Report.objects.exists() and Rejection.objects.count() == 1
