"""Administration: an organisation's settings, API tokens, members and audit log; passwords; new organisations.

Every organisation page here starts with ``organisation_for(request, slug, admin=True)``: a viewer, or a user
of another organisation, gets the same 404 as for an organisation that does not exist. Every change is a POST
(CSRF-checked by Django's middleware) and is written to the audit log (dashboard.audit.record) with no secret
in it: a token appears there by its prefix only, and its secret is shown once, on the page that answers its
creation, and never stored.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import PasswordChangeDoneView, PasswordChangeView
from django.core.paginator import Paginator
from django.db import transaction
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard.access import organisation_for
from dashboard.admin_forms import AddMemberForm, NewOrganisationForm, OrganisationSettingsForm, RoleForm, TokenForm
from dashboard.audit import record
from dashboard.models import ApiToken, AuditEntry, Membership, Organisation, Role
from dashboard.security import clear_password_change, must_change_password
from dashboard.tokens import create_token
from reports.signing.allowed_signers import parse as parse_allowed_signers

AUDIT_PAGE_SIZE = 100


def _lang(request: HttpRequest) -> str:
    return str(getattr(request, "LANGUAGE_CODE", "ja"))


def _no_store(response: HttpResponse) -> HttpResponse:
    """Administration pages show tokens' prefixes, members and signers: keep them out of shared caches."""
    response["Cache-Control"] = "no-store"
    return response


def _page(request: HttpRequest, template: str, org: Organisation | None, section: str, status: int = 200,
          **context: Any) -> HttpResponse:
    return _no_store(render(request, f"dashboard/{template}", {"org": org, "section": section, **context},
                            status=status))


