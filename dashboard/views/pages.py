"""Organisation pages (placeholder until the pages land): the overview URL exists so templates can link it."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from dashboard.access import organisation_for


@login_required
def overview(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug)
    return render(request, "dashboard/home.html", {"organisations": [org]})


urlpatterns = [path("o/<slug:slug>/", overview, name="overview")]
