"""The advanced audit policy: offline from ``SECURITY\\Policy\\PolAdtEv``, live from ``auditpol /backup`` CSV.

Both give the same normalized shape (``AuditPolicy``): per subcategory GUID its name, category, and whether
successes and failures are audited. The binary value's layout is described, with its sources, in
``collectors/data/windows_audit.yaml``; anything that does not fit a known layout exactly raises ValueError, so
a damaged or unfamiliar value becomes an error in the facts, never a setting that passes.
"""

from __future__ import annotations

import csv
import functools
import io
import struct
from typing import Any, TypedDict

from agent.targets.base import Target
from agent.targets.registry import RegistryReader, RegQuery
from collectors import data
from collectors.windows.base import Answers, WindowsCollector
from collectors.windows.live import live_part
from collectors.windows.live_sam import closed_live, part_file, registry_refusal
from collectors.windows.text import decode_text

POLADTEV = RegQuery(r"HKLM\SECURITY\Policy\PolAdtEv", ("(default)",))
_MAX_CATEGORIES = 32
_MAX_BYTES = 4096


class Setting(TypedDict):
    guid: str  # {0CCE9215-69AE-11D9-BED3-505054503030}
    name: str | None
    category: str | None
    success: bool
    failure: bool
    value: int  # 0 none, 1 success, 2 failure, 3 both


class AuditPolicy(TypedDict):
    source: str  # "PolAdtEv" or "auditpol"
    layout: str | None  # the PolAdtEv layout recognised, None for auditpol
    settings: dict[str, Setting]  # GUID -> setting
    unnamed: list[dict[str, int]]  # PolAdtEv positions whose subcategory is not established


@functools.cache
def _table() -> dict[str, Any]:
    table: dict[str, Any] = data.load("windows_audit.yaml")
    return table


def full_guid(short: str) -> str:
    return "{" + short.upper() + str(_table()["tail"]) + "}"


def _category_of(guid: str) -> str | None:
    t = _table()
    short = guid.strip("{}").split("-", 1)[0].upper()
    for cat, positions in zip(t["categories"], t["layouts"][0]["order"], strict=True):
        if short in positions:
            return str(cat)
    return None


def _name_of(guid: str) -> str | None:
    short = guid.strip("{}").split("-", 1)[0].upper()
    if not guid.upper().endswith(_table()["tail"] + "}"):
        return None
    name = _table()["subcategories"].get(short)
    return str(name) if name is not None else None


def _setting(guid: str, value: int) -> Setting:
    return Setting(guid=guid, name=_name_of(guid), category=_category_of(guid), success=bool(value & 1),
                   failure=bool(value & 2), value=value)


def parse_poladtev(raw: bytes) -> AuditPolicy:
    """The system audit policy stored in ``Policy\\PolAdtEv`` (Windows Vista and later)."""
    if not 12 <= len(raw) <= _MAX_BYTES:
        raise ValueError(f"PolAdtEv is {len(raw)} bytes")
    revision, _zero, ncat, counts_at = struct.unpack_from("<HHII", raw, 0)
    if revision != 0x0100:
        raise ValueError(f"PolAdtEv revision 0x{revision:04x} is not 0x0100 (Vista and later)")
    if not 1 <= ncat <= _MAX_CATEGORIES or counts_at + 2 * ncat != len(raw) or counts_at < 12 or counts_at % 2:
        raise ValueError(f"PolAdtEv header does not fit its {len(raw)} bytes ({ncat} categories, counts at "
                         f"0x{counts_at:x})")
    counts = list(struct.unpack_from(f"<{ncat}H", raw, counts_at))
    total = sum(counts)
    spare = (counts_at - 12) // 2 - total
    if spare not in (0, 1):
        raise ValueError(f"PolAdtEv holds {(counts_at - 12) // 2} values for {total} subcategories")
    values = list(struct.unpack_from(f"<{total}H", raw, 12))
    bad = [v for v in values if v > 3]
    if bad:
        raise ValueError(f"PolAdtEv has settings outside 0..3 ({bad[0]})")
    layout = next((lay for lay in _table()["layouts"] if lay["counts"] == counts), None)
    if layout is None:
        raise ValueError(f"PolAdtEv has an unknown layout (subcategories per category: {counts})")
    settings: dict[str, Setting] = {}
    unnamed: list[dict[str, int]] = []
    i = 0
    for cat_index, positions in enumerate(layout["order"]):
        for pos, short in enumerate(positions):
            if short is None:
                unnamed.append({"category": cat_index, "position": pos, "value": values[i]})
            else:
                s = _setting(full_guid(short), values[i])
                settings[s["guid"]] = s
            i += 1
    return AuditPolicy(source="PolAdtEv", layout=str(layout["name"]), settings=settings, unnamed=unnamed)


