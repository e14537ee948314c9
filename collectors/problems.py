"""Problems a collector records in its facts: a code and its parts, never a sentence.

A check words a problem in the reader's language through ``checks.base.fact_phrase``, which finds the text
under ``<collector>.<code>`` in ``checks/meta/_facts.yaml``. Parts are plain values (paths, line numbers,
names); a part whose name starts with ``error`` is a raw error of a target (English, as bundles keep it),
which the check explains (``checks/meta/_errors.yaml``).
"""

from __future__ import annotations

from typing import Any


class Problem(Exception):
    """Raised inside a collector's parser; its ``problem`` goes into the facts as it is."""

    def __init__(self, code: str, **parts: Any) -> None:
        super().__init__(code)
        self.problem: dict[str, Any] = {"code": code, **parts}

    def __str__(self) -> str:  # for logs and tracebacks only: findings word the problem from its code
        parts = ", ".join(f"{k}={v!r}" for k, v in self.problem.items() if k != "code")
        return f"{self.problem['code']} ({parts})" if parts else str(self.problem["code"])


def problem(code: str, **parts: Any) -> dict[str, Any]:
    """A problem recorded without raising."""
    return {"code": code, **parts}


def unreadable(error: Exception | str) -> dict[str, Any]:
    """A file or command the target could not give: the target's own error, explained by the check."""
    return {"code": "unreadable", "error": str(error)}


def tool_failed(tool: str, exit: int, output: str) -> dict[str, Any]:
    """A command that ended in failure: its exit status and the end of what it said (``tool_exit`` when it said
    nothing). The output is the tool's own text, quoted as it is."""
    output = output.strip()[-300:]
    if not output:
        return {"code": "tool_exit", "tool": tool, "exit": exit}
    return {"code": "tool_failed", "tool": tool, "exit": exit, "output": output}
