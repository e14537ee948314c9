"""The hash chain over real ``mamoru scan`` runs: intact, and with a report removed, edited or swapped."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.cli.main import main
from reports.chain import ReportFile, find_previous, verify_chain
from reports.signing.keys import SigningKey, allowed_signers_line, create_key_files
from tests.conftest import validate_report
from tests.signing_helpers import HARDENED, IDENTITY, NS

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]


def scan(directory: Path, name: str, *extra: str, key: SigningKey | None = None) -> tuple[int, dict[str, Any]]:
    out = directory / name
    argv = ["scan", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--quiet", "--output", str(out), *extra]
    if key is not None:
        argv += ["--sign-key", key.path]
    rc = main(argv)
    doc = json.loads(out.read_bytes())
    validate_report(doc)
    return rc, doc


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[SigningKey, Path]:
    base = tmp_path_factory.mktemp("signer")
    key = create_key_files(base / "signing_key", comment=IDENTITY)
    allowed = base / "allowed_signers"
    allowed.write_text(allowed_signers_line(IDENTITY, key.public_blob, NS) + "\n")
    return key, allowed


@pytest.fixture(scope="module")
def ten(tmp_path_factory: pytest.TempPathFactory, signer: tuple[SigningKey, Path]) -> Path:
    """Ten signed reports of one series, written by ten real scans."""
    directory = tmp_path_factory.mktemp("ten") / "reports"
    directory.mkdir()
    for n in range(1, 11):
        rc, _ = scan(directory, f"report-{n}.json", key=signer[0])
        assert rc == 0
    return directory


@pytest.fixture
def series(ten: Path, tmp_path: Path) -> Path:
    """A private copy of the ten to damage."""
    return Path(shutil.copytree(ten, tmp_path / "reports"))


def check_with(signer: tuple[SigningKey, Path]) -> Callable[[ReportFile], str | None]:
    from reports.signing import allowed_signers, sshsig
    from reports.signing.errors import VerificationError

    signers = allowed_signers.load(signer[1])

    def check(r: ReportFile) -> str | None:
        sig = Path(f"{r.path}.sig")
        if not sig.exists():
            return "no signature"
        try:
            sshsig.verify(r.data, sig.read_bytes(), signers)
        except VerificationError as e:
            return str(e)
        return None

    return check


def verify_cli(run_cli: Run, directory: Path, allowed: Path) -> tuple[int, str, str]:
    rc, _, out, err = run_cli("verify", "--chain", str(directory), "--allowed-signers", str(allowed))
    return rc, out, err


def test_each_report_links_to_the_one_before(ten: Path) -> None:
    docs = [json.loads((ten / f"report-{n}.json").read_bytes()) for n in range(1, 11)]
    assert docs[0]["run"]["previous"] is None
    for n in range(2, 11):
        prev = docs[n - 1]["run"]["previous"]
        before = (ten / f"report-{n - 1}.json").read_bytes()
        assert prev == {"sha256": hashlib.sha256(before).hexdigest(), "run_id": docs[n - 2]["run"]["id"],
                        "file": f"report-{n - 1}.json"}
    assert {d["run"]["scope"] for d in docs} == {str(ten.resolve())}


def test_intact_chain_passes(run_cli: Run, series: Path, signer: tuple[SigningKey, Path]) -> None:
    rc, out, err = verify_cli(run_cli, series, signer[1])
    assert rc == 0, err
    assert "chain OK: 10 reports" in out and "report-10.json" in out.splitlines()[-2]
    assert out.count(f"signed by {IDENTITY}") == 10


def test_removed_report_is_named(run_cli: Run, series: Path, signer: tuple[SigningKey, Path]) -> None:
    run5 = json.loads((series / "report-5.json").read_bytes())["run"]["id"]
    (series / "report-5.json").unlink()
    (series / "report-5.json.sig").unlink()
    result = verify_chain(series, check_with(signer))
    assert result.first is not None and result.first.file == "report-5.json"
    assert "removed" in result.first.message and run5 in result.first.message
    rc, out, err = verify_cli(run_cli, series, signer[1])
    assert rc == 1 and "chain broken at report-5.json" in err and "removed" in err
    assert "Traceback" not in err


def test_edited_report_is_named(run_cli: Run, series: Path, signer: tuple[SigningKey, Path]) -> None:
    path = series / "report-6.json"
    doc = json.loads(path.read_bytes())
    doc["findings"][0]["status"] = "pass" if doc["findings"][0]["status"] != "pass" else "fail"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")  # still a valid report
    result = verify_chain(series, check_with(signer))
    assert result.first is not None and result.first.file == "report-6.json"
    assert {p.file for p in result.problems} == {"report-6.json"}
    assert any("altered" in p.message for p in result.problems)
    rc, _, err = verify_cli(run_cli, series, signer[1])
    assert rc == 1 and "chain broken at report-6.json" in err


def test_edited_into_garbage_is_named(series: Path, signer: tuple[SigningKey, Path]) -> None:
    (series / "report-2.json").write_bytes(b"{ not json")
    result = verify_chain(series, check_with(signer))
    assert result.first is not None and result.first.file == "report-2.json"
    assert {p.file for p in result.problems} == {"report-2.json"}


def test_swapped_reports_are_named(run_cli: Run, series: Path, signer: tuple[SigningKey, Path]) -> None:
    """Swap report-3 and report-7 (each with its own signature): every signature still verifies, the links
    do not agree with the names."""
    for suffix in (".json", ".json.sig"):
        a, b = series / f"report-3{suffix}", series / f"report-7{suffix}"
        tmp = series / f"swap{suffix}.tmp"
        a.rename(tmp)
        b.rename(a)
        tmp.rename(b)
    result = verify_chain(series, check_with(signer))
    assert result.first is not None
    assert result.first.file == "report-7.json"  # holds the third report
    assert "report-3.json" in result.first.message and "reordered" in result.first.message
    assert {p.file for p in result.problems} == {"report-3.json", "report-7.json"}
    rc, _, err = verify_cli(run_cli, series, signer[1])
    assert rc == 1 and "chain broken at report-7.json" in err


def test_swapped_contents_without_their_signatures(series: Path, signer: tuple[SigningKey, Path]) -> None:
    a, b = series / "report-4.json", series / "report-8.json"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    result = verify_chain(series, check_with(signer))
    assert result.first is not None and result.first.file == "report-8.json"  # the fourth report, misplaced
    assert {p.file for p in result.problems} == {"report-4.json", "report-8.json"}


def test_missing_signature_breaks_the_chain(run_cli: Run, series: Path, signer: tuple[SigningKey, Path]) -> None:
    (series / "report-9.json.sig").unlink()
    rc, _, err = verify_cli(run_cli, series, signer[1])
    assert rc == 1 and "chain broken at report-9.json" in err and "no signature file" in err


def test_newest_found_by_links_not_by_file_times(tmp_path: Path, signer: tuple[SigningKey, Path]) -> None:
    d = tmp_path / "r"
    d.mkdir()
    for n in (1, 2, 3):
        scan(d, f"2024-0{n}.json", key=signer[0])
    future = 4_000_000_000
    os.utime(d / "2024-01.json", (future, future))  # a backup tool touched the oldest one
    _, doc = scan(d, "2024-04.json", key=signer[0])
    assert doc["run"]["previous"]["file"] == "2024-03.json"
    assert find_previous(d, str(d.resolve()))[0]["file"] == "2024-04.json"  # type: ignore[index]


def test_scopes_are_separate_series(run_cli: Run, tmp_path: Path, signer: tuple[SigningKey, Path]) -> None:
    d = tmp_path / "r"
    d.mkdir()
    _, a1 = scan(d, "a1.json", "--scope", "office-a", key=signer[0])
    _, b1 = scan(d, "b1.json", "--scope", "office-b", key=signer[0])
    _, a2 = scan(d, "a2.json", "--scope", "office-a", key=signer[0])
    _, b2 = scan(d, "b2.json", "--scope", "office-b", key=signer[0])
    assert (a1["run"]["scope"], a1["run"]["previous"]) == ("office-a", None)
    assert b1["run"]["previous"] is None
    assert a2["run"]["previous"]["file"] == "a1.json" and b2["run"]["previous"]["file"] == "b1.json"
    rc, out, err = verify_cli(run_cli, d, signer[1])
    assert rc == 0, err
    assert "series 'office-a': 2 reports" in out and "series 'office-b': 2 reports" in out
    rc, _, out, _ = run_cli("verify", "--chain", str(d), "--scope", "office-b", "--allowed-signers", str(signer[1]))
    assert rc == 0 and "office-a" not in out


def test_fork_is_reported(tmp_path: Path, signer: tuple[SigningKey, Path]) -> None:
    d = tmp_path / "r"
    d.mkdir()
    scan(d, "1.json", key=signer[0])
    scan(d, "2a.json", key=signer[0])
    (d / "2a.json").rename(tmp_path / "2a.json")  # a second scan that cannot see the first one
    scan(d, "2b.json", key=signer[0])
    (tmp_path / "2a.json").rename(d / "2a.json")
    result = verify_chain(d, check_with(signer))
    assert any("forks" in p.message and "2a.json" in p.message and "2b.json" in p.message
               for p in result.problems)


def test_overwriting_the_same_file_is_reported(run_cli: Run, tmp_path: Path,
                                               signer: tuple[SigningKey, Path]) -> None:
    d = tmp_path / "r"
    d.mkdir()
    scan(d, "latest.json", key=signer[0])
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--quiet",
                              "--output", str(d / "latest.json"), "--sign-key", signer[0].path)
    assert doc is not None and doc["run"]["previous"]["file"] == "latest.json"
    assert "replaced the previous report" in err
    rc, _, err = verify_cli(run_cli, d, signer[1])
    assert rc == 1 and "written over an earlier report" in err


def test_empty_directory_is_a_usage_error(run_cli: Run, tmp_path: Path, signer: tuple[SigningKey, Path]) -> None:
    (tmp_path / "other.json").write_text('{"not": "a report"}')
    rc, _, err = verify_cli(run_cli, tmp_path, signer[1])
    assert rc == 2 and "no mamoru reports" in err


def test_linking_reads_only_new_or_changed_reports(series: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new scan finds its predecessor from the index of the series; only new or changed files are parsed."""
    from reports import chain

    scope = json.loads((series / "report-1.json").read_bytes())["run"]["scope"]
    first = find_previous(series, scope)  # the copy has new inodes: every file is read once, the index rewritten
    assert first[0] is not None and first[0]["file"] == "report-10.json" and first[1] == []
    assert (series / chain.INDEX_NAME).stat().st_mode & 0o777 == 0o600
    read: list[str] = []
    real = chain._read_one

    def counting(path: Path) -> ReportFile | None:
        read.append(path.name)
        return real(path)

    monkeypatch.setattr(chain, "_read_one", counting)
    assert find_previous(series, scope) == first
    assert read == []
    (series / "notes.json").write_text('{"not": "a report"}')
    assert find_previous(series, scope) == first
    assert read == ["notes.json"]
    read.clear()
    with (series / "report-4.json").open("ab") as fh:  # an old report altered: it is read again
        fh.write(b"\n")
    changed = find_previous(series, scope)
    assert read == ["report-4.json"]
    (series / chain.INDEX_NAME).unlink()
    read.clear()
    assert find_previous(series, scope) == changed  # the index never changes the answer
    assert len(read) == 11
    assert "report-4.json" in str(changed[1][0])  # no longer referenced by report-5: a second head, reported


