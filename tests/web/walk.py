"""A person's walk through the pages in a real browser (Selenium, Debian's
chromium and chromium-driver), against any account: the stand-in or Cyrus.

The account is read after every step (its mailboxes and contact groups),
never what the page says; axe-core checks each page in light and dark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parents[2] / ".cache" / "axe-core" / "axe.min.js"
CHROMEDRIVER = shutil.which("chromedriver")
SHOTS = os.environ.get("SCREENSHOTS_TO")
PASSWORD = "correct horse battery staple"
EVIL = "<img src=x onerror=\"document.title='pwned'\">"


@dataclass
class Account:
    boxes: Callable[[str], set[str]]  # a sender -> the mailboxes its mail is in
    groups: Callable[[str], set[str]]  # a sender -> its contact groups


@dataclass
class Senders:
    person: str  # decided alone, then taken back from history
    billing: str  # decided with its whole domain …
    colleague: str  # … which takes this one too
    hostile: str  # named hostile_name
    hostile_name: str = EVIL
    list_id: str = ""  # a mailing list waiting, decided whole from its row …
    list_poster: str = ""  # … whose only poster this is


def browser(width: int, height: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    if width < 500:  # a desktop window is never that narrow: a phone, emulated
        options.add_experimental_option(
            "mobileEmulation",
            {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 3}},
        )
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    return driver


def click(driver: Any, css: str) -> None:
    from selenium.webdriver.common.by import By

    press(driver, driver.find_element(By.CSS_SELECTOR, css))


def _gone(element: Any) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def press(driver: Any, element: Any) -> None:
    """Click a form's button and wait for the page it leads to (the click
    returns before the browser has navigated)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    # Chromium may answer for a node detached mid-navigation with a plain
    # WebDriverException ("does not belong to the document") rather than the
    # stale-element error Selenium's own condition expects: the page left too.
    WebDriverWait(driver, 30, ignored_exceptions=()).until(lambda d: _gone(page))
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def waiting(driver: Any) -> int:
    from selenium.webdriver.common.by import By

    text = driver.find_element(By.ID, "waiting").text
    found = re.fullmatch(r"(\d+) senders?(?:, \d+ lists?)? waiting", text)
    assert found is not None, text
    return int(found.group(1))


def sideways(driver: Any) -> bool:
    """Whether the page is wider than the screen (scrolls sideways)."""
    return bool(
        driver.execute_script("return document.documentElement.scrollWidth > window.innerWidth")
    )


def log_in(driver: Any, base: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/screener")
    assert driver.current_url == base + "/login"
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    click(driver, "form.login button")
    assert driver.current_url == base + "/screener", driver.page_source[-2000:]


def shot(driver: Any, name: str, tmp: Path) -> None:
    target = (Path(SHOTS) if SHOTS else tmp) / f"{name}.png"
    driver.get_screenshot_as_file(str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def accessible(driver: Any, page: str) -> None:
    """No serious or critical axe-core finding, in light and in dark."""
    if not AXE.exists():
        assert not os.environ.get("CI"), f"{AXE} missing: make axe-core"
        return
    source = AXE.read_text(encoding="utf-8")
    for scheme in ("dark", "light"):  # light last: the screenshots are in light
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )
        driver.execute_script(source)
        result = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => done(JSON.stringify(r.violations)));"
        )
        bad = [v for v in json.loads(result) if v["impact"] in ("serious", "critical")]
        assert not bad, (page, scheme, [(v["id"], v["help"], len(v["nodes"])) for v in bad])


def row(address: str) -> str:
    return f'[data-address="{address}"]'


def decide_and_take_back(
    driver: Any, base: str, account: Account, s: Senders, tmp: Path, shots: bool = True
) -> None:
    """Log in; the person into the Feed from their row; the billing sender
    ticked, for the whole domain, into the Paper Trail; that taken back from
    the Undo left in its row's place; the person taken back from history."""
    from selenium.webdriver.common.by import By

    driver.get(base + "/login")
    accessible(driver, "login")
    if shots:
        shot(driver, "web-login", tmp)
    log_in(driver, base)
    before = waiting(driver)
    # The hostile name is text: no element made of it, no script run.
    name = driver.find_element(By.CSS_SELECTOR, row(s.hostile) + " .name").text
    assert s.hostile_name in name
    assert driver.find_elements(By.CSS_SELECTOR, "main img") == []
    assert driver.title != "pwned"
    accessible(driver, "screener")
    if shots:
        shot(driver, "web-screener", tmp)
    click(driver, f'button[name="decide"][aria-label="Feed: {s.person}"]')
    assert account.boxes(s.person) == {"Feed"}
    assert account.groups(s.person) == {"Feed"}
    assert waiting(driver) == before - 1
    assert not driver.find_elements(By.CSS_SELECTOR, row(s.person))
    driver.find_element(By.CSS_SELECTOR, row(s.billing) + ' input[name="sender"]').click()
    driver.find_element(By.CSS_SELECTOR, row(s.billing) + ' input[name="domain"]').click()
    bulk = '//fieldset[@class="bulk"]/button[text()="Paper Trail"]'
    press(driver, driver.find_element(By.XPATH, bulk))
    assert account.boxes(s.billing) == account.boxes(s.colleague) == {"Paper Trail"}
    assert account.groups(s.billing) == {"Paper Trail"}
    assert waiting(driver) == before - 3
    domain = "@" + s.billing.rpartition("@")[2]
    click(driver, "form.undo button")
    assert (
        f"Took back the decision on {domain}"
        in driver.find_element(By.CSS_SELECTOR, ".messages").text
    )
    assert account.boxes(s.billing) == account.boxes(s.colleague) == {"Screener"}
    assert account.groups(s.billing) == set()
    assert waiting(driver) == before - 1
    driver.get(base + "/history?q=" + s.person.replace("@", "%40"))
    accessible(driver, "history")
    click(driver, f'button[aria-label="Undo {s.person}"]')
    assert driver.current_url == base + "/history"
    assert account.boxes(s.person) == {"Screener"}
    assert account.groups(s.person) == set()
    if shots:
        shot(driver, "web-history", tmp)
    if s.list_id:
        driver.get(base + "/screener")
        click(driver, f'button[name="list"][aria-label="Feed: the whole list {s.list_id}"]')
        assert account.boxes(s.list_poster) == {"Feed"}
        assert account.groups(s.list_poster) == set()
        assert not driver.find_elements(By.CSS_SELECTOR, f'[data-list="{s.list_id}"]')
        click(driver, "form.undo button")
        assert account.boxes(s.list_poster) == {"Screener"}
        assert driver.find_elements(By.CSS_SELECTOR, f'[data-list="{s.list_id}"]')
    driver.get(base + "/status")
    accessible(driver, "status")
    driver.get(base + "/screener")
    assert waiting(driver) == before


def on_a_phone(driver: Any, base: str, account: Account, s: Senders, tmp: Path) -> None:
    """The same pages on a phone's screen: nothing scrolls sideways, finger-sized
    buttons, a decision and its undo."""
    from selenium.webdriver.common.by import By

    log_in(driver, base)
    assert not sideways(driver)
    button = driver.find_element(By.CSS_SELECTOR, f'button[aria-label="Jail: {s.hostile}"]')
    assert button.size["height"] >= 44 and button.size["width"] >= 44
    shot(driver, "web-screener-phone", tmp)
    press(driver, button)
    assert account.boxes(s.hostile) == {"Jail"}
    click(driver, "form.undo button")
    assert account.boxes(s.hostile) == {"Screener"}
    driver.get(base + "/history")
    assert not sideways(driver)
    accessible(driver, "history on a phone")
