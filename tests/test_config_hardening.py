"""Config files and bundles fail closed (issue 10): duplicate keys, alias bombs, non-JSON values, secrets in
error messages, and damaged or huge bundles are exit 2 with file (and line), never a crash or a false pass.

The bombs run in a subprocess with an address-space limit and a timeout, so that a regression fails the
test instead of taking the machine down.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config.inventory import load_inventory
from agent.config.policy import load_policy
from agent.config.yamlfile import parse_yaml, safe_load
from agent.errors import ConfigError
from tests.conftest import FIXTURES

RunCli = Callable[..., tuple[int, Any, str, str]]
ROOT = Path(__file__).resolve().parents[1]
HARDENED = f"rootfs:{FIXTURES / 'rootfs' / 'hardened'}"
WEAK = f"rootfs:{FIXTURES / 'rootfs' / 'weak'}"
SECRET = "Hunter2Secret"


def run_limited(tmp_path: Path, *argv: str, mem_mb: int = 1024, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``mamoru ARGV`` from this tree in a child with at most ``mem_mb`` of address space and no core file."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    code = "import sys; from agent.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, preexec_fn=limit,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=timeout, check=False)


# -- item 4: duplicate keys ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "line", "first"), [
    ("sshd:\n  max_auth_tries: 3\n  max_auth_tries: 100\n", 3, 2),  # an IA-04 fail would become a pass
    ("wifi:\n  ssids: [office]\nname: x\nwifi:\n  require_pmf: true\n", 4, 1),  # the first block's SSIDs lost
    ('name: a\n"name": b\n', 2, 1),  # the same key, quoted or not
])
def test_duplicate_keys_in_a_policy_are_refused(run_cli: RunCli, tmp_path: Path, text: str, line: int,
                                                first: int) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    rc, doc, _, err = run_cli("scan", "--target", WEAK, "--policy", str(policy), "--quiet")
    assert rc == 2 and doc is None, err
    assert f"{policy}:{line}:" in err and f"first at line {first}" in err and "duplicate key" in err


def test_duplicate_keys_in_an_inventory_are_refused(tmp_path: Path) -> None:
    inv = tmp_path / "office.yaml"
    inv.write_text("targets:\n  - address: 10.0.0.5\n    address: 10.0.0.6\n")  # which host was meant?
    with pytest.raises(ConfigError, match=r"office.yaml:3: targets.0.address: duplicate key \(first at line 2\)"):
        load_inventory(inv)
    inv.write_text("targets:\n  - address: 10.0.0.5\n    policy:\n      sshd: {max_auth_tries: 3, max_auth_tries: 9}\n")
    with pytest.raises(ConfigError, match=r"office.yaml:4: .*max_auth_tries: duplicate key \(first at line 4\)"):
        load_inventory(inv)


def test_cli_refuses_an_inventory_with_duplicate_keys_before_connecting(run_cli: RunCli, tmp_path: Path) -> None:
    inv = tmp_path / "office.yaml"
    inv.write_text("targets:\n  - address: 127.0.0.1\n    port: 1\n    port: 2\n")
    rc, doc, _, err = run_cli("scan", "--inventory", str(inv), "--quiet")
    assert rc == 2 and doc is None and f"{inv}:4:" in err and "first at line 3" in err


# -- item 10: aliases ------------------------------------------------------------------------------

#: 306 bytes whose value, expanded, is 10**7 strings (gigabytes as Python objects, more in the validator).
POLICY_BOMB = """\
a: &a ["a", "a", "a", "a", "a", "a", "a", "a", "a", "a"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
sshd: {forbidden_ciphers: *g}
"""
INVENTORY_BOMB = POLICY_BOMB.replace('"a"', "{address: h}").replace("sshd: {forbidden_ciphers: *g}", "targets: *g")


@pytest.mark.parametrize(("option", "text"), [
    ("--policy", POLICY_BOMB),
    ("--inventory", INVENTORY_BOMB),
    ("--policy", "logging: &l\n  auth_logs: [*l]\n"),  # recursive: a value that contains itself
])
def test_alias_bombs_are_refused_before_expansion(tmp_path: Path, option: str, text: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    assert path.stat().st_size < 600
    args = ["scan", option, str(path), "--output", str(tmp_path / "r.json"), "--quiet"]
    proc = run_limited(tmp_path, *args, *(["--target", HARDENED] if option == "--policy" else []))
    assert proc.returncode == 2, proc.stderr[-500:]
    assert f"{path}:2:" in proc.stderr and "alias" in proc.stderr


def test_an_anchor_without_alias_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("name: &n office\n")
    assert load_policy(path).name == "office"


# -- item 11: only JSON data -----------------------------------------------------------------------


def test_an_unquoted_date_stays_text(run_cli: RunCli, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: 2024-01-01\n")
    rc, doc, _, err = run_cli("scan", "--target", HARDENED, "--policy", str(policy), "--check", "IA-04",
                              "--quiet")
    assert rc in (0, 1), err
    assert doc["run"]["policy"]["name"] == "2024-01-01"


@pytest.mark.parametrize(("text", "line", "words"), [
    ("name: x\n1: one\n", 2, "key '1' is not text"),
    ("~: nothing\n", 1, "key '~' is not text"),
    ("name: x\nyes: 1\n", 2, "key 'yes' is not text"),
    ("? [a, b]\n: c\n", 1, "not text"),
    ("name: !!binary aGk=\n", 1, "!!binary"),
    ("data_paths: !!set {/srv: null}\n", 1, "!!set"),
    ("data_paths: !!omap [{a: 1}]\n", 1, "!!omap"),
    ("name: x\nlogging:\n  retention_days: .nan\n", 3, "finite"),
    ("sshd:\n  max_auth_tries: -.inf\n", 2, "finite"),
    (f"logging:\n  retention_days: {'9' * 5000}\n", 2, "number too long"),
    ("name: x\n<<: {sshd: {max_auth_tries: 100}}\n", 2, "merge keys"),
    ("name: !!python/tuple [a]\n", 1, "python/tuple"),
    ("name: !custom x\n", 1, "!custom"),
    ("a:\n" + "".join(f"{'  ' * i}b:\n" for i in range(1, 80)), 66, "nested deeper"),
])
def test_values_that_are_not_json_are_exit_2_with_file_and_line(run_cli: RunCli, tmp_path: Path, text: str,
                                                                line: int, words: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    rc, doc, _, err = run_cli("scan", "--target", HARDENED, "--policy", str(policy), "--quiet")
    assert rc == 2 and doc is None, err
    assert f"{policy}:{line}:" in err and words in err and "internal error" not in err


def _is_json_data(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_data(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_json_data(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=":-[]{},&*!?|>'\"#\n ~.<=%@0123456789abeynoxtT_+", max_size=80))
def test_any_text_is_json_data_or_a_config_error(text: str) -> None:
    try:
        value, _ = parse_yaml(text.encode(), "fuzz.yaml")
    except ConfigError as e:
        assert str(e).startswith("fuzz.yaml")
        return
    assert _is_json_data(value), value
    json.dumps(value, allow_nan=False)


def test_internal_data_files_keep_the_plain_loader_and_follow_the_same_rules() -> None:
    """Check texts and the default policy load the same either way; no data file has a duplicate key."""
    for path in [*sorted((ROOT / "checks" / "meta").glob("*.yaml")), ROOT / "agent/config/default_policy.yaml"]:
        raw = path.read_bytes()
        assert parse_yaml(raw, str(path))[0] == safe_load(raw), path
    for path in sorted((ROOT / "collectors" / "data").glob("*.yaml")):  # tables keyed by port number
        stack = [yaml.compose(path.read_text("utf-8"), Loader=yaml.SafeLoader)]
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                keys = [(k.tag, k.value) for k, _ in node.value]
                assert len(keys) == len(set(keys)), f"{path}:{node.start_mark.line + 1}: duplicate key"
                stack += [v for _, v in node.value]
            elif isinstance(node, yaml.SequenceNode):
                stack += node.value


# -- item 8: no secret in a message ----------------------------------------------------------------


@pytest.mark.parametrize(("entry", "line", "key"), [
    (f'address: "audit:{SECRET}@10.0.0.5"', 2, "targets.0.address"),
    (f'address: 10.0.0.5\n    user: "audit:{SECRET}"', 3, "targets.0.user"),
    (f'address: 10.0.0.5\n    jump: {{address: "hop:{SECRET}@b.example.jp"}}', 3, "targets.0.jump.address"),
    (f'address: 10.0.0.5\n    name: "{SECRET} x"', 3, "targets.0.name"),
    (f'address: 10.0.0.5\n    tags: {{k: [{SECRET}]}}', 3, "targets.0.tags.k"),
    (f'address: 10.0.0.5\n    port: "{SECRET}"', 3, "targets.0.port"),
    (f'address: 10.0.0.5\n    policy: {{wifi: {{ssids: ["{SECRET * 3}"]}}}}', 3, "wifi.ssids.0"),
])
def test_inventory_errors_never_quote_the_value(run_cli: RunCli, tmp_path: Path, entry: str, line: int,
                                                key: str) -> None:
    inv = tmp_path / "office.yaml"
    inv.write_text(f"targets:\n  - {entry}\n")
    rc, doc, out, err = run_cli("scan", "--inventory", str(inv), "--quiet")
    assert rc == 2 and doc is None
    assert SECRET not in out + err
    assert f"{inv}:{line}:" in err and key in err


def test_the_message_says_what_is_expected(tmp_path: Path) -> None:
    inv = tmp_path / "office.yaml"
    inv.write_text(f'targets:\n  - address: "audit:{SECRET}@10.0.0.5"\n')
    with pytest.raises(ConfigError) as info:
        load_inventory(inv)
    assert "host name or an IP address only" in str(info.value) and "password" in str(info.value)
    policy = tmp_path / "p.yaml"
    policy.write_text("sshd:\n  permit_root_login: [maybe]\n")
    with pytest.raises(ConfigError, match=r'p.yaml:2: sshd.permit_root_login.0: is not one of the accepted '
                                          r'values: "yes", "no"'):
        load_policy(policy)
    policy.write_text("sshd:\n  max_auth_tries: 1000\n")
    with pytest.raises(ConfigError, match=r"p.yaml:2: sshd.max_auth_tries: must be at most 100$"):
        load_policy(policy)


# -- item 12: bundles ------------------------------------------------------------------------------


@pytest.fixture
def bundle_text(run_cli: RunCli, tmp_path: Path) -> str:
    bundle = tmp_path / "facts.bundle.json"
    rc, _, _, err = run_cli("collect", "--target", WEAK, "--output", str(bundle))
    assert rc == 0, err
    return bundle.read_text()


def _deep(text: str, depth: int) -> str:
    doc = json.loads(text)
    doc["targets"][0]["facts"]["facts"]["accounts"]["data"] = "@DEEP@"
    return json.dumps(doc).replace('"@DEEP@"', "[" * depth + "]" * depth)


@pytest.mark.parametrize(("mangle", "words"), [
    (lambda t: _deep(t, 1500), "nested too deeply"),
    (lambda t: t.replace('"run": {', '"run": {"partial": true, ', 1), "'partial' appears twice"),
    (lambda t: t.replace('"duration_ms": ', '"duration_ms": NaN, "x": ', 1), "NaN is not a JSON number"),
    (lambda t: t.replace('"duration_ms": ', '"duration_ms": ' + "7" * 5000 + ', "x": ', 1), "digits"),
    (lambda t: t.replace('"status": "ok"', f'"status": "{SECRET}"', 1), "is not one of the accepted values"),
    (lambda t: t.replace('"partial": false', f'"partial": "{SECRET}"', 1), 'is not of type "boolean"'),
])
def test_damaged_bundles_are_exit_2(run_cli: RunCli, tmp_path: Path, bundle_text: str,
                                    mangle: Callable[[str], str], words: str) -> None:
    bad = tmp_path / "bad.bundle.json"
    text = mangle(bundle_text)
    assert text != bundle_text
    bad.write_text(text)
    rc, doc, out, err = run_cli("evaluate", str(bad), "--output", str(tmp_path / "out" / "r.json"))
    assert rc == 2 and doc is None, err
    assert words in err and str(bad) in err and SECRET not in out + err


@pytest.mark.parametrize(("data", "words"), [
    (b"\x00\xff garbage \xfe", "bad.bundle.json:1: not a mamoru bundle (not valid UTF-8)"),
    ("{}".encode("utf-16"), "not valid UTF-8"),  # json.loads alone would guess UTF-16
    (b"[" * 100_000, "not a mamoru bundle"),
])
def test_garbage_is_exit_2(run_cli: RunCli, tmp_path: Path, data: bytes, words: str) -> None:
    bad = tmp_path / "bad.bundle.json"
    bad.write_bytes(data)
    rc, _, _, err = run_cli("evaluate", str(bad), "--output", str(tmp_path / "out" / "r.json"))
    assert rc == 2 and words in err and "internal error" not in err


def test_a_huge_bundle_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """600 MB (sparse) against a 512 MB cap, in 300 MB of address space: only a stat can refuse it in time."""
    huge = tmp_path / "huge.bundle.json"
    with huge.open("wb") as fh:
        fh.truncate(600 << 20)
    proc = run_limited(tmp_path, "evaluate", str(huge), "--output", str(tmp_path / "out" / "r.json"), mem_mb=300)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert f"{huge}: {600 << 20} bytes, larger than" in proc.stderr


def test_reads_stay_bounded_without_a_size(run_cli: RunCli, tmp_path: Path) -> None:
    rc, _, _, err = run_cli("scan", "--target", HARDENED, "--policy", "/dev/zero", "--quiet")
    assert rc == 2 and "/dev/zero: larger than" in err
