"""The console end to end in headless Chromium, against the real gateway and embedded Triton.

Each view is driven as a user would (paste a key, pick files, press the button) and its result
is checked against what the API itself answers for the same input. A screenshot of each view
goes to FACEGATE_CONSOLE_SCREENSHOTS (docs/console to refresh the committed ones), else to
the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from ..images import encode, square_image
from .conftest import ADMIN_KEY, USER_KEY, api_client

pytestmark = pytest.mark.integration

# Generous: the shared CI machine may be slow; these bound a hang, they time nothing.
WAIT_S = 120
SCREENSHOT_WIDTH_PX = 960
# What the browser needs as root in a container, and what keeps it from calling home
# (this machine's network is closed; without these it retries refused connections).
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--window-size=1280,1000",
)
# Squares the tiny detector finds (sides 32/64/128 on its anchor grid, as tests/api/test_faces).
DETECT_IMAGE = square_image(640, 640, [(240, 128, 64), (96, 400, 32), (480, 320, 128)])
FACE_A = square_image(640, 640, [(240, 128, 64)])
FACE_B = square_image(640, 640, [(320, 320, 128)], value=230)
SWAP_SOURCE = square_image(640, 640, [(240, 128, 64)], value=230)
SWAP_TARGET = square_image(640, 640, [(320, 320, 128), (96, 400, 32)])


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run scripts/bootstrap.sh "
            "(or apt-get install chromium chromium-driver)"
        )
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("console-images")
    out = {}
    for name, img in {
        "detect": DETECT_IMAGE,
        "face_a": FACE_A,
        "face_b": FACE_B,
        "source": SWAP_SOURCE,
        "target": SWAP_TARGET,
    }.items():
        out[name] = folder / f"{name}.png"
        out[name].write_bytes(encode(img))
    return out


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("FACEGATE_CONSOLE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(_binary("chromedriver")))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: webdriver.Chrome, css: str, text: str = "") -> WebElement:
    """The first visible element matching css (whose text contains `text`), once there is one."""

    def found(d: webdriver.Chrome) -> WebElement | bool:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            try:
                if element.is_displayed() and text in element.text:
                    return element
            except StaleElementReferenceException:
                continue  # re-rendered under us (Swagger UI does): look again
        return False

    try:
        element: WebElement = WebDriverWait(driver, WAIT_S).until(found)
    except TimeoutException:
        errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".error") if e.text]
        pytest.fail(f"no visible {css!r} containing {text!r}; errors shown: {errors}")
    return element


def screenshot(driver: webdriver.Chrome, folder: Path, name: str) -> None:
    """A downscaled PNG of the page: small enough to commit."""
    png = np.frombuffer(driver.get_screenshot_as_png(), np.uint8)
    img = cv2.imdecode(png, cv2.IMREAD_COLOR)
    scale = SCREENSHOT_WIDTH_PX / img.shape[1]
    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / f"{name}.png"), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def open_console(driver: webdriver.Chrome, base: str, key: str, view: str) -> None:
    driver.get(f"{base}/console/#{view}")
    wait_for(driver, "body[data-ready=true]")
    driver.find_element(By.ID, "api-key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait_for(driver, "#key-state", "key set")


def submit(driver: webdriver.Chrome, form_id: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"#{form_id} button[type=submit]").click()


def canvas_boxes(driver: webdriver.Chrome, canvas_id: str) -> int:
    return int(driver.find_element(By.ID, canvas_id).get_attribute("data-boxes") or 0)


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """URLs the browser fetched since the last call (Chrome's performance log).

    A request the page's Content-Security-Policy blocked never leaves the browser: it is left
    out (ReDoc's footer asks for its logo on a CDN; the CSP refuses it, the logo hides itself).
    """
    asked: dict[str, str] = {}
    blocked: set[str] = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            asked[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason") == "csp":
            blocked.add(params["requestId"])
    return [url for request_id, url in asked.items() if request_id not in blocked]


def console_problems(driver: webdriver.Chrome) -> list[str]:
    """Browser console errors: CSP violations, failed loads, uncaught exceptions."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture
def api(gateway_url: str) -> Iterator[httpx.Client]:
    with api_client(gateway_url, USER_KEY) as http:
        yield http


def test_detect_draws_as_many_boxes_as_the_api_returns(
    browser: webdriver.Chrome,
    gateway_url: str,
    api: httpx.Client,
    images: dict[str, Path],
    screenshots: Path,
) -> None:
    expected = api.post("/v1/detect", files={"image": images["detect"].read_bytes()}).json()
    assert len(expected["faces"]) == 3  # the three squares: the oracle is not vacuous
    open_console(browser, gateway_url, USER_KEY, "detect")
    browser.find_element(By.ID, "detect-file").send_keys(str(images["detect"]))
    submit(browser, "detect-form")
    wait_for(browser, "#detect-status", "3 faces")
    items = browser.find_elements(By.CSS_SELECTOR, "#detect-faces li")
    assert len(items) == len(expected["faces"])
    assert canvas_boxes(browser, "detect-canvas") == len(expected["faces"])
    for item, face in zip(items, expected["faces"], strict=True):
        assert f"score {face['score']:.3f}" in item.text
    assert browser.find_element(By.ID, "detect-error").text == ""
    # The key lives in the tab: not in the URL, not in local storage.
    assert USER_KEY not in browser.current_url
    assert browser.execute_script("return window.localStorage.length") == 0
    assert browser.execute_script("return sessionStorage.getItem('facegate.apiKey')") == USER_KEY
    screenshot(browser, screenshots, "detect")
    assert console_problems(browser) == []


def test_verify_shows_the_api_similarity_and_verdict(
    browser: webdriver.Chrome,
    gateway_url: str,
    api: httpx.Client,
    images: dict[str, Path],
    screenshots: Path,
) -> None:
    files = {
        "image_a": images["face_a"].read_bytes(),
        "image_b": images["face_b"].read_bytes(),
    }
    expected = api.post("/v1/verify", files=files).json()
    open_console(browser, gateway_url, USER_KEY, "verify")
    browser.find_element(By.ID, "verify-file-a").send_keys(str(images["face_a"]))
    browser.find_element(By.ID, "verify-file-b").send_keys(str(images["face_b"]))
    submit(browser, "verify-form")
    shown = wait_for(browser, "#verify-similarity")
    assert float(shown.text) == pytest.approx(expected["similarity"], abs=5e-5)
    verdict = browser.find_element(By.ID, "verify-result").text
    assert ("same person" in verdict) == expected["match"]
    assert canvas_boxes(browser, "verify-canvas-a") == 1
    assert canvas_boxes(browser, "verify-canvas-b") == 1
    screenshot(browser, screenshots, "verify")
    assert console_problems(browser) == []


def test_swap_shows_the_result_image_and_a_download(
    browser: webdriver.Chrome,
    gateway_url: str,
    images: dict[str, Path],
    screenshots: Path,
) -> None:
    open_console(browser, gateway_url, USER_KEY, "swap")
    browser.find_element(By.ID, "swap-source").send_keys(str(images["source"]))
    browser.find_element(By.ID, "swap-target").send_keys(str(images["target"]))
    submit(browser, "swap-form")
    wait_for(browser, "#swap-status", "swapped")
    result = wait_for(browser, "#swap-result")
    size = browser.execute_script(
        "const i = arguments[0]; return [i.complete, i.naturalWidth, i.naturalHeight];", result
    )
    assert size == [True, 640, 640]
    assert "1 face swapped" in browser.find_element(By.ID, "swap-status").text
    link = browser.find_element(By.ID, "swap-download")
    assert link.is_displayed() and (link.get_attribute("href") or "").startswith("blob:")
    screenshot(browser, screenshots, "swap")
    assert console_problems(browser) == []


def test_models_view_lists_states_and_an_admin_loads_the_swapper(
    browser: webdriver.Chrome,
    gateway_url: str,
    api: httpx.Client,
    screenshots: Path,
) -> None:
    expected = {m["name"] for m in api.get("/v1/models").json()["models"]}
    open_console(browser, gateway_url, ADMIN_KEY, "models")
    wait_for(browser, "#models-table tbody tr")
    rows = browser.find_elements(By.CSS_SELECTOR, "#models-table tbody tr td:first-child")
    assert {r.text for r in rows} == expected
    browser.find_element(By.ID, "swapper-load").click()
    wait_for(browser, "#swapper-status", "READY")
    assert browser.find_element(By.ID, "models-error").text == ""
    screenshot(browser, screenshots, "models")
    assert console_problems(browser) == []


def test_a_user_key_cannot_unload_and_sees_the_403_message(
    browser: webdriver.Chrome, gateway_url: str, api: httpx.Client
) -> None:
    message = api.post("/v1/models/swapper/unload").json()["error"]["message"]
    open_console(browser, gateway_url, USER_KEY, "models")
    browser.find_element(By.ID, "swapper-unload").click()
    shown = wait_for(browser, "#models-error", "403")
    assert message in shown.text


def test_a_wrong_key_shows_the_401_message(
    browser: webdriver.Chrome,
    gateway_url: str,
    images: dict[str, Path],
    screenshots: Path,
) -> None:
    with api_client(gateway_url, "not-a-key") as wrong:
        answer = wrong.post("/v1/detect", files={"image": images["detect"].read_bytes()})
    assert answer.status_code == 401
    open_console(browser, gateway_url, "not-a-key", "detect")
    browser.find_element(By.ID, "detect-file").send_keys(str(images["detect"]))
    submit(browser, "detect-form")
    shown = wait_for(browser, "#detect-error", "401")
    assert answer.json()["error"]["message"] in shown.text
    assert browser.find_elements(By.CSS_SELECTOR, "#detect-faces li") == []
    screenshot(browser, screenshots, "wrong-key")


@pytest.mark.parametrize(("page", "rendered"), [("/docs", ".swagger-ui .info"), ("/redoc", "h1")])
def test_docs_render_with_no_request_leaving_the_gateway(
    browser: webdriver.Chrome,
    gateway_url: str,
    screenshots: Path,
    page: str,
    rendered: str,
) -> None:
    requested_urls(browser)  # drain what earlier tests asked for, and the errors they expected
    console_problems(browser)
    browser.get(gateway_url + page)
    wait_for(browser, rendered, "facegate")
    origin = urlsplit(gateway_url).netloc
    urls = requested_urls(browser)
    assert any(urlsplit(u).path == "/openapi.json" for u in urls)
    outside = [u for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
    assert [u for u in outside if urlsplit(u).netloc != origin] == []
    screenshot(browser, screenshots, page.strip("/"))
    problems = console_problems(browser)
    assert [p for p in problems if "Content Security Policy" not in p or "cdn.redoc.ly" not in p] == []
