"""AC-02 on real folders of this machine (local target, real modes, a real unprivileged scan) and AC-03 on
third-party sshd_config files from ../shared/corpus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import finding, require, require_corpus, require_root, require_tool

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
MakeRootfs = Callable[[dict[str, str | bytes]], Path]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Path]:
    """A folder under /tmp whose ancestors others can search (pytest's own temp root is private)."""
    base = Path(tempfile.mkdtemp(prefix="mamoru-ac02-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base)


def scan_local(run_cli: Run, tmp_path: Path, check: str, data_paths: list[str]) -> dict[str, Any]:
    pol = tmp_path / "policy.yaml"
    pol.write_text(json.dumps({"data_paths": data_paths}))
    _, doc, _, _ = run_cli("scan", "--check", check, "--policy", str(pol), "--quiet", "--lang", "en")
    assert doc is not None
    return finding(doc, check)


def make_tree(base: Path, spec: dict[str, int]) -> None:
    """{relative path: mode}; a trailing '/' makes a folder."""
    for rel, _ in sorted(spec.items()):
        p = base / rel.rstrip("/")
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("山田太郎, 東京都千代田区\n")
    for rel, mode in sorted(spec.items(), key=lambda kv: -kv[0].count("/")):
        os.chmod(base / rel.rstrip("/"), mode)


def test_ac02_closed_folder_passes(run_cli: Run, tmp_path: Path, world: Path) -> None:
    # 0750 folder: the 0644 files below are out of reach for others, as the kernel decides.
    make_tree(world, {"customers/": 0o750, "customers/contracts/": 0o755, "customers/contracts/a.csv": 0o644,
                      "customers/b.csv": 0o640})
    f = scan_local(run_cli, tmp_path, "AC-02", [str(world / "customers")])
    assert f["status"] == "pass", f
    ev = f["evidence"][str(world / "customers")]
    assert ev["entries"] == 4 and ev["counts"] == {"world_readable": 0, "world_writable": 0, "world_listable": 0}


def test_ac02_open_files_fail(run_cli: Run, tmp_path: Path, world: Path) -> None:
    make_tree(world, {"tenants/": 0o755, "tenants/list.xlsx": 0o644, "tenants/scans/": 0o1777,
                      "tenants/private/": 0o700, "tenants/private/x.pdf": 0o666})
    f = scan_local(run_cli, tmp_path, "AC-02", [str(world / "tenants"), str(world / "absent")])
    assert f["status"] == "fail", f
    ev = f["evidence"][str(world / "tenants")]
    assert ev["world_readable"] == [f"{world}/tenants/list.xlsx (0644)"]
    assert ev["world_writable"] == [f"{world}/tenants/scans (1777)"]  # sticky, but others can still plant files
    assert f"{world}/tenants/ (0755)" in ev["world_listable"]
    assert f["evidence"][str(world / "absent")] == {"exists": False}


def test_ac02_closed_ancestor_hides_everything(run_cli: Run, tmp_path: Path, world: Path) -> None:
    make_tree(world, {"vault/": 0o700, "vault/data/": 0o777, "vault/data/x.csv": 0o666})
    f = scan_local(run_cli, tmp_path, "AC-02", [str(world / "vault/data")])
    assert f["status"] == "pass", f
    assert f["evidence"][str(world / "vault/data")]["closed_above"] == [str(world / "vault")]


def test_ac02_symlinks_and_depth(run_cli: Run, tmp_path: Path, world: Path) -> None:
    make_tree(world, {"d/": 0o750})
    (world / "d/loop").symlink_to(world / "d")  # followed, the walk would never end
    (world / "d/etc").symlink_to("/etc")  # a link out of the folder is not its data
    f = scan_local(run_cli, tmp_path, "AC-02", [str(world / "d")])
    assert f["status"] == "pass", f
    assert sorted(f["evidence"][str(world / "d")]["links_not_followed"]) == [f"{world}/d/etc", f"{world}/d/loop"]
    deep = world / "deep"
    deep.joinpath(*["n"] * 40).mkdir(parents=True)
    f = scan_local(run_cli, tmp_path, "AC-02", [str(deep)])
    assert f["status"] == "fail"  # 0755 folders (umask 022) are listable: a real finding beats "truncated"
    for p in [deep, *deep.rglob("*")]:
        os.chmod(p, 0o750)
    f = scan_local(run_cli, tmp_path, "AC-02", [str(deep)])
    assert f["status"] == "error" and "nested too deeply" in f["message"]["en"], f


def test_ac02_not_applicable(run_cli: Run, tmp_path: Path) -> None:
    f = scan_local(run_cli, tmp_path, "AC-02", [])
    assert f["status"] == "not_applicable" and "data_paths" in f["message"]["en"]
    f = scan_local(run_cli, tmp_path, "AC-02", ["/nonexistent/mamoru-data"])
    assert f["status"] == "not_applicable" and "None of" in f["message"]["en"]


def test_ac02_relative_data_path_is_refused(run_cli: Run, tmp_path: Path) -> None:
    pol = tmp_path / "bad.yaml"
    pol.write_text("data_paths: [srv/share]\n")
    rc, doc, _, err = run_cli("scan", "--check", "AC-02", "--policy", str(pol), "--quiet")
    assert rc == 2 and doc is None and "bad.yaml" in err


def test_ac02_on_an_image(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    root = make_rootfs({"/srv/share/tenants.csv": "x\n", "/etc/hostname": "fileserver\n"})
    os.chmod(root / "srv/share", 0o770)
    os.chmod(root / "srv/share/tenants.csv", 0o660)
    pol = tmp_path / "p.yaml"
    pol.write_text("data_paths: [/srv/share]\n")
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "AC-02", "--policy", str(pol), "--quiet")
    assert doc is not None and finding(doc, "AC-02")["status"] == "pass"
    os.chmod(root / "srv/share/tenants.csv", 0o664)
    os.chmod(root / "srv/share", 0o775)
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "AC-02", "--policy", str(pol), "--quiet")
    assert doc is not None and finding(doc, "AC-02")["status"] == "fail"


@pytest.mark.needs_root
def test_ac02_unprivileged_scan_cannot_look_inside(world: Path) -> None:
    """As nobody, a 0700 folder cannot be listed: unknown, so error, never pass."""
    require_root()
    require_tool("setpriv")
    mamoru = Path(sys.executable).with_name("mamoru")
    require(mamoru.exists(), f"{mamoru} missing")
    make_tree(world, {"hr/": 0o750, "hr/private/": 0o700, "hr/private/x.csv": 0o600})
    os.chmod(world / "hr", 0o751)  # nobody may enter hr/ but not list it, nor enter private/
    os.chmod(world, 0o777)
    pol = world / "policy.yaml"
    pol.write_text(json.dumps({"data_paths": [str(world / "hr/private")]}))
    os.chmod(pol, 0o644)
    out = world / "report.json"
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(mamoru), "scan",
                           "--check", "AC-02", "--policy", str(pol), "--quiet", "--lang", "en", "--output", str(out)],
                          capture_output=True, env={**os.environ, "HOME": str(world)})
    assert out.exists(), proc.stderr.decode()[-2000:]
    f = finding(json.loads(out.read_text()), "AC-02")
    assert f["status"] == "error" and "run as root" in f["message"]["en"], f


