"""The dashboard's security properties, tested through its real URLs: login, roles, isolation between
organisations (pages and API), CSRF, headers, login rate limiting, secrets kept out of answers and logs, and the
administration pages that enforce them (tokens shown once, never the last admin, the audit log).

The isolation test does not list URLs by hand: it walks every pattern of ``dashboard.urls`` that takes an
organisation slug, fills each parameter with organisation B's real objects, and requests it as A's admin — so a
page added later is covered without editing this file.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from dashboard.ingest import ingest
from dashboard.models import ApiToken, AuditEntry, Host, Membership, Organisation, Report, Role
from dashboard.tokens import create_token
from tests.dashboard_reports import SeriesMaker, Signer

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def walk(patterns: list[Any], prefix: str = "") -> list[tuple[str, URLPattern]]:
    """(full route, pattern) for every URL the dashboard serves."""
    out: list[tuple[str, URLPattern]] = []
    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            out += walk(p.url_patterns, route)
        else:
            out.append((route, p))
    return out


def all_routes() -> list[tuple[str, URLPattern]]:
    return walk(get_resolver().url_patterns)


class World:
    """Two organisations with a user, a token, a host and a report each."""

    def __init__(self, django_user_model: Any) -> None:
        self.signer = Signer()
        self.a = Organisation.objects.create(slug="org-a", name="A-Fudosan", allowed_signers=self.signer.allowed)
        self.b = Organisation.objects.create(slug="org-b", name="B-Secret-Client", allowed_signers=self.signer.allowed)
        users = django_user_model.objects
        self.alice = users.create_user(username="alice", password=PASSWORD)  # admin of A
        self.bob = users.create_user(username="bob", password=PASSWORD)  # admin of B
        self.vera = users.create_user(username="vera", password=PASSWORD)  # viewer of A
        self.m_alice = Membership.objects.create(user=self.alice, organisation=self.a, role=Role.ADMIN)
        self.m_bob = Membership.objects.create(user=self.bob, organisation=self.b, role=Role.ADMIN)
        Membership.objects.create(user=self.vera, organisation=self.a, role=Role.VIEWER)
        self.token_a, self.tok_a = create_token(self.a, "site-a")
        self.token_b, self.tok_b = create_token(self.b, "site-b")
        self.made_a = SeriesMaker(self.signer, operator_host="pc-of-a").make(0)
        self.made_b = SeriesMaker(self.signer, operator_host="pc-of-b-secret").make(0)
        self.report_a = ingest(self.a, self.made_a.data, self.made_a.sig, self.made_a.sha256, source="api").report
        self.report_b = ingest(self.b, self.made_b.data, self.made_b.sig, self.made_b.sha256, source="api").report
        self.host_b = Host.objects.filter(organisation=self.b).first()
        assert self.host_b is not None
        self.check_b = "WL-01"

    def kwargs_for(self, pattern: URLPattern, org: str = "b") -> dict[str, Any]:
        """Every URL parameter filled with organisation B's (or A's) real objects."""
        b = org == "b"
        values = {"slug": (self.b if b else self.a).slug,
                  "host_id": (self.host_b if b else Host.objects.filter(organisation=self.a).first()).pk,  # type: ignore[union-attr]
                  "sha256": (self.report_b if b else self.report_a).sha256,
                  "check_id": self.check_b,
                  "token_id": (self.tok_b if b else self.tok_a).pk,
                  "membership_id": (self.m_bob if b else self.m_alice).pk}
        names = list(pattern.pattern.converters)
        missing = [n for n in names if n not in values]
        assert not missing, f"{pattern.pattern}: add a value for {missing} to World.kwargs_for"
        return {n: values[n] for n in names}


@pytest.fixture
def world(django_user_model: Any) -> World:
    return World(django_user_model)


def org_routes() -> list[tuple[str, URLPattern]]:
    return [(r, p) for r, p in all_routes() if "slug" in p.pattern.converters]


def url_of(pattern: URLPattern, kwargs: dict[str, Any]) -> str:
    from django.urls import reverse

    return reverse(f"dashboard:{pattern.name}", kwargs=kwargs)


# --- login everywhere but /login/ and the API ----------------------------------------------------------------

def test_every_page_but_login_and_the_api_needs_login(world: World) -> None:
    client = Client()
    checked = 0
    for route, pattern in all_routes():
        if route.startswith("api/") or pattern.name in ("login", "set_language") or "static" in route:
            continue
        url = url_of(pattern, world.kwargs_for(pattern) if pattern.pattern.converters else {})
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (302, 405), (method, url, response.status_code)
            if response.status_code == 302:
                assert response["Location"].startswith("/login/"), (url, response["Location"])
            assert b"B-Secret" not in response.content
        checked += 1
    assert checked >= 15  # pages of every area: overview, hosts, upload, reports, admin…


# --- isolation between organisations -------------------------------------------------------------------------

def test_a_user_of_a_never_reaches_b_by_any_url(world: World) -> None:
    client = Client()
    client.force_login(world.alice)
    routes = org_routes()
    assert len(routes) >= 15
    for _route, pattern in routes:
        url = url_of(pattern, world.kwargs_for(pattern, "b"))
        for method in ("get", "post"):
            response = getattr(client, method)(url, {"action": "remove", "role": "viewer", "name": "x",
                                                     "username": "alice"})
            # 404 (or 405 before any lookup, for a POST-only URL): never B's data, never a change in B.
            assert response.status_code in (404, 405), (method, url, response.status_code)
            body = response.content if not hasattr(response, "streaming_content") else b"".join(
                response.streaming_content)
            assert b"B-Secret" not in body and b"pc-of-b-secret" not in body, url
    # Nothing in B changed: the token lives, bob is still its admin, alice did not join.
    assert ApiToken.objects.get(pk=world.tok_b.pk).revoked is None
    assert Membership.objects.get(pk=world.m_bob.pk).role == Role.ADMIN
    assert not Membership.objects.filter(organisation=world.b, user=world.alice).exists()


def test_the_same_urls_answer_for_a_own_organisation(world: World) -> None:
    """The isolation test above is only meaningful if the same URLs work for A with A's objects."""
    client = Client()
    client.force_login(world.alice)
    ok = 0
    for _route, pattern in org_routes():
        url = url_of(pattern, world.kwargs_for(pattern, "a"))
        response = client.get(url)
        assert response.status_code in (200, 405), (url, response.status_code)
        ok += response.status_code == 200
    assert ok >= 12


