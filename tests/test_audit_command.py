"""Issue 13, item 4: ``mamoru audit``, the on-site audit in one command.

The whole engagement runs on a LAN of network namespaces this module builds and deletes: the auditor's
laptop (the scanner namespace, where mamoru runs), two servers answering SSH on their LAN addresses (real
sshd), a printer, a Wi-Fi capture made with scapy, and one PC without SSH that joins through a bundle made
with ``mamoru collect`` from a rootfs fixture. The in-process tests cover what needs no root: the organisation
with and without answers, the coverage table in both languages, and the refusals that come before any work.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.organisation import questions
from tests import lan_netns
from tests.conftest import FIXTURES, finding, require, validate_report
from tests.test_organisation import fill, items_md, org, template
from tests.test_scope import no_packets  # noqa: F401  (a fixture: every way mamoru could send is a tripwire)
from tests.wifi_frames import beacon, rsn, write_pcap

RunCli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
WEAK = FIXTURES / "rootfs" / "weak"
SUBNET = "10.206.13.0/24"
HOSTS = [
    lan_netns.Host("h1", "10.206.13.11", "52:54:00:66:13:11"),  # fileserver (SSH)
    lan_netns.Host("h2", "10.206.13.12", "52:54:00:66:13:12"),  # nas (SSH)
    lan_netns.Host("h3", "10.206.13.13", "52:54:00:66:13:13"),  # printer
]
SCANNER = ("10.206.13.2", "52:54:00:66:13:02")
OFFICE_SSID = b"office-wifi"


def policy_text(scope: str = SUBNET) -> str:
    devices = "".join(f'    - {{mac: "{h.mac}", name: {h.name}, owner: admin}}\n' for h in HOSTS)
    return (f"network:\n  scope: [{scope}]\n  devices:\n{devices}"
            f"wifi:\n  ssids: [{OFFICE_SSID.decode()}]\n")


def collect_bundle(run_cli: RunCli, where: Path, name: str = "reception-pc") -> Path:
    """A PC without SSH, collected on site (``mamoru collect`` on a USB stick) from the weak rootfs fixture."""
    bundle = where / f"{name}.bundle.json"
    rc, _, _, err = run_cli("collect", "--target", f"rootfs:{WEAK}", "--name", name, "--output", str(bundle),
                            "--quiet", report=False)
    assert rc == 0, err
    return bundle


def coverage_table_totals(stdout: str) -> list[int]:
    """The numbers of the table's total line, in the order covered, partly, uncovered, absent."""
    line = [ln for ln in stdout.splitlines() if re.search(r"(items:|全 \d+ 項目)", ln)][-1]
    return [int(n) for n in re.findall(r"\d+", line)]


def states(doc: dict[str, Any]) -> list[int]:
    cov = doc["summary"]["coverage"]
    return [len(cov), *(sum(1 for c in cov.values() if c["state"] == s)
                        for s in ("covered", "partly", "uncovered", "absent"))]


# -- in-process: the organisation, the coverage table, the refusals ------------------------------------------

def test_without_answers_the_organisation_asks_and_every_item_appears(run_cli: RunCli, tmp_path: Path) -> None:
    bundle = collect_bundle(run_cli, tmp_path)
    out = tmp_path / "engagement.json"
    rc, doc, stdout, err = run_cli("audit", "--bundle", str(bundle), "--output", str(out), "--lang", "en")
    assert doc is not None, err
    assert rc == 1  # the weak PC fails checks; the open questions count for nothing in the exit code
    assert [t["id"] for t in doc["targets"]] == ["reception-pc", "organisation"]
    asked = org(doc)
    assert [f["check"] for f in asked] == list(questions()) and {f["status"] for f in asked} == {"manual"}
    coverage = doc["summary"]["coverage"]
    assert list(coverage) == items_md()  # every ITEMS.md item, in its order
    assert all(c["state"] != "absent" for c in coverage.values()), coverage
    # The table at the end shows the report's own coverage: every item, the same totals.
    assert "Coverage per guideline item" in stdout
    for item in items_md():
        assert re.search(rf"^│ {re.escape(item)} +│", stdout, re.M), item
    assert coverage_table_totals(stdout) == states(doc)