def test_ac02_bundle_judged_with_other_paths_is_error(run_cli: Run, tmp_path: Path) -> None:
    """Facts collected for some paths cannot answer for other paths."""
    from agent.config.policy import load_policy
    from agent.registry import checks
    from agent.runner import collect_target, evaluate_target
    from collectors.permissions import DATA_COLLECTOR

    pol = tmp_path / "a.yaml"
    pol.write_text("data_paths: [/srv/a]\n")
    tf = collect_target("local", [DATA_COLLECTOR], policy=load_policy(pol))
    pol.write_text("data_paths: [/srv/a, /srv/b]\n")
    [f] = evaluate_target(tf, [checks()["AC-02"]], load_policy(pol))
    assert f.status == "error" and "/srv/b" in f.message["en"]


# --- AC-03 --------------------------------------------------------------------------------------------

def sshd_image(make_rootfs: MakeRootfs, config: str) -> Path:
    return make_rootfs({"/etc/ssh/sshd_config": config, "/usr/sbin/sshd": b""})


def judge_image(run_cli: Run, root: Path) -> dict[str, Any]:
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "AC-03", "--quiet", "--lang", "en")
    assert doc is not None
    return finding(doc, "AC-03")


def test_ac03_corpus(run_cli: Run, make_rootfs: MakeRootfs) -> None:
    open_cfg = require_corpus("host-config", "Born2beroot__sshd_config").read_text()
    f = judge_image(run_cli, sshd_image(make_rootfs, open_cfg))
    assert f["status"] == "fail" and f["evidence"]["/etc/ssh/sshd_config"]["allowusers"] == []
    limited = require_corpus("host-config", "GrapheneOS-infrastructure__sshd_config").read_text()
    f = judge_image(run_cli, sshd_image(make_rootfs, limited))
    assert f["status"] == "pass", f
    assert f["evidence"]["/etc/ssh/sshd_config"]["allowusers"] == ["{{ssh_users}}"]  # a template, taken literally


@pytest.mark.parametrize(("config", "status"), [
    ("AllowGroups ssh-users\n", "pass"),
    ("AllowUsers alice@192.0.2.0/24 bob\n", "pass"),
    ("AllowUsers *\n", "fail"),
    ("AllowUsers *@10.0.0.*\n", "fail"),
    ("DenyUsers guest\n", "fail"),
    ("PermitRootLogin no\nMatch Address 10.0.0.0/8\n  AllowUsers alice\n", "fail"),  # not global
    ("AllowUsers alice\nAllowUsrs bob\n", "error"),
])
def test_ac03_settings(run_cli: Run, make_rootfs: MakeRootfs, config: str, status: str) -> None:
    assert judge_image(run_cli, sshd_image(make_rootfs, config))["status"] == status


def test_ac03_no_sshd(run_cli: Run, make_rootfs: MakeRootfs) -> None:
    assert judge_image(run_cli, make_rootfs({"/etc/hostname": "x\n"}))["status"] == "not_applicable"
