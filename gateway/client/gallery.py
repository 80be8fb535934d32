"""FaceGalleryClient: FaceRestClient plus the gallery routes (/v1/collections/...).

Errors come back as the gateway's tree: NotFound (404), Conflict and RecognizerMismatch
(409), NoFaceFound (422), GalleryUnavailable (503), GatewayError for 401/403.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from gateway.client.rest import FaceRestClient, _file
from gateway.gallery_ports import Match

Image = bytes | npt.NDArray[np.uint8]


@dataclass(frozen=True)
class IdentifiedFace:
    """One face of an identify answer: where it is (None for embeddings) and its matches."""

    bbox: tuple[float, float, float, float] | None
    score: float | None
    matches: list[Match]


def _q(part: str) -> str:
    return quote(part, safe="")


def _identified(body: dict[str, Any]) -> list[IdentifiedFace]:
    out = []
    for face in body["faces"]:
        box = face.get("bbox")
        out.append(
            IdentifiedFace(
                (box[0], box[1], box[2], box[3]) if box else None,
                face.get("score"),
                [Match(m["subject"], m["similarity"], m["face_id"]) for m in face["matches"]],
            )
        )
    return out


class FaceGalleryClient(FaceRestClient):
    """Enrol and recognise people through a gateway (an `enroll` key for changes)."""

    def create_collection(self, name: str, metadata: dict[str, Any] | None = None) -> None:
        self._request("POST", "/v1/collections", json={"name": name, "metadata": metadata or {}})

    def list_collections(self) -> list[dict[str, Any]]:
        """Each collection with its recognizer sha256 and subject/face counts."""
        collections: list[dict[str, Any]] = self._request("GET", "/v1/collections").json()[
            "collections"
        ]
        return collections

    def delete_collection(self, name: str) -> dict[str, Any] | None:
        """Erase the collection: None when done, else the erasure job still running (202)."""
        response = self._request("DELETE", f"/v1/collections/{_q(name)}")
        return response.json() if response.status_code == 202 else None

    def erasure_job(self, job_id: str) -> dict[str, Any]:
        """An erasure job that a delete answered: its state ('running' or 'done') and counts."""
        result: dict[str, Any] = self._request("GET", f"/v1/gallery/jobs/{_q(job_id)}").json()
        return result

    def put_subject(
        self, collection: str, subject: str, metadata: dict[str, Any] | None = None
    ) -> bool:
        """Create the subject (True) or replace its metadata (False)."""
        response = self._request(
            "PUT",
            f"/v1/collections/{_q(collection)}/subjects/{_q(subject)}",
            json={"metadata": metadata} if metadata is not None else None,
        )
        return response.status_code == 201

    def subjects(self, collection: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every subject in name order, following the cursor page by page."""
        cursor: str | None = None
        while True:
            body = self._request(
                "GET",
                f"/v1/collections/{_q(collection)}/subjects",
                params={"limit": page_size, "cursor": cursor},
            ).json()
            yield from body["subjects"]
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def get_subject(self, collection: str, subject: str) -> dict[str, Any]:
        """The subject with its face ids."""
        body: dict[str, Any] = self._request(
            "GET", f"/v1/collections/{_q(collection)}/subjects/{_q(subject)}"
        ).json()
        return body

    def delete_subject(self, collection: str, subject: str) -> dict[str, Any] | None:
        """Erase the subject and all its faces: None when done, else the job still running."""
        response = self._request(
            "DELETE", f"/v1/collections/{_q(collection)}/subjects/{_q(subject)}"
        )
        return response.json() if response.status_code == 202 else None

    def enrol(
        self,
        collection: str,
        subject: str,
        images: Sequence[Image],
        *,
        face: Literal["prominent"] | int = "prominent",
    ) -> list[str]:
        """One face per image (up to the gateway's batch limit); returns the new face ids."""
        response = self._request(
            "POST",
            f"/v1/collections/{_q(collection)}/subjects/{_q(subject)}/faces",
            files=[("image", _file(image)) for image in images],
            params={"face": str(face)},
        )
        return [f["id"] for f in response.json()["faces"]]

    def enrol_embeddings(
        self, collection: str, subject: str, embeddings: npt.NDArray[np.float32]
    ) -> list[str]:
        """Enrol (N, 512) embeddings from this gateway's recognizer; returns face ids."""
        response = self._request(
            "POST",
            f"/v1/collections/{_q(collection)}/subjects/{_q(subject)}/faces",
            json={"embeddings": np.asarray(embeddings, np.float32).tolist()},
        )
        return [f["id"] for f in response.json()["faces"]]

    def delete_face(self, collection: str, face_id: str) -> None:
        self._request("DELETE", f"/v1/collections/{_q(collection)}/faces/{_q(face_id)}")

    def identify(
        self,
        collection: str,
        image: Image,
        *,
        top_k: int = 1,
        threshold: float | None = None,
        max_faces: int = 0,
    ) -> list[IdentifiedFace]:
        """Every face in the image with its best subjects (at or above threshold)."""
        response = self._request(
            "POST",
            f"/v1/collections/{_q(collection)}/identify",
            files=[("image", _file(image))],
            params={"top_k": top_k, "threshold": threshold, "max_faces": max_faces},
        )
        return _identified(response.json())

    def identify_embeddings(
        self,
        collection: str,
        embeddings: npt.NDArray[np.float32],
        *,
        top_k: int = 1,
        threshold: float | None = None,
    ) -> list[IdentifiedFace]:
        """Each (N, 512) embedding's best subjects."""
        response = self._request(
            "POST",
            f"/v1/collections/{_q(collection)}/identify",
            json={"embeddings": np.asarray(embeddings, np.float32).tolist()},
            params={"top_k": top_k, "threshold": threshold},
        )
        return _identified(response.json())

    def verify_subject(
        self, collection: str, subject: str, image: Image, *, threshold: float | None = None
    ) -> tuple[float, bool]:
        """(similarity, match) of the image's most prominent face against the subject."""
        body = self._request(
            "POST",
            f"/v1/collections/{_q(collection)}/subjects/{_q(subject)}/verify",
            files=[("image", _file(image))],
            params={"threshold": threshold},
        ).json()
        return float(body["similarity"]), bool(body["match"])

    # Unassigned faces and clustering
    def enrol_unassigned(
        self,
        collection: str,
        images: Sequence[Image],
        *,
        face: Literal["prominent"] | int = "prominent",
    ) -> list[str]:
        """Enrol one face per image with no subject (to cluster or assign later)."""
        response = self._request(
            "POST",
            f"/v1/collections/{_q(collection)}/faces",
            files=[("image", _file(image)) for image in images],
            params={"face": str(face)},
        )
        return [f["id"] for f in response.json()["faces"]]

    def enrol_unassigned_embeddings(
        self, collection: str, embeddings: npt.NDArray[np.float32]
    ) -> list[str]:
        """Enrol (N, 512) embeddings with no subject; returns face ids."""
        response = self._request(
            "POST",
            f"/v1/collections/{_q(collection)}/faces",
            json={"embeddings": np.asarray(embeddings, np.float32).tolist()},
        )
        return [f["id"] for f in response.json()["faces"]]

    def faces(
        self, collection: str, subject: str | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every face ({id, subject, created}) in enrolment order: all, a subject's, or
        with subject="none" the unassigned ones; follows the cursor page by page."""
        cursor: str | None = None
        while True:
            body = self._request(
                "GET",
                f"/v1/collections/{_q(collection)}/faces",
                params={"subject": subject, "limit": page_size, "cursor": cursor},
            ).json()
            yield from body["faces"]
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def assign_face(self, collection: str, face_id: str, subject: str | None) -> dict[str, Any]:
        """Assign a face to a subject (created if absent), or unassign it with None."""
        body: dict[str, Any] = self._request(
            "PUT",
            f"/v1/collections/{_q(collection)}/faces/{_q(face_id)}",
            json={"subject": subject},
        ).json()
        return body

    def merge_subject(self, collection: str, source: str, into: str) -> dict[str, Any]:
        """Move every face of `source` to `into` (created if absent) and erase `source`:
        names a group clustering made (merge_subject(c, "unknown-0001", "Ada"))."""
        body: dict[str, Any] = self._request(
            "PUT",
            f"/v1/collections/{_q(collection)}/subjects/{_q(into)}",
            json={"merge_from": source},
        ).json()
        return body

    def cluster(
        self,
        collection: str,
        *,
        max_distance: float | None = None,
        min_faces: int | None = None,
        until_done: bool = True,
    ) -> dict[str, Any]:
        """POST /cluster: {subjects_created, assigned, unassigned, pending}. With
        until_done, calls again while new faces are pending and sums the runs."""
        total: dict[str, Any] = {"subjects_created": [], "assigned": 0}
        while True:
            body = self._request(
                "POST",
                f"/v1/collections/{_q(collection)}/cluster",
                params={"max_distance": max_distance, "min_faces": min_faces},
            ).json()
            total["subjects_created"] += body["subjects_created"]
            total["assigned"] += body["assigned"]
            total.update(unassigned=body["unassigned"], pending=body["pending"])
            if not until_done or body["pending"] == 0:
                return total
