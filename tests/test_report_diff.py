"""``mamoru diff``: pairs of real scans of a tree changed between runs, compared and classified.

Each test scans a copy of a real rootfs fixture, changes the tree the way a machine changes between two
audits (a setting fixed, another broken, a file gone), scans again and diffs the two reports through the
command line, the way a CI job or a consultant would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports.diff import diff_reports, is_regression, value_diff
from reports.load import load_report
from reports.model import Finding
from tests.conftest import FIXTURES

HARDENED = FIXTURES / "rootfs" / "hardened"
Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
SCHEMA = Path(__file__).resolve().parents[1] / "reports" / "schema" / "diff.schema.json"


def validate_diff(doc: dict[str, Any]) -> None:
    import jsonschema_rs

    jsonschema_rs.validator_for(json.loads(SCHEMA.read_text("utf-8"))).validate(doc)


def tree(tmp_path: Path, name: str = "host") -> Path:
    root = tmp_path / name
    shutil.copytree(HARDENED, root)
    return root


def scan(run_cli: Cli, out: Path, *args: str) -> Path:
    rc, doc, _, err = run_cli("scan", *args, "--output", str(out), "--quiet")
    assert doc is not None and rc in (0, 1, 3), err
    return out


def change(root: Path) -> None:
    """Fix one setting, break another, nudge an evidence value, remove a file a check needs."""
    hardening = root / "etc/ssh/sshd_config.d/50-hardening.conf"
    text = hardening.read_text().replace("MaxAuthTries=3", "MaxAuthTries=2")
    hardening.write_text(text + "AllowGroups ssh-users\n")  # AC-03: fail -> pass
    with (root / "etc/passwd").open("a") as f:
        f.write("toor:x:0:0:backdoor:/root:/bin/sh\n")  # PM-01: pass -> fail
    (root / "etc/sudoers").unlink()  # PM-03: pass -> error


def diff_json(run_cli: Cli, old: Path, new: Path) -> tuple[int, dict[str, Any], str]:
    rc, _, out, err = run_cli("diff", str(old), str(new), "--json", report=False)
    doc = json.loads(out)
    validate_diff(doc)
    return rc, doc, err


def entry(items: list[dict[str, Any]], check: str) -> dict[str, Any]:
    hits = [i for i in items if i["check"] == check]
    assert len(hits) == 1, (check, items)
    return hits[0]


def test_a_changed_tree_is_classified(run_cli: Cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    old = scan(run_cli, tmp_path / "old.json", "--target", f"rootfs:{root}")
    change(root)
    new = scan(run_cli, tmp_path / "new.json", "--target", f"rootfs:{root}")
    rc, doc, err = diff_json(run_cli, old, new)
    assert rc == 1 and doc["regressed"] and err == ""  # same policy and tool: no warning
    pm01 = entry(doc["new_failures"], "PM-01")
    assert pm01["old"]["status"] == "pass" and pm01["new"]["status"] == "fail" and pm01["regression"]
    assert pm01["severity"] == "critical" and "toor" in pm01["message"]["en"]
    ac03 = entry(doc["fixed"], "AC-03")
    assert (ac03["old"]["status"], ac03["new"]["status"], ac03["regression"]) == ("fail", "pass", False)
    pm03 = entry(doc["status_changed"], "PM-03")  # "could not tell" is a regression, not a fix
    assert (pm03["old"]["status"], pm03["new"]["status"], pm03["regression"]) == ("pass", "error", True)
    ia04 = entry(doc["evidence_changed"], "IA-04")
    assert ia04["status"] == "pass"
    assert {"path": "/evidence/maxauthtries", "old": "3", "new": "2"} in ia04["changed"]
    # Regressions come first in each list, then the most severe.
    assert doc["new_failures"][0]["severity"] == "critical"
    assert doc["counts"]["regressions"] == sum(1 for n in ("new_failures", "status_changed") for i in doc[n]
                                               if i["regression"])
    assert not doc["targets_vanished"] and not doc["checks_added"] and not doc["checks_removed"]

    rc, _, text, _ = run_cli("diff", str(old), str(new), "--lang", "en", report=False)
    assert rc == 1
    assert "New failures" in text and "Fixed" in text and "REGRESSION" in text and "result: REGRESSED" in text
    assert "/evidence/maxauthtries: 3 → 2" in text
    rc, _, text, _ = run_cli("diff", str(old), str(new), "--lang", "ja", report=False)
    assert rc == 1 and "新たな不合格" in text and "修正済み" in text and "後退" in text and "New failures" not in text


def test_the_same_tree_twice_is_no_regression(run_cli: Cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    old = scan(run_cli, tmp_path / "old.json", "--target", f"rootfs:{root}")
    new = scan(run_cli, tmp_path / "new.json", "--target", f"rootfs:{root}")
    rc, doc, _ = diff_json(run_cli, old, new)
    assert rc == 0 and not doc["regressed"] and doc["counts"]["regressions"] == 0
    assert not doc["new_failures"] and not doc["status_changed"] and not doc["fixed"]
    rc, _, text, _ = run_cli("diff", str(old), str(new), "--lang", "en", report=False)
    assert rc == 0 and "result: no regression" in text


def test_fixed_alone_exits_0(run_cli: Cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    old = scan(run_cli, tmp_path / "old.json", "--target", f"rootfs:{root}")
    hardening = root / "etc/ssh/sshd_config.d/50-hardening.conf"
    hardening.write_text(hardening.read_text() + "AllowGroups ssh-users\n")
    new = scan(run_cli, tmp_path / "new.json", "--target", f"rootfs:{root}")
    rc, doc, _ = diff_json(run_cli, old, new)
    assert rc == 0 and [f["check"] for f in doc["fixed"]] == ["AC-03"]


def test_a_vanished_target_is_not_fixed(run_cli: Cli, tmp_path: Path) -> None:
    a, b = tree(tmp_path, "a"), tree(tmp_path, "b")
    (b / "etc/hostname").write_text("b-host\n")
    both = scan(run_cli, tmp_path / "both.json", "--target", f"rootfs:{a}", "--target", f"rootfs:{b}")
    one = scan(run_cli, tmp_path / "one.json", "--target", f"rootfs:{a}")
    rc, doc, _ = diff_json(run_cli, both, one)
    assert rc == 1 and doc["regressed"]
    [gone] = doc["targets_vanished"]
    assert gone["target"] == f"rootfs:{b}" and gone["hostname"] == "b-host" and gone["regression"]
    assert gone["counts"]["fail"] > 0  # its failures were not fixed: they are listed with it, not in "fixed"
    assert not doc["fixed"] and not doc["new_failures"] and not doc["targets_appeared"]
    # The other way round the target appeared: shown, not a regression.
    rc, doc, _ = diff_json(run_cli, one, both)
    assert rc == 0 and [t["target"] for t in doc["targets_appeared"]] == [f"rootfs:{b}"]
    rc, _, text, _ = run_cli("diff", str(both), str(one), "--lang", "en", report=False)
    assert rc == 1 and "Targets that vanished" in text and "b-host" in text


def test_checks_added_and_removed(run_cli: Cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    old = scan(run_cli, tmp_path / "old.json", "--target", f"rootfs:{root}", "--check", "IA-01", "--check", "PM-03")
    new = scan(run_cli, tmp_path / "new.json", "--target", f"rootfs:{root}", "--check", "IA-01", "--check", "PM-01")
    rc, doc, _ = diff_json(run_cli, old, new)
    assert rc == 1  # a check no longer run on a target still there: the new report vouches for less
    assert [(c["check"], c["status"], c["regression"]) for c in doc["checks_removed"]] == [("PM-03", "pass", True)]
    assert [(c["check"], c["status"], c["regression"]) for c in doc["checks_added"]] == [("PM-01", "pass", False)]
    rc, doc, _ = diff_json(run_cli, new, new)
    assert rc == 0 and not doc["checks_added"] and not doc["checks_removed"]


def test_another_policy_warns_but_still_diffs(run_cli: Cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    old = scan(run_cli, tmp_path / "old.json", "--target", f"rootfs:{root}")
    strict = tmp_path / "strict.yaml"
    strict.write_text("logging:\n  retention_days: 36500\n")
    new = scan(run_cli, tmp_path / "new.json", "--target", f"rootfs:{root}", "--policy", str(strict))
    rc, doc, err = diff_json(run_cli, old, new)
    assert [w["code"] for w in doc["warnings"]] == ["policy_changed"]
    assert "different policies" in err
    assert rc == 1 and entry(doc["new_failures"], "LG-02")["new"]["status"] == "fail"
    lg02 = entry(doc["new_failures"], "LG-02")
    assert lg02["old"]["status"] == "pass"
    rc, _, text, _ = run_cli("diff", str(old), str(new), "--lang", "ja", report=False)
    assert "ポリシーが異なります" in text


def test_another_tool_version_warns(run_cli: Cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    old = load_report(scan(run_cli, tmp_path / "old.json", "--target", f"rootfs:{root}")).report
    new = load_report(scan(run_cli, tmp_path / "new.json", "--target", f"rootfs:{root}")).report
    new.run.tool["version"] = "9.9.9"
    doc = diff_reports(old, new)
    assert doc["warnings"] == [{"code": "tool_changed", "old": old.run.tool["version"], "new": "9.9.9"}]
    assert diff_reports(new, old)["warnings"][-1]["code"] == "old_is_newer"


HOSTILE_HOST = "evil\x1b]0;owned\x07\x1b[2J[bold red]x[/]<script>"
HOSTILE_GROUP = "ev\x1b[31mil\u202e"


def test_hostile_hostnames_and_evidence_are_escaped(run_cli: Cli, tmp_path: Path) -> None:
    a, b = tree(tmp_path, "a"), tree(tmp_path, "b")
    (b / "etc/hostname").write_text(HOSTILE_HOST + "\n")
    hardening = a / "etc/ssh/sshd_config.d/50-hardening.conf"
    plain = hardening.read_text()
    hardening.write_text(plain + "AllowGroups admins\n")
    both = scan(run_cli, tmp_path / "both.json", "--target", f"rootfs:{a}", "--target", f"rootfs:{b}")
    hardening.write_text(plain + f"AllowGroups {HOSTILE_GROUP}\n")  # AC-03 evidence now quotes it
    one = scan(run_cli, tmp_path / "one.json", "--target", f"rootfs:{a}")
    rc, _, text, _ = run_cli("diff", str(both), str(one), "--lang", "en", report=False)
    assert rc == 1
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "evil\\x1b]0;owned\\x07\\x1b[2J[bold red]x[/]<script>" in text  # shown, escaped, markup not parsed
    assert '["ev\\u001b[31mil\\u202e"]' in text  # ESC JSON-escaped in the value, the bidi control shown
    rc, doc, _ = diff_json(run_cli, both, one)
    assert doc["targets_vanished"][0]["hostname"] == HOSTILE_HOST  # JSON keeps the exact text
    [ac03] = doc["evidence_changed"]
    assert ac03["check"] == "AC-03" and ac03["status"] == "pass"


def test_bad_input_exits_2(run_cli: Cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    good = scan(run_cli, tmp_path / "good.json", "--target", f"rootfs:{root}", "--check", "IA-01")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "mamoru-report/1"}')
    rc, _, out, err = run_cli("diff", str(good), str(bad), report=False)
    assert rc == 2 and "bad.json" in err and out == ""
    rc, _, _, err = run_cli("diff", str(tmp_path / "missing.json"), str(good), report=False)
    assert rc == 2 and "missing.json" in err


def _finding(status: str, waiver_state: str | None = None) -> Finding:
    waiver = None if waiver_state is None else {"reason": "r", "approver": "a", "expires": "2030-01-01",
                                                "state": waiver_state, "source": "w.yaml:1"}
    return Finding(check="IA-01", target="t", status=status, severity="high", guideline=["MLIT-9-5-1"],
                   title={"ja": "t", "en": "t"}, message={"ja": "m", "en": "m"},
                   remediation={"ja": "r", "en": "r"}, evidence=None, expected=None, duration_ms=0.0, waiver=waiver)


@pytest.mark.parametrize(("old", "new", "regression"), [
    (("pass",), ("fail",), True),
    (("error",), ("fail",), True),
    (("not_applicable",), ("fail",), True),
    (("pass",), ("error",), True),
    (("fail",), ("error",), True),  # a known failure that can no longer be seen is not better
    (("manual",), ("error",), True),
    (("pass",), ("manual",), True),
    (("fail", "valid"), ("fail", "expired"), True),  # the waiver lapsed: counts again
    (("pass",), ("fail", "valid"), False),  # a new failure under a waiver in force: shown, accepted
    (("fail",), ("fail", "valid"), False),
    (("fail",), ("pass",), False),
    (("error",), ("pass",), False),
    (("pass",), ("not_applicable",), False),
    (("fail",), ("not_applicable",), False),
    (("manual",), ("pass",), False),
    (("fail",), ("fail",), False),
])
def test_which_transitions_regress(old: tuple[str, ...], new: tuple[str, ...], regression: bool) -> None:
    assert is_regression(_finding(*old), _finding(*new)) is regression


def test_evidence_diff_is_compact_and_survives_odd_values() -> None:
    added, removed, changed = value_diff(
        {"a": 1, "gone": [1, 2], "n": {"deep": "x" * 500}, "s": "\ud800"},
        {"a": True, "new/key": {"z": None}, "n": {"deep": "y"}, "s": "\ud800"}, "evidence")
    assert added == [{"path": "/evidence/new~1key/z", "value": "null"}]
    assert removed == [{"path": "/evidence/gone", "value": "[1,2]"}]
    assert [c["path"] for c in changed] == ["/evidence/a", "/evidence/n/deep"]  # 1 -> true is a change
    deep = changed[1]["old"]
    assert len(deep) < 230 and deep.endswith("(+302)")
    assert value_diff(None, {"k": 1}, "evidence")[0] == [{"path": "/evidence/k", "value": "1"}]
