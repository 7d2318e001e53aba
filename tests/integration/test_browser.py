"""
The store and the dashboard in a real browser: headless Chromium (Debian's
C{chromium} and C{chromium-driver}, which C{.ci/run} installs) driven through
Selenium, against real clusters of twistd processes.

Selenium's calls block, so these are plain test functions, not
pytest-twisted ones: they block only this test, never the cluster.  The
browser starts with a fresh profile and without its background networking,
so it never tries to reach another host; C{driver.quit()} stops it and its
chromedriver.

With C{PYGMY_SCREENSHOTS=<folder>} set, the store and dashboard tests also
save C{store.png} and C{dashboard.png} there: that is how the pictures in
C{docs/images/} were made.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from pygmy.catalog.books import SEED
from pygmy.testing import SECRET, get_json, wait_for_full_view

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {SECRET}"}
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1300",
]
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'

# Records every POST /buy the page makes (its Idempotency-Key), then makes it.
RECORD_BUYS = """
window.buyKeys = [];
const realFetch = window.fetch;
window.fetch = function (url, options) {
  if (options && options.method === "POST") window.buyKeys.push(options.headers["Idempotency-Key"]);
  return realFetch.apply(this, arguments);
};
"""


@pytest.fixture(scope="module")
def cluster(cluster):
    """The module's cluster once both services have every replica in their views."""
    wait_for_full_view(cluster.url, 15, "the views")
    return cluster


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium with a fresh profile, for one module."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs chromium and chromedriver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, predicate, what: str, timeout: float = 10.0):
    """Wait until C{predicate()} is true, re-finding elements the page replaced."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    waiter = WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=ignored)
    return waiter.until(lambda _: predicate(), message=f"timed out waiting for {what}")


def text(driver, css: str) -> str:
    """The visible text of the element C{css}."""
    return driver.find_element(By.CSS_SELECTOR, css).text


def stock(cluster, item: int) -> int:
    """Book C{item}'s stock, read through the front end past its cache."""
    status, body = get_json(f"{cluster.url}/lookup/{item}", {"Cache-Control": "no-cache"})
    assert status == 200, body
    return body["stock"]


def orders_of(cluster, item: int) -> int:
    """How many orders of book C{item} the order primary holds."""
    primary = get_json(cluster.url + "/status")[1]["services"]["order"]["primary"]
    status, dump = get_json(cluster.replica_url("order", primary) + "/admin/dump", AUTH)
    assert status == 200, dump
    return sum(1 for row in dump["rows"] if row["item_id"] == item)


def new_book(cluster, title: str, topic: str, copies: int) -> int:
    """Add a book through C{POST /books}; its id."""
    body = {"title": title, "topic": topic, "cost": "5.00", "stock": copies}
    status, reply = get_json(cluster.url + "/books", AUTH, "POST", body)
    assert status == 201, reply
    return reply["item"]["id"]


def load(driver, url: str) -> None:
    """
    Load C{url} afresh (a new page, even where only the fragment differs),
    with the console's earlier messages dropped.
    """
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(url)


def open_book(driver, cluster, item: int, title: str) -> None:
    """Open the store on book C{item} and wait for it."""
    load(driver, f"{cluster.url}/#book/{item}")
    wait(driver, lambda: text(driver, "#book-title") == title, f"book {item}")


def buy_finished(driver) -> bool:
    """The click's request has an answer and the page shows it."""
    button = driver.find_element(By.ID, "buy")
    return button.is_enabled() and not text(driver, "#buy-message").startswith("Buying")


