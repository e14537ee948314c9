"""The dashboard starts: its pages answer, anonymous users are sent to log in, every answer carries the CSP."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_anonymous_user_is_sent_to_login(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_login_page_has_csrf_and_no_script(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/login/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "csrfmiddlewaretoken" in body
    assert "<script" not in body
    assert "script-src 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_logged_in_member_reaches_own_organisation_only(client, django_user_model) -> None:  # type: ignore[no-untyped-def]
    from dashboard.models import Membership, Organisation

    a = Organisation.objects.create(slug="a", name="A 不動産")
    Organisation.objects.create(slug="b", name="B 不動産")
    user = django_user_model.objects.create_user(username="alice", password="correct horse battery")
    Membership.objects.create(user=user, organisation=a, role="viewer")
    client.force_login(user)
    assert client.get("/o/a/").status_code == 200
    assert client.get("/o/b/").status_code == 404
    assert client.get("/o/nonexistent/").status_code == 404