def _signers_summary(text: str) -> dict[str, Any]:
    """What the audit log keeps of an allowed_signers text: how many signers and its hash (not the keys)."""
    signers = parse_allowed_signers(text, "allowed_signers")
    return {"signers": len(signers), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


# --- settings ----------------------------------------------------------------------------------------------

@login_required
def settings_page(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug, admin=True)
    if request.method == "POST":
        form = OrganisationSettingsForm(request.POST, instance=org, lang=_lang(request))
        if form.is_valid():
            changed = {name: form.cleaned_data[name] for name in form.changed_data}
            form.save()
            if "allowed_signers" in changed:
                changed["allowed_signers"] = _signers_summary(changed["allowed_signers"])
            if changed:
                record(request, "settings.change", org, changed=changed)
            return redirect(f"{request.path}?saved=1")
        return _page(request, "admin_settings.html", org, "settings", status=400, form=form)
    form = OrganisationSettingsForm(instance=org, lang=_lang(request))
    return _page(request, "admin_settings.html", org, "settings", form=form, saved=request.GET.get("saved") == "1")


# --- API tokens ----------------------------------------------------------------------------------------------

def _tokens_page(request: HttpRequest, org: Organisation, form: Form, status: int = 200) -> HttpResponse:
    tokens = ApiToken.objects.filter(organisation=org).select_related("created_by").order_by("revoked", "-created")
    return _page(request, "admin_tokens.html", org, "tokens", status=status, form=form, tokens=tokens)


@login_required
def tokens_page(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug, admin=True)
    if request.method != "POST":
        return _tokens_page(request, org, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, org, form, status=400)
    assert request.user.is_authenticated
    secret, token = create_token(org, form.cleaned_data["name"], created_by=request.user)
    record(request, "token.create", org, name=token.name, prefix=token.prefix)
    # The answer to the POST itself shows the secret: no redirect (a GET could be reloaded or cached), no-store.
    return _page(request, "admin_token_created.html", org, "tokens", token=token, secret=secret)


@login_required
@require_POST
def token_revoke(request: HttpRequest, slug: str, token_id: int) -> HttpResponse:
    org = organisation_for(request, slug, admin=True)
    token = get_object_or_404(ApiToken, pk=token_id, organisation=org, revoked__isnull=True)
    token.revoked = timezone.now()
    token.save(update_fields=["revoked"])
    record(request, "token.revoke", org, name=token.name, prefix=token.prefix)
    return redirect("dashboard:admin_tokens", slug=org.slug)


# --- members -------------------------------------------------------------------------------------------------

def _members_page(request: HttpRequest, org: Organisation, form: Form, status: int = 200,
                  error: str | None = None) -> HttpResponse:
    members = Membership.objects.filter(organisation=org).select_related("user").order_by("user__username")
    return _page(request, "admin_members.html", org, "members", status=status, form=form, members=members,
                 roles=Role.choices, error=error)


@login_required
def members_page(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug, admin=True)
    if request.method != "POST":
        return _members_page(request, org, AddMemberForm(lang=_lang(request)))
    form = AddMemberForm(request.POST, lang=_lang(request))
    if not form.is_valid():
        return _members_page(request, org, form, status=400)
    user, role = form.cleaned_data["username"], form.cleaned_data["role"]
    if Membership.objects.filter(organisation=org, user=user).exists():
        return _members_page(request, org, form, status=409, error="admin_already_member")
    Membership.objects.create(organisation=org, user=user, role=role)
    record(request, "member.add", org, user=user.username, role=role)
    return redirect("dashboard:admin_members", slug=org.slug)


@login_required
@require_POST
def member_change(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    """Change a member's role (``action=role``) or remove them (``action=remove``); never the last admin."""
    org = organisation_for(request, slug, admin=True)
    action = request.POST.get("action")
    form = RoleForm(request.POST)
    if action not in ("role", "remove") or (action == "role" and not form.is_valid()):
        return _members_page(request, org, AddMemberForm(lang=_lang(request)), status=400, error="admin_bad_request")
    with transaction.atomic():
        # Lock the organisation's admin rows, so two admins demoting each other at once cannot both succeed.
        admins = list(Membership.objects.select_for_update().filter(organisation=org, role=Role.ADMIN)
                      .values_list("pk", flat=True))
        member = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id, organisation=org)
        new_role = form.cleaned_data["role"] if action == "role" else None
        loses_admin = member.role == Role.ADMIN and new_role != Role.ADMIN
        if loses_admin and admins == [member.pk]:
            return _members_page(request, org, AddMemberForm(lang=_lang(request)), status=409,
                                 error="admin_last_admin")
        if action == "remove":
            member.delete()
            record(request, "member.remove", org, user=member.user.username, role=member.role)
        elif new_role != member.role:
            record(request, "member.role", org, user=member.user.username, old=member.role, new=new_role)
            member.role = str(new_role)
            member.save(update_fields=["role"])
    if member.user_id == request.user.pk and loses_admin:
        return redirect("dashboard:home")  # no longer allowed on this page
    return redirect("dashboard:admin_members", slug=org.slug)


# --- audit log -----------------------------------------------------------------------------------------------

@login_required
def audit_page(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug, admin=True)
    entries = AuditEntry.objects.filter(organisation=org).select_related("actor").order_by("-at", "-pk")
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return _page(request, "admin_audit.html", org, "audit", page=page)


# --- passwords -----------------------------------------------------------------------------------------------

class PasswordChange(PasswordChangeView):
    """Django's password change (old password, new one twice, the validators), plus: the one-time password
    flag is cleared and the change is in the audit log."""

    template_name = "dashboard/password_change.html"
    success_url = reverse_lazy("dashboard:password_change_done")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["must_change"] = must_change_password(self.request.user)
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        clear_password_change(self.request.user)
        record(self.request, "password.change")
        return response


# --- the site's superusers: organisations --------------------------------------------------------------------

@login_required
def organisations_page(request: HttpRequest) -> HttpResponse:
    if not getattr(request.user, "is_superuser", False):
        raise Http404
    form = NewOrganisationForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            org = form.save()
            record(request, "organisation.create", org, slug=org.slug, name=org.name)
            return redirect("dashboard:admin_settings", slug=org.slug)
        status = 400
    else:
        status = 200
    organisations = Organisation.objects.order_by("slug")
    return _page(request, "site_organisations.html", None, "organisations", status=status, form=form,
                 organisations=organisations)


urlpatterns = [
    path("o/<slug:slug>/admin/", settings_page, name="admin_settings"),
    path("o/<slug:slug>/admin/tokens/", tokens_page, name="admin_tokens"),
    path("o/<slug:slug>/admin/tokens/<int:token_id>/revoke/", token_revoke, name="admin_token_revoke"),
    path("o/<slug:slug>/admin/members/", members_page, name="admin_members"),
    path("o/<slug:slug>/admin/members/<int:membership_id>/", member_change, name="admin_member"),
    path("o/<slug:slug>/admin/audit/", audit_page, name="admin_audit"),
    path("password/", PasswordChange.as_view(), name="password_change"),
    path("password/done/", PasswordChangeDoneView.as_view(template_name="dashboard/password_change_done.html"),
         name="password_change_done"),
    path("site/organisations/", organisations_page, name="site_organisations"),
]
