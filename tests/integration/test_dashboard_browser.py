"""The dashboard in a real headless Chromium (Debian's, driven by Playwright through
``executable_path``; never a downloaded browser): sign in, open the top alert, confirm fraud,
and find the analyst's label on ``training``."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import expect, sync_playwright

from .api_support import ANALYST_PW, ApiEnv, free_port, make_api_env, read_labels, start_api, stop
from .conftest import Infra

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def served(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiEnv, str]]:
    api = make_api_env(infra, uuid.uuid4().hex[:8])
    port = free_port()
    proc = start_api(api, tmp_path_factory.mktemp("api") / "api.log", port)
    try:
        yield api, f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_login_open_alert_confirm_fraud(served: tuple[ApiEnv, str], tmp_path: Path) -> None:
    api, base = served
    assert Path(CHROMIUM).exists(), "Debian's chromium is required (scripts/bootstrap.sh installs it)"
    problems: list[str] = []
    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 800})
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

            page.goto(f"{base}/dashboard")
            expect(page).to_have_url(f"{base}/login")
            page.fill("#name", "alice")
            page.fill("#password", "not-the-password")
            page.click("#login-button")
            expect(page.locator("#login-error")).to_contain_text("Wrong user name or password")
            problems.clear()  # the 401 above is logged by the browser, as it should be
            page.fill("#password", ANALYST_PW)
            page.click("#login-button")
            expect(page).to_have_url(f"{base}/dashboard")
            expect(page.locator("#who")).to_have_text("alice (analyst)")
            expect(page.locator("#tile-open")).to_have_text("36")  # 40 seeded, 4 already reviewed
            page.screenshot(path=str(tmp_path / "overview.png"))

            page.click("nav a[data-nav=queue]")
            first = page.locator("#queue-table tbody tr").first
            expect(first).to_have_attribute("data-id", "tx-038")  # highest open score
            page.select_option("#filter-decision", "decline")
            expect(first).to_have_attribute("data-id", "tx-036")  # highest open decline
            page.wait_for_timeout(5500)  # one refresh later the filters are still shown as set
            expect(page.locator("#filter-status")).to_have_value("open")
            expect(page.locator("#filter-decision")).to_have_value("decline")
            page.select_option("#filter-decision", "")
            expect(first).to_have_attribute("data-id", "tx-038")
            first.locator("a.alert-link").click()
            expect(page.locator("#alert h2")).to_contain_text("Alert tx-038")
            expect(page.locator("#reasons li").first).to_have_text("rule:HIGH_AMOUNT")
            expect(page.locator("#features tbody tr")).to_have_count(2)
            page.fill("#comment", "confirmed from the browser test")
            page.click("#confirm-fraud")
            expect(page.locator("#review-result")).to_contain_text("Confirmed fraud by alice")
            expect(page.locator("#review-status")).to_have_text("confirmed fraud")
            expect(page.locator("#alert")).to_contain_text("confirmed from the browser test")
            page.screenshot(path=str(tmp_path / "alert.png"), full_page=True)
        finally:
            browser.close()

    assert problems == []
    [label] = read_labels(api.settings, "tx-038")
    assert label.is_fraud is True and label.source == "analyst"
    with psycopg.connect(api.settings.dsn) as conn:
        status, by, comment = conn.execute(
            "SELECT review_status, reviewed_by, review_comment FROM fraudulent_transactions"
            " WHERE transaction_id = 'tx-038'").fetchone()
    assert (status, by, comment) == ("confirmed_fraud", "alice", "confirmed from the browser test")
