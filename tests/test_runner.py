"""The runner isolates failures: a broken or hung collector costs its checks, never the scan."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import pytest

from agent.config.policy import load_policy
from agent.registry import checks
from agent.runner import build_report, collect_target
from agent.targets.base import Target
from checks.base import CheckMeta, MetaError, load_meta
from collectors.base import Collector, Facts
from tests.conftest import FIXTURES

HARDENED = f"rootfs:{FIXTURES / 'rootfs' / 'hardened'}"


class Exploding(Collector):
    id = "accounts"

    def collect(self, target: Target) -> Facts:
        raise RuntimeError("boom")


class Hanging(Collector):
    id = "sshd"
    timeout: ClassVar[float] = 0.3

    def collect(self, target: Target) -> Facts:
        time.sleep(5)
        return {}


class NotJson(Collector):
    id = "sudoers"

    def collect(self, target: Target) -> Facts:
        return {"x": {1, 2}}


def test_collector_failures_become_error_findings() -> None:
    chosen = [checks()[c] for c in ("IA-01", "PM-01", "IA-04", "TX-04", "PM-03", "LG-02")]
    from collectors.log_retention import COLLECTOR as log_retention

    t0 = time.perf_counter()
    tf = collect_target(HARDENED, [Exploding(), Hanging(), NotJson(), log_retention])
    assert time.perf_counter() - t0 < 4  # the hung collector was abandoned at its timeout
    assert "boom" in (tf.facts["accounts"].error or "")
    assert "timed out" in (tf.facts["sshd"].error or "")
    assert "not JSON serializable" in (tf.facts["sudoers"].error or "")
    assert tf.facts["log_retention"].error is None
    report = build_report(run_id="r", started="2026-01-01T00:00:00.000Z", target_facts=[tf], checks=chosen,
                          policy=load_policy())
    by = {f.check: f for f in report.findings}
    for cid in ("IA-01", "PM-01", "IA-04", "TX-04", "PM-03"):
        assert by[cid].status == "error", cid
        assert "collector" in by[cid].message["en"]
    assert by["LG-02"].status == "pass"
    assert report.targets[0].status == "partial"
    assert all(f.duration_ms >= 0 for f in report.findings)


def test_platform_mismatch_is_not_applicable() -> None:
    from collectors.accounts import COLLECTOR

    tf = collect_target(HARDENED, [COLLECTOR])
    tf.system = "network"  # WL-02 applies to it; IA-01 does not
    findings = build_report(run_id="r", started="2026-01-01T00:00:00.000Z", target_facts=[tf],
                            checks=[checks()["IA-01"], checks()["WL-02"]], policy=load_policy()).findings
    assert findings[0].status == "not_applicable"


def test_every_registered_check_has_valid_metadata() -> None:
    for cid, c in checks().items():
        assert c.meta.id == cid
        assert c.meta.title.ja != c.meta.title.en
        assert c.needs, cid


def test_malformed_metadata_is_rejected_with_its_source(tmp_path: Path) -> None:
    good = {"id": "XX-01", "guideline": ["MLIT-9-5-1"], "severity": "high", "platforms": ["linux"],
            "title": {"ja": "題", "en": "title"}, "rationale": {"ja": "理由", "en": "why"},
            "remediation": {"ja": "直す", "en": "fix"}, "messages": {"pass": {"ja": "良", "en": "ok"}}}
    CheckMeta.from_mapping(good, source="x.yaml")
    bad_cases = [
        {**good, "guideline": ["MLIT-9-9-9"]},
        {**good, "severity": "urgent"},
        {**good, "title": {"en": "only english"}},
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "remediation"},
    ]
    for bad in bad_cases:
        with pytest.raises(MetaError, match=r"^x\.yaml: "):
            CheckMeta.from_mapping(bad, source="x.yaml")
    with pytest.raises(MetaError, match="metadata file missing"):
        load_meta("ZZ-99")
