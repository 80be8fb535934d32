"""The console's gallery view in headless Chromium: create, enrol, identify, delete; group
unassigned faces and name a group.

Real gateway, real embedded Triton and PostgreSQL (the gallery's session fixtures); the
labels the view draws are checked against the identify answer of the API itself.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from gateway.ops.bench.people_data import modelled_people

from ..gallery.conftest import ENROLL_KEY, client_for
from ..gallery.people import SAME_PERSON, group_png, person_png
from .conftest import WAIT_S, canvas_boxes, console_problems, open_console, screenshot, wait_for

pytestmark = [pytest.mark.gallery, pytest.mark.integration]
ALICE, BOB = 11, 12
GROUP = [(ALICE, (160, 160)), (BOB, (480, 480))]


def _fill(driver: webdriver.Chrome, field_id: str, value: str) -> None:
    field = driver.find_element(By.ID, field_id)
    field.clear()
    field.send_keys(value)


def _subject_rows(driver: webdriver.Chrome) -> dict[str, str]:
    # In one script, as _identified: the table is redrawn after every change.
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#subjects tbody tr'),"
        " tr => [tr.getAttribute('data-subject'), tr.querySelector('td').innerText]);"
    )
    return {str(subject): str(faces).strip() for subject, faces in rows}


def _identified(driver: webdriver.Chrome) -> list[str]:
    # One script reads the whole list: element handles found first would go stale when the
    # view redraws the list for a newer answer in between (seen in CI).
    values = driver.execute_script(
        "return Array.from(document.querySelectorAll('#identify-faces li'),"
        " li => li.getAttribute('data-subject'));"
    )
    return [str(value) for value in values]


def test_enrol_identify_and_delete_from_the_console(
    browser: webdriver.Chrome,
    gallery_gateway: str,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    collection = f"console-{uuid.uuid4().hex[:8]}"
    files = {
        "alice.png": person_png(ALICE),
        "bob-1.png": person_png(BOB),
        "bob-2.png": person_png(BOB, centre=(192, 256)),
        "group.png": group_png(GROUP),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    open_console(browser, gallery_gateway, ENROLL_KEY, "gallery")
    _fill(browser, "collection-name", collection)
    browser.find_element(By.CSS_SELECTOR, "#collection-form button").click()
    wait_for(browser, "#gallery-status", f"created collection {collection}")

    for subject, photos in (("alice", ["alice.png"]), ("bob", ["bob-1.png", "bob-2.png"])):
        _fill(browser, "enrol-subject", subject)
        upload = browser.find_element(By.ID, "enrol-files")
        upload.clear()
        upload.send_keys("\n".join(str(tmp_path / p) for p in photos))
        browser.find_element(By.CSS_SELECTOR, "#enrol-form button").click()
        wait_for(browser, "#gallery-status", f"enrolled {len(photos)} face(s) as {subject}")
    WebDriverWait(browser, WAIT_S).until(lambda d: len(_subject_rows(d)) == 2)
    assert _subject_rows(browser) == {"alice": "1", "bob": "2"}

    with client_for(gallery_gateway, ENROLL_KEY) as api:
        expected = api.post(
            f"/v1/collections/{collection}/identify",
            files={"image": files["group.png"]},
            params={"threshold": SAME_PERSON},
        ).json()["faces"]
    best = [face["matches"][0]["subject"] if face["matches"] else "" for face in expected]
    assert sorted(best) == ["alice", "bob"]  # the oracle itself tells the two apart

    _fill(browser, "identify-threshold", str(SAME_PERSON))
    browser.find_element(By.ID, "identify-file").send_keys(str(tmp_path / "group.png"))
    browser.find_element(By.CSS_SELECTOR, "#identify-form button").click()
    wait_for(browser, "#gallery-status", "2 face(s) in the photo")
    assert _identified(browser) == best
    assert canvas_boxes(browser, "identify-canvas") == 2
    screenshot(browser, screenshots, "gallery")

    row = browser.find_element(By.CSS_SELECTOR, '#subjects tbody tr[data-subject="bob"]')
    row.find_element(By.CSS_SELECTOR, "button").click()
    confirmation = WebDriverWait(browser, WAIT_S).until(lambda d: d.switch_to.alert)
    assert "bob" in confirmation.text
    confirmation.accept()
    wait_for(browser, "#gallery-status", "deleted subject bob")
    WebDriverWait(browser, WAIT_S).until(lambda d: list(_subject_rows(d)) == ["alice"])
    with httpx.Client(base_url=gallery_gateway, headers={"X-API-Key": ENROLL_KEY}) as api:
        gone = api.get(f"/v1/collections/{collection}/subjects/bob")
    assert gone.status_code == 404

    browser.find_element(By.CSS_SELECTOR, "#identify-form button").click()
    # Until the redrawn list is the final one (an emptied list in between has no bob either).
    WebDriverWait(browser, WAIT_S).until(lambda d: sorted(_identified(d)) == ["", "alice"])
    assert console_problems(browser) == []


def test_unassigned_faces_are_grouped_and_a_group_named(
    browser: webdriver.Chrome, gallery_gateway: str
) -> None:
    collection = f"people-{uuid.uuid4().hex[:8]}"
    data = modelled_people(seed=31, people=2, singletons=0, faces_per_person=(6, 6))
    dana, other = (np.flatnonzero(data.people == p) for p in (0, 1))
    with client_for(gallery_gateway, ENROLL_KEY) as api:
        assert api.post("/v1/collections", json={"name": collection}).status_code == 201
        path = f"/v1/collections/{collection}"
        named = {"embeddings": data.embeddings[dana[:3]].tolist()}
        assert api.post(f"{path}/subjects/dana/faces", json=named).status_code == 201
        rest = np.concatenate([dana[3:], other])
        loose = {"embeddings": data.embeddings[rest].tolist()}
        assert api.post(f"{path}/faces", json=loose).status_code == 201

    open_console(browser, gallery_gateway, ENROLL_KEY, "gallery")
    Select(browser.find_element(By.ID, "collection-pick")).select_by_value(collection)
    wait_for(browser, "#unassigned-count", "9 unassigned face(s)")
    browser.find_element(By.CSS_SELECTOR, "#cluster-form button").click()
    wait_for(browser, "#gallery-status", "grouped: 9 face(s) assigned: new unknown-0001")
    wait_for(browser, "#unassigned-count", "0 unassigned face(s)")

    browser.find_element(
        By.CSS_SELECTOR, '#subjects tr[data-subject="unknown-0001"] button'
    ).click()
    prompt = WebDriverWait(browser, WAIT_S).until(lambda d: d.switch_to.alert)
    prompt.send_keys("erin")
    prompt.accept()
    wait_for(browser, "#gallery-status", "named unknown-0001 as erin")
    WebDriverWait(browser, WAIT_S).until(lambda d: _subject_rows(d) == {"dana": "6", "erin": "6"})
    assert console_problems(browser) == []
