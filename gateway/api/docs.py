"""OpenAPI documentation the routes share: error responses from the error tree, body schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.errors import FacegateError, describe
from gateway.schemas import ErrorResponse


def error_responses(*classes: type[FacegateError]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status the classes answer with, described from the tree.

    Statuses shared by several classes list each (code: description).
    """
    by_status: dict[int, list[str]] = {}
    for cls in classes:
        by_status.setdefault(cls.status_code, []).append(f"{cls.code}: {describe(cls)}")
    return {
        status: {"model": ErrorResponse, "description": "; ".join(lines)}
        for status, lines in sorted(by_status.items())
    }


def body_doc(fields: dict[str, bool], json_model: type[BaseModel] | None) -> dict[str, Any]:
    """OpenAPI for a body that is multipart (files) or, with a json_model, JSON (base64)."""
    properties: dict[str, Any] = {}
    for name, repeated in fields.items():
        file_schema = {"type": "string", "format": "binary"}
        properties[name] = {"type": "array", "items": file_schema} if repeated else file_schema
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": properties, "required": list(fields)}
        }
    }
    if json_model is not None:
        content["application/json"] = {"schema": json_model.model_json_schema()}
    return {"requestBody": {"required": True, "content": content}}
