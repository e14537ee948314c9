"""The dashboard's ingest: real signed reports in, refusals with reasons, the chain, dedup, bytes as received."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from dashboard import storage
from dashboard.ingest import IngestResult, Refused, ingest
from dashboard.models import (
    Chain,
    Finding,
    Observation,
    Organisation,
    SignatureStatus,
)
from tests.dashboard_reports import Made, Signer, scanned_report

pytestmark = pytest.mark.django_db


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def org(signer: Signer) -> Organisation:
    return Organisation.objects.create(slug="a", name="A 不動産", allowed_signers=signer.allowed)


def put(org: Organisation, made: Made, **kw: Any) -> IngestResult:
    return ingest(org, made.data, made.sig, made.sha256, **kw)


def refused(org: Organisation, data: bytes, sig: bytes | None, sha: str | None) -> Refused:
    with pytest.raises(Refused) as info:
        ingest(org, data, sig, sha)
    return info.value


# --- a real scan of this machine --------------------------------------------------------------------------

def test_real_signed_scan_is_stored_as_received() -> None:
    data, sig, line = scanned_report()
    org = Organisation.objects.create(slug="real", name="real", allowed_signers=line + "\n")
    result = ingest(org, data, sig, hashlib.sha256(data).hexdigest())
    assert result.created
    report = result.report
    assert report.signature_status == SignatureStatus.VERIFIED
    assert report.chain == Chain.FIRST
    assert storage.report_bytes(report) == data
    assert bytes(report.signature) == sig
    assert Observation.objects.filter(report=report).count() == 2  # local + organisation
    assert Finding.objects.filter(finding_set__organisation=org).count() > 40