_INCLUSION = {"no auditing": 0, "success": 1, "failure": 2, "success and failure": 3}


def parse_auditpol_csv(raw: bytes | str) -> AuditPolicy:
    """The CSV of ``auditpol /backup /file:F`` (or ``auditpol /get /category:* /r``).

    The numeric ``Setting Value`` column (``/backup``) is used when present, because the ``Inclusion Setting``
    text is translated on a Japanese Windows; without it, only the English words are understood. Rows without a
    subcategory GUID (global options, resource SACLs) are not audit settings and are skipped.
    """
    text = decode_text(raw) if isinstance(raw, bytes) else raw
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise ValueError(f"auditpol CSV: {e}") from e
    if not rows:
        raise ValueError("auditpol CSV is empty")
    header = [h.strip().casefold() for h in rows[0]]
    try:
        guid_col = header.index("subcategory guid")
        incl_col = header.index("inclusion setting")
    except ValueError as e:
        raise ValueError("auditpol CSV has no Subcategory GUID / Inclusion Setting header") from e
    value_col = header.index("setting value") if "setting value" in header else None
    settings: dict[str, Setting] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(guid_col, incl_col):
            raise ValueError(f"auditpol CSV line {n} has {len(row)} fields")
        guid = row[guid_col].strip().upper()
        if not guid:
            continue
        if not (len(guid) == 38 and guid[0] == "{" and guid[-1] == "}"):
            raise ValueError(f"auditpol CSV line {n}: {guid[:60]!r} is not a subcategory GUID")
        cell = row[value_col].strip() if value_col is not None and len(row) > value_col else ""
        if cell:
            if not cell.isdigit() or int(cell) > 3:
                raise ValueError(f"auditpol CSV line {n}: setting value {cell[:20]!r} is not 0..3")
            value = int(cell)
        else:
            word = row[incl_col].strip().casefold()
            if word not in _INCLUSION:
                raise ValueError(f"auditpol CSV line {n}: inclusion setting {row[incl_col][:40]!r} is not understood")
            value = _INCLUSION[word]
        if guid in settings:  # e.g. a per-user row beside the system one: which one is in force is unclear
            raise ValueError(f"auditpol CSV line {n}: subcategory {guid} is listed twice")
        settings[guid] = _setting(guid, value)
    if not settings:
        raise ValueError("auditpol CSV holds no subcategory settings")
    return AuditPolicy(source="auditpol", layout=None, settings=settings, unnamed=[])


class AuditPolicyCollector(WindowsCollector):
    """The system audit policy, decoded from ``PolAdtEv`` (the answer's raw bytes never reach the facts)."""

    id = "win_audit_policy"
    registry_reads = (POLADTEV,)
    powershell_parts = ("auditpol",)

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        a = answers.one(POLADTEV)
        out: dict[str, Any] = {"key": a.key, "status": a.status, "policy": None, "error": None,
                               "policy_source": "PolAdtEv", "security_refused": None}
        if closed_live(reader, a):
            # Live, SECURITY is SYSTEM's only: ``auditpol /backup`` says the same, read by GUID and number.
            out.update(policy_source="auditpol", security_refused=registry_refusal(a))
            value, err, via = live_part(target, "auditpol")
            out["via"] = via
            if err is not None:
                out["error"] = {"kind": err["kind"], "message": f"auditpol: {err['message']}"}
                return out
            try:
                out["policy"] = dict(parse_auditpol_csv(part_file(value, "auditpol")))
            except ValueError as e:
                out["error"] = {"kind": "garbage", "message": f"auditpol /backup: {e}"}
            return out
        if a.status == "error" and a.error is not None:
            out["error"] = {"kind": a.error.kind, "message": str(a.error)}
            return out
        v = a.value("(default)")
        if a.status == "missing" or v is None:
            # LSA writes PolAdtEv at setup: without it, nothing says what is audited.
            out["error"] = {"kind": "missing", "message": f"{a.key}: no audit policy value"}
            return out
        if not isinstance(v.data, bytes):
            out["error"] = {"kind": "hive_corrupted", "message": f"{a.key}: audit policy is not binary"}
            return out
        try:
            out["policy"] = dict(parse_poladtev(v.data))
        except ValueError as e:
            out["error"] = {"kind": "hive_corrupted", "message": f"{a.key}: {e}"}
        return out


AUDIT_POLICY = AuditPolicyCollector()