def test_full_answers_leave_no_question_open_and_an_expired_one_is_asked_again(run_cli: RunCli,
                                                                              tmp_path: Path) -> None:
    bundle = collect_bundle(run_cli, tmp_path)
    text = template(run_cli, "ja")
    answers = tmp_path / "answers.yaml"
    answers.write_text(fill(text), "utf-8")
    rc, doc, _, err = run_cli("audit", "--bundle", str(bundle), "--answers", str(answers), "--quiet",
                              "--output", str(tmp_path / "full.json"))
    assert doc is not None, err
    asked = org(doc)
    assert len(asked) == len(questions())
    assert not [f for f in asked if f["status"] == "manual"]
    assert all(f["attestation"]["by"] == "山田 花子" for f in asked)
    assert all(not c["unanswered"] for c in doc["summary"]["coverage"].values())
    assert {c["state"] for c in doc["summary"]["coverage"].values()} <= {"covered", "partly"}
    # An answer that lapsed is a question again.
    answers.write_text(fill(fill(text), at="2020-04-01", until="2021-03-31", only={"OR-09"}), "utf-8")
    _, doc, _, err = run_cli("audit", "--bundle", str(bundle), "--answers", str(answers), "--quiet",
                             "--output", str(tmp_path / "lapsed.json"))
    assert doc is not None, err
    assert [f["check"] for f in org(doc) if f["status"] == "manual"] == ["OR-09"]
    assert doc["summary"]["coverage"]["MLIT-9-4-1"]["unanswered"] == ["OR-09"]


@pytest.mark.parametrize(("lang", "heading", "states_words"), [
    ("ja", "ガイドライン項目ごとの確認状況", ("確認済み", "未確認")),
    ("en", "Coverage per guideline item", ("covered", "uncovered")),
])
def test_the_coverage_table_speaks_the_operators_language(run_cli: RunCli, tmp_path: Path, lang: str,
                                                         heading: str, states_words: tuple[str, str]) -> None:
    bundle = collect_bundle(run_cli, tmp_path)
    answers = tmp_path / "answers.yaml"
    answers.write_text(fill(template(run_cli, lang), only={"OR-01"}), "utf-8")
    _, doc, stdout, err = run_cli("audit", "--bundle", str(bundle), "--answers", str(answers), "--lang", lang,
                                  "--output", str(tmp_path / "r.json"))
    assert doc is not None, err
    table = stdout[stdout.index(heading):]
    assert all(w in table for w in states_words)
    assert ("回答済み: OR-01" in table) == (lang == "ja") and ("attested: OR-01" in table) == (lang == "en")
    assert ("未回答: OR-02" in table) == (lang == "ja") and ("unanswered: OR-02" in table) == (lang == "en")
    assert coverage_table_totals(table) == states(doc)
    # --quiet: nothing on stdout, the report all the same.
    _, quiet, stdout, _ = run_cli("audit", "--bundle", str(bundle), "--quiet", "--output", str(tmp_path / "q.json"))
    assert quiet is not None and stdout == ""


def test_refusals_come_before_any_work(run_cli: RunCli, tmp_path: Path,
                                       no_packets: list[str]) -> None:  # noqa: F811
    bundle = collect_bundle(run_cli, tmp_path)
    out = tmp_path / "r.json"
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text("192.0.2.0/24"), "utf-8")
    # An SSH host that must never be reached: a listener whose backlog would hold any connection made.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    inventory = tmp_path / "office.yaml"
    inventory.write_text(f"targets:\n  - name: fileserver\n    address: 127.0.0.1\n"
                         f"    port: {listener.getsockname()[1]}\n", "utf-8")
    try:
        base = ("audit", "--inventory", str(inventory), "--bundle", str(bundle), "--policy", str(policy),
                "--lang", "en")
        rc, _, _, err = run_cli(*base, "--network", "198.51.100.0/24", "--output", str(out))
        assert rc == 2 and "outside the policy's network.scope" in err and "nothing was sent" in err, err
        rc, _, _, err = run_cli(*base)
        assert rc == 2 and "Missing option '--output'" in err, err
        bad = tmp_path / "answers.yaml"
        bad.write_text("answers:\n  - item: OR-01\n    answer: maybe\n", "utf-8")
        rc, _, _, err = run_cli(*base, "--network", "192.0.2.0/28", "--answers", str(bad), "--output", str(out))
        assert rc == 2 and f"{bad}:3" in err and "accepted values" in err, err
        rc, _, _, err = run_cli("audit", "--answers", str(bad), "--output", str(out))
        assert rc == 2 and "nothing to audit" in err, err
        assert not out.exists() and no_packets == []
        with pytest.raises(BlockingIOError):  # nobody knocked
            listener.accept()
    finally:
        listener.close()


