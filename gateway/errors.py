"""The gateway's error tree and the one handler that turns it into {"error": {code, message}}.

    FacegateError
    ├── InvalidInput                 400  invalid_input
    │   ├── UndecodableImageError    400  undecodable_image
    │   ├── PayloadTooLarge          413  payload_too_large
    │   ├── UnsupportedMediaType     415  unsupported_media_type
    │   └── InvalidParameter         422  invalid_parameter
    ├── NoFaceFound                  422  no_face
    ├── ClientNotAllowed             403  client_not_allowed
    ├── UpstreamUnavailable          503  upstream_unavailable
    ├── UpstreamTimeout              504  upstream_timeout
    └── UpstreamFailed               502  upstream_failed

Foreign exceptions are translated at their seams: image decoding errors in pipeline.py,
tritonclient/gRPC errors in triton/client.py. Routes never build HTTPException.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class FacegateError(Exception):
    """Base of every error the gateway answers with."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class InvalidInput(FacegateError):
    status_code = 400
    code = "invalid_input"


class UndecodableImageError(InvalidInput):
    code = "undecodable_image"


class PayloadTooLarge(InvalidInput):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(InvalidInput):
    status_code = 415
    code = "unsupported_media_type"


class InvalidParameter(InvalidInput):
    status_code = 422
    code = "invalid_parameter"


class NoFaceFound(FacegateError):
    status_code = 422
    code = "no_face"


class ClientNotAllowed(FacegateError):
    """A keyless compatibility route called from outside its configured networks."""

    status_code = 403
    code = "client_not_allowed"


class UpstreamUnavailable(FacegateError):
    status_code = 503
    code = "upstream_unavailable"


class UpstreamTimeout(FacegateError):
    status_code = 504
    code = "upstream_timeout"


class UpstreamFailed(FacegateError):
    status_code = 502
    code = "upstream_failed"


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _facegate_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FacegateError)
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else {}
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="facegate"'
    return JSONResponse(error_body(exc.code, exc.message), exc.status_code, headers=headers)


def _validation_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = ".".join(
            str(part) for part in error.get("loc", ()) if part not in ("query", "body")
        )
        problems.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return JSONResponse(error_body(InvalidParameter.code, "; ".join(problems)), 422)


def _http_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    return JSONResponse(
        error_body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None)
    )


def install_error_handlers(app: FastAPI) -> None:
    """One error body everywhere: domain errors, parameter validation, routing errors."""
    app.add_exception_handler(FacegateError, _facegate_response)
    app.add_exception_handler(RequestValidationError, _validation_response)
    app.add_exception_handler(StarletteHTTPException, _http_response)
