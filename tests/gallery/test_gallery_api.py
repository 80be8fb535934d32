"""The gallery routes end to end: real gateway, real embedded Triton, real PostgreSQL."""

from __future__ import annotations

import base64
import logging
import uuid

import httpx
import numpy as np
import psycopg
import pytest

from gateway.ops.servers.postgres import EmbeddedPostgres

from .conftest import ENROLL_KEY
from .people import SAME_PERSON, group_png, person_png

pytestmark = [pytest.mark.gallery, pytest.mark.integration]


def new_collection(http: httpx.Client, **metadata: object) -> str:
    name = f"c-{uuid.uuid4().hex[:12]}"
    response = http.post("/v1/collections", json={"name": name, "metadata": metadata})
    assert response.status_code == 201, response.text
    return name


def enrol(http: httpx.Client, collection: str, subject: str, *pngs: bytes) -> list[str]:
    response = http.post(
        f"/v1/collections/{collection}/subjects/{subject}/faces",
        files=[("image", (f"{i}.png", png, "image/png")) for i, png in enumerate(pngs)],
    )
    assert response.status_code == 201, response.text
    return [face["id"] for face in response.json()["faces"]]


def identify(http: httpx.Client, collection: str, png: bytes, **params: object) -> list[dict]:
    response = http.post(
        f"/v1/collections/{collection}/identify",
        files={"image": png},
        params={"threshold": SAME_PERSON, **params},
    )
    assert response.status_code == 200, response.text
    faces: list[dict] = response.json()["faces"]
    return faces


def test_enrol_identify_delete_end_to_end(
    enroller: httpx.Client, reader: httpx.Client, postgres: EmbeddedPostgres
) -> None:
    collection = new_collection(enroller, site="lobby")
    people = {f"person-{seed}": seed for seed in (11, 12, 13)}
    for subject, seed in people.items():
        (face_id,) = enrol(enroller, collection, subject, person_png(seed))
        uuid.UUID(face_id)
    # Another photo of each person (elsewhere in the frame) finds that person first.
    for subject, seed in people.items():
        (face,) = identify(reader, collection, person_png(seed, centre=(192, 256)), top_k=3)
        assert face["matches"][0]["subject"] == subject
        assert face["matches"][0]["similarity"] >= SAME_PERSON
        assert len(face["bbox"]) == 4 and len(face["landmarks"]) == 5
    # A group photo: each face is identified on its own.
    group = group_png([(21, (160, 160)), (22, (480, 160))])
    enrol(enroller, collection, "alice", group_png([(21, (320, 480))]))
    faces = identify(reader, collection, group)
    assert {m["subject"] for f in faces for m in f["matches"]} == {"alice"}
    # A stranger matches nobody at the same-person threshold.
    (stranger,) = identify(reader, collection, person_png(99))
    assert stranger["matches"] == []

    listing = reader.get("/v1/collections").json()["collections"]
    (mine,) = [c for c in listing if c["name"] == collection]
    assert (mine["subjects"], mine["faces"], mine["metadata"]) == (4, 4, {"site": "lobby"})
    assert len(mine["recognizer_sha256"]) == 64

    gone = enroller.delete(f"/v1/collections/{collection}/subjects/person-12")
    assert gone.status_code == 204
    (face,) = identify(
        reader, collection, person_png(12, centre=(192, 256)), threshold=-1, top_k=10
    )
    assert "person-12" not in {m["subject"] for m in face["matches"]}
    assert reader.get(f"/v1/collections/{collection}/subjects/person-12").status_code == 404
    # Erasure is real: the database itself holds no row of the subject.
    with psycopg.connect(postgres.url()) as conn:
        rows = conn.execute(
            "SELECT (SELECT count(*) FROM gallery_faces WHERE subject = 'person-12'),"
            " (SELECT count(*) FROM gallery_subjects WHERE name = 'person-12')"
        ).fetchone()
    assert rows == (0, 0)


def test_subject_read_put_and_face_delete(enroller: httpx.Client, reader: httpx.Client) -> None:
    collection = new_collection(enroller)
    created = enroller.put(
        f"/v1/collections/{collection}/subjects/bob", json={"metadata": {"a": 1}}
    )
    assert created.status_code == 201 and created.json()["faces"] == 0
    again = enroller.put(f"/v1/collections/{collection}/subjects/bob", json={"metadata": {"a": 2}})
    assert again.status_code == 200 and again.json()["metadata"] == {"a": 2}
    # Batch enrolment: several photos in one call, one face each.
    ids = enrol(enroller, collection, "bob", person_png(31), person_png(31, centre=(192, 256)))
    subject = reader.get(f"/v1/collections/{collection}/subjects/bob").json()
    assert subject["faces"] == 2 and sorted(subject["face_ids"]) == sorted(ids)
    assert enroller.delete(f"/v1/collections/{collection}/faces/{ids[0]}").status_code == 204
    assert enroller.delete(f"/v1/collections/{collection}/faces/{ids[0]}").status_code == 404
    subject = reader.get(f"/v1/collections/{collection}/subjects/bob").json()
    assert subject["face_ids"] == [ids[1]]
    # Verify against the subject: the same person matches, another does not.
    same = reader.post(
        f"/v1/collections/{collection}/subjects/bob/verify",
        files={"image": person_png(31, centre=(448, 448))},
        params={"threshold": SAME_PERSON},
    ).json()
    assert same["match"] is True and same["similarity"] == pytest.approx(1.0, abs=2e-3)
    other = reader.post(
        f"/v1/collections/{collection}/subjects/bob/verify",
        json={"image": base64.b64encode(person_png(32)).decode()},
        params={"threshold": SAME_PERSON},
    ).json()
    assert other["match"] is False and other["similarity"] < same["similarity"]


