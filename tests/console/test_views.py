"""The console's views end to end in headless Chromium, against the real gateway and Triton.

Each view is driven as a user would (paste a key, pick files, press the button) and its result
is checked against what the API itself answers for the same input; each saves a screenshot.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from ..api.conftest import ADMIN_KEY, USER_KEY, api_client
from ..images import encode, square_image
from .conftest import (
    WAIT_S,
    canvas_boxes,
    console_problems,
    open_console,
    requested_urls,
    screenshot,
    submit,
    wait_for,
)

pytestmark = pytest.mark.integration


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


def test_camera_capture_fills_the_file_and_detects(
    browser: webdriver.Chrome, gateway_url: str
) -> None:
    open_console(browser, gateway_url, USER_KEY, "detect")
    browser.find_element(By.CSS_SELECTOR, "#view-detect button.camera").click()
    wait_for(browser, "#camera-dialog")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.execute_script("return document.getElementById('camera-video').videoWidth")
    )
    width, height = browser.execute_script(
        "const v = document.getElementById('camera-video'); return [v.videoWidth, v.videoHeight];"
    )
    browser.find_element(By.ID, "camera-take").click()
    WebDriverWait(browser, WAIT_S).until(
        lambda d: (
            d.execute_script(
                "const f = document.getElementById('detect-file').files; return f.length && f[0].name;"
            )
            == "camera.png"
        )
    )
    assert browser.execute_script("return document.getElementById('camera-dialog').open") is False
    # The camera is released once the frame is taken.
    assert (
        browser.execute_script("return document.getElementById('camera-video').srcObject") is None
    )
    submit(browser, "detect-form")
    # Chromium's test pattern is no face to anyone; what matters is the frame went through.
    wait_for(browser, "#detect-status", f"in {width}×{height} px")
    assert browser.find_element(By.ID, "detect-error").text == ""
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
    assert [
        p for p in problems if "Content Security Policy" not in p or "cdn.redoc.ly" not in p
    ] == []


def test_every_control_is_labelled_and_the_views_work_from_the_keyboard(
    browser: webdriver.Chrome, gateway_url: str
) -> None:
    browser.get(f"{gateway_url}/console/")
    wait_for(browser, "body[data-ready=true]")
    unlabelled = browser.execute_script(
        """
        const missing = [];
        for (const c of document.querySelectorAll("input, select, textarea")) {
          if (!c.labels.length && !c.getAttribute("aria-label")) missing.push(c.id || c.outerHTML);
        }
        for (const b of document.querySelectorAll("button, a")) {
          if (!(b.textContent.trim() || b.getAttribute("aria-label"))) missing.push(b.outerHTML);
        }
        return missing;
        """
    )
    assert unlabelled == []
    # Tab from the top reaches the nav; Enter on a view link opens that view.
    body = browser.find_element(By.TAG_NAME, "body")
    for _ in range(40):
        body.send_keys(Keys.TAB)
        active = browser.switch_to.active_element
        if active.get_attribute("data-view") == "verify":
            break
    else:
        pytest.fail("the Verify link is not reachable with Tab")
    active.send_keys(Keys.ENTER)
    wait_for(browser, "#view-verify h2")
    assert browser.find_element(By.ID, "view-detect").is_displayed() is False
    link = browser.find_element(By.CSS_SELECTOR, "nav a[data-view=verify]")
    assert link.get_attribute("aria-current") == "page"


def test_dropping_a_file_on_the_zone_fills_its_input(
    browser: webdriver.Chrome, gateway_url: str, images: dict[str, Path]
) -> None:
    open_console(browser, gateway_url, USER_KEY, "detect")
    png = base64.b64encode(images["detect"].read_bytes()).decode()
    # What a drag from the desktop delivers: a drop event whose DataTransfer holds the file.
    browser.execute_script(
        """
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        const zone = document.getElementById("detect-drop");
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
        """,
        png,
    )
    assert browser.execute_script(
        "return document.getElementById('detect-file').files[0].name"
    ) == ("dropped.png")
    submit(browser, "detect-form")
    wait_for(browser, "#detect-status", "3 faces")


def test_verify_without_a_face_shows_the_api_422_message(
    browser: webdriver.Chrome, gateway_url: str, api: httpx.Client, tmp_path: Path
) -> None:
    blank = tmp_path / "blank.png"
    blank.write_bytes(encode(square_image(320, 240, [])))
    face = tmp_path / "face.png"
    face.write_bytes(encode(square_image(640, 640, [(240, 128, 64)])))
    answer = api.post(
        "/v1/verify", files={"image_a": face.read_bytes(), "image_b": blank.read_bytes()}
    )
    assert answer.status_code == 422
    open_console(browser, gateway_url, USER_KEY, "verify")
    browser.find_element(By.ID, "verify-file-a").send_keys(str(face))
    browser.find_element(By.ID, "verify-file-b").send_keys(str(blank))
    submit(browser, "verify-form")
    shown = wait_for(browser, "#verify-error", "422")
    assert answer.json()["error"]["message"] in shown.text
    assert browser.find_element(By.ID, "verify-result").text == ""
    console_problems(browser)  # the failed call is logged there: expected


def test_detect_shows_age_gender_and_liveness_when_asked(
    browser: webdriver.Chrome,
    gateway_url: str,
    api: httpx.Client,
    images: dict[str, Path],
) -> None:
    params = {"attributes": "true", "liveness": "true"}
    expected = api.post(
        "/v1/detect", files={"image": images["detect"].read_bytes()}, params=params
    ).json()["faces"]
    assert len(expected) == 3 and all("age" in f and "liveness" in f for f in expected)
    open_console(browser, gateway_url, USER_KEY, "detect")
    browser.find_element(By.ID, "detect-attributes").click()
    browser.find_element(By.ID, "detect-liveness").click()
    browser.find_element(By.ID, "detect-file").send_keys(str(images["detect"]))
    submit(browser, "detect-form")
    wait_for(browser, "#detect-status", "3 faces")
    items = browser.find_elements(By.CSS_SELECTOR, "#detect-faces li")
    for item, face in zip(items, expected, strict=True):
        gender = "female" if face["gender"] == "F" else "male"
        assert f"{gender}, age {face['age']}" in item.text
        live = face["liveness"]
        if live.get("reason"):
            assert f"liveness: {live['reason']}" in item.text
        else:
            state = "live" if live["is_live"] else "not live"
            assert f"{state} ({live['score']:.3f})" in item.text
    assert console_problems(browser) == []


def test_detect_draws_the_106_points_and_shows_pose_and_quality(
    browser: webdriver.Chrome,
    gateway_url: str,
    api: httpx.Client,
    images: dict[str, Path],
) -> None:
    params = {"dense_landmarks": "true", "pose": "true", "quality": "true"}
    expected = api.post(
        "/v1/detect", files={"image": images["detect"].read_bytes()}, params=params
    ).json()["faces"]
    assert len(expected) == 3 and all("pose" in f and "quality" in f for f in expected)
    open_console(browser, gateway_url, USER_KEY, "detect")
    browser.find_element(By.ID, "detect-dense").click()
    browser.find_element(By.ID, "detect-quality").click()
    browser.find_element(By.ID, "detect-file").send_keys(str(images["detect"]))
    submit(browser, "detect-form")
    wait_for(browser, "#detect-status", "3 faces")
    canvas = browser.find_element(By.ID, "detect-canvas")
    assert canvas.get_attribute("data-points") == str(3 * 106)
    items = browser.find_elements(By.CSS_SELECTOR, "#detect-faces li")
    for item, face in zip(items, expected, strict=True):
        assert f"yaw {face['pose']['yaw']:.1f}°" in item.text
        assert f"quality {face['quality']['for_recognition']}" in item.text
    assert console_problems(browser) == []
