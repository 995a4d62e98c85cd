"""The web UI in a real browser: Debian's Chromium driven by Playwright against `prodmatch serve`.

Screenshots of the main states go to $PRODMATCH_SCREENSHOTS_DIR when set (`PRODMATCH_SCREENSHOTS_DIR=docs/screenshots`
refreshes the ones in the repository), else to a temporary folder, so a test run leaves the checkout unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from tests.api.server import running_server
from tests.conftest import myntra_ingest_command

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(
    myntra: Path, base_settings: Settings, offline_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("ui-data")
    env = {
        **os.environ,
        "PRODMATCH_MODELS_DIR": str(base_settings.models_dir),
        "PRODMATCH_DATA_DIR": str(data_dir),
    }
    subprocess.run(myntra_ingest_command(myntra), env=env, check=True, capture_output=True, timeout=600)
    with running_server(env) as base:
        yield base


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("PRODMATCH_SCREENSHOTS_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install chromium (scripts/test.sh does it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def wait_until(page: Page, expression: str, within_s: float = 30) -> None:
    """Poll EXPRESSION until it is true. (page.wait_for_function evaluates its predicate with eval(), which the
    UI's Content-Security-Policy forbids, as it should.)"""
    deadline = time.monotonic() + within_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {within_s} s: {expression}"
        time.sleep(0.1)


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.goto(server)
    page.wait_for_selector("select[data-facet='Colour']")
    yield page
    context.close()
    assert violations == [], "the UI broke its own Content-Security-Policy"


def test_feedback_buttons_confirm_the_shown_product(page: Page, myntra: Path) -> None:
    page.set_input_files("#file", str(myntra / "images" / "36310.jpg"))
    page.wait_for_selector("#results .card")
    page.click("#results li:first-child .verdict button.yes")
    page.wait_for_selector("#results li:first-child .verdict span")
    assert "confirmed" in page.inner_text("#results li:first-child .verdict")
    page.click("#results li:nth-child(2) .verdict button.no")
    page.wait_for_selector("#results li:nth-child(2) .verdict span")
    assert "not this one" in page.inner_text("#results li:nth-child(2) .verdict")
    assert page.locator("dialog[open]").count() == 0  # the buttons do not open the detail view


def test_photo_upload_shows_a_match_with_scores(page: Page, myntra: Path, shots: Path) -> None:
    page.screenshot(path=shots / "01-empty.png")
    page.set_input_files("#file", str(myntra / "images" / "36310.jpg"))
    page.wait_for_selector("#results .card")
    assert "Match" in page.inner_text("#decision")
    assert "Blazing Yellow" in page.inner_text("#results li:first-child .name")
    assert page.locator("#results .score .fill").count() == 12
    assert page.locator("#keywords li").count() > 0
    wait_until(page, "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth)")
    page.screenshot(path=shots / "02-photo-match.png", full_page=True)


def test_text_search_with_a_filter_and_the_detail_view_by_keyboard(page: Page, shots: Path) -> None:
    page.select_option("select[data-facet='Colour']", "Blue")
    page.fill("#text", "boys denim shirt")
    page.press("#text", "Enter")
    page.wait_for_selector("#results .card")
    metas = page.locator("#results .meta").all_inner_texts()
    assert metas and all("Blue" in meta for meta in metas)
    page.focus("#results li:first-child .card")
    page.keyboard.press("Enter")
    page.wait_for_selector("dialog[open]")
    assert "Colour" in page.inner_text("#detail-fields")
    page.screenshot(path=shots / "03-detail.png")
    page.keyboard.press("Escape")
    assert page.locator("dialog[open]").count() == 0


def test_a_file_that_is_not_a_photo_shows_an_error(page: Page, tmp_path: Path, shots: Path) -> None:
    bogus = tmp_path / "notes.png"
    bogus.write_bytes(b"this is not a png")
    page.set_input_files("#file", str(bogus))
    page.wait_for_selector("#status.error")
    assert "not a decodable image" in page.inner_text("#status")
    page.screenshot(path=shots / "04-error.png")


def test_phone_width_layout(browser: Browser, server: str, myntra: Path, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    phone = context.new_page()
    phone.goto(server)
    phone.wait_for_selector("select[data-facet='Colour']")
    phone.set_input_files("#file", str(myntra / "images" / "10649.jpg"))
    phone.wait_for_selector("#results .card")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing overflows sideways
    wait_until(phone, "[...document.querySelectorAll('#results img')].slice(0, 4).every(i => i.complete)")
    phone.screenshot(path=shots / "05-phone.png")
    context.close()