def test_embeddings_in_and_out(enroller: httpx.Client, reader: httpx.Client) -> None:
    collection = new_collection(enroller)
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((3, 512))
    response = enroller.post(
        f"/v1/collections/{collection}/subjects/carol/faces",
        json={"embeddings": vectors.tolist()},
    )
    assert response.status_code == 201, response.text
    assert len(response.json()["faces"]) == 3 and "bbox" not in response.json()["faces"][0]
    query = (vectors[1] * 3.0).tolist()  # scale does not matter: embeddings are normalised
    found = reader.post(
        f"/v1/collections/{collection}/identify", json={"embeddings": [query]}
    ).json()
    (face,) = found["faces"]
    assert face["matches"][0]["subject"] == "carol"
    assert face["matches"][0]["similarity"] == pytest.approx(1.0, abs=2e-3)
    assert "bbox" not in face


def test_pagination_visits_every_subject_once(enroller: httpx.Client, reader: httpx.Client) -> None:
    collection = new_collection(enroller)
    names = sorted(f"s{i:02d}" for i in range(23))
    for name in names:
        assert enroller.put(f"/v1/collections/{collection}/subjects/{name}").status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = reader.get(f"/v1/collections/{collection}/subjects", params=params).json()
        seen += [s["subject"] for s in page["subjects"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names and pages == 3


def test_errors_are_clear_4xx(enroller: httpx.Client, reader: httpx.Client) -> None:
    collection = new_collection(enroller)
    duplicate = enroller.post("/v1/collections", json={"name": collection})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "conflict"
    cases = [
        (reader.get("/v1/collections/nope-404"), 404, "not_found"),
        (reader.get(f"/v1/collections/{collection}/subjects/nobody"), 404, "not_found"),
        (enroller.delete(f"/v1/collections/{collection}/faces/not-a-uuid"), 404, "not_found"),
        (enroller.delete(f"/v1/collections/{collection}/faces/{uuid.uuid4()}"), 404, "not_found"),
        (enroller.post("/v1/collections", json={"name": "bad name!"}), 422, "invalid_parameter"),
        (
            enroller.post(
                f"/v1/collections/{collection}/subjects/x/faces",
                files={"image": group_png([])},
            ),
            422,
            "no_face",
        ),
        (
            enroller.post(
                f"/v1/collections/{collection}/subjects/x/faces",
                files={"image": person_png(1)},
                params={"face": "3"},
            ),
            422,
            "invalid_parameter",
        ),
        (
            enroller.post(
                f"/v1/collections/{collection}/subjects/x/faces", json={"embedding": [1.0, 2.0]}
            ),
            422,
            "invalid_parameter",
        ),
        (
            enroller.post(
                f"/v1/collections/{collection}/subjects/x/faces", json={"embedding": [0.0] * 512}
            ),
            422,
            "invalid_parameter",
        ),
        (
            reader.post(f"/v1/collections/{collection}/identify", json={"image": "%%%"}),
            400,
            "invalid_input",
        ),
        (
            reader.post(f"/v1/collections/{collection}/identify", params={"top_k": 0}, json={}),
            422,
            "invalid_parameter",
        ),
        (
            reader.post("/v1/collections/nope/identify", files={"image": person_png(1)}),
            404,
            "not_found",
        ),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (
            response.request.url,
            response.text,
        )
    # Nothing half-enrolled: the failed calls created no subject.
    assert reader.get(f"/v1/collections/{collection}/subjects/x").status_code == 404


def test_scopes(gallery_gateway: str, reader: httpx.Client, enroller: httpx.Client) -> None:
    collection = new_collection(enroller)
    enrol(enroller, collection, "dave", person_png(41))
    changes = [
        ("POST", "/v1/collections", {"json": {"name": f"{collection}-2"}}),
        ("PUT", f"/v1/collections/{collection}/subjects/eve", {}),
        (
            "POST",
            f"/v1/collections/{collection}/subjects/eve/faces",
            {"files": {"image": person_png(42)}},
        ),
        ("DELETE", f"/v1/collections/{collection}/subjects/dave", {}),
        ("DELETE", f"/v1/collections/{collection}", {}),
    ]
    for method, path, kwargs in changes:
        response = reader.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 403, (method, path, response.text)
        assert "enroll" in response.json()["error"]["message"]
    # A user key reads and identifies; no key at all is 401.
    assert reader.get(f"/v1/collections/{collection}/subjects/dave").status_code == 200
    assert identify(reader, collection, person_png(41))[0]["matches"][0]["subject"] == "dave"
    assert httpx.get(f"{gallery_gateway}/v1/collections").status_code == 401
    # The enroll key cannot manage models (admin only).
    swapper = httpx.post(
        f"{gallery_gateway}/v1/models/swapper/unload", headers={"X-API-Key": ENROLL_KEY}
    )
    assert swapper.status_code == 403
    assert enroller.delete(f"/v1/collections/{collection}").status_code == 204
    assert reader.get(f"/v1/collections/{collection}").status_code == 404


def test_logs_carry_counts_not_embeddings_and_names_only_at_debug(
    enroller: httpx.Client, reader: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    collection = new_collection(enroller)
    vector = np.random.default_rng(9).standard_normal(512)
    secret_subject = "zelda-secret-name"
    caplog.set_level(logging.DEBUG, logger="gateway")
    enroller.post(
        f"/v1/collections/{collection}/subjects/{secret_subject}/faces",
        json={"embedding": vector.tolist()},
    )
    enrol(enroller, collection, secret_subject, person_png(91))
    reader.post(f"/v1/collections/{collection}/identify", json={"embeddings": [vector.tolist()]})
    identify(reader, collection, person_png(91))
    enroller.delete(f"/v1/collections/{collection}/subjects/{secret_subject}")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert collection in text  # collections and counts are logged
    for value in vector[:8]:
        assert f"{value:.4f}"[:7] not in text
    # The audit stream (facegate.audit) names subjects by design: it is routed apart.
    at_info = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO and r.name != "facegate.audit"
    ]
    assert not any(secret_subject in line for line in at_info)
    assert any(secret_subject in r.getMessage() for r in caplog.records)  # DEBUG has it


def test_identify_and_enrol_follow_det_sizes(enroller: httpx.Client, reader: httpx.Client) -> None:
    # A bright frame-filling square: only the 128 pass of the default two-scale detection
    # finds it (as /v1/detect does), so det_sizes=640 sees no face at all.
    import cv2

    full = np.full((640, 640, 3), 230, np.uint8)
    png = cv2.imencode(".png", full)[1].tobytes()
    collection = new_collection(enroller)
    single = enroller.post(
        f"/v1/collections/{collection}/subjects/s/faces",
        files={"image": png},
        params={"det_sizes": "640"},
    )
    assert single.status_code == 422, single.text
    (face_id,) = enrol(enroller, collection, "s", png)
    (face,) = identify(reader, collection, png)
    assert face["matches"][0]["face_id"] == face_id
    assert identify(reader, collection, png, det_sizes="640") == []
    bad = reader.post(
        f"/v1/collections/{collection}/identify", files={"image": png}, params={"det_sizes": "7"}
    )
    assert bad.status_code == 422 and "det_sizes" in bad.text


def test_erasure_answers_204_or_a_job_and_frees_the_name_at_once(
    enroller: httpx.Client, reader: httpx.Client
) -> None:
    from gateway.storage.erasure import SUBJECT_INLINE_FACES

    collection = new_collection(enroller)
    vectors = np.random.default_rng(6).standard_normal((SUBJECT_INLINE_FACES + 1, 512))
    for lo in range(0, len(vectors), 1000):
        response = enroller.post(
            f"/v1/collections/{collection}/subjects/many/faces",
            json={"embeddings": vectors[lo : lo + 1000].tolist()},
        )
        assert response.status_code == 201, response.text
    # More faces than one call erases inline: a job, done within the call or answered 202.
    gone = enroller.delete(f"/v1/collections/{collection}/subjects/many")
    assert gone.status_code in (202, 204), gone.text
    if gone.status_code == 202:
        job = gone.json()
        assert job["kind"] == "subject" and gone.headers["location"].endswith(job["id"])
        for _ in range(600):
            job = enroller.get(gone.headers["location"]).json()
            if job["state"] == "done":
                break
        assert job["faces_removed"] == SUBJECT_INLINE_FACES + 1 and job["subject"] is None
    assert reader.get(f"/v1/collections/{collection}/subjects/many").status_code == 404
    found = reader.post(
        f"/v1/collections/{collection}/identify", json={"embeddings": [vectors[0].tolist()]}
    ).json()
    assert found["faces"][0]["matches"] == []
    # A deleted collection's name is free at once, whatever is left to erase.
    assert enroller.delete(f"/v1/collections/{collection}").status_code in (202, 204)
    again = enroller.post("/v1/collections", json={"name": collection})
    assert again.status_code == 201 and again.json()["faces"] == 0
    assert enroller.get("/v1/gallery/jobs/not-a-job").status_code == 404
    assert enroller.get(f"/v1/gallery/jobs/{uuid.uuid4()}").status_code == 404
    assert reader.get(f"/v1/gallery/jobs/{uuid.uuid4()}").status_code == 403
