"""Evidence bundles: collect on site, evaluate later, get the report a direct scan gives."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.sshd_helpers import SshdLab

RunCli = Callable[..., tuple[int, Any, str, str]]
HARDENED = f"rootfs:{FIXTURES / 'rootfs' / 'hardened'}"
WEAK = f"rootfs:{FIXTURES / 'rootfs' / 'weak'}"
#: Checks whose facts are configuration files: stable between two runs on a live machine (process lists are not).
STABLE_CHECKS = ("IA-01", "IA-04", "PM-01", "PM-03", "LG-02", "TX-04", "PH-01")


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A report without what differs between two runs of the same judgement: run ids, times, durations."""
    return {
        "targets": doc["targets"],
        "findings": [{k: v for k, v in f.items() if k != "duration_ms"} for f in doc["findings"]],
        "summary": doc["summary"],
        "policy": doc["run"]["policy"],
        "partial": doc["run"]["partial"],
    }


def collect_then_evaluate(run_cli: RunCli, tmp_path: Path, collect_args: list[str],
                          evaluate_args: list[str] | None = None) -> tuple[dict[str, Any], Path]:
    bundle = tmp_path / "facts.bundle.json"
    rc, _, _, err = run_cli("collect", *collect_args, "--output", str(bundle))
    assert rc in (0, 3), err
    out = tmp_path / "evaluated.json"
    rc, doc, _, err = run_cli("evaluate", str(bundle), *(evaluate_args or []), "--output", str(out), "--quiet")
    assert rc in (0, 1, 3), err
    assert doc is not None
    return doc, bundle


def test_collect_evaluate_equals_scan_on_fixtures(run_cli: RunCli, tmp_path: Path) -> None:
    rc, scanned, _, err = run_cli("scan", "--target", HARDENED, "--target", WEAK, "--quiet")
    assert rc == 1, err
    evaluated, bundle = collect_then_evaluate(run_cli, tmp_path, ["--target", HARDENED, "--target", WEAK])
    assert comparable(evaluated) == comparable(scanned)
    assert {f["status"] for f in evaluated["findings"]} >= {"pass", "fail"}  # a real verdict, not all errors


def test_the_bundle_file(run_cli: RunCli, tmp_path: Path) -> None:
    _, bundle = collect_then_evaluate(run_cli, tmp_path, ["--target", WEAK])
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    doc = json.loads(bundle.read_text())
    assert doc["schema"] == "mamoru-bundle/1"
    assert doc["run"]["tool"]["name"] == "mamoru" and doc["run"]["started"] <= doc["run"]["finished"]
    assert doc["collectors"]["accounts"] and doc["collectors"]["sshd"]
    facts = doc["targets"][0]["facts"]
    assert facts["id"] == WEAK and facts["kind"] == "rootfs"
    for rec in facts["facts"].values():
        assert rec["version"] == doc["collectors"][rec["collector"]]
        assert rec["collected_at"].endswith("Z")
    # Secrets stay on the host: the fixture's shadow hash is nowhere in the bundle.
    assert "FAKEHASHROOT" not in bundle.read_text()


def test_evaluate_with_another_policy_needs_no_new_collection(run_cli: RunCli, tmp_path: Path) -> None:
    default, bundle = collect_then_evaluate(run_cli, tmp_path, ["--target", HARDENED])
    strict = tmp_path / "strict.yaml"
    strict.write_text("logging:\n  retention_days: 36500\n")
    rc, doc, _, err = run_cli("evaluate", str(bundle), "--policy", str(strict), "--output",
                              str(tmp_path / "strict.json"), "--quiet")
    assert rc == 1, err
    before = next(f for f in default["findings"] if f["check"] == "LG-02")
    after = next(f for f in doc["findings"] if f["check"] == "LG-02")
    assert before["status"] == "pass" and after["status"] == "fail"
    assert after["expected"]["retention_days"] == ">= 36500"
    # …and scan with the same policy agrees.
    _, scanned, _, _ = run_cli("scan", "--target", HARDENED, "--policy", str(strict), "--quiet")
    assert comparable(scanned)["findings"] == comparable(doc)["findings"]


def test_bundle_as_a_scan_target(run_cli: RunCli, tmp_path: Path) -> None:
    evaluated, bundle = collect_then_evaluate(run_cli, tmp_path, ["--target", HARDENED, "--target", WEAK])
    rc, scanned, _, err = run_cli("scan", "--target", f"bundle:{bundle}", "--quiet")
    assert rc == 1, err
    assert comparable(scanned) == comparable(evaluated)