def test_evaluate_and_audit_take_several_bundles(run_cli: RunCli, tmp_path: Path) -> None:
    first = collect_bundle(run_cli, tmp_path, "reception-pc")
    second = collect_bundle(run_cli, tmp_path, "sales-pc")
    _, audited, _, err = run_cli("audit", "--bundle", str(first), "--bundle", str(second), "--quiet",
                                 "--output", str(tmp_path / "a.json"))
    assert audited is not None, err
    _, evaluated, _, err = run_cli("evaluate", str(first), str(second), "--quiet", "--output",
                                   str(tmp_path / "e.json"))
    assert evaluated is not None, err
    ids = ["reception-pc", "sales-pc", "organisation"]
    assert [t["id"] for t in audited["targets"]] == [t["id"] for t in evaluated["targets"]] == ids

    def verdicts(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(f["target"], f["check"], f["status"]) for f in doc["findings"]]

    assert verdicts(audited) == verdicts(evaluated)  # one pipeline: the same findings


# -- the test: a whole office on a namespace LAN -------------------------------------------------------

class Office:
    def __init__(self, lan: lan_netns.TestLan, ssh: Any, work: Path) -> None:
        self.lan = lan
        self.ssh = ssh
        self.work = work
        self.servers: dict[str, Any] = {}

    def audit(self, *args: str) -> Any:
        argv = [sys.executable, "-m", "agent.cli.main", "audit", "--known-hosts", str(self.ssh.known_hosts),
                "--connect-timeout", "5", *args]
        return self.lan.run(argv, timeout=300)

    def inventory(self) -> Path:
        inv = self.work / "office.yaml"
        entries = "".join(f"  - name: {name}\n    address: {server.listen}\n    port: {server.port}\n"
                          f"    tags: {{role: {name}}}\n" for name, server in self.servers.items())
        inv.write_text(f"defaults:\n  user: root\n  identity_file: {self.ssh.client_key}\ntargets:\n{entries}",
                       "utf-8")
        return inv

    def connections(self) -> int:
        return sum(s.log.read_text(errors="replace").count("Connection from") for s in self.servers.values())


