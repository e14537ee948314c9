"""Entry point: ``main(argv) -> exit code``, with one place that turns errors into exit codes.

Exit codes: 0 nothing failed · 1 at least one finding failed · 2 usage or
config error · 3 the scan could not run (or a target could not be scanned).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from agent.cli.checks_cmd import checks_group
from agent.cli.collect_cmd import collect
from agent.cli.evaluate_cmd import evaluate
from agent.cli.keygen_cmd import keygen
from agent.cli.scan import scan
from agent.cli.schedule_cmd import schedule
from agent.cli.verify_cmd import verify
from agent.errors import MamoruError

#: Subcommands, one module each.
COMMANDS: list[click.Command] = [scan, checks_group, keygen, verify, collect, evaluate, schedule]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mamoru", prog_name="mamoru")  # looked up only for --version
def cli() -> None:
    """mamoru (守る): audit the technical safeguards of the MLIT personal-information guideline."""


for _cmd in COMMANDS:
    cli.add_command(_cmd)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = cli.main(args=args, prog_name="mamoru", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 3
    except click.ClickException as e:
        e.show()
        return 2
    except MamoruError as e:
        click.echo(f"mamoru: error: {e.diagnostics()}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 3
    except Exception as e:  # a bug: one plain line, the traceback only on request
        if os.environ.get("MAMORU_DEBUG") == "1":
            raise
        click.echo(f"mamoru: internal error: {type(e).__name__}: {e} (set MAMORU_DEBUG=1 for the traceback)",
                   err=True)
        return 3
    if isinstance(rv, int):
        return rv
    return 0


if __name__ == "__main__":
    sys.exit(main())
