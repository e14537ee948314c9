"""The one exception desktop settings readers raise: a code and its parts, worded by the checks (_facts.yaml)."""

from __future__ import annotations

from typing import Any


class SettingsProblem(Exception):
    """A settings file that the desktop would refuse or misread: a code and its parts, worded by the checks."""

    def __init__(self, code: str, **parts: Any) -> None:
        super().__init__(code)
        self.problem = {"code": code, **parts}