def test_a_token_of_a_cannot_read_or_write_b(world: World, client: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    made = SeriesMaker(world.signer, operator_host="another").make(0)
    body = {"sha256": made.sha256, "report": SimpleUploadedFile("report.json", made.data),
            "signature": SimpleUploadedFile("report.json.sig", made.sig)}
    answer = client.post("/api/v1/reports", body, HTTP_AUTHORIZATION=f"Bearer {world.token_a}")
    assert answer.status_code == 201
    assert Report.objects.get(sha256=made.sha256).organisation == world.a  # stored in A, whatever it claims
    # The token does not log anyone in: B's pages and report downloads stay closed to it.
    for url in (f"/o/{world.b.slug}/", f"/o/{world.b.slug}/reports/{world.report_b.sha256}/report.json"):
        response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {world.token_a}")
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    # A revoked token is refused.
    world.tok_a.revoked = dt.datetime.now(dt.UTC)
    world.tok_a.save()
    made2 = SeriesMaker(world.signer, operator_host="third").make(0)
    body = {"sha256": made2.sha256, "report": SimpleUploadedFile("report.json", made2.data),
            "signature": SimpleUploadedFile("report.json.sig", made2.sig)}
    assert client.post("/api/v1/reports", body, HTTP_AUTHORIZATION=f"Bearer {world.token_a}").status_code == 401


# --- roles -----------------------------------------------------------------------------------------------------

def test_a_viewer_cannot_reach_admin_pages_or_upload(world: World) -> None:
    client = Client()
    client.force_login(world.vera)
    assert client.get(f"/o/{world.a.slug}/").status_code == 200
    for name in ("admin_settings", "admin_tokens", "admin_members", "admin_audit", "upload"):
        url = f"/o/{world.a.slug}/" + {"admin_settings": "admin/", "admin_tokens": "admin/tokens/",
                                       "admin_members": "admin/members/", "admin_audit": "admin/audit/",
                                       "upload": "upload/"}[name]
        assert client.get(url).status_code in (403, 404), url
        assert client.post(url, {"name": "x", "username": "vera", "role": "admin"}).status_code in (403, 404), url
    assert client.get("/site/organisations/").status_code == 404
    assert not ApiToken.objects.filter(name="x").exists()
    assert Membership.objects.get(user=world.vera).role == Role.VIEWER


# --- CSRF and headers ------------------------------------------------------------------------------------------

def test_csrf_is_enforced_on_every_form(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.alice)
    for url, data in ((f"/o/{world.a.slug}/admin/tokens/", {"name": "csrf"}),
                      (f"/o/{world.a.slug}/admin/members/", {"username": "vera", "role": "admin"}),
                      (f"/o/{world.a.slug}/admin/", {"stale_after_hours": "1", "max_report_bytes": "70000"}),
                      (f"/o/{world.a.slug}/admin/tokens/{world.tok_a.pk}/revoke/", {}),
                      ("/password/", {"old_password": PASSWORD, "new_password1": "x" * 20, "new_password2": "x" * 20}),
                      ("/logout/", {})):
        assert client.post(url, data).status_code == 403, url
    assert not ApiToken.objects.filter(name="csrf").exists()
    assert ApiToken.objects.get(pk=world.tok_a.pk).revoked is None
    # With the token from the form it works (the check is real, not a blanket refusal).
    page = client.get(f"/o/{world.a.slug}/admin/tokens/")
    token = page.content.decode().split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    assert client.post(f"/o/{world.a.slug}/admin/tokens/", {"name": "ok", "csrfmiddlewaretoken": token}
                       ).status_code == 200


def test_security_headers_on_every_page(world: World) -> None:
    client = Client()
    client.force_login(world.alice)
    for _route, pattern in all_routes():
        if pattern.name in ("api_reports", "logout", "set_language"):
            continue
        url = url_of(pattern, world.kwargs_for(pattern, "a") if pattern.pattern.converters else {})
        r = client.get(url)
        csp = r["Content-Security-Policy"]
        assert "script-src 'none'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, url
        assert r["X-Frame-Options"] == "DENY" and r["X-Content-Type-Options"] == "nosniff", url
        assert r["Referrer-Policy"] == "same-origin", url
        if r.get("Content-Type", "").startswith("text/html"):
            assert b"<script" not in r.content, url


# --- login rate limiting ---------------------------------------------------------------------------------------

def test_five_wrong_passwords_lock_even_the_right_one_until_the_cool_off(world: World) -> None:
    from axes.models import AccessAttempt

    client = Client()
    for _ in range(5):
        assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code in (200, 429)
    locked = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another user from the same address is not locked (lockout is per user name and address).
    assert client.post("/login/", {"username": "bob", "password": PASSWORD}).status_code == 302
    client.logout()
    # After the cool-off (15 minutes: the attempts' time moved back), the right password works again.
    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and "_auth_user_id" in client.session


# --- administration: secrets shown once, never kept ------------------------------------------------------------

def test_a_new_token_is_shown_once_and_never_in_the_audit_log_or_logs(world: World,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    client = Client()
    client.force_login(world.alice)
    caplog.set_level(logging.DEBUG)
    created = client.post(f"/o/{world.a.slug}/admin/tokens/", {"name": "branch-office"})
    assert created.status_code == 200 and created["Cache-Control"] == "no-store"
    secret = created.content.decode().split('id="token-secret">', 1)[1].split("<", 1)[0]
    assert secret.startswith("mmr_") and len(secret) > 40
    token = ApiToken.objects.get(name="branch-office")
    assert secret.startswith(token.prefix) and secret not in (token.digest, token.prefix)
    listing = client.get(f"/o/{world.a.slug}/admin/tokens/").content.decode()
    assert "branch-office" in listing and token.prefix in listing and secret not in listing
    entry = AuditEntry.objects.get(action="token.create")
    assert entry.detail == {"name": "branch-office", "prefix": token.prefix} and entry.actor == world.alice
    assert secret not in str(list(AuditEntry.objects.values())) and secret not in caplog.text
    assert secret not in client.get(f"/o/{world.a.slug}/admin/audit/").content.decode()
    # It works once made, and revoking it is audited and stops it.
    assert client.post(f"/o/{world.a.slug}/admin/tokens/{token.pk}/revoke/").status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked is not None
    assert AuditEntry.objects.filter(action="token.revoke", detail__prefix=token.prefix).exists()


def test_passwords_never_appear_in_answers(world: World) -> None:
    client = Client()
    r = client.post("/login/", {"username": "alice", "password": "wrong-but-secret-pw"})
    assert b"wrong-but-secret-pw" not in r.content
    client.force_login(world.alice)
    r = client.post("/password/", {"old_password": "not-it-secret", "new_password1": "short",
                                   "new_password2": "short"})
    assert r.status_code == 200 and b"not-it-secret" not in r.content


# --- administration: members, settings, audit --------------------------------------------------------------------

def test_members_add_change_and_the_last_admin_stays(world: World) -> None:
    client = Client()
    client.force_login(world.alice)
    base = f"/o/{world.a.slug}/admin/members/"
    assert client.post(base, {"username": "bob", "role": "viewer"}).status_code == 302
    m_bob = Membership.objects.get(organisation=world.a, user=world.bob)
    assert client.post(base, {"username": "nobody-such", "role": "viewer"}).status_code == 400
    assert client.post(base, {"username": "bob", "role": "admin"}).status_code == 409
    # Alice is the only admin: she can neither remove nor demote herself.
    for data in ({"action": "remove"}, {"action": "role", "role": "viewer"}):
        r = client.post(f"{base}{world.m_alice.pk}/", data)
        assert r.status_code == 409 and b'id="members-error"' in r.content
    assert Membership.objects.get(pk=world.m_alice.pk).role == Role.ADMIN
    # With bob made admin, alice may step down.
    assert client.post(f"{base}{m_bob.pk}/", {"action": "role", "role": "admin"}).status_code == 302
    assert client.post(f"{base}{world.m_alice.pk}/", {"action": "role", "role": "viewer"}).status_code == 302
    assert client.get(base).status_code == 404  # no longer an admin
    actions = list(AuditEntry.objects.filter(organisation=world.a).order_by("pk").values_list("action", flat=True))
    assert actions == ["member.add", "member.role", "member.role"]


def test_settings_refuse_a_bad_allowed_signers_line_with_its_number(world: World) -> None:
    client = Client()
    client.force_login(world.alice)
    url = f"/o/{world.a.slug}/admin/"
    good = world.signer.allowed
    bad = "# comment\n" + good + "someone@example.jp ssh-ed25519 AAAA-not-base64\n"
    r = client.post(url, {"allowed_signers": bad, "stale_after_hours": "24", "max_report_bytes": "1048576"})
    assert r.status_code == 400
    assert "allowed_signers:3:" in r.content.decode()
    assert Organisation.objects.get(pk=world.a.pk).stale_after_hours == 48  # nothing saved
    r = client.post(url, {"allowed_signers": good, "accept_unsigned": "on", "stale_after_hours": "24",
                          "max_report_bytes": "1048576"})
    assert r.status_code == 302
    org = Organisation.objects.get(pk=world.a.pk)
    assert (org.accept_unsigned, org.stale_after_hours, org.max_report_bytes) == (True, 24, 1048576)
    entry = AuditEntry.objects.get(action="settings.change")
    assert set(entry.detail["changed"]) == {"accept_unsigned", "stale_after_hours", "max_report_bytes"}
    assert client.get(f"/o/{world.a.slug}/admin/audit/").content.decode().count("settings.change") == 1


def test_a_one_time_password_must_be_changed_before_anything_else(world: World) -> None:
    from dashboard.security import flag_password_change

    flag_password_change(world.vera)
    client = Client()
    assert client.post("/login/", {"username": "vera", "password": PASSWORD}).status_code == 302
    r = client.get(f"/o/{world.a.slug}/")
    assert r.status_code == 302 and r["Location"] == "/password/"
    assert b'id="must-change"' in client.get("/password/").content
    new = "a new and long passphrase 42"
    r = client.post("/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new})
    assert r.status_code == 302
    assert client.get(f"/o/{world.a.slug}/").status_code == 200
    assert AuditEntry.objects.filter(action="password.change", actor=world.vera).exists()


def test_only_a_superuser_creates_organisations(world: World, django_user_model: Any) -> None:
    client = Client()
    client.force_login(world.alice)
    assert client.post("/site/organisations/", {"slug": "c", "name": "C"}).status_code == 404
    root = django_user_model.objects.create_superuser(username="root", password=PASSWORD)
    client.force_login(root)
    r = client.post("/site/organisations/", {"slug": "org-c", "name": "C 不動産"})
    assert r.status_code == 302 and r["Location"] == "/o/org-c/admin/"
    assert client.post("/site/organisations/", {"slug": "org-c", "name": "again"}).status_code == 400
    assert AuditEntry.objects.filter(action="organisation.create", organisation__slug="org-c").count() == 1