def severe_logs(driver) -> list[str]:
    """The browser console's errors since the last call (a CSP refusal is one)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver, name: str) -> None:
    """Save the page as C{name} under C{$PYGMY_SCREENSHOTS}, if it is set."""
    folder = os.environ.get("PYGMY_SCREENSHOTS")
    if folder:
        # The whole page, not only the window.
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(base64.b64decode(shot["data"]))


def test_the_dashboard_shows_a_replica_down_within_2s_then_back_and_the_failover(fresh_cluster, browser):
    cluster = fresh_cluster
    wait_for_full_view(cluster.url, 15, "the views")
    for item in (1, 2, 3):
        assert get_json(f"{cluster.url}/buy/{item}", method="POST")[0] == 200
    primary = get_json(cluster.url + "/status")[1]["services"]["catalog"]["primary"]
    row = f'tr[data-replica="catalog:{primary}"]'
    load(browser, cluster.url + "/dashboard")
    wait(browser, lambda: text(browser, f"{row} .alive") == "up", "the primary up")
    assert text(browser, "#frontend-name") == "frontend (view manager)"
    assert text(browser, "#frontend-leader") == "frontend (this one)"
    assert "Live" in text(browser, "#connection")
    for _ in range(2):
        for item in range(1, 8):
            assert get_json(f"{cluster.url}/lookup/{item}")[0] == 200
    wait(browser, lambda: not text(browser, "#rate").startswith("0.0"), "the requests per second", 3.0)
    wait(browser, lambda: "50.0% hits (7 hits, 7 misses)" in text(browser, "#cache"), "the cache's hit rate", 3.0)

    cluster.stop(f"catalog:{primary}", signal.SIGKILL)
    killed = time.monotonic()
    wait(browser, lambda: text(browser, f"{row} .alive") == "DOWN", "the killed primary shown DOWN", timeout=2.0)
    assert time.monotonic() - killed < 2.0
    assert "down" in text(browser, row)
    failover = 'li[data-kind="failover"]'
    wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, failover), "a failover in the timeline", 5.0)
    line = text(browser, failover)
    assert "took over as primary" in line and f"after catalog:{primary} died" in line and " s after " in line
    survivor = get_json(cluster.url + "/status")[1]["services"]["catalog"]["primary"]
    assert survivor not in (None, primary)
    assert f"Primary\n{survivor}" in text(browser, 'section[data-service="catalog"]')
    screenshot(browser, "dashboard.png")

    cluster.start("catalog", primary)
    wait(browser, lambda: text(browser, f"{row} .alive") == "up", "the restarted replica up", 15.0)
    wait(browser, lambda: "backup" in text(browser, row), "the restarted replica back in the view", 15.0)
    caught_up = text(browser, 'li[data-kind="catch_up"]')
    assert f"catalog:{primary} caught up" in caught_up and "after it came back" in caught_up
    assert severe_logs(browser) == []


def test_search_open_a_book_buy_and_see_the_stock_drop(cluster, browser):
    load(browser, cluster.url + "/")
    browser.find_element(By.ID, "topic").send_keys("distributed systems")
    browser.find_element(By.ID, "search-button").click()
    results = "#search-results button"
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, results)) == 2, "two results")
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, results)] == [SEED[0][1], SEED[1][1]]
    before = stock(cluster, 2)
    orders = orders_of(cluster, 2)
    browser.find_element(By.CSS_SELECTOR, '#search-results button[data-book="2"]').click()
    wait(browser, lambda: text(browser, "#book-title") == SEED[1][1], "the book")
    assert text(browser, "#book-stock") == str(before)
    assert text(browser, "#book-cost") == "$" + SEED[1][3]

    browser.find_element(By.ID, "buy").click()
    wait(browser, lambda: text(browser, "#buy-message").startswith("Bought"), "the order")
    wait(browser, lambda: text(browser, "#book-stock") == str(before - 1), "the stock shown one lower")
    assert stock(cluster, 2) == before - 1 and orders_of(cluster, 2) == orders + 1
    order_id = text(browser, "#buy-message").rsplit("#", 1)[1].rstrip(".")
    assert get_json(f"{cluster.url}/orders/{order_id}")[1]["order"]["item_id"] == 2
    list_row = browser.find_element(By.XPATH, "//tbody[@id='list-body']/tr[td[1]='2']")
    wait(browser, lambda: list_row.text.endswith(str(before - 1)), "the list's stock one lower")
    assert severe_logs(browser) == []
    screenshot(browser, "store.png")


def test_a_double_click_buys_once(cluster, browser):
    open_book(browser, cluster, 3, SEED[2][1])
    before, orders = stock(cluster, 3), orders_of(cluster, 3)
    browser.execute_script(RECORD_BUYS)
    ActionChains(browser).double_click(browser.find_element(By.ID, "buy")).perform()
    wait(browser, lambda: buy_finished(browser), "the buy's answer")
    assert text(browser, "#buy-message").startswith("Bought")
    assert len(browser.execute_script("return window.buyKeys")) == 1
    assert stock(cluster, 3) == before - 1 and orders_of(cluster, 3) == orders + 1
    wait(browser, lambda: text(browser, "#book-stock") == str(before - 1), "the stock shown one lower")


def test_a_retry_after_a_lost_answer_reuses_the_clicks_key(cluster, browser):
    open_book(browser, cluster, 4, SEED[3][1])
    before, orders = stock(cluster, 4), orders_of(cluster, 4)
    # The first POST reaches the store, but its answer is lost on the way back.
    browser.execute_script(
        RECORD_BUYS
        + """
        const recorded = window.fetch;
        let lost = false;
        window.fetch = async function (url, options) {
          const reply = await recorded.apply(this, arguments);
          if (options && options.method === "POST" && !lost) { lost = true; throw new TypeError("lost"); }
          return reply;
        };
        """
    )
    browser.find_element(By.ID, "buy").click()
    wait(browser, lambda: buy_finished(browser), "the buy's answer")
    assert text(browser, "#buy-message").startswith("Bought")
    keys = browser.execute_script("return window.buyKeys")
    assert len(keys) == 2 and keys[0] == keys[1]
    assert stock(cluster, 4) == before - 1 and orders_of(cluster, 4) == orders + 1
    # The next click is a new buy, with a key of its own.
    browser.find_element(By.ID, "buy").click()
    wait(browser, lambda: buy_finished(browser) and len(browser.execute_script("return window.buyKeys")) == 3, "buy")
    assert browser.execute_script("return window.buyKeys")[2] != keys[0]
    assert stock(cluster, 4) == before - 2


def test_out_of_stock_says_so(cluster, browser):
    item = new_book(cluster, "The Last Copy", "scarcity", 1)
    open_book(browser, cluster, item, "The Last Copy")
    browser.find_element(By.ID, "buy").click()
    wait(browser, lambda: buy_finished(browser), "the first buy")
    assert text(browser, "#buy-message").startswith("Bought")
    wait(browser, lambda: text(browser, "#book-stock") == "0 (out of stock)", "no copy left")
    browser.find_element(By.ID, "buy").click()
    wait(browser, lambda: "out of stock" in text(browser, "#buy-message"), "the out-of-stock message")
    assert text(browser, "#buy-message") == "Sorry, “The Last Copy” is out of stock."
    assert stock(cluster, item) == 0 and orders_of(cluster, item) == 1


def test_unavailable_says_so_after_the_clicks_retries(cluster, browser):
    open_book(browser, cluster, 5, SEED[4][1])
    before = stock(cluster, 5)
    browser.execute_script(
        RECORD_BUYS
        + """
        window.fetch = (function (recorded) {
          return function (url, options) {
            if (!(options && options.method === "POST")) return recorded.apply(this, arguments);
            window.buyKeys.push(options.headers["Idempotency-Key"]);
            const body = JSON.stringify({error: {code: "unavailable", message: "No primary."}});
            return Promise.resolve(new Response(body, {status: 503, headers: {"Retry-After": "0"}}));
          };
        })(window.fetch);
        """
    )
    browser.find_element(By.ID, "buy").click()
    wait(browser, lambda: buy_finished(browser), "the last try's answer")
    assert text(browser, "#buy-message").startswith("The store cannot take orders right now")
    keys = browser.execute_script("return window.buyKeys")
    assert len(keys) == 4 and len(set(keys)) == 1
    assert stock(cluster, 5) == before


def test_a_hostile_title_stays_text(cluster, browser):
    item = new_book(cluster, HOSTILE, "hostile markup", 3)
    load(browser, cluster.url + "/")
    browser.find_element(By.ID, "topic").send_keys("hostile markup")
    browser.find_element(By.ID, "search-button").click()
    found = f'#search-results button[data-book="{item}"]'
    wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, found), "the hostile book")
    assert text(browser, found) == HOSTILE
    browser.find_element(By.CSS_SELECTOR, found).click()
    wait(browser, lambda: text(browser, "#book-title") == HOSTILE, "its title, as text")
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []
    assert browser.execute_script("return document.getElementById('book-title').childElementCount") == 0
