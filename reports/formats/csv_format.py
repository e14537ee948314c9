"""One row per finding as CSV, for a spreadsheet: UTF-8 with a BOM so Excel on a Japanese PC reads it as UTF-8
(without one it guesses Shift_JIS and the Japanese turns to mojibake).

Cells hold host data (hostnames, file contents, evidence): a cell that starts with ``= + - @``, a tab or a
carriage return (or their full-width forms, which Japanese input turns into formulas) is made text with a
leading apostrophe, as OWASP's CSV-injection advice says, so a crafted hostname cannot become a formula.
An attested finding (an organisation question a person answered) says so in ``basis`` and carries who, when,
on what evidence and until when in its own columns. Expected value and evidence are compact JSON; a cell
longer than Excel keeps (32,767 characters) is cut and says so. Rows in the report's order; column headings in
``--lang``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from checks.base import guideline_items
from reports.formats import RenderContext
from reports.formats.texts import attestation_fields, in_lang, waiver_fields, words
from reports.model import Report

COLUMNS = ("target", "hostname", "os", "check", "guideline", "status", "severity", "title", "message",
           "remediation", "expected", "evidence", "waiver_state", "waiver_reason", "waiver_approver",
           "waiver_expires", "waiver_source", "basis", "attested_by", "attested_at", "attestation_evidence",
           "attestation_valid_until", "attestation_source")
#: What spreadsheet programs start a formula (or DDE) with; the full-width forms too.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: Excel keeps at most 32,767 characters in a cell; a longer one would be cut where Excel chooses, silently.
EXCEL_CELL_MAX = 32767


def neutralise(cell: str) -> str:
    """A cell a spreadsheet shows as text, never evaluates; lone surrogates (undecodable host bytes) escaped."""
    cell = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", cell)
    if cell.startswith(FORMULA_START):
        return "'" + cell
    return cell


def fit(cell: str, marker: str) -> str:
    """A cell Excel keeps whole: a longer one cut, saying so (the JSON report has all of it)."""
    if len(cell) <= EXCEL_CELL_MAX:
        return cell
    return cell[: EXCEL_CELL_MAX - len(marker)] + marker


def compact(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class CsvFormat:
    name = "csv"
    suffix = ".csv"
    media_type = "text/csv; charset=utf-8"

    def render(self, report: Report, ctx: RenderContext) -> bytes:
        w = words(ctx.lang)
        items = guideline_items()
        targets = {t.id: t for t in report.targets}
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow([w["columns"][c] for c in COLUMNS])
        for f in report.findings:
            t = targets.get(f.target)
            waiver = waiver_fields(f)
            att = attestation_fields(f)
            row = {
                "target": f.target,
                "hostname": t.hostname if t else "",
                "os": t.os if t else "",
                "check": f.check,
                "guideline": "\n".join(f"{g} {in_lang(items[g].as_dict(), ctx.lang)}" if g in items else g
                                       for g in f.guideline),
                "status": w["status"].get(f.status, f.status),
                "severity": w["severity"].get(f.severity, f.severity),
                "title": in_lang(f.title, ctx.lang),
                "message": in_lang(f.message, ctx.lang),
                "remediation": in_lang(f.remediation, ctx.lang),
                "expected": compact(f.expected),
                "evidence": compact(f.evidence),
                "waiver_state": w["waiver_state"].get(waiver["state"], waiver["state"]),
                "waiver_reason": waiver["reason"],
                "waiver_approver": waiver["approver"],
                "waiver_expires": waiver["expires"],
                "waiver_source": waiver["source"],
                # a person's declaration, never a machine result: its own column says which a row is
                "basis": w["basis"]["attested" if f.attestation is not None else "machine"],
                "attested_by": att["by"],
                "attested_at": att["at"],
                "attestation_evidence": att["evidence"],
                "attestation_valid_until": att["valid_until"],
                "attestation_source": att["source"],
            }
            writer.writerow([fit(neutralise(row[c]), w["cut"]) for c in COLUMNS])
        return out.getvalue().encode("utf-8-sig")


FORMAT = CsvFormat()
