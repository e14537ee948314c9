"""Fail closed from target to exit code (issue 10): what could not be judged never reads as a clean bill.

* a target whose system is unknown, or to which no chosen check applies, is an ``error`` with its reason;
* an ``error`` finding makes the exit code 3 (1 still wins when something failed);
* a reader that leaves the pipe (``mamoru scan | head``) changes nothing but what is printed;
* ``scan --target bundle:`` and ``evaluate`` are one pipeline (same version guard, same report);
* bundles collected on several PCs carry the hosts' names and are evaluated together into one report.

Everything runs for real: rootfs trees, bundles written by ``mamoru collect``, captures, real pipes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, finding

RunCli = Callable[..., tuple[int, Any, str, str]]
ROOT = Path(__file__).resolve().parents[1]
HARDENED = FIXTURES / "rootfs" / "hardened"
WEAK = FIXTURES / "rootfs" / "weak"
#: Checks that pass on the hardened fixture: a clean scan, exit 0.
PASSING = ("IA-01", "IA-04", "IA-05", "PM-01", "PM-03", "LG-02", "LG-04", "PH-01", "TX-04")


def _checks(*ids: str) -> list[str]:
    return [a for c in ids for a in ("--check", c)]


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {"targets": doc["targets"], "partial": doc["run"]["partial"],
            "findings": [{k: v for k, v in f.items() if k != "duration_ms"} for f in doc["findings"]]}


# -- 1. unknown or empty targets, and targets no chosen check applies to ----------------------------------


def test_a_windows_image_of_damaged_hives_is_recognised_and_never_passes(run_cli: RunCli,
                                                                          make_rootfs: Callable[..., Path]) -> None:
    """Once Windows is a platform, an image whose hives are garbage is a Windows target none of whose checks
    can tell: every Windows check ``error``, exit 3 (before Windows support it was platform_unknown)."""
    root = make_rootfs({"/Windows/System32/config/SAM": b"regf\0\0\0\0",
                        "/Windows/System32/config/SYSTEM": b"regf\0\0\0\0", "/Users/tanaka/NTUSER.DAT": b"regf"})
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{root}", "--quiet", "--no-organisation")
    assert rc == 3, err
    judged = [f for f in doc["findings"] if f["status"] != "not_applicable"]
    assert judged and {f["status"] for f in judged} == {"error"}


@pytest.mark.parametrize("layout", [{}, {"/home/tanaka/notes.txt": b"x"}], ids=["empty-directory", "no-system"])
def test_an_unrecognised_target_is_an_error_not_a_clean_bill(run_cli: RunCli, make_rootfs: Callable[..., Path],
                                                             layout: dict[str, bytes]) -> None:
    root = make_rootfs(layout)
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{root}", "--quiet", "--no-organisation")
    assert rc == 3, err
    [target] = doc["targets"]
    assert (target["status"], target["reason"]) == ("error", "platform_unknown")
    assert "could not be recognised" in target["error"]
    assert len(doc["findings"]) > 30  # every check, each saying why
    assert {f["status"] for f in doc["findings"]} == {"error"}
    for f in doc["findings"]:
        assert "could not be recognised" in f["message"]["en"] and "識別できなかった" in f["message"]["ja"]


def test_a_target_no_chosen_check_applies_to_is_an_error(run_cli: RunCli) -> None:
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{HARDENED}", *_checks("WL-02"), "--quiet")
    assert rc == 3, err
    [target] = doc["targets"]
    assert (target["status"], target["reason"]) == ("error", "nothing_applicable")
    f = finding(doc, "WL-02")
    assert f["status"] == "error"
    assert "no chosen check applies to a linux target" in f["message"]["en"] and "linux" in f["message"]["ja"]
    # One check that applies is enough: the others are then plainly not_applicable, and nothing is wrong.
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{HARDENED}", *_checks("WL-02", "PM-01"), "--quiet")
    assert rc == 0, err
    assert doc["targets"][0]["status"] == "ok"
    assert (finding(doc, "WL-02")["status"], finding(doc, "PM-01")["status"]) == ("not_applicable", "pass")


def test_a_wifi_survey_with_host_checks_only_is_an_error(run_cli: RunCli, tmp_path: Path) -> None:
    capture = tmp_path / "survey.pcap"
    capture.write_bytes(b"")  # never opened: no chosen check needs it
    rc, doc, _, err = run_cli("scan", "--wifi-capture", str(capture), *_checks("IA-01"), "--quiet")
    assert rc == 3, err
    assert doc["targets"][0]["reason"] == "nothing_applicable"
    assert "no chosen check applies to a wifi target" in finding(doc, "IA-01")["message"]["en"]


def test_a_windows_target_without_windows_checks_is_an_error() -> None:
    """When Windows targets are recognised, they must not pass as 36 × not_applicable either."""
    from agent.config.policy import load_policy
    from agent.registry import checks
    from agent.runner import TargetFacts, build_report

    tf = TargetFacts(id="pc-01", kind="ssh", hostname="PC-01", os="Windows 11", system="windows")
    linux_only = [c for c in checks().values() if "windows" not in c.meta.platforms]
    report = build_report(run_id="r", started="2026-01-01T00:00:00.000Z", target_facts=[tf],
                          checks=linux_only, policy=load_policy())
    assert (report.targets[0].status, report.targets[0].reason) == ("error", "nothing_applicable")
    assert {f.status for f in report.findings} == {"error"}
    assert "a windows target" in report.findings[0].message["en"]
    assert report.exit_code() == 3


def test_collecting_an_unrecognised_target_says_so_and_evaluate_agrees(run_cli: RunCli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    bundle = tmp_path / "empty.bundle.json"
    rc, _, _, err = run_cli("collect", "--target", f"rootfs:{empty}", "--output", str(bundle))
    assert rc == 3 and "platform_unknown" in err
    rc, doc, _, err = run_cli("evaluate", str(bundle), "--output", str(tmp_path / "r.json"), "--quiet",
                              "--no-organisation")
    assert rc == 3, err
    assert doc["targets"][0]["reason"] == "platform_unknown"
    assert {f["status"] for f in doc["findings"]} == {"error"}


# -- 2. an error finding is never exit 0 -------------------------------------------------------------------


def test_a_capture_that_cannot_be_read_exits_3(run_cli: RunCli, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture")
    rc, doc, _, err = run_cli("scan", "--wifi-capture", str(junk), "--quiet")
    assert rc == 3, err
    assert finding(doc, "TX-01")["status"] == "error" and finding(doc, "WL-03")["status"] == "error"
    assert "fail" not in {f["status"] for f in doc["findings"]}


def test_a_malformed_passwd_exits_3(run_cli: RunCli, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(HARDENED, root)
    (root / "etc" / "passwd").write_text("root:x:0\nnot a passwd line\n")
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{root}", *_checks("IA-01"), "--quiet")
    assert rc == 3, err
    assert finding(doc, "IA-01")["status"] == "error"
    assert doc["targets"][0]["status"] == "ok"  # the target was read: it is the finding that could not judge


def test_a_failed_finding_still_wins_over_errors(run_cli: RunCli, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(HARDENED, root)
    (root / "etc" / "passwd").write_text("not a passwd line\n")
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{root}", "--target", f"rootfs:{WEAK}",
                              *_checks("IA-01"), "--quiet")
    assert rc == 1, err
    assert {f["status"] for f in doc["findings"]} == {"error", "fail"}


def test_evaluate_exits_3_on_an_error_finding(run_cli: RunCli, tmp_path: Path) -> None:
    bundle = tmp_path / "b.json"
    assert run_cli("collect", "--target", f"rootfs:{HARDENED}", *_checks("PM-01"), "--output", str(bundle))[0] == 0
    rc, _, _, err = run_cli("evaluate", str(bundle), *_checks("PM-01"), "--output", str(tmp_path / "ok.json"),
                            "--quiet")
    assert rc == 0, err
    doc = json.loads(bundle.read_text())
    doc["targets"][0]["facts"]["facts"]["accounts"]["version"] = "0-old"
    bundle.write_text(json.dumps(doc))
    rc, report, _, err = run_cli("evaluate", str(bundle), *_checks("PM-01"), "--output", str(tmp_path / "old.json"),
                                 "--quiet")
    assert rc == 3, err
    assert finding(report, "PM-01")["status"] == "error"


# -- 14. a reader that leaves the pipe ---------------------------------------------------------------------


def _mamoru(*args: str) -> list[str]:
    """This tree's mamoru, through the same ``run()`` as the installed command."""
    return [sys.executable, "-c", "from agent.cli.main import run; run()", *args]


