"""AC-01 against real nftables/iptables rulesets, loaded inside network namespaces the tests create.

The scan itself runs inside the namespace (``ip netns exec NS mamoru scan``), so the collector reads the
namespace's ruleset with the same ``nft -j list ruleset`` it runs on a real host, and the host's own
ruleset is never touched. Images (rootfs) are judged from the packaged ufw and nftables files of this
machine, read at test time.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.firewall import summarize_iptables_save, summarize_nft
from tests.conftest import finding, require, require_root, require_tool, validate_report

pytestmark = [pytest.mark.needs_service, pytest.mark.needs_root]
_names = itertools.count()
MAMORU = Path(sys.executable).with_name("mamoru")

HARDENED = """
table inet filter {
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    iif lo accept
    tcp dport 22 accept
  }
}
"""


def sh(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True)


@pytest.fixture
def netns() -> Iterator[str]:
    require_root()
    require_tool("ip", "nft")
    name = f"mmA{os.getpid() % 100000}x{next(_names)}"
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def load(ns: str, rules: str) -> None:
    sh("ip", "netns", "exec", ns, "nft", "-f", "-", stdin=rules)


def scan_in(ns: str, tmp_path: Path, *prefix: str) -> dict[str, Any]:
    require(MAMORU.exists(), f"{MAMORU} missing")
    out = tmp_path / f"ac01-{next(_names)}.json"
    proc = subprocess.run(["ip", "netns", "exec", ns, *prefix, str(MAMORU), "scan", "--check", "AC-01", "--quiet",
                           "--lang", "en", "--output", str(out)], capture_output=True, text=True)
    assert out.exists(), proc.stderr[-2000:]
    doc: dict[str, Any] = json.loads(out.read_text())
    validate_report(doc)
    return finding(doc, "AC-01")


def test_default_deny_inet_chain_passes(netns: str, tmp_path: Path) -> None:
    load(netns, HARDENED)
    f = scan_in(netns, tmp_path)
    assert f["status"] == "pass", f
    chain = f["evidence"]["input_chains"][0]
    assert (chain["family"], chain["policy"], chain["rules"], chain["decided_by"]) == ("inet", "drop", 3, "policy")


def test_empty_ruleset_fails(netns: str, tmp_path: Path) -> None:
    f = scan_in(netns, tmp_path)
    assert f["status"] == "fail" and "everything is accepted" in f["message"]["en"]


def test_ipv4_only_filter_leaves_ipv6_open(netns: str, tmp_path: Path) -> None:
    load(netns, HARDENED.replace("inet", "ip"))
    f = scan_in(netns, tmp_path)
    assert f["status"] == "fail" and f["message"]["en"].endswith("IPv6")
    sh("ip", "netns", "exec", netns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
    f = scan_in(netns, tmp_path)
    assert f["status"] == "pass" and f["evidence"]["ipv6_disabled"] is True


def test_unconditional_accept_defeats_policy_drop(netns: str, tmp_path: Path) -> None:
    # A catch-all accept reached through a jump: the chain's "policy drop" never applies.
    load(netns, HARDENED.replace("tcp dport 22 accept", "tcp dport 22 accept\n    jump allow_all")
         .replace("table inet filter {", "table inet filter {\n  chain allow_all {\n    counter accept\n  }"))
    f = scan_in(netns, tmp_path)
    assert f["status"] == "fail", f
    chain = next(c for c in f["evidence"]["input_chains"] if c["chain"] == "input")
    assert chain["unmatched"] == "accept" and chain["decided_by"] == "rule 4"
    # A final reject rule denies by itself, whatever the policy says, and a second base chain with
    # policy accept does not undo it (a drop in any base chain on the hook is final).
    load(netns, "flush ruleset\n" + HARDENED.replace("policy drop", "policy accept")
         .replace("tcp dport 22 accept", "tcp dport 22 accept\n    counter reject")
         + "table ip other {\n  chain in {\n    type filter hook input priority 10; policy accept;\n  }\n}\n")
    f = scan_in(netns, tmp_path)
    assert f["status"] == "pass", f
    assert "reject by rule 4" in f["message"]["en"]


def test_iptables_nft_rules_are_seen(netns: str, tmp_path: Path) -> None:
    require_tool("iptables", "ip6tables", "iptables-save")
    for tool in ("iptables", "ip6tables"):
        sh("ip", "netns", "exec", netns, tool, "-A", "INPUT", "-i", "lo", "-j", "ACCEPT")
        sh("ip", "netns", "exec", netns, tool, "-P", "INPUT", "DROP")
    f = scan_in(netns, tmp_path)
    assert f["status"] == "pass", f
    assert {c["family"] for c in f["evidence"]["input_chains"]} == {"ip", "ip6"}
    # The iptables-save fallback reads the same ruleset the same way (used where nft is absent).
    saved = sh("ip", "netns", "exec", netns, "iptables-save").stdout
    assert summarize_iptables_save(saved, "ip")[0]["default_deny"] is True
    sh("ip", "netns", "exec", netns, "iptables", "-A", "INPUT", "-m", "comment", "--comment", "temp", "-j", "ACCEPT")
    saved = sh("ip", "netns", "exec", netns, "iptables-save").stdout
    summary = summarize_iptables_save(saved, "ip")[0]
    assert (summary["unmatched"], summary["decided_by"]) == ("accept", "rule 2")
    ruleset = json.loads(sh("ip", "netns", "exec", netns, "nft", "-j", "list", "ruleset").stdout)
    assert next(c for c in summarize_nft(ruleset) if c["family"] == "ip")["unmatched"] == "accept"


def test_unprivileged_scan_is_error(netns: str, tmp_path: Path) -> None:
    require_tool("setpriv")
    load(netns, HARDENED)
    os.chmod(tmp_path, 0o777)
    parent = tmp_path
    while parent != parent.parent:  # nobody must reach the report directory
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
        if parent.name.startswith("pytest-of-"):
            break
        parent = parent.parent
    f = scan_in(netns, tmp_path, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    assert f["status"] == "error" and "run as root" in f["message"]["en"], f


def test_malformed_nft_output_is_an_error() -> None:
    for bad in ({}, {"nftables": "x"}, {"nftables": [{"rule": {"family": "inet", "table": "t", "chain": "c"}}]},
                {"nftables": [{"rule": {"family": "inet", "table": "t", "chain": "c", "expr": ["accept"]}}]}):
        with pytest.raises((ValueError, KeyError)):
            summarize_nft(bad)
    with pytest.raises(ValueError):
        summarize_iptables_save("*filter\n:INPUT\nCOMMIT\n", "ip")


# --- images: the boot-time configuration --------------------------------------------------------------

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]


def image_with(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "image"
    for path, text in files.items():
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    return root


def judge_image(run_cli: Run, root: Path) -> dict[str, Any]:
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "AC-01", "--quiet", "--lang", "en")
    assert doc is not None
    return finding(doc, "AC-01")


def test_image_ufw_as_packaged(run_cli: Run, tmp_path: Path) -> None:
    require(Path("/etc/ufw/ufw.conf").exists() and Path("/etc/default/ufw").exists(), "ufw is not installed")
    root = image_with(tmp_path, {"/etc/ufw/ufw.conf": Path("/etc/ufw/ufw.conf").read_text(),
                                 "/etc/default/ufw": Path("/etc/default/ufw").read_text()})
    # As packaged: DROP by default, but not enabled.
    f = judge_image(run_cli, root)
    assert f["status"] == "fail" and "ufw: not enabled" in f["message"]["en"], f
    conf = root / "etc/ufw/ufw.conf"
    conf.write_text(conf.read_text().replace("ENABLED=no", "ENABLED=yes"))
    f = judge_image(run_cli, root)
    assert f["status"] == "pass" and "not seen" in f["message"]["en"], f
    default = root / "etc/default/ufw"
    default.write_text(default.read_text().replace('DEFAULT_INPUT_POLICY="DROP"', 'DEFAULT_INPUT_POLICY="ACCEPT"'))
    assert judge_image(run_cli, root)["status"] == "fail"
    default.write_text(default.read_text().replace('DEFAULT_INPUT_POLICY="ACCEPT"', 'DEFAULT_INPUT_POLICY="MAYBE"'))
    f = judge_image(run_cli, root)
    assert f["status"] == "error" and "MAYBE" in f["message"]["en"]
    default.write_text("this is not a shell assignment\n")
    assert judge_image(run_cli, root)["status"] == "error"


def test_image_nftables_conf_as_packaged(run_cli: Run, tmp_path: Path) -> None:
    require(Path("/etc/nftables.conf").exists(), "nftables is not installed")
    packaged = Path("/etc/nftables.conf").read_text()
    root = image_with(tmp_path, {"/etc/nftables.conf": packaged})
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True)
    (wants / "nftables.service").symlink_to("/lib/systemd/system/nftables.service")
    f = judge_image(run_cli, root)  # Debian's file: an input chain without a policy, i.e. accept
    assert f["status"] == "fail", f
    (root / "etc/nftables.conf").write_text(packaged.replace("hook input priority filter;",
                                                             "hook input priority filter; policy drop;"))
    assert judge_image(run_cli, root)["status"] == "pass"
    shutil.rmtree(root / "etc/systemd/system/sysinit.target.wants")
    assert judge_image(run_cli, root)["status"] == "fail"  # not enabled at boot


def test_image_without_firewall(run_cli: Run, tmp_path: Path) -> None:
    f = judge_image(run_cli, image_with(tmp_path, {"/etc/hostname": "img\n"}))
    assert f["status"] == "fail" and "No firewall" in f["message"]["en"]
