"""Unassigned faces and cluster runs on the real embedded PostgreSQL (a fake inference
backend: every face here is an embedding, so no Triton is needed)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.audit import configure_audit_log
from gateway.client.gallery import FaceGalleryClient
from gateway.config import Settings
from gateway.errors import NotFound
from gateway.gallery_ports import ClusterOutcome
from gateway.ops.bench.people_data import ModelledPeople, modelled_people
from gateway.ops.cli import main
from gateway.service import clustering as clustering_service

from ..fakes import FakeBackend

pytestmark = [pytest.mark.gallery, pytest.mark.integration]
ENROLL = "cluster-enroll-key-0123456789"
USER = "cluster-user-key-0123456789"
NAMED = 5
ENROLLED_PER_NAMED = 3


@pytest.fixture
def http(fresh_database: str) -> Iterator[TestClient]:
    settings = Settings(
        api_keys=f"user:{USER},enroll:{ENROLL}",
        gallery_url=fresh_database,
        recognizer_sha256="c" * 64,
        json_logs=False,
    )  # type: ignore[call-arg]
    app = create_app(settings, models=FakeBackend())
    with TestClient(app, headers={"X-API-Key": ENROLL}, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 60
        while client.get("/v1/collections").status_code != 200:
            assert time.monotonic() < deadline, "gallery not ready"
            time.sleep(0.1)
        assert client.post("/v1/collections", json={"name": "album"}).status_code == 201
        yield client


def _enrol(http: TestClient, rows: np.ndarray, subject: str | None = None) -> list[str]:
    path = "/v1/collections/album/" + (f"subjects/{subject}/faces" if subject else "faces")
    response = http.post(path, json={"embeddings": rows.tolist()})
    assert response.status_code == 201, response.text
    return [face["id"] for face in response.json()["faces"]]


def _all_faces(http: TestClient, subject: str | None = None) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    cursor = None
    while True:
        params = {"limit": 37, "subject": subject, "cursor": cursor}
        query = {k: v for k, v in params.items() if v is not None}
        body = http.get("/v1/collections/album/faces", params=query).json()
        found.update({face["id"]: face["subject"] for face in body["faces"]})
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def _scenario(http: TestClient) -> tuple[ModelledPeople, dict[str, int], set[str]]:
    """5 named people (3 enrolled faces each) and ~200 unassigned faces of 25 people
    (the 5 among them) plus 20 singletons; returns the data, face id -> person, named ids."""
    data = modelled_people(seed=21, people=25, singletons=20, faces_per_person=(8, 10))
    person_of: dict[str, int] = {}
    named: set[str] = set()
    unassigned = np.ones(len(data.people), dtype=bool)
    for person in range(NAMED):
        rows = np.flatnonzero(data.people == person)[:ENROLLED_PER_NAMED]
        unassigned[rows] = False
        ids = _enrol(http, data.embeddings[rows], f"person-{person}")
        named.update(ids)
        person_of.update(zip(ids, data.people[rows].tolist(), strict=True))
    rows = np.flatnonzero(unassigned)
    ids = _enrol(http, data.embeddings[rows])
    person_of.update(zip(ids, data.people[rows].tolist(), strict=True))
    return data, person_of, named


def test_done_when_scenario(http: TestClient) -> None:
    data, person_of, named = _scenario(http)
    singles = set(data.people[data.singleton].tolist())
    before = _all_faces(http)
    assert sum(s is None for s in before.values()) >= 200

    response = http.post("/v1/collections/album/cluster")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["pending"] == 0
    after = _all_faces(http)

    # No named face moved.
    assert all(after[fid] == before[fid] for fid in named)
    # The named people's unassigned faces joined them.
    theirs = [f for f, p in person_of.items() if p < NAMED and f not in named]
    joined = [after[f] == f"person-{person_of[f]}" for f in theirs]
    assert np.mean(joined) >= 0.95, np.mean(joined)
    # New subjects are pure, and were reported.
    members: dict[str, list[int]] = {}
    for fid, subject in after.items():
        if subject is not None and subject.startswith("unknown-"):
            members.setdefault(subject, []).append(person_of[fid])
    assert sorted(members) == sorted(result["subjects_created"])
    assert all(len(m) >= 3 for m in members.values())
    majority = sum(Counter(m).most_common(1)[0][1] for m in members.values())
    assert majority / sum(len(m) for m in members.values()) >= 0.95
    assert len(members) >= 15  # 20 unnamed people with 8-10 faces each
    # Singletons stay unassigned.
    single_faces = [f for f, p in person_of.items() if p in singles]
    assert np.mean([after[f] is None for f in single_faces]) >= 0.9
    assert result["unassigned"] == sum(s is None for s in after.values())
    assert result["assigned"] == sum(1 for f in after if before[f] is None and after[f] is not None)

    # Incremental: nothing new, nothing changes; new faces only are placed.
    again = http.post("/v1/collections/album/cluster").json()
    assert again == {**again, "subjects_created": [], "assigned": 0, "pending": 0}
    newcomer = modelled_people(seed=99, people=1, singletons=0, faces_per_person=(4, 4))
    new_ids = _enrol(http, newcomer.embeddings)
    third = http.post("/v1/collections/album/cluster?min_faces=4").json()
    assert third["assigned"] == 4 and len(third["subjects_created"]) == 1
    latest = _all_faces(http)
    assert {latest[f] for f in new_ids} == set(third["subjects_created"])
    assert all(latest[f] == after[f] for f in after)


def test_faces_by_hand_and_naming_a_group(http: TestClient) -> None:
    data = modelled_people(seed=5, people=2, singletons=0, faces_per_person=(4, 4))
    ids = _enrol(http, data.embeddings)
    assert set(_all_faces(http, "none")) == set(ids)
    created = http.post("/v1/collections/album/cluster").json()["subjects_created"]
    assert created == ["unknown-0001", "unknown-0002"]

    # Name a group: its faces move to the name, the server-made subject goes.
    first = [f for f, s in _all_faces(http).items() if s == "unknown-0001"]
    put = http.put("/v1/collections/album/subjects/Ada", json={"merge_from": "unknown-0001"})
    assert put.status_code == 201, put.text
    assert sorted(put.json()["face_ids"]) == sorted(first)
    assert http.get("/v1/collections/album/subjects/unknown-0001").status_code == 404
    assert set(_all_faces(http, "Ada")) == set(first)

    # Unassign and assign by hand; a later run does not take a face unassigned by hand.
    face = first[0]
    out = http.put(f"/v1/collections/album/faces/{face}", json={"subject": None})
    assert out.status_code == 200 and out.json()["subject"] is None
    assert http.post("/v1/collections/album/cluster").json()["assigned"] == 0
    out = http.put(f"/v1/collections/album/faces/{face}", json={"subject": "Bo"})
    assert out.json()["subject"] == "Bo"
    # Numbers are never reused, even after unknown-0001 was renamed.
    more = modelled_people(seed=6, people=1, singletons=0, faces_per_person=(3, 3))
    _enrol(http, more.embeddings)
    assert http.post("/v1/collections/album/cluster").json()["subjects_created"] == ["unknown-0003"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/collections/album/faces?cursor=bm90LWEtY3Vyc29y", None, 422),
        ("GET", "/v1/collections/album/faces?subject=nobody", None, 404),
        ("GET", "/v1/collections/nope/faces", None, 404),
        ("PUT", "/v1/collections/album/faces/not-a-uuid", {"subject": "x"}, 404),
        (
            "PUT",
            f"/v1/collections/album/faces/{'0' * 8}-0000-0000-0000-{'0' * 12}",
            {"subject": "x"},
            404,
        ),
        ("PUT", "/v1/collections/album/faces/x", {"subject": ""}, 422),
        ("PUT", "/v1/collections/album/subjects/a", {"merge_from": "nobody"}, 404),
        ("PUT", "/v1/collections/album/subjects/a", {"merge_from": "a"}, 422),
        ("POST", "/v1/collections/album/cluster?min_faces=1", None, 422),
        ("POST", "/v1/collections/nope/cluster", None, 404),
    ],
)
def test_bad_requests_are_clear_4xx(
    http: TestClient, method: str, path: str, body: object, status: int
) -> None:
    response = http.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"]


def test_scopes(http: TestClient) -> None:
    user = {"X-API-Key": USER}
    assert http.get("/v1/collections/album/faces", headers=user).status_code == 200
    assert http.post("/v1/collections/album/cluster", headers=user).status_code == 403
    face = f"{'0' * 8}-0000-0000-0000-{'0' * 12}"
    put = http.put(f"/v1/collections/album/faces/{face}", json={"subject": None}, headers=user)
    assert put.status_code == 403


def test_the_sdk_calls_every_route(http: TestClient) -> None:
    def forward(request: httpx.Request) -> httpx.Response:
        answer = http.request(
            request.method, str(request.url), content=request.content, headers=request.headers
        )
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)

    data = modelled_people(seed=8, people=2, singletons=1, faces_per_person=(3, 3))
    with FaceGalleryClient("http://testserver", transport=httpx.MockTransport(forward)) as sdk:
        ids = sdk.enrol_unassigned_embeddings("album", data.embeddings)
        assert sorted(f["id"] for f in sdk.faces("album", "none", page_size=2)) == sorted(ids)
        result = sdk.cluster("album")
        assert result["subjects_created"] == ["unknown-0001", "unknown-0002"]
        assert result["assigned"] == 6 and result["unassigned"] == 1
        assert sdk.merge_subject("album", "unknown-0002", "Cy")["faces"] == 3
        lone = next(iter(sdk.faces("album", "none")))["id"]
        assert sdk.assign_face("album", lone, "Cy")["subject"] == "Cy"
        assert len(list(sdk.faces("album", "Cy"))) == 4
        with pytest.raises(NotFound):
            sdk.merge_subject("album", "x", "y")


def test_cluster_runs_and_assignments_are_audited(http: TestClient, tmp_path: Path) -> None:
    audit_file = tmp_path / "audit.jsonl"
    configure_audit_log(audit_file)
    try:
        data = modelled_people(seed=4, people=1, singletons=0, faces_per_person=(3, 3))
        ids = _enrol(http, data.embeddings)
        assert http.post("/v1/collections/album/cluster").status_code == 200
        put = http.put(f"/v1/collections/album/faces/{ids[0]}", json={"subject": "Di"})
        assert put.status_code == 200
    finally:
        configure_audit_log(None)
    records = [json.loads(line)["audit"] for line in audit_file.read_text().splitlines()]
    mine = [(r["action"], r["collection"], r["subjects"], r["face_ids"]) for r in records]
    assert mine == [
        ("faces.enrol", "album", [], ids),
        ("faces.cluster", "album", ["unknown-0001"], []),
        ("face.assign", "album", ["Di"], [ids[0]]),
    ]


def test_export_and_import_keep_unassigned_faces(
    http: TestClient, fresh_database: str, tmp_path: Path
) -> None:
    data = modelled_people(seed=12, people=2, singletons=1, faces_per_person=(3, 3))
    _enrol(http, data.embeddings[:2], "Ed")
    _enrol(http, data.embeddings[2:])
    dump = tmp_path / "album.jsonl"
    assert main(["gallery", "export", "album", "-o", str(dump), "--url", fresh_database]) == 0
    assert (
        main(["gallery", "import", str(dump), "--collection", "copy", "--url", fresh_database]) == 0
    )
    copied = Counter(f["subject"] for f in http.get("/v1/collections/copy/faces").json()["faces"])
    assert copied == {"Ed": 2, None: 5}


def test_a_subject_being_erased_is_out_of_face_routes_and_runs(
    http: TestClient, fresh_database: str
) -> None:
    data = modelled_people(seed=5, people=1, singletons=0, faces_per_person=(7, 7))
    eve = _enrol(http, data.embeddings[:4], "Eve")
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE gallery_subjects SET erasing = true WHERE name = 'Eve'")
    assert _all_faces(http) == {}
    listed = http.get("/v1/collections/album/faces", params={"subject": "Eve"})
    assert listed.status_code == 404
    for target in (None, "Other"):
        moved = http.put(f"/v1/collections/album/faces/{eve[0]}", json={"subject": target})
        assert moved.status_code == 409, moved.text
        assert "being erased" in moved.json()["error"]["message"]
    # The same person's new faces form a subject of their own, not a join to Eve.
    new = _enrol(http, data.embeddings[4:])
    run = http.post("/v1/collections/album/cluster", params={"min_faces": 3}).json()
    assert run["subjects_created"] == ["unknown-0001"] and run["assigned"] == 3
    assert _all_faces(http) == dict.fromkeys(new, "unknown-0001")


def test_large_groups_and_joins_are_written_in_bounded_calls(
    http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clustering_service, "WRITE_FACES", 4)
    data = modelled_people(seed=8, people=2, singletons=0, faces_per_person=(12, 12))
    ann = data.embeddings[data.people == 0]
    _enrol(http, ann[:3], "Ann")
    joining = _enrol(http, ann[3:])
    grouped = _enrol(http, data.embeddings[data.people == 1])
    run = http.post("/v1/collections/album/cluster", params={"min_faces": 3}).json()
    assert run["subjects_created"] == ["unknown-0001"] and run["pending"] == 0
    assert run["assigned"] == len(joining) + len(grouped)
    faces = _all_faces(http)
    assert {faces[f] for f in joining} == {"Ann"} and {faces[f] for f in grouped} == {
        "unknown-0001"
    }


def test_a_group_another_run_took_meanwhile_is_not_made_a_small_subject(
    http: TestClient, fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = modelled_people(seed=5, people=1, singletons=0, faces_per_person=(4, 4))
    _enrol(http, data.embeddings[:1] * -1, "Bob")
    ids = _enrol(http, data.embeddings)
    plan = clustering_service.plan_step

    def planned_then_taken(*args: object, **kwargs: object) -> ClusterOutcome:
        outcome = plan(*args, **kwargs)  # type: ignore[arg-type]
        # Another run (here: a hand assignment) takes three of the group's four faces
        # between this run's planning and its write.
        with psycopg.connect(fresh_database, autocommit=True) as conn:
            conn.execute(
                "UPDATE gallery_faces SET subject = 'Bob' WHERE id = ANY(%s)",
                ([uuid.UUID(f) for f in ids[:3]],),
            )
        return outcome

    monkeypatch.setattr(clustering_service, "plan_step", planned_then_taken)
    run = http.post("/v1/collections/album/cluster", params={"min_faces": 3}).json()
    assert run["subjects_created"] == [] and run["assigned"] == 0
    assert _all_faces(http, "none") == {ids[3]: None}
