"""The dashboard's indexes as the storage budget shapes them (benchmarks/dashboard.py): on SQLite and, in the
rerun, PostgreSQL. Every index costs bytes on each daily report, so some columns have none on purpose, and the
look-ups that need one must use the index that is there."""

from __future__ import annotations

import pytest
from django.db import connection

from dashboard.models import Observation

pytestmark = pytest.mark.django_db


def _index_columns(table: str) -> list[list[str]]:
    with connection.cursor() as cur:
        found = connection.introspection.get_constraints(cur, table)
    return [c["columns"] for c in found.values() if c["index"] or c["unique"] or c["primary_key"]]


def test_observation_finding_set_has_no_index_of_its_own() -> None:
    """Observations are found by host (and time) or by primary key, never by their set: no index leads with it."""
    columns = _index_columns(Observation._meta.db_table)
    assert not [c for c in columns if c and c[0] == "finding_set_id"], columns
    assert ["host_id", "started"] in columns

