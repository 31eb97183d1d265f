"""The /ui page in a real headless browser (Debian's Chromium through its chromedriver,
driven by selenium) against the production server: a shopper's click path gives exactly
what the API answers, and the page loads nothing from any other origin. Skips (with the
reason) where Chromium or chromedriver is absent: ``.ci/run`` installs both with apt."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
import pytest

from simrec.config import Settings
from simrec.serving import access, api, ui
from simrec.serving.access import Gate
from simrec.serving.api import ServingApp
from tests.chromium import CHROMIUM, CHROMIUM_FLAGS
from tests.http.served_app import TENANT, VERSION, ServedApp, catalog_model, publish

CHROMEDRIVER = shutil.which("chromedriver")
REPORT_TITLE = "simrec offline evaluation (test)"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("ui")
    bucket, reports = str(tmp / "bucket"), tmp / "reports"
    publish(bucket, catalog_model())
    (reports / "evaluation").mkdir(parents=True)
    (reports / "summary.json").write_text(
        json.dumps({"run_id": VERSION, "stage_timings_s": {"export": 1.5}})
    )
    (reports / "evaluation" / "report.html").write_text(
        f"<!doctype html><html><head><title>{REPORT_TITLE}</title></head><body>r</body></html>"
    )
    app = ServedApp(tmp, {"SIMREC_DATA_URI": bucket, "SIMREC_MODELS_URI": "",
                          "SIMREC_TENANT": TENANT, "SIMREC_REPORTS_URI": str(reports)})  # fmt: skip
    api.HOLDERS.clear()
    local = ServingApp(Settings(data_uri=bucket, tenant=TENANT, model_refresh_seconds=0))
    yield app, local
    app.stop()
    api.HOLDERS.clear()


@pytest.fixture
def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # the request log
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


ROWS_JS = """
return Array.from(document.querySelectorAll('#' + arguments[0] + ' tr[data-sku]')).map(row => {
  const cell = (name) => {
    const c = row.querySelector('td.' + name);
    return c ? c.textContent : null;
  };
  return {sku: row.dataset.sku, score: cell('score'), because: cell('because'),
          attrs: cell('attrs')};
});
"""


def rows(driver, table_id: str) -> list[dict[str, str]]:
    """The item rows of one of the page's tables (sku, score, because, attributes), read
    in one script so a re-render cannot interleave."""
    return driver.execute_script(ROWS_JS, table_id)


def expected_rows(body: dict) -> list[tuple[str, str]]:
    return [(it["sku"], f"{it['score']:.4f}") for it in body["items"]]


def test_click_path_search_item_basket_and_run(served, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app, local = served
    wait = WebDriverWait(browser, 30)
    browser.get(app.base + "/ui")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    # The run: model version, summary fields and the report link, from /runs/latest.
    assert browser.find_element(By.ID, "model").text == f"model: {VERSION}"
    run_text = browser.find_element(By.ID, "run").text
    assert VERSION in run_text and "2026-12-03" in run_text and "export" in run_text
    assert browser.find_element(By.ID, "report-link").is_displayed()
    # Sections follow the endpoints the document lists: /trending is served (and
    # /bought-together: its section shows in the item's, below).
    assert browser.find_element(By.ID, "trending-section").is_displayed()

    # Search: a prefix gives the matching skus, most popular first.
    box = browser.find_element(By.ID, "q")
    box.send_keys("sku-01")
    wait.until(lambda d: d.find_element(By.ID, "matches").text == "10 matches")
    shown = [b.get_attribute("data-sku")
             for b in browser.find_elements(By.CSS_SELECTOR, "#results button")]  # fmt: skip
    want = [it["sku"] for it in local.dispatch("GET", "/items", "q=sku-01&n=20")[0][0]["items"]]
    assert shown == want and len(shown) == 10

    # Click an item: its neighbors with their scores and catalog attributes.
    sku = want[0]
    browser.find_element(By.CSS_SELECTOR, f"#results button[data-sku='{sku}']").click()
    wait.until(lambda d: rows(d, "neighbors"))
    similar = local.similar({"sku": sku, "n": "10"})[0]
    got = rows(browser, "neighbors")
    assert [(r["sku"], r["score"]) for r in got] == expected_rows(similar)
    first = similar["items"][0]
    assert f"category: {first['category']}" in got[0]["attrs"]
    assert f"brand: {first['attributes']['brand']}" in got[0]["attrs"]
    # Its bought-together items, as the endpoint answers them (this model was published
    # without the table: the fallback's popular items).
    together = local.bought_together({"sku": sku, "n": "10"})[0]
    wait.until(lambda d: [(r["sku"], r["score"]) for r in rows(d, "bought")]
               == expected_rows(together))  # fmt: skip
    assert together["fallback"] and len(together["items"]) == 10
    assert browser.find_element(By.ID, "bought-section").is_displayed()

    # Basket: the item, then one of its neighbors; recommendations with because.
    browser.find_element(By.ID, "add-basket").click()
    wait.until(lambda d: rows(d, "recs"))
    second = similar["items"][1]["sku"]
    browser.find_element(By.CSS_SELECTOR, f"#neighbors tr[data-sku='{second}'] button.add").click()
    want_recs = local.recommendations({"basket": f"{sku},{second}", "n": "10"})[0]

    def recs_match(d) -> bool:
        got = rows(d, "recs")
        return [(r["sku"], r["score"]) for r in got] == expected_rows(want_recs)

    wait.until(recs_match)
    assert not want_recs["fallback"]
    for row, item in zip(rows(browser, "recs"), want_recs["items"], strict=True):
        names = [b["sku"] for b in item["because"]]
        assert row["because"].split(", ")[0].split(" ")[0] == names[0]
    basket = [li.get_attribute("data-sku")
              for li in browser.find_elements(By.CSS_SELECTOR, "#basket li")]  # fmt: skip
    assert basket == [sku, second]

    # Nothing was loaded from another origin: the page's own resource timings and
    # Chromium's request log (every request the page sent) name this server only.
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(r.startswith(app.base + "/") for r in resources), resources
    sent = [
        json.loads(entry["message"])["message"]["params"]["request"]["url"]
        for entry in browser.get_log("performance")
        if '"Network.requestWillBeSent"' in entry["message"]
    ]
    assert any(u.endswith("/recommendations?basket=" + f"{sku}%2C{second}&n=10") for u in sent)
    # (chrome:// pages are the browser's own new tab, not network requests.)
    network = [u for u in sent if u.split(":", 1)[0] in ("http", "https", "ws", "wss")]
    assert network and all(u.startswith(app.base + "/") for u in network), network


def test_report_page_and_headers(served, browser) -> None:
    from selenium.webdriver.common.by import By

    app, _ = served
    browser.get(app.base + "/ui/report")
    assert browser.title == REPORT_TITLE
    status, headers, _ = app.get("/ui")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"] == ui.CSP
    # The page refers only to its own scripts and styles.
    browser.get(app.base + "/ui")
    sources = [e.get_attribute("src") or e.get_attribute("href")
               for e in browser.find_elements(By.CSS_SELECTOR, "script, link")]  # fmt: skip
    assert all(s.startswith(app.base + "/ui/") or s.startswith("data:") for s in sources)


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:  # no request lines on stderr
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per connection: Chromium opens speculative connections that send
    nothing, which would block a one-at-a-time server."""

    daemon_threads = True


