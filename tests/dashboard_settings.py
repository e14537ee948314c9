"""Django settings for the test run: the dashboard's own, with its state in a throwaway directory.

pytest-django imports this before any test (pyproject: DJANGO_SETTINGS_MODULE), so the environment is set
here, before dashboard.settings reads it. ``MAMORU_DASHBOARD_DATABASE`` chooses the database: unset, SQLite
(in memory); tests/test_dashboard_postgresql.py reruns the dashboard's tests with a PostgreSQL URL.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("MAMORU_DASHBOARD_DATA", tempfile.mkdtemp(prefix="mamoru-dashboard-test-"))
os.environ.setdefault("MAMORU_DASHBOARD_SECRET_KEY", "test-only-" + "x" * 40)
os.environ.setdefault("MAMORU_DASHBOARD_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from dashboard.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test logins; never in production
