"""``mamoru checks list``: what mamoru can check, for people and for scripts."""

from __future__ import annotations

import json

import click

from agent.cli.common import lang_option


@click.group("checks")
def checks_group() -> None:
    """Inspect the available checks."""


@checks_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
@lang_option
def list_checks(as_json: bool, lang: str) -> None:
    """List every check with its guideline items."""
    from agent.registry import checks

    every = checks()
    if as_json:
        out = [
            {
                "id": c.id,
                "guideline": list(c.meta.guideline),
                "platforms": list(c.meta.platforms),
                "severity": c.meta.severity.value,
                "title": c.meta.title.as_dict(),
            }
            for c in every.values()
        ]
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("ID", "guideline", "severity", "platforms", "title")
    for c in every.values():
        table.add_row(c.id, ", ".join(c.meta.guideline), c.meta.severity.value, ", ".join(c.meta.platforms),
                      c.meta.title.get(lang))
    Console().print(table)