@pytest.fixture(scope="module")
def office() -> Iterator[Office]:
    from tests.sshd_helpers import SshdLab, sshd_available

    reason = lan_netns.available()
    require(reason is None, reason or "")
    require(sshd_available(), "OpenSSH server (sshd, ssh-keygen) is not installed")
    work = Path(tempfile.mkdtemp(prefix="mm6-audit-"))
    work.chmod(0o755)
    ssh = SshdLab()
    try:
        with lan_netns.TestLan(SUBNET, HOSTS, scanner_ip=SCANNER[0], scanner_mac=SCANNER[1]) as lan:
            o = Office(lan, ssh, work)
            for name, host in (("fileserver", lan.host("h1")), ("nas", lan.host("h2"))):
                o.servers[name] = ssh.sshd(netns=host.ns, listen=host.ip)
            yield o
    finally:
        ssh.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_one_command_audits_the_whole_office_into_one_signed_report(office: Office, run_cli: RunCli,
                                                                    tmp_path: Path) -> None:
    work = office.work
    bundle = collect_bundle(run_cli, work)
    capture = write_pcap(work / "survey.pcap", [
        beacon("02:6d:13:00:00:01", OFFICE_SSID, privacy=True, rsn_body=rsn()),
        beacon("02:6d:13:00:00:02", b"neighbour", privacy=False)])
    answers = work / "answers.yaml"
    answers.write_text(fill(template(run_cli, "ja")), "utf-8")
    policy = work / "policy.yaml"
    policy.write_text(policy_text(), "utf-8")
    key = work / "signing_key"
    rc, _, line, err = run_cli("keygen", "--output", str(key), "--identity", "auditor@example.jp", report=False)
    assert rc == 0, err
    allowed = work / "allowed_signers"
    allowed.write_text(line)
    out = work / "engagement.json"
    res = office.audit("--inventory", str(office.inventory()), "--network", SUBNET, "--wifi-capture", str(capture),
                       "--bundle", str(bundle), "--answers", str(answers), "--policy", str(policy),
                       "--sign-key", str(key), "--output", str(out), "--lang", "en")
    assert res.returncode in (0, 1), res.stderr  # 1: this machine and the weak PC fail checks
    doc = json.loads(out.read_bytes())
    validate_report(doc)
    targets = {t["id"]: t for t in doc["targets"]}
    assert list(targets) == ["reception-pc", f"network:{SUBNET}", f"wifi-capture:{capture}", "fileserver", "nas",
                             "organisation"]
    live = {i: t["status"] for i, t in targets.items() if i != "reception-pc"}
    assert live == dict.fromkeys(live, "ok"), doc["targets"]
    assert targets["reception-pc"]["status"] == "partial"  # as collected: a rootfs runs no command
    assert targets["fileserver"]["tags"] == {"role": "fileserver"}
    checks_on = {t: {f["check"] for f in doc["findings"] if f["target"] == t} for t in targets}
    assert {"IA-01", "PM-01", "TX-04"} <= checks_on["fileserver"] and checks_on["fileserver"] == checks_on["nas"]
    assert {"WL-02", "TX-02", "TX-03"} <= checks_on[f"network:{SUBNET}"]
    assert {"WL-03", "TX-01"} <= checks_on[f"wifi-capture:{capture}"]
    assert "IA-01" in checks_on["reception-pc"]
    wl02 = finding(doc, "WL-02", f"network:{SUBNET}")
    assert wl02["status"] == "pass", wl02["message"]["en"]  # the sweep saw the ledger's devices, and only them
    assert {d["mac"] for d in wl02["evidence"]["devices"] if not d["self"]} == {h.mac for h in HOSTS}
    wl03 = finding(doc, "WL-03", f"wifi-capture:{capture}")
    assert wl03["status"] == "pass", wl03["message"]["en"]
    assert not [f for f in org(doc) if f["status"] == "manual"]
    coverage = doc["summary"]["coverage"]
    assert list(coverage) == items_md()
    assert {c["state"] for c in coverage.values()} <= {"covered", "partly"}, coverage
    judged = {f["target"] for f in doc["findings"] if "MLIT-9-5-1" in f["guideline"] and f["status"] in ("pass", "fail")}
    assert judged == {"fileserver", "nas", "reception-pc"}  # two SSH hosts and the collected PC
    assert coverage_table_totals(res.stdout) == states(doc)
    # Signed, and mamoru verify accepts it.
    rc, _, said, err = run_cli("verify", str(out), "--allowed-signers", str(allowed), "--identity",
                               "auditor@example.jp", report=False)
    assert rc == 0, err + said


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_on_the_lan_a_refusal_sends_no_frame_and_knocks_on_no_host(office: Office, run_cli: RunCli) -> None:
    work = office.work
    policy = work / "narrow.yaml"
    policy.write_text(policy_text("10.206.13.0/28"), "utf-8")
    bad = work / "bad-answers.yaml"
    bad.write_text("answers:\n  - item: OR-01\n    answr: yes\n", "utf-8")
    out = work / "refused.json"
    inventory = office.inventory()
    before, knocks = office.lan.tx_packets(), office.connections()
    res = office.audit("--inventory", str(inventory), "--network", SUBNET, "--policy", str(policy),
                       "--output", str(out), "--lang", "en")
    assert res.returncode == 2 and f"refusing to scan {SUBNET}" in res.stderr, res.stderr
    res = office.audit("--inventory", str(inventory), "--network", "10.206.13.0/28", "--policy", str(policy),
                       "--answers", str(bad), "--output", str(out), "--lang", "en")
    assert res.returncode == 2 and f"{bad}:3" in res.stderr and "answr" in res.stderr, res.stderr
    assert office.lan.tx_packets() == before and office.connections() == knocks and not out.exists()
