"""POST /v1/group on a fake backend: the contract (refs, order, limits, scope)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.client import FaceRestClient
from gateway.errors import InvalidParameter
from gateway.ops.bench.people_data import modelled_people, score_grouping

from ..fakes import FakeBackend
from ..images import encode, square_image
from .test_app_fake_backend import USER_KEY, _settings


@pytest.fixture
def http() -> Iterator[TestClient]:
    app = create_app(_settings(), models=FakeBackend())
    with TestClient(app, headers={"X-API-Key": USER_KEY}, raise_server_exceptions=False) as client:
        yield client


def _groups_per_face(body: dict, count: int) -> list[int]:
    found = [-1] * count
    for number, members in enumerate(body["groups"]):
        for ref in members:
            found[ref] = number
    return found


def test_modelled_embeddings_meet_the_issue_bar(http: TestClient) -> None:
    data = modelled_people(seed=11, people=100, singletons=60)
    assert len(data.embeddings) <= 1000
    response = http.post("/v1/group", json={"embeddings": data.embeddings.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    sizes = [len(g) for g in body["groups"]]
    assert sizes == sorted(sizes, reverse=True)

    groups = np.array(_groups_per_face(body, len(data.embeddings)))
    assert sorted(body["ungrouped"]) == np.flatnonzero(groups < 0).tolist()
    score = score_grouping(data, groups)
    assert score.ari >= 0.95 and score.singletons_ungrouped >= 0.9


def test_min_faces_and_max_distance_are_applied(http: TestClient) -> None:
    data = modelled_people(seed=12, people=10, singletons=0, faces_per_person=(3, 3))
    rows = data.embeddings.tolist()
    assert len(http.post("/v1/group?min_faces=4", json={"embeddings": rows}).json()["groups"]) == 0
    # Within 0.1 of each other no two faces of a person are (their cosines are <= 0.75).
    tight = http.post("/v1/group?max_distance=0.1", json={"embeddings": rows}).json()
    assert tight["groups"] == [] and len(tight["ungrouped"]) == 30


@pytest.mark.parametrize(
    ("body", "query", "status"),
    [
        ({"embeddings": [[1.0] * 512]}, "", 422),  # one face: nothing to group
        ({"embeddings": [[1.0] * 512] * 1001}, "", 422),
        ({"embeddings": [[1.0] * 511, [1.0] * 511]}, "", 422),
        ({"embeddings": [[0.0] * 512, [1.0] * 512]}, "", 422),
        ({"faces": []}, "", 422),
        ({"embeddings": [[1.0] * 512] * 2}, "?max_distance=0", 422),
        ({"embeddings": [[1.0] * 512] * 2}, "?min_faces=1", 422),
    ],
)
def test_bad_input_is_a_clear_4xx(http: TestClient, body: dict, query: str, status: int) -> None:
    response = http.post(f"/v1/group{query}", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"]


def test_other_bodies_are_415_and_no_key_is_401(http: TestClient) -> None:
    response = http.post("/v1/group", content=b"x", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert http.post("/v1/group", json={}, headers={"X-API-Key": ""}).status_code == 401


def test_images_give_face_refs_with_boxes(http: TestClient) -> None:
    face = encode(square_image(640, 640, [(160, 160, 64)]))
    black = encode(square_image(640, 640, []))
    response = http.post("/v1/group", files=[("images", face), ("images", black), ("images", face)])
    assert response.status_code == 200, response.text
    body = response.json()
    # The fake recognizer embeds pixels: the same crop twice is one person.
    assert body["ungrouped"] == []
    ((first, second),) = body["groups"]
    assert (first["image"], first["face"], second["image"], second["face"]) == (0, 0, 2, 0)
    assert first["bbox"] == pytest.approx([128, 128, 192, 192])


def test_the_sdk_calls_group(http: TestClient) -> None:
    def forward(request: httpx.Request) -> httpx.Response:
        answer = http.request(
            request.method, str(request.url), content=request.content, headers=request.headers
        )
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)

    data = modelled_people(seed=13, people=5, singletons=2, faces_per_person=(3, 3))
    with FaceRestClient("http://testserver", transport=httpx.MockTransport(forward)) as sdk:
        found = sdk.group_embeddings(data.embeddings, min_faces=3)
        assert sorted(len(g) for g in found.groups) == [3] * 5 and len(found.ungrouped) == 2
        face = encode(square_image(640, 640, [(160, 160, 64)]))
        images = sdk.group_images([face, face])
        assert [(f.image, f.face) for f in images.groups[0]] == [(0, 0), (1, 0)]
        with pytest.raises(InvalidParameter):
            sdk.group_embeddings(data.embeddings[:1])
