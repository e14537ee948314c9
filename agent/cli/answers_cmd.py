"""``mamoru answers template``: the questionnaire for the organisation, as an answers file to fill in.

Every question goes in as YAML comments in the chosen language (with its guideline items and the evidence
that satisfies it), followed by a blank entry. The file loads as it is (every entry unanswered) and, once
filled in, through ``--answers`` on ``scan`` and ``evaluate``.
"""

from __future__ import annotations

import click

from agent.cli.common import default_lang


@click.group("answers")
def answers_group() -> None:
    """The organisation's questions and their answers file."""


@answers_group.command("template")
@click.option("--lang", type=click.Choice(["ja", "en"]), default=default_lang,
              show_default="from $MAMORU_LANG or the locale",
              help="Language of the questions and instructions (the keys and values stay as the loader reads them).")
def template(lang: str) -> None:
    """Write the questionnaire (an answers file to fill in) to standard output."""
    click.echo(render_template(lang), nl=False)


def render_template(lang: str) -> str:
    """The questionnaire in ``lang``: comments in that language, keys and values as the loader reads them."""
    from checks.base import guideline_items
    from checks.organisation import questions, texts

    words = texts()
    items = guideline_items()
    lines = [*_comment(words["template_intro"].get(lang)), "answers:"]
    for q in questions().values():
        refs = ", ".join(f"{g} {items[g].get(lang)}" for g in q.guideline)
        lines += [
            "",
            *_comment(f"{q.id}: {q.title.get(lang)}", "  "),
            *_comment(f"{words['template_guideline'].get(lang)}: {refs}", "  "),
            *_comment(f"{words['template_question'].get(lang)}: {q.question.get(lang)}", "  "),
            *_comment(f"{words['template_evidence'].get(lang)}: {q.evidence.get(lang)}", "  "),
            f"  - item: {q.id}",
            "    answer:         # yes | no | partly",
            "    evidence:",
            "    answered_by:",
            "    answered_at:    # YYYY-MM-DD",
            "    valid_until:    # YYYY-MM-DD",
        ]
    return "\n".join(lines) + "\n"


def _comment(text: str, indent: str = "") -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines()]
