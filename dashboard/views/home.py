from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from dashboard.access import organisations_of


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The organisations the user may see; straight to the overview when there is only one."""
    orgs = list(organisations_of(request.user))
    if len(orgs) == 1:
        return redirect("dashboard:overview", slug=orgs[0].slug)
    return render(request, "dashboard/home.html", {"organisations": orgs})
