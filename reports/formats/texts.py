"""What the file formats (CSV, JUnit, Markdown) share: their words in ja/en, a finding's text in a language.

The words live in ``texts.yaml`` next to this module (data, not code); a finding's own texts are already in
the report in both languages.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources
from typing import Any

from agent.config.yamlfile import safe_load
from reports.model import Finding


@functools.cache
def _all() -> dict[str, Any]:
    data: dict[str, Any] = safe_load(resources.files("reports.formats").joinpath("texts.yaml").read_bytes())
    return data


def words(lang: str) -> dict[str, Any]:
    """The labels, headings and status words of the file formats in ``lang`` (English when unknown)."""
    data = _all()
    return dict(data.get(lang) or data["en"])


def in_lang(text: dict[str, str], lang: str) -> str:
    """A report text in ``lang``; the other language rather than nothing when one is missing."""
    return text.get(lang) or text.get("en") or text.get("ja") or ""


def waiver_fields(f: Finding) -> dict[str, str]:
    """A finding's waiver as strings (empty when none): state, reason, approver, expires, source."""
    w = f.waiver or {}
    return {k: str(w.get(k, "")) for k in ("state", "reason", "approver", "expires", "source")}


def attestation_fields(f: Finding) -> dict[str, str]:
    """A finding's attestation as strings (empty when none): by, at, evidence, valid_until, source."""
    a = f.attestation or {}
    return {k: str(a.get(k, "")) for k in ("by", "at", "evidence", "valid_until", "source")}


def organisation_counts(findings: Iterable[Finding], target: str) -> dict[str, int]:
    """The organisation's questions: answered (attested now) and open (``manual``: never answered, or lapsed)."""
    mine = [f for f in findings if f.target == target]
    return {"answered": sum(1 for f in mine if f.attestation is not None),
            "open": sum(1 for f in mine if f.attestation is None and f.status == "manual")}
