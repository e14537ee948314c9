"""``agent run`` with a push target: each report is queued and delivered by the outbox, through a real HTTP
server on 127.0.0.1 that is down at first; retention never prunes a report still waiting to be delivered."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.agent_run import LOG_NAME
from agent.outbox import Outbox
from tests.test_agent import reports_in, setup  # noqa: F401 - setup is a fixture
from tests.test_outbox_push import TOKEN, Ingest, free_port

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]


def test_agent_run_delivers_through_the_outbox_and_prunes_only_what_was_delivered(
        setup: tuple[Path, Path, Path], run_cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    config, reports, allowed = setup
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    port = free_port()
    config.write_text(config.read_text() + f"push:\n  url: http://127.0.0.1:{port}\n  token_file: {token}\n"
                      "retention:\n  count: 1\n")
    for _ in range(2):  # the dashboard is down: both reports wait in the outbox
        rc, _, _, err = run_cli("agent", "run", "--config", str(config), report=False)
        assert rc in (0, 1), err
    lines = [json.loads(x) for x in (reports / LOG_NAME).read_text().splitlines()]
    assert all(x["queued"] and x["delivery"]["delivered"] == 0 for x in lines), lines
    assert len(reports_in(reports)) == 2, "retention pruned a report that was never delivered"
    rc, _, out, _ = run_cli("agent", "status", "--config", str(config), report=False)
    assert "outbox: 2 report(s) waiting" in out and "last delivery: never" in out
    with Outbox.open(reports / ".mamoru-outbox") as queue:  # the failed attempts' backoff, as stored
        wait = max(i.next_attempt_at for i in queue.due(now=float("inf"))) - time.time()
    assert 0 < wait < 60
    time.sleep(wait + 0.2)
    server = Ingest(port)
    try:
        rc, _, _, err = run_cli("agent", "run", "--config", str(config), report=False)
        assert rc in (0, 1), err
        last = json.loads((reports / LOG_NAME).read_text().splitlines()[-1])
        assert last["delivery"]["waiting"] == 0, last
        made = reports_in(reports)
        assert len(server.stored) == 3 and all(n == 1 for n in server.created.values())
        for p in made:  # what remains is byte for byte what the server holds
            sha = hashlib.sha256(p.read_bytes()).hexdigest()
            assert server.stored[sha] == (p.read_bytes(), Path(f"{p}.sig").read_bytes())
        rc, _, _, err = run_cli("agent", "run", "--config", str(config), report=False)
        assert len(server.stored) == 4 and all(n == 1 for n in server.created.values())
        assert len(reports_in(reports)) == 1, "delivered reports past retention are pruned"
        assert run_cli("verify", "--chain", str(reports), "--allowed-signers", str(allowed), report=False)[0] == 0
        rc, _, out, _ = run_cli("agent", "status", "--config", str(config), report=False)
        assert "outbox: 0 report(s) waiting" in out and "last delivery: never" not in out
    finally:
        server.close()


def test_a_report_left_unqueued_by_an_earlier_run_is_delivered_by_the_next(
        setup: tuple[Path, Path, Path], run_cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """A run killed between writing its report and queuing it (here: a run before push was configured) leaves a
    signed report outside the outbox; the next run queues the whole series, so it is not lost."""
    config, reports, _ = setup
    rc, _, _, err = run_cli("agent", "run", "--config", str(config), report=False)
    assert rc in (0, 1), err
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    server = Ingest()
    try:
        config.write_text(config.read_text() + f"push:\n  url: {server.url()}\n  token_file: {token}\n")
        rc, _, _, err = run_cli("agent", "run", "--config", str(config), report=False)
        assert rc in (0, 1), err
        made = reports_in(reports)
        assert len(made) == 2
        assert sorted(server.stored) == sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in made)
    finally:
        server.close()