def _many_hardened(tmp_path: Path, n: int) -> list[str]:
    args = []
    for i in range(n):
        link = tmp_path / f"host{i:02d}"
        link.symlink_to(HARDENED)
        args += ["--target", f"rootfs:{link}"]
    return args


@pytest.mark.parametrize("stderr_too", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_scan_piped_into_head_keeps_its_exit_code(tmp_path: Path, stderr_too: bool) -> None:
    # 40 targets print ~170 kB: more than a pipe holds, so mamoru is still writing when head -1 leaves.
    args = [*_many_hardened(tmp_path, 40), *_checks(*PASSING), "--lang", "en"]
    env = {**os.environ, "COLUMNS": "80"}
    alone = subprocess.run(_mamoru("scan", *args, "--output", str(tmp_path / "alone.json")), cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=300, check=False)
    assert alone.returncode == 0 and len(alone.stdout) > 2 * 65536
    report = tmp_path / "piped.json"
    scan = subprocess.Popen(_mamoru("scan", *args, "--output", str(report)), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if stderr_too else subprocess.PIPE)
    assert scan.stdout is not None
    head = subprocess.run(["head", "-1"], stdin=scan.stdout, capture_output=True, timeout=300, check=False)
    scan.stdout.close()  # head holds the only reading end now; it leaves after one line
    _, err = scan.communicate(timeout=300)
    assert head.stdout.startswith(b"rootfs:")
    assert scan.returncode == 0, err
    assert json.loads(report.read_bytes())["summary"]["by_status"]["fail"] == 0  # the report was written whole
    if not stderr_too:
        assert b"report written to" in err and b"Traceback" not in err


def test_a_reader_gone_before_the_first_line(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    scan = subprocess.Popen(_mamoru("scan", "--target", f"rootfs:{HARDENED}", *_checks("PM-01"), "--output",
                                    str(report)), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert scan.stdout is not None
    scan.stdout.close()  # nobody will ever read: the first write meets EPIPE
    _, err = scan.communicate(timeout=120)
    assert scan.returncode == 0, err
    assert report.exists() and b"report written to" in err


# -- 17. scan --target bundle: and evaluate are one pipeline -----------------------------------------------


def test_a_stale_bundle_is_judged_alike_by_scan_and_evaluate(run_cli: RunCli, tmp_path: Path) -> None:
    bundle = tmp_path / "weak.bundle.json"
    rc, _, _, err = run_cli("collect", "--target", f"rootfs:{WEAK}", *_checks("IA-01", "PM-01"), "--output",
                            str(bundle))
    assert rc == 0, err
    doc = json.loads(bundle.read_text())
    doc["targets"][0]["facts"]["facts"]["accounts"]["version"] = "0-old"  # gathered by another mamoru
    bundle.write_text(json.dumps(doc))
    rc_eval, evaluated, _, err = run_cli("evaluate", str(bundle), *_checks("IA-01", "PM-01"), "--output",
                                         str(tmp_path / "e.json"), "--quiet")
    rc_scan, scanned, _, err2 = run_cli("scan", "--target", f"bundle:{bundle}", *_checks("IA-01", "PM-01"),
                                        "--quiet")
    assert finding(evaluated, "IA-01")["status"] == "error"
    assert "collect again" in finding(scanned, "IA-01")["message"]["en"]
    assert _comparable(scanned) == _comparable(evaluated)
    assert rc_scan == rc_eval == 3, (err, err2)


def test_a_partial_bundle_makes_a_partial_report_in_scan_too(run_cli: RunCli, tmp_path: Path) -> None:
    bundle = tmp_path / "b.json"
    assert run_cli("collect", "--target", f"rootfs:{HARDENED}", *_checks("PM-01"), "--output", str(bundle))[0] == 0
    doc = json.loads(bundle.read_text())
    doc["run"]["partial"] = True  # its collection was interrupted
    bundle.write_text(json.dumps(doc))
    _, scanned, _, _ = run_cli("scan", "--target", f"bundle:{bundle}", *_checks("PM-01"), "--quiet")
    _, evaluated, _, _ = run_cli("evaluate", str(bundle), *_checks("PM-01"), "--output", str(tmp_path / "e.json"),
                                 "--quiet")
    assert scanned["run"]["partial"] is evaluated["run"]["partial"] is True


# -- 19. bundles of several PCs --------------------------------------------------------------------------


def test_a_local_bundle_is_named_after_the_host(run_cli: RunCli, tmp_path: Path) -> None:
    bundle = tmp_path / "here.bundle.json"
    rc, _, _, err = run_cli("collect", "--target", "local", *_checks("PM-01"), "--output", str(bundle))
    assert rc == 0, err
    [target] = json.loads(bundle.read_text())["targets"]
    assert target["facts"]["id"] == socket.gethostname() and target["facts"]["kind"] == "local"
    # A plain scan keeps "local": the id of a scheduled series does not change when the host is renamed.
    _, doc, _, _ = run_cli("scan", "--target", "local", *_checks("PM-01"), "--quiet")
    assert doc["targets"][0]["id"] == "local"


def test_bundles_of_several_pcs_make_one_report(run_cli: RunCli, tmp_path: Path) -> None:
    pcs = {"pc-reception": WEAK, "pc-back-office": HARDENED}
    bundles = []
    for name, root in pcs.items():
        bundle = tmp_path / f"{name}.bundle.json"
        rc, _, _, err = run_cli("collect", "--target", f"rootfs:{root}", "--name", name, "--output", str(bundle))
        assert rc == 0, err
        bundles.append(str(bundle))
    rc, doc, _, err = run_cli("evaluate", *bundles, "--output", str(tmp_path / "office.json"), "--quiet",
                              "--no-organisation")
    assert rc == 1, err  # the reception PC fails checks
    assert [t["id"] for t in doc["targets"]] == list(pcs)
    # …the same findings as one scan of both machines under those names would give.
    _, scanned, _, _ = run_cli("scan", "--target", f"rootfs:{WEAK}", "--target", f"rootfs:{HARDENED}", "--quiet",
                               "--no-organisation")
    renamed = {f"rootfs:{root}": name for name, root in pcs.items()}
    for f in scanned["findings"]:
        f["target"] = renamed[f["target"]]
    assert _comparable(doc)["findings"] == _comparable(scanned)["findings"]


def test_two_pcs_with_the_same_name_are_refused_naming_both_bundles(run_cli: RunCli, tmp_path: Path) -> None:
    first, second = tmp_path / "a.bundle.json", tmp_path / "b.bundle.json"
    for bundle in (first, second):  # two PCs, both called "ubuntu"
        rc, _, _, err = run_cli("collect", "--target", f"rootfs:{HARDENED}", "--name", "ubuntu", *_checks("PM-01"),
                                "--output", str(bundle))
        assert rc == 0, err
    out = tmp_path / "r.json"
    rc, doc, _, err = run_cli("evaluate", str(first), str(second), "--output", str(out))
    assert rc == 2 and doc is None and not out.exists()
    assert "'ubuntu'" in err and str(first) in err and str(second) in err and "--name" in err
    rc, _, _, err = run_cli("scan", "--target", f"bundle:{first}", "--target", f"bundle:{second}", report=False)
    assert rc == 2 and str(first) in err and str(second) in err


def test_collect_name_is_for_one_target(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    rc, _, _, err = run_cli("collect", "--target", f"rootfs:{HARDENED}", "--target", f"rootfs:{WEAK}",
                            "--name", "pc", "--output", str(out))
    assert rc == 2 and "--name names the one target" in err and not out.exists()
    rc, _, _, err = run_cli("collect", "--target", f"rootfs:{HARDENED}", "--name", "bad name/../x",
                            "--output", str(out))
    assert rc == 2 and "letters, digits" in err and not out.exists()
    rc, _, _, err = run_cli("evaluate", report=False)
    assert rc == 2 and "BUNDLE..." in err  # at least one bundle
