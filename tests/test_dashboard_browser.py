"""The dashboard in a real browser: Debian's chromium driven by Selenium through chromedriver, against a live
server (pytest-django ``live_server``).

A person logs in, uploads a signed report through the form, sees the overview and the host page. The report is
hostile: its host name and SSIDs carry ``<script>``, ``<img onerror>`` and ``javascript:`` payloads that would
set ``document.title`` if any of them ran. The browser must show them as text, run none of them, and report no
Content-Security-Policy violation (which would mean markup got through escaping and only the CSP stopped it).
Organisation A's user then types organisation B's URLs and sees none of B.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require, require_tool
from tests.dashboard_reports import SeriesMaker, Signer

pytestmark = [pytest.mark.needs_service, pytest.mark.django_db(transaction=True)]

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"
PWNED = "PWNED-BY-REPORT"
HOSTILE_HOST = f"<script>document.title='{PWNED}'</script><img src=x onerror=\"document.title='{PWNED}'\">"
HOSTILE_SSIDS = [f"<img src=x onerror=document.title='{PWNED}'>", f"javascript:document.title='{PWNED}'",
                 f"\"><svg onload=document.title='{PWNED}'>"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_tool("chromedriver", "chromium")
    require(Path(CHROMEDRIVER).exists(), f"{CHROMEDRIVER} missing (Debian package chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mamoru-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def no_script_ran(driver: Any) -> None:
    # The payloads set the title to exactly PWNED; the page's own title may quote them as text.
    assert driver.execute_script("return document.title") != PWNED
    logs = driver.get_log("browser")
    assert not [e for e in logs if "Content Security Policy" in e["message"] or PWNED in e["message"]], logs
    assert not driver.find_elements("css selector", "a[href^='javascript:'], img[src='x'], svg[onload], script")


def test_login_upload_overview_host_page_hostile_strings_and_isolation(browser: Any, live_server: Any,
                                                                       django_user_model: Any,
                                                                       tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from dashboard.models import Host, Membership, Organisation, Role

    signer = Signer()
    a = Organisation.objects.create(slug="org-a", name="A 不動産", allowed_signers=signer.allowed)
    Organisation.objects.create(slug="org-b", name="B-Secret-Client", allowed_signers=signer.allowed)
    alice = django_user_model.objects.create_user(username="alice", password=PASSWORD)
    Membership.objects.create(user=alice, organisation=a, role=Role.ADMIN)

    def hostile(doc: dict[str, Any]) -> None:
        for f in doc["findings"]:
            if f["check"] == "WL-01":
                f["evidence"] = {"ssids": HOSTILE_SSIDS}
                f["message"]["ja"] = f["message"]["en"] = HOSTILE_SSIDS[0]

    made = SeriesMaker(signer, operator_host="pc-1", hostname=HOSTILE_HOST).make(0, change=hostile)
    report, sig = tmp_path / "report.json", tmp_path / "report.json.sig"
    report.write_bytes(made.data)
    sig.write_bytes(made.sig)

    d = browser
    d.get(live_server.url + "/login/")
    d.find_element(By.ID, "id_username").send_keys("alice")
    d.find_element(By.ID, "id_password").send_keys(PASSWORD)
    d.find_element(By.ID, "login-submit").click()
    WebDriverWait(d, 30).until(lambda drv: "/login/" not in drv.current_url)

    d.get(f"{live_server.url}/o/{a.slug}/upload/")
    d.find_element(By.NAME, "report").send_keys(str(report))
    d.find_element(By.NAME, "signature").send_keys(str(sig))
    d.find_element(By.CSS_SELECTOR, "form.upload button[type=submit]").click()
    WebDriverWait(d, 60).until(lambda drv: drv.find_elements(By.CSS_SELECTOR, ".upload-result"))
    assert d.find_elements(By.CSS_SELECTOR, ".upload-created"), d.page_source[1800:5000]
    assert made.sha256 in d.page_source
    no_script_ran(d)

    d.get(f"{live_server.url}/o/{a.slug}/")
    assert "A 不動産" in d.page_source
    no_script_ran(d)
    host = Host.objects.get(organisation=a, hostname=HOSTILE_HOST)
    d.get(f"{live_server.url}/o/{a.slug}/hosts/")
    assert d.find_elements(By.XPATH, f"//a[contains(@href, '/hosts/{host.pk}/')]")
    no_script_ran(d)
    d.get(f"{live_server.url}/o/{a.slug}/hosts/{host.pk}/")
    body = d.find_element(By.TAG_NAME, "body").text
    assert "<script>" in body  # shown as text
    assert "WL-01" in d.page_source
    no_script_ran(d)
    d.get(f"{live_server.url}/o/{a.slug}/checks/WL-01/")
    no_script_ran(d)

    for path in ("/o/org-b/", "/o/org-b/hosts/", f"/o/org-b/hosts/{host.pk}/", "/o/org-b/admin/",
                 "/o/org-b/upload/", f"/o/org-b/reports/{made.sha256}/report.json"):
        d.get(live_server.url + path)
        assert "B-Secret-Client" not in d.page_source, path
        assert "pc-1" not in d.page_source and PWNED not in d.page_source, path
