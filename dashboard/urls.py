"""Every URL of the dashboard. Organisation pages live under ``/o/<slug>/``; the ingest API under ``/api/v1/``."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from django.views.i18n import set_language

from dashboard.views import home

app_name = "dashboard"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", home.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="dashboard/login.html",
                                                redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/setlang/", set_language, name="set_language"),
]

# Areas register their own patterns (dashboard/views/<area>.py: ``urlpatterns``), so that adding pages to one
# area never edits another's file.
for _area in ("api", "upload", "pages", "admin"):
    try:
        _module = __import__(f"dashboard.views.{_area}", fromlist=["urlpatterns"])
    except ModuleNotFoundError as e:
        if e.name != f"dashboard.views.{_area}":
            raise
        continue
    urlpatterns += _module.urlpatterns

urlpatterns = [path("", include((urlpatterns, "dashboard"), namespace="dashboard"))]
