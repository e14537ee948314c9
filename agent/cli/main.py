"""Entry point: ``main(argv) -> exit code``, with one place that turns errors into exit codes.

Exit codes: 0 every requested check was judged and none failed · 1 at least
one finding failed · 2 usage or config error · 3 nothing failed, but something
could not be judged (an ``error`` finding, a target that could not be scanned)
or the scan could not run. A reader that goes away (``mamoru scan | head``)
changes none of them.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn, TextIO

import click

from agent.errors import MamoruError

#: Subcommands, one module each, imported only when used (``mamoru scan`` loads nothing of ``verify``).
COMMANDS: dict[str, str] = {
    "scan": "agent.cli.scan:scan",
    "checks": "agent.cli.checks_cmd:checks_group",
    "keygen": "agent.cli.keygen_cmd:keygen",
    "verify": "agent.cli.verify_cmd:verify",
    "collect": "agent.cli.collect_cmd:collect",
    "evaluate": "agent.cli.evaluate_cmd:evaluate",
    "schedule": "agent.cli.schedule_cmd:schedule",
    "report": "agent.cli.report_cmd:report",
    "diff": "agent.cli.diff_cmd:diff",
    "answers": "agent.cli.answers_cmd:answers_group",
    "incident": "agent.cli.incident_cmd:incident_group",
    "agent": "agent.cli.agent_cmd:agent_group",
    "audit": "agent.cli.audit_cmd:audit",
    "push": "agent.cli.push_cmd:push",
    "dashboard": "agent.cli.dashboard_cmd:dashboard",
}


class LazyGroup(click.Group):
    """click's documented pattern for subcommands that load on demand (saves ~15 ms at every start)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        ref = COMMANDS.get(cmd_name)
        if ref is None:
            return None
        module, _, attr = ref.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mamoru", prog_name="mamoru")  # looked up only for --version
def cli() -> None:
    """mamoru (守る): audit the technical safeguards of the MLIT personal-information guideline."""


def requested_lang(args: Sequence[str]) -> str:
    """The ``--lang`` of a command line, else the default: errors are said in it even when parsing failed."""
    from agent.cli.common import default_lang

    for i, arg in enumerate(args):
        if arg == "--lang" and i + 1 < len(args) and args[i + 1] in ("ja", "en"):
            return args[i + 1]
        if arg in ("--lang=ja", "--lang=en"):
            return arg.split("=", 1)[1]
    return default_lang()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = cli.main(args=args, prog_name="mamoru", standalone_mode=False)
    except click.exceptions.Abort:
        _say("aborted", args)
        return 3
    except click.ClickException as e:
        e.show()
        return 2
    except MamoruError as e:
        lang = requested_lang(args)
        from reports.notes import Escaped, note

        click.echo(note("error", detail=Escaped(e.diagnostics(lang))).render(lang), err=True)
        return e.exit_code
    except KeyboardInterrupt:
        _say("interrupted", args)
        return 3
    except Exception as e:  # a bug: one plain line, the traceback only on request
        if os.environ.get("MAMORU_DEBUG") == "1":
            raise
        _say("internal_error", args, detail=f"{type(e).__name__}: {e}")
        return 3
    if isinstance(rv, int):
        return rv
    return 0


def _say(key: str, args: Sequence[str], **params: object) -> None:
    from reports.notes import note

    click.echo(note(key, **params).render(requested_lang(args)), err=True)


class ReaderMayLeave:
    """A standard stream whose reader may go away (``mamoru scan | head -1``) without changing the outcome.

    The first write to a closed pipe points the descriptor at /dev/null, and the command goes on as if it had
    been read: the report is written, signed and noted, and the exit code stays the scan's own. Left alone,
    rich answers EPIPE with ``SystemExit(1)`` (``Console.on_broken_pipe``), which read as "a finding failed",
    and ``click.echo`` raises ``BrokenPipeError``. Python ignores SIGPIPE, so EPIPE is all a writer sees.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._reader_left()
            return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_left()

    def _reader_left(self) -> None:
        """What is still buffered, and everything after, goes to /dev/null (the pattern the Python docs give
        for SIGPIPE); the stream object stays the same, so nobody holding it notices."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def run() -> NoReturn:
    """The ``mamoru`` command: ``main``, then exit at once.

    Everything is written by then (the report atomically and synced, the terminal output flushed here).
    What ``sys.exit`` would add is the interpreter's teardown of ~450 modules, measured at ~45 ms: a tenth
    of a one-host SSH scan, spent after the work is done. The cyclic garbage collector waits until the
    modules are loaded (``common.start_work``): collecting while ~450 modules load only walks objects that
    live until exit (measured: ~35 ms of CPU).
    """
    gc.disable()  # until the scan starts: see common.start_work
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None:
            setattr(sys, name, ReaderMayLeave(stream))
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that went away (mamoru … | head)
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