def test_facts_of_another_collector_version_are_not_judged(run_cli: RunCli, tmp_path: Path) -> None:
    _, bundle = collect_then_evaluate(run_cli, tmp_path, ["--target", WEAK])
    doc = json.loads(bundle.read_text())
    doc["targets"][0]["facts"]["facts"]["accounts"]["version"] = "0-old"
    old = tmp_path / "old.bundle.json"
    old.write_text(json.dumps(doc))
    _, report, _, _ = run_cli("evaluate", str(old), "--check", "IA-01", "--output", str(tmp_path / "o.json"),
                               "--quiet")
    f = report["findings"][0]
    assert f["status"] == "error" and "collect again" in f["message"]["en"]
    assert report["targets"][0]["status"] == "partial"


@pytest.mark.parametrize(("mangle", "words"), [
    (lambda d: "{ not json", "not JSON"),
    (lambda d: json.dumps({**d, "schema": "mamoru-bundle/99"}), "not supported"),
    (lambda d: json.dumps({**d, "schema": "something-else"}), "not a mamoru evidence bundle"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "run"}), "run"),
    (lambda d: json.dumps({**d, "targets": [{"facts": {**d["targets"][0]["facts"], "status": "fine"},
                                             "policy": {}}]}), "status"),
    (lambda d: json.dumps({**d, "targets": [{**d["targets"][0], "policy": {"logging": {"retention_dayz": 1}}}]}),
     "retention_dayz"),
])
def test_damaged_bundles_are_refused(run_cli: RunCli, tmp_path: Path, mangle: Callable[[Any], str],
                                     words: str) -> None:
    _, bundle = collect_then_evaluate(run_cli, tmp_path, ["--target", WEAK])
    bad = tmp_path / "bad.bundle.json"
    bad.write_text(mangle(json.loads(bundle.read_text())))
    rc, doc, _, err = run_cli("evaluate", str(bad))
    assert rc == 2 and doc is None
    assert words in err and str(bad) in err


def test_a_partial_bundle_gives_a_partial_report(run_cli: RunCli, tmp_path: Path) -> None:
    _, bundle = collect_then_evaluate(run_cli, tmp_path, ["--target", WEAK])
    doc = json.loads(bundle.read_text())
    doc["run"]["partial"] = True
    bundle.write_text(json.dumps(doc))
    _, report, _, _ = run_cli("evaluate", str(bundle), "--output", str(tmp_path / "p.json"), "--quiet")
    assert report["run"]["partial"] is True


# -- over SSH, with an inventory ------------------------------------------------------------------


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_collect_evaluate_equals_scan_over_ssh(lab: SshdLab, run_cli: RunCli, tmp_path: Path) -> None:
    server, stranger = lab.sshd(), lab.sshd(trust=False)
    inv = tmp_path / "office.yaml"
    inv.write_text(f"""\
defaults: {{user: root, identity_file: {lab.client_key}}}
targets:
  - name: fileserver
    address: 127.0.0.1
    port: {server.port}
    tags: {{role: file-server}}
    policy: {{logging: {{retention_days: 730}}}}
  - {{name: stranger, address: 127.0.0.1, port: {stranger.port}}}
""")
    common = ["--inventory", str(inv), "--known-hosts", str(lab.known_hosts)]
    checks = [a for c in STABLE_CHECKS for a in ("--check", c)]
    rc, scanned, _, err = run_cli("scan", *common, *checks, "--quiet")
    assert rc in (1, 3), err
    evaluated, bundle = collect_then_evaluate(run_cli, tmp_path, [*common, *checks], checks)
    assert comparable(evaluated) == comparable(scanned)
    assert [(t["id"], t["status"], t["reason"]) for t in evaluated["targets"]] == [
        ("fileserver", "ok", None), ("stranger", "error", "host_key_unknown")]
    lg = next(f for f in evaluated["findings"] if f["check"] == "LG-02" and f["target"] == "fileserver")
    assert lg["expected"]["retention_days"] == ">= 730"  # the inventory's override travelled in the bundle
    text = bundle.read_text()
    assert lab.client_key.read_text().splitlines()[1][:30] not in text  # no key material, only its path