@pytest.mark.parametrize("garbage", [b"\xff\xfe not json", b'{"schema": "mamoru-series-index/1", "files": []}',
                                     b'{"schema": "mamoru-series-index/1", "files": {"report-10.json": '
                                     b'{"key": 1, "report": {"sha256": 5}}}}'])
def test_a_damaged_index_is_rebuilt(series: Path, garbage: bytes) -> None:
    from reports import chain

    scope = json.loads((series / "report-1.json").read_bytes())["run"]["scope"]
    expected = find_previous(series, scope)
    (series / chain.INDEX_NAME).write_bytes(garbage)
    assert find_previous(series, scope) == expected
    assert json.loads((series / chain.INDEX_NAME).read_bytes())["schema"] == "mamoru-series-index/1"


def test_an_index_entry_of_the_wrong_shape_is_not_trusted(series: Path) -> None:
    from reports import chain

    scope = json.loads((series / "report-1.json").read_bytes())["run"]["scope"]
    expected = find_previous(series, scope)
    index = json.loads((series / chain.INDEX_NAME).read_bytes())
    index["files"]["report-10.json"]["report"]["finished"] = 12345  # right key, wrong type
    (series / chain.INDEX_NAME).write_text(json.dumps(index))
    assert find_previous(series, scope) == expected
