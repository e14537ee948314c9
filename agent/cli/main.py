"""Entry point: ``main(argv) -> exit code``, with one place that turns errors into exit codes.

Exit codes: 0 nothing failed · 1 at least one finding failed · 2 usage or
config error · 3 the scan could not run (or a target could not be scanned).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from agent import __version__
from agent.cli.checks_cmd import checks_group
from agent.cli.scan import scan
from agent.errors import MamoruError

#: Subcommands, one module each. Later issues add collect, evaluate, verify, keygen.
COMMANDS: list[click.Command] = [scan, checks_group]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mamoru")
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
    if isinstance(rv, int):
        return rv
    return 0


if __name__ == "__main__":
    sys.exit(main())
