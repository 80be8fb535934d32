"""The gallery routes' audit records (gateway/audit.py): one per change or search call.

AuditedRoute wraps the handler of each audited route: whatever the call's end (an answer,
a domain error, a validation error, a bug, a cancellation at the deadline), one record is
written with the status the client gets. Routes add what only they know (the ids of the
faces enrolled or matched) with note_audit; nothing from the request body is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from gateway.audit import AuditQueue, AuditRecord, write_audit
from gateway.auth import Caller
from gateway.errors import FacegateError

# Route function name -> the action recorded; the gallery's reads are not audited.
ACTIONS = {
    "create_collection": "collection.create",
    "delete_collection": "collection.erase",
    "put_subject": "subject.put",
    "delete_subject": "subject.erase",
    "enrol_faces": "faces.enrol",
    "delete_face": "face.erase",
    "identify": "identify",
    "verify_subject": "subject.verify",
    # Unassigned faces and clustering (api/clusters.py).
    "enrol_unassigned": "faces.enrol",
    "put_face": "face.assign",
    "cluster": "faces.cluster",
}
# The call ended at its deadline (the client got 408 or 504 from the middleware).
CANCELLED = 499


def note_audit(
    request: Request,
    *,
    collection: str | None = None,
    face_ids: Iterable[str] = (),
    subjects: Iterable[str] = (),
) -> None:
    """Add what the route learnt to the call's audit record."""
    notes: dict[str, Any] | None = getattr(request.state, "audit", None)
    if notes is None:
        notes = request.state.audit = {}
    if collection is not None:
        notes["collection"] = collection
    notes.setdefault("face_ids", []).extend(face_ids)
    notes.setdefault("subjects", []).extend(subjects)


def _record(request: Request, action: str, route: APIRoute, outcome: int) -> AuditRecord:
    notes = getattr(request.state, "audit", {})
    caller = getattr(request.state, "caller", None)
    params = request.path_params
    face_ids = list(notes.get("face_ids", ()))
    if "face_id" in params:
        face_ids.insert(0, params["face_id"])
    return AuditRecord(
        key=caller.name if isinstance(caller, Caller) else "-",
        action=action,
        method=request.method,
        route=route.path,
        outcome=outcome,
        collection=notes.get("collection", params.get("collection")),
        subject=params.get("subject"),
        face_ids=tuple(face_ids),
        subjects=tuple(dict.fromkeys(notes.get("subjects", ()))),
    )


class AuditedRoute(APIRoute):
    """An APIRoute whose calls leave an audit record when its function is in ACTIONS."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        action = ACTIONS.get(self.name)
        if action is None:
            return handler

        async def audited(request: Request) -> Response:
            outcome = 500
            try:
                response = await handler(request)
                outcome = response.status_code
                return response
            except FacegateError as exc:
                outcome = exc.status_code
                raise
            except RequestValidationError:
                outcome = 422
                raise
            except asyncio.CancelledError:
                outcome = CANCELLED
                raise
            finally:
                record = _record(request, action, self, outcome)
                write_audit(record)
                table: AuditQueue | None = getattr(request.app.state, "audit_queue", None)
                if table is not None:
                    table.put(record)

        return audited
