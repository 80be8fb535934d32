"""Headless Chromium for the console's tests, and the helpers that drive it.

What the browser fetched comes from Chrome's performance log; console errors (CSP violations,
failed loads, uncaught exceptions) from its browser log. Screenshots go to
FACEGATE_CONSOLE_SCREENSHOTS (docs/console to refresh the committed ones), else to a
temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from ..api.conftest import gateway_url  # noqa: F401  (the session gateway, for these tests too)
from ..gallery.conftest import gallery_gateway, postgres  # noqa: F401  (the gallery's, likewise)
from ..images import encode, square_image

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
    "--window-size=1280,1300",
    # A synthetic camera (Chromium's test pattern), granted without a prompt: the camera
    # capture path runs in the tests too.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
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
    """A freshly loaded console on `view` with `key` pasted."""
    # A URL differing only in its #fragment would not reload: the last test's files stay.
    driver.get("about:blank")
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
