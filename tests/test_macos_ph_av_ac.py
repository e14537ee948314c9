"""macOS PH-01, PH-02, AV-01, AV-03, AV-04 and AC-01 on replays of recorded Mac outputs (no Mac here).

The lowest boundary is faked and nothing above it: ``tests/macos_replay.py`` answers ``target.run(argv)``
and ``target.read_file(path)`` from ``tests/fixtures/macos/<case>/`` (sources in that folder's README; the
two screensaver profiles are the real files of the shared corpus, read at test time). Collectors, facts,
judges and texts are the production code.
"""

from __future__ import annotations

import pytest

from agent.targets.base import CommandResult, CommandUnavailable, FileMissing
from collectors.macos.base import managed_preferences, read_plist, run_tool
from collectors.problems import Problem
from tests.macos_replay import ReplayTarget

# -- the plumbing: the replay target and the shared readers ----------------------------------------------------


def _fdesetup(res: CommandResult) -> str:
    line = res.stdout.decode().splitlines()[0]
    if not line.startswith("FileVault is "):
        raise Problem("unknown_answer", tool="fdesetup", output=line)
    return line


def test_replay_answers_what_was_recorded_and_nothing_else() -> None:
    mac = ReplayTarget("sonoma")
    assert mac.platform().system == "darwin"
    assert mac.run(["/usr/bin/fdesetup", "status"]).stdout == b"FileVault is On.\n"
    with pytest.raises(CommandUnavailable):
        mac.run(["/usr/bin/fdesetup", "status", "-extended"])  # not recorded: as if the tool did not know it
    with pytest.raises(FileMissing):
        mac.read_file("/etc/passwd")


def test_run_tool_statuses() -> None:
    mac = ReplayTarget("sonoma")
    assert run_tool(mac, ["/usr/bin/fdesetup", "status"], _fdesetup) == {
        "source": "/usr/bin/fdesetup status", "status": "ok", "exit": 0, "value": "FileVault is On."}
    missing = run_tool(mac, ["/usr/bin/xprotect", "version"], _fdesetup)
    assert missing["status"] == "missing" and missing["problem"]["code"] == "unreadable"


def test_managed_preferences_from_the_real_profile() -> None:
    mac = ReplayTarget("sonoma")
    [computer] = managed_preferences(mac, "com.apple.screensaver")
    assert computer["status"] == "ok"
    assert computer["value"] == {"askForPassword": 0, "askForPasswordDelay": 0, "idleTime": 300,
                                 "loginWindowIdleTime": 1200,
                                 "loginWindowModulePath": "/System/Library/Screen Savers/Flurry.saver"}
    assert read_plist(mac, "/Library/Preferences/com.apple.alf.plist") == {
        "source": "/Library/Preferences/com.apple.alf.plist", "status": "missing"}
