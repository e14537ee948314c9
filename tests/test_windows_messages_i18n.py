"""Issue 11: every Windows finding's Japanese text is Japanese.

Windows targets are scanned the way ``mamoru scan`` scans them, with every registered check: offline images
built from the real corpus hives (``tests/windows_image.py``) — as they are, without a SOFTWARE hive, with the
corrupted SYSTEM hive of the corpus, with hives that are garbage, and with values removed or damaged the way a
real image can hold them — and the live replays of the PowerShell batch (``tests/fixtures/windows_live``,
garbage.json and wrong_types.json included) through the real subprocess and the stand-in, as
``tests/test_windows_live_replay.py`` runs them. The English-run heuristic of ``test_messages_i18n`` reads
every ``message.ja`` and ``remediation.ja``: registry paths, value names, SIDs, GUIDs, file paths and product
names may stand in Japanese text; English prose (a registry error, a parser's ValueError, a part error of the
batch) may not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import registry
from agent.config.policy import Policy, load_policy
from agent.runner import TargetFacts, collect_target, evaluate_target
from agent.targets.local import powershell_batch
from checks import base
from reports.model import Finding
from tests.test_messages_i18n import english_leaks, english_runs
from tests.test_windows_live_replay import FIXTURES, SCRIPTS, STANDIN_ARGV, ReplayTarget
from tests.test_windows_monitoring import set_value
from tests.windows_collect import collect_windows
from tests.windows_image import (
    CORRUPTED_SYSTEM,
    SECURITY,
    USER_FOLDER,
    WIN7_SYSTEM,
    add_keys,
    build_tree,
    corpus_hive,
    hivex_write,
    profile_list,
    set_values,
)

REPORTS = r"C:\ProgramData\mamoru\reports"
SYSTEM_HIVE = "Windows/System32/config/SYSTEM"
SAM_HIVE = "Windows/System32/config/SAM"
SECURITY_HIVE = "Windows/System32/config/SECURITY"


def policy(data_paths: list[str] | None = None) -> Policy:
    return load_policy(overrides={"data_paths": data_paths or [r"C:\Data"], "schedule": {"report_dir": REPORTS}})


def windows_checks() -> list[Any]:
    return [c for c in registry.checks().values() if "windows" in c.meta.platforms]


def scan_image(root: Path) -> list[Finding]:
    """Every check that judges Windows, on an image, with the collectors they need (as ``mamoru scan``)."""
    from agent.runner import needed_collectors

    checks = windows_checks()
    pol = policy()
    tf = collect_target(f"rootfs:{root}", needed_collectors(checks, registry.collectors()), policy=pol)
    assert tf.system == "windows", tf
    return evaluate_target(tf, checks, pol)


# -- images ------------------------------------------------------------------------------------------------


def with_security(root: Path) -> Path:
    (root / SECURITY_HIVE).write_bytes(corpus_hive(SECURITY))
    return root


def wlan(root: Path, files: dict[str, bytes]) -> None:
    folder = root / "ProgramData/Microsoft/Wlansvc/Profiles/Interfaces/{4C6E8F2A-1111-2222-3333-444455556666}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)


def tasks(root: Path, files: dict[str, bytes]) -> None:
    folder = root / "Windows/System32/Tasks"
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)


def damaged(root: Path) -> Path:
    """Values a real image can hold damaged: each one reaches a parser's or a judge's error path."""
    build_tree(root, software=profile_list() | {
        r"Policies\Microsoft\Windows\EventLog\EventForwarding\SubscriptionManager": [
            ("1", "string:Server=ftp://wec.example.jp/x,Refresh=60"), ("2", "string:Refresh=soon")],
        r"Policies\Microsoft\Windows Defender": [("DisableAntiSpyware", "string:maybe")]})
    with_security(root)
    system, sam = root / SYSTEM_HIVE, root / SAM_HIVE
    set_value(system, r"ControlSet001\Services\mrxsmb10", "Start", "string:two")  # not a DWORD
    set_value(system, r"ControlSet001\Services\MpsSvc", "Start", "string:auto")
    set_value(system, r"ControlSet001\Services\EventLog\Security", "Retention", "string:forever")
    set_value(system, r"ControlSet001\Services\WinRM", "Start", "dword:0x00000009")  # not a start type
    set_value(sam, r"SAM\Domains\Account", "F", "hex:3:02,00,01")  # shorter than its header
    set_value(sam, r"SAM\Domains\Account\Users\000001F4", "F", "hex:3:" + ",".join(["00"] * 0x50))  # RID 0
    set_value(sam, r"SAM\Domains\Builtin\Aliases\00000220", "C", "hex:3:" + ",".join(["01"] * 0x40))
    set_values(root / SECURITY_HIVE, r"Policy\PolAdtEv", [("@", "hex:0:" + ",".join(["01"] * 40))])
    add_keys(root / f"Users/{USER_FOLDER}/NTUSER.DAT", {r"Control Panel\Desktop": [("ScreenSaveTimeOut",
                                                                                     "string:soon")]})
    wlan(root, {"{A}.xml": b"<!DOCTYPE x [<!ENTITY a 'b'>]><WLANProfile>&a;</WLANProfile>",
                "{B}.xml": b"<WLANProfile><name>x</name", "{C}.xml": b"\xff\xfe\x00\xd8"})
    tasks(root, {"mamoru-daily": b"<Task><Actions><Exec><Command>mamoru scan</Command>"})
    return root


def removed(root: Path) -> Path:
    """Keys that Windows always writes, with their values removed."""
    build_tree(root, software=profile_list())
    with_security(root)
    hivex_write(root / SAM_HIVE, [r"cd \SAM\Domains\Account", "setval 0",
                                  r"cd \SAM\Domains\Account\Users\000001F5", "setval 0"])
    hivex_write(root / SECURITY_HIVE, [r"cd \Policy\PolAdtEv", "setval 0"])
    hivex_write(root / SYSTEM_HIVE, [r"cd \ControlSet001\Services\srv", "setval 0",
                                     r"cd \ControlSet001\Services\LanmanServer", "setval 0",
                                     r"cd \ControlSet001\Services\EventLog\Security", "setval 0"])
    return root


def garbage(root: Path) -> Path:
    noise = bytes(range(256)) * 20
    config = root / "Windows/System32/config"
    config.mkdir(parents=True)
    for name in ("SYSTEM", "SAM", "SECURITY"):
        (config / name).write_bytes(b"regf" + noise)
    (config / "SOFTWARE").write_bytes(noise)
    user = root / "Users" / "alice"
    user.mkdir(parents=True)
    (user / "NTUSER.DAT").write_bytes(noise)
    return root


#: name -> how the image is built in a fresh folder.
IMAGES: dict[str, Callable[[Path], Path]] = {
    "win10": lambda r: with_security(build_tree(r, software=profile_list())),
    "win10-no-software": lambda r: build_tree(r),
    "win7": lambda r: build_tree(r, system=WIN7_SYSTEM, software=profile_list()),
    "corrupted-system": lambda r: build_tree(r, system=CORRUPTED_SYSTEM, software=profile_list()),
    "no-sam-no-ntuser": lambda r: build_tree(r, sam=False, ntuser=False, software=profile_list()),
    "garbage-hives": garbage,
    "damaged-values": damaged,
    "removed-values": removed,
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Finding]]:
    return {name: scan_image(build(tmp_path_factory.mktemp(name))) for name, build in IMAGES.items()}


# -- live replays ------------------------------------------------------------------------------------------


def collect_replay(collectors: list[Any], pol: Policy) -> TargetFacts:
    """One PowerShell batch for every collector, announced first and collected concurrently, as the runner does."""
    target = ReplayTarget(powershell_batch(STANDIN_ARGV))
    return collect_windows(target, collectors, pol, timeout=120)


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Finding]]]:
    """Every fixture of the batch, collected by every Windows collector the checks need, and judged."""
    from agent.runner import needed_collectors

    saved = {k: os.environ.get(k) for k in ("MAMORU_PS_SCRIPTS", "MAMORU_PS_LOG", "MAMORU_PS_FIXTURE")}
    os.environ["MAMORU_PS_SCRIPTS"] = str(SCRIPTS)
    os.environ["MAMORU_PS_LOG"] = str(tmp_path_factory.mktemp("ps") / "powershell.log")
    out: dict[str, list[Finding]] = {}
    try:
        checks = windows_checks()
        pol = policy()
        collectors = [c for c in needed_collectors(checks, registry.collectors())
                      if "windows" in c.platforms]
        for fixture in sorted(FIXTURES.glob("*.json")):
            os.environ["MAMORU_PS_FIXTURE"] = str(fixture)
            out[fixture.stem] = evaluate_target(collect_replay(collectors, pol), checks, pol)
        yield out
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- the tests ---------------------------------------------------------------------------------------------


def remediation_leaks(findings: dict[str, list[Finding]]) -> list[str]:
    return [f"{tree} {f.check} remediation: {runs} in {f.remediation['ja']!r}"
            for tree, fs in findings.items() for f in fs if (runs := english_runs(f.remediation["ja"]))]


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive and the damaged values
def test_no_english_prose_in_japanese_on_images(images: dict[str, list[Finding]]) -> None:
    leaks = english_leaks(images) + remediation_leaks(images)
    assert not leaks, "\n".join(leaks)


def test_no_english_prose_in_japanese_on_live_replays(replays: dict[str, list[Finding]]) -> None:
    leaks = english_leaks(replays) + remediation_leaks(replays)
    assert not leaks, "\n".join(leaks)


def _bad_texts(findings: dict[str, list[Finding]]) -> list[str]:
    crashed = base.common_texts()["judge_crashed"].ja.split("(")[0]
    bad = []
    for tree, fs in findings.items():
        for f in fs:
            for lang in ("ja", "en"):
                text = f.message[lang]
                if re.search(r"\{[a-z_]+\}", text):
                    bad.append(f"{tree} {f.check} {lang}: unfilled placeholder: {text!r}")
                if text.startswith(crashed) or "internally" in text:
                    bad.append(f"{tree} {f.check} {lang}: the judge crashed: {text!r}")
                if "Phrase(" in text or "Text(" in text or "{'" in text:
                    bad.append(f"{tree} {f.check} {lang}: a value printed raw: {text!r}")
    return bad


@pytest.mark.needs_service
def test_image_messages_are_whole(images: dict[str, list[Finding]]) -> None:
    bad = _bad_texts(images)
    assert not bad, "\n".join(bad)


def test_replay_messages_are_whole(replays: dict[str, list[Finding]]) -> None:
    bad = _bad_texts(replays)
    assert not bad, "\n".join(bad)


def status(findings: dict[str, list[Finding]]) -> dict[tuple[str, str], str]:
    return {(tree, f.check): f.status for tree, fs in findings.items() for f in fs}


@pytest.mark.needs_service
def test_the_images_reach_the_error_paths(images: dict[str, list[Finding]]) -> None:
    """The damaged images are only worth something if the checks really say error on them."""
    s = status(images)
    for check in ("PH-01", "AC-01", "LG-02", "LG-04", "LG-03", "IA-02", "IA-03", "PM-02", "PM-04", "MN-03"):
        assert s[("win10-no-software", check)] == "error" or check in ("IA-02", "IA-03", "PM-02", "PM-04"), check
    for check in ("AC-01", "TX-05", "LG-02", "LG-04"):
        assert s[("corrupted-system", check)] == "error", check
    for check in ("IA-01", "IA-02", "IA-03", "LG-03", "PM-02", "TX-01", "LG-02", "MN-03"):
        assert s[("damaged-values", check)] == "error", check
    for check in ("IA-01", "IA-02", "LG-03", "LG-02", "PM-02"):
        assert s[("removed-values", check)] == "error", check
    assert all(st == "error" for (tree, _), st in s.items() if tree == "garbage-hives" and st != "not_applicable")


def test_the_replays_reach_the_error_paths(replays: dict[str, list[Finding]]) -> None:
    s = status(replays)
    for check in ("AV-01", "AV-02", "AV-03", "AV-04", "PH-02"):
        assert s[("garbage", check)] == "error", check
        assert s[("wrong_types", check)] == "error", check
    assert s[("user_not_logged_on", "PH-01")] == "error"


def finding_of(findings: list[Finding], check: str) -> Finding:
    return next(f for f in findings if f.check == check)


@pytest.mark.needs_service
def test_japanese_says_where_and_what_english_keeps_the_detail(images: dict[str, list[Finding]]) -> None:
    """Not only no English: the Japanese names the key and what is wrong; the English is as informative as before."""
    ia02 = finding_of(images["damaged-values"], "IA-02")
    assert r"HKLM\SAM\SAM\Domains\Account\F: ハイブが壊れているか" in ia02.message["ja"], ia02.message["ja"]
    assert "domain F value is 3 bytes, shorter than 0x58" in ia02.message["en"]
    assert ia02.evidence["error"]["kind"] == "hive_corrupted"  # the parser's words are kept in the evidence
    ia01 = finding_of(images["removed-values"], "IA-01")
    assert r"Guest (RID 000001F5): HKLM\SAM\SAM\Domains\Account\Users\000001F5: F 値がありません" in ia01.message["ja"]
    assert r"Users\000001F5: no F value" in ia01.message["en"]
    corrupted = finding_of(images["corrupted-system"], "TX-05")
    assert r"SMBv1 クライアント: HKLM\SYSTEM\ControlSet001\Services\mrxsmb10: SYSTEM ハイブ" in corrupted.message["ja"]
    assert r"SYSTEM hive /Windows/System32/config/SYSTEM: damaged at ControlSet001\Services\mrxsmb10" in corrupted.message["en"]
    assert "が ControlSet001\\Services\\mrxsmb10 の位置で壊れています" in corrupted.message["ja"]
    no_software = finding_of(images["win10-no-software"], "AC-01")
    assert "SOFTWARE ハイブがイメージにありません" in no_software.message["ja"]
    assert "SOFTWARE hive not in the image" in no_software.message["en"]
    ph01 = finding_of(images["damaged-values"], "PH-01")
    assert "待ち時間が設定されていません (ScreenSaveTimeOut=soon)" in ph01.message["ja"], ph01.message["ja"]
    assert "no idle time set (ScreenSaveTimeOut=soon)" in ph01.message["en"]
    assert "no idle time set (ScreenSaveTimeOut=soon)" in ph01.evidence["users"][0]["problems"]
    tx01 = finding_of(images["damaged-values"], "TX-01")
    assert "{A}.xml: XML が DTD または実体を宣言しています" in tx01.message["ja"]
    assert "{B}.xml: XML として読めません" in tx01.message["ja"] and "not XML (unclosed token" in tx01.message["en"]
    pm02 = finding_of(images["damaged-values"], "PM-02")
    assert "alias C value names RID 0x1010101" in pm02.message["en"] and "ハイブが壊れている" in pm02.message["ja"]
    lg04 = finding_of(images["win10"], "LG-04")
    assert "最も古いイベントから上書きされます" in lg04.message["ja"] and "overwritten" in lg04.message["en"]
    for check in ("AV-01", "AV-03", "AV-04", "PH-02"):
        f = finding_of(images["win10"], check)
        assert "rootfs の対象には問い合わせる起動中の Windows がありません" in f.message["ja"], f.message["ja"]
        assert "a rootfs target has no running Windows to ask" in f.message["en"]


def test_batch_errors_are_worded_by_kind(replays: dict[str, list[Finding]]) -> None:
    av01 = finding_of(replays["garbage"], "AV-01")
    assert "Defender の状態を読めません: PowerShell の回答を復号できません" in av01.message["ja"], av01.message["ja"]
    assert "製品 Fake AV の productState '266240' を解釈できません" in av01.message["ja"]
    assert "undecodable frame (" in av01.message["en"] and "(garbage)" in av01.message["en"]
    assert "Fake AV (productState '266240')" in av01.message["en"]
    av04 = finding_of(replays["garbage"], "AV-04")
    assert "適用済みの更新を読めません: PowerShell の回答が JSON ではありません" in av04.message["ja"]
    ph02 = finding_of(replays["garbage"], "PH-02")
    assert "時間内に回答しませんでした" in ph02.message["ja"] and "did not answer within its timeout" in ph02.message["en"]
    ph01 = finding_of(replays["user_not_logged_on"], "PH-01")
    assert "利用者がログオンしていないため、ハイブが読み込まれていません" in ph01.message["ja"]
    assert "user not logged on: the hive is not loaded" in ph01.message["en"]
    av03 = finding_of(replays["ja_jp_passive_third_party"], "AV-03")
    assert av03.message["ja"].endswith("ウイルスバスター クラウド（セキュリティ センター: 最新）"), av03.message["ja"]


def test_every_error_kind_has_its_words() -> None:
    """A kind a backend, collector or the batch records without a ``win.kind.*`` text would show in English."""
    import agent.targets.powershell as batch
    import agent.targets.registry as reg
    from checks.windows import ERROR_KINDS

    sources = [Path(m.__file__ or "").read_text(encoding="utf-8") for m in (batch, reg)]
    sources += [p.read_text(encoding="utf-8") for p in (Path(reg.__file__ or "").parent).glob("registry*.py")]
    sources += [p.read_text(encoding="utf-8")
                for p in (Path(__file__).resolve().parents[1] / "collectors" / "windows").glob("*.py")]
    kinds = set()
    for text in sources:
        kinds |= set(re.findall(r'"kind": "([a-z_]+)"', text))
        kinds |= set(re.findall(r'PartError\([^,]+, "([a-z_]+)"', text))
        kinds |= set(re.findall(r'\bkind(?:: str)? = "([a-z_]+)"', text))
    assert {"hive_corrupted", "garbage", "timeout", "missing"} <= kinds
    assert not kinds - set(ERROR_KINDS), kinds - set(ERROR_KINDS)
    for kind in ERROR_KINDS:
        words = base.fact_texts()[f"win.kind.{kind}"]
        assert words.ja and words.en and not english_runs(words.ja), kind


#: Checks whose one collector serves Linux and Windows alike (``collectors.listening`` hands Windows targets to
#: ``collectors.windows.listening``).
SHARED_COLLECTOR = {"TX-02"}


def test_checks_list_shows_windows_exactly_for_the_windows_judges(run_cli: Any) -> None:
    """``mamoru checks list`` says which checks judge Windows: those that read a Windows collector, each with a
    Windows remediation in both languages."""
    import json

    rc, _, out, _ = run_cli("checks", "list", "--json")
    assert rc == 0
    rows = {r["id"]: r["platforms"] for r in json.loads(out)}
    for cid, check in registry.checks().items():
        windows = any(n.startswith("win_") for n in check.needs) or cid in SHARED_COLLECTOR
        assert ("windows" in rows[cid]) == windows, (cid, rows[cid])
        if windows:
            rem = check.meta.messages.get("remediation_windows")
            assert rem is not None and rem.ja and rem.en and not english_runs(rem.ja), cid
            assert not english_runs(check.meta.title.ja), cid
    rc, _, text, _ = run_cli("checks", "list")
    assert rc == 0 and "linux, windows" in text


@pytest.mark.needs_service
def test_parser_details_stay_in_the_evidence(images: dict[str, list[Finding]]) -> None:
    """What a parser said (English by nature) is kept whole in the evidence, where the Japanese text leaves it out."""
    lg03 = finding_of(images["damaged-values"], "LG-03")
    assert "PolAdtEv revision 0x0101 is not 0x0100" in lg03.evidence["error"]["message"]
    assert "PolAdtEv revision" not in lg03.message["ja"] and "PolAdtEv revision" in lg03.message["en"]
    pm02 = finding_of(images["damaged-values"], "PM-02")
    assert pm02.evidence["error"] == {"kind": "hive_corrupted",
                                      "message": "alias C value names RID 0x1010101, not Administrators (0x220)"}
