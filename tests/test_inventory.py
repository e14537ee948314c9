"""The inventory file: parsed at the edge, every mistake named with file and line, no place for passwords."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config.inventory import load_inventory
from agent.errors import ConfigError
from agent.fleet import RemoteSettings, plan

GOOD = """\
# office inventory
defaults:
  user: audit
  identity_file: keys/audit_ed25519
  connect_timeout: 7
  tags: {site: osaka}
targets:
  - name: fileserver
    address: 10.0.0.5
    sudo: true
    tags: {role: file-server}
    policy:
      logging: {retention_days: 730}
  - address: 10.0.0.21
    port: 2222
    user: admin
    identity_file: ~/.ssh/other
    jump: {address: bastion.example.jp, user: hop, port: 2200}
  - address: "fe80::1"
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        p = tmp_path / "office.yaml"
        p.write_text(text)
        return p

    return write


def test_a_full_inventory(inventory: Callable[[str], Path], tmp_path: Path) -> None:
    inv = load_inventory(inventory(GOOD))
    fs, pc, v6 = inv.targets
    assert (fs.name, fs.spec, fs.sudo, fs.line) == ("fileserver", "ssh://audit@10.0.0.5:22", True, 8)
    assert fs.identity_file == str(tmp_path / "keys" / "audit_ed25519")  # relative to the inventory file
    assert dict(fs.tags) == {"site": "osaka", "role": "file-server"}
    assert dict(fs.policy) == {"logging": {"retention_days": 730}}
    assert fs.connect_timeout == 7
    assert pc.name == pc.spec == "ssh://admin@10.0.0.21:2222"
    assert pc.identity_file == os.path.expanduser("~/.ssh/other")
    assert pc.jump is not None and pc.jump.spec == "ssh://hop@bastion.example.jp:2200"
    assert v6.spec == "ssh://audit@[fe80::1]:22"


def test_plan_turns_entries_into_jobs(inventory: Callable[[str], Path]) -> None:
    items = plan((), str(inventory(GOOD)), RemoteSettings(connect_timeout=3, known_hosts="/kh", sudo=False))
    fs, pc, _ = items
    assert fs.label == "fileserver" and fs.options["sudo"] is True and fs.options["known_hosts"] == "/kh"  # type: ignore[union-attr]
    assert fs.options["connect_timeout"] == 7  # type: ignore[union-attr]  # the entry wins over the CLI
    assert pc.options["jump"] == "ssh://hop@bastion.example.jp:2200"  # type: ignore[union-attr]
    assert pc.options["sudo"] is False  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("targets:\n  - address: 10.0.0.5\n    colour: red\n", 3, "unknown key 'targets.0.colour'"),
    ("targets:\n  - address: 10.0.0.5\n    port: twenty-two\n", 3, "port"),
    ("targets:\n  - address: 10.0.0.5\n    port: 70000\n", 3, "port"),
    ("targets:\n  - port: 22\n", 2, "address"),
    ("targets: []\n", 1, "targets"),
    ("defaults:\n  user: audit\n", 1, "targets"),
    ("targets:\n  - address: 10.0.0.5\n    tags: {rack: 3}\n", 3, "tags"),
    ("targets:\n  - address: 'a b'\n", 2, "address"),
    ("targets:\n  - address: 10.0.0.5\n    jump: {address: b, shell: zsh}\n", 3, "shell"),
])
def test_mistakes_are_named_with_their_line(inventory: Callable[[str], Path], text: str, line: int,
                                            words: str) -> None:
    path = inventory(text)
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    assert f"{path}:{line}:" in str(info.value)
    assert words in str(info.value)


def test_policy_overrides_are_checked_against_the_policy_schema(inventory: Callable[[str], Path]) -> None:
    path = inventory("targets:\n  - address: 10.0.0.5\n    policy:\n      logging:\n        retention_dayz: 9\n")
    with pytest.raises(ConfigError, match=r":5: unknown key 'logging.retention_dayz'"):
        load_inventory(path)
    path = inventory("targets:\n  - address: 10.0.0.5\n    policy:\n      logging: {retention_days: -1}\n")
    with pytest.raises(ConfigError, match=r":4: .*retention_days"):
        load_inventory(path)


@pytest.mark.parametrize("key", ["password", "passphrase", "Password"])
def test_passwords_have_no_place(inventory: Callable[[str], Path], key: str) -> None:
    path = inventory(f"targets:\n  - address: 10.0.0.5\n    {key}: hunter2\n")
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    assert f"{path}:3:" in str(info.value) and "hunter2" not in str(info.value)
    assert "identity_file" in str(info.value)


def test_duplicate_names_are_refused(inventory: Callable[[str], Path]) -> None:
    path = inventory("targets:\n  - address: 10.0.0.5\n  - address: 10.0.0.5\n")
    with pytest.raises(ConfigError, match=r":3: .*listed twice \(first at line 2\)"):
        load_inventory(path)


def test_yaml_syntax_and_shape(inventory: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError, match=r":3: YAML syntax error"):
        load_inventory(inventory("targets:\n  - address: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_inventory(inventory("- just a list\n"))


def test_cli_refuses_a_bad_inventory_before_connecting(inventory: Callable[[str], Path],
                                                       run_cli: Callable[..., tuple[int, Any, str, str]]) -> None:
    path = inventory("targets:\n  - address: 10.0.0.5\n    pasword: x\n")
    rc, doc, _, err = run_cli("scan", "--inventory", str(path))
    assert rc == 2 and doc is None
    assert f"{path}:3:" in err


def test_cli_refuses_a_password_in_a_target_uri(run_cli: Callable[..., tuple[int, Any, str, str]]) -> None:
    rc, doc, out, err = run_cli("scan", "--target", "ssh://audit:s3cret-pw@10.0.0.5:22")
    assert rc == 2 and doc is None
    assert "s3cret-pw" not in out + err and "password" in err


def test_the_inventory_wins_over_the_command_line(inventory: Callable[[str], Path]) -> None:
    path = inventory("defaults: {user: audit}\ntargets:\n  - {address: 10.0.0.5, sudo: false}\n"
                     "  - {address: 10.0.0.6}\n")
    said_no, silent = plan((), str(path), RemoteSettings(sudo=True, identity_file="/k"))
    assert said_no.options["sudo"] is False and silent.options["sudo"] is True  # type: ignore[union-attr]
    assert silent.options["identity_file"] == "/k"  # type: ignore[union-attr]
