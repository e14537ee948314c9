"""Policy files: safe loading, defaults, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.policy import load_policy, policy_schema
from agent.config.yamlfile import parse_yaml, validate
from agent.errors import ConfigError


def test_default_policy_is_valid_against_schema() -> None:
    from agent.config.policy import default_policy_bytes

    value, node = parse_yaml(default_policy_bytes(), "default_policy.yaml")
    validate(value, node, policy_schema(), "default_policy.yaml")
    p = load_policy()
    assert p.name == "mamoru-default"
    assert p["logging"]["retention_days"] == 365
    assert p["screen_lock"]["max_idle_seconds"] == 600
    assert len(p.sha256) == 64


def test_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    f = tmp_path / "office.yaml"
    f.write_text("name: office\nlogging:\n  retention_days: 400\n")
    p = load_policy(f)
    assert p.name == "office"
    assert p["logging"]["retention_days"] == 400
    assert p["logging"]["auth_logs"] == ["/var/log/auth.log", "/var/log/secure"]
    assert p["sshd"]["max_auth_tries"] == 4


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("logging:\n  retention_dayz: 3\n", 2, "unknown key 'logging.retention_dayz'"),
        ("sshd:\n  max_auth_tries: many\n", 2, "is not of type \"integer\""),
        ("name: x\nscreen_lock:\n  max_idle_seconds: 600\n  require_system_lock: perhaps\n", 4, "boolean"),
        ("frobnicate: 1\n", 1, "unknown key 'frobnicate'"),
        ("logging: [1, 2\n", 2, "YAML syntax error"),
    ],
)
def test_malformed_policy_names_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_policy(f)
    assert f"{f}:{line}:" in str(e.value)
    assert fragment in str(e.value)


def test_python_tags_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text("name: !!python/object/apply:os.system ['touch /tmp/mamoru-pwned']\n")
    with pytest.raises(ConfigError):
        load_policy(f)
    assert not Path("/tmp/mamoru-pwned").exists()


def test_non_utf8_policy(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1.yaml:1: not valid UTF-8"):
        load_policy(f)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_policy(tmp_path / "absent.yaml")