@pytest.fixture
def wsgi_server():
    """Serve WSGI apps on 127.0.0.1 in threads (stopped at the end); their base URLs."""
    servers = []

    def start(app) -> str:
        server = make_server(
            "127.0.0.1", 0, app, server_class=_ThreadingServer, handler_class=_Quiet
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_sections_of_later_endpoints_light_up_when_the_document_lists_them(
    tmp_path: Path, browser, wsgi_server
) -> None:
    """A deployment whose /openapi.json lists /trending (answered here by a fake endpoint
    named so, the shape of the item list): the page shows it. (/bought-together is
    served for real: the click path above reads it.)"""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    bucket = str(tmp_path / "bucket")
    publish(bucket, catalog_model())
    api.HOLDERS.clear()
    service = ServingApp(Settings(data_uri=bucket, tenant=TENANT, model_refresh_seconds=0))
    doc = service.dispatch("GET", "/openapi.json", "")[0][0]
    doc["paths"] = {**doc["paths"], "/trending": {}}
    service._openapi_doc = doc
    fake_trending = {"items": [{"sku": "sku-007", "score": 2.5}], "model_version": VERSION}
    service.routes["/trending"] = lambda params: (fake_trending, 200)
    base = wsgi_server(Gate(service))
    wait = WebDriverWait(browser, 30)
    browser.get(base + "/ui")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert browser.find_element(By.ID, "trending-section").is_displayed()
    assert rows(browser, "trending")[0]["sku"] == "sku-007"
    api.HOLDERS.clear()


SHOP_PAGE = """<!doctype html><html><body><pre id="out">waiting</pre><script>
fetch("{api}/similar?sku=sku-001&n=2", {{headers: {{"X-Api-Key": "{key}"}}}})
  .then(r => r.json().then(b => r.status + " " + b.items.map(i => i.sku).join(",")))
  .catch(e => "blocked " + e.name)
  .then(t => {{ document.getElementById("out").textContent = t; }});
</script></body></html>"""


def test_a_shop_page_calls_the_public_endpoint_and_another_origin_cannot(
    tmp_path: Path, browser, wsgi_server
) -> None:
    """The public mode from a real browser: a page of the allowed origin calls the endpoint
    with its key (the browser's CORS preflight for X-Api-Key, then the GET); the same page
    on another origin is blocked by the browser; the /ui page asks for the key."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    bucket, keys = str(tmp_path / "bucket"), tmp_path / "keys.json"
    publish(bucket, catalog_model())
    keys.write_text(json.dumps({"shop": access.key_hash("shop-key")}))

    def shop(environ, start_response):  # the shop's own site, on another port
        body = SHOP_PAGE.format(api=api_base, key="shop-key").encode()
        start_response("200 OK", [("Content-Type", "text/html")])
        return [body]

    shop_base = wsgi_server(shop)
    shop_port = shop_base.rsplit(":", 1)[1]
    app = ServedApp(tmp_path, {
        "SIMREC_DATA_URI": bucket, "SIMREC_MODELS_URI": "", "SIMREC_TENANT": TENANT,
        "SIMREC_API_KEYS": str(keys), "SIMREC_ALLOWED_ORIGINS": shop_base,
    })  # fmt: skip
    api_base = app.base
    try:
        wait = WebDriverWait(browser, 30)
        direct = app.get("/similar?sku=sku-001&n=2", {"X-Api-Key": "shop-key"})[2]
        expected = [it["sku"] for it in orjson.loads(direct)["items"]]

        def outcome(url: str) -> str:
            browser.get(url)
            wait.until(lambda d: d.find_element(By.ID, "out").text != "waiting")
            return browser.find_element(By.ID, "out").text

        assert outcome(shop_base + "/") == "200 " + ",".join(expected)
        # The same page from http://localhost:<port>, an origin that is not allowed.
        assert outcome(f"http://localhost:{shop_port}/") == "blocked TypeError"
        # The /ui page: the API answers 401 until the key is given, then works.
        browser.get(app.base + "/ui")
        wait.until(lambda d: d.find_element(By.ID, "key-form").is_displayed())
        assert "API key" in browser.find_element(By.ID, "error").text
        browser.find_element(By.ID, "key").send_keys("shop-key")
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait.until(lambda d: d.find_element(By.ID, "model").text == f"model: {VERSION}")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results button"))
        assert not browser.find_element(By.ID, "error").is_displayed()
    finally:
        app.stop()
