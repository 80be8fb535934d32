"""The gateway's error tree: every status it answers, one body, and the handlers.

    FacegateError                    500  internal_error          (anything unexpected too)
    ├── InvalidInput                 400  invalid_input
    │   ├── UndecodableImage         400  undecodable_image
    │   ├── PayloadTooLarge          413  payload_too_large
    │   ├── UnsupportedMediaType     415  unsupported_media_type
    │   └── InvalidParameter         422  invalid_parameter
    │       └── FaceQualityTooLow    422  face_quality_too_low     (enrolment below min_quality)
    ├── NoFaceFound                  422  no_face
    ├── Unauthenticated              401  unauthenticated
    ├── Forbidden                    403  forbidden
    │   └── ClientNotAllowed         403  client_not_allowed       (compat routes' networks)
    ├── NotFound                     404  not_found
    ├── Conflict                     409  conflict
    │   └── RecognizerMismatch       409  recognizer_mismatch      (gallery built with another recognizer)
    ├── BodyTimeout                  408  body_timeout             (the upload came too slowly)
    ├── Overloaded                   429  overloaded               (admission, Retry-After)
    │   ├── KeyOverloaded            429  key_overloaded           (this key's share of the slots)
    │   └── RateLimited              429  rate_limited             (this key's request rate)
    ├── ShuttingDown                 503  shutting_down            (draining, Retry-After)
    ├── DeadlineExceeded             504  deadline_exceeded        (the request's own deadline)
    └── UpstreamError                     the inference server failed us
        ├── UpstreamUnavailable      503  upstream_unavailable     (Retry-After)
        │   └── GalleryUnavailable   503  gallery_unavailable      (the gallery database)
        │       └── GalleryStorageFull  503  gallery_storage_full (its disk is full; reads work)
        ├── UpstreamTimeout          504  upstream_timeout
        └── UpstreamFailed           502  upstream_failed

Every answer has the body {"error": {"code", "message"}}; a 500 adds "request_id" so that
the log line with the traceback can be found. Foreign exceptions become these at one seam
each, with `raise ... from exc`: tritonclient/gRPC errors by status code in
triton/errors.py, psycopg errors in storage/postgres.py, image decoding errors in
service/pipeline.py. Routes never build
HTTPException. ERRORS lists the tree; the OpenAPI docs (api/docs.py) and the REST
client's mapping (client/rest.py) are generated from it.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("facegate.errors")


class FacegateError(Exception):
    """Something went wrong inside the gateway."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class InvalidInput(FacegateError):
    """The request body is malformed."""

    status_code = 400
    code = "invalid_input"


class UndecodableImage(InvalidInput):
    """An image is corrupt, truncated or empty."""

    code = "undecodable_image"


class PayloadTooLarge(InvalidInput):
    """Over the byte or pixel limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(InvalidInput):
    """Unsupported image or body type."""

    status_code = 415
    code = "unsupported_media_type"


class InvalidParameter(InvalidInput):
    """Invalid parameters or fields."""

    status_code = 422
    code = "invalid_parameter"


class FaceQualityTooLow(InvalidParameter):
    """A face to enrol grades below the min_quality asked for; the message names the
    components that fall short."""

    status_code = 422
    code = "face_quality_too_low"


class NoFaceFound(FacegateError):
    """An image the operation needs a face in has none."""

    status_code = 422
    code = "no_face"


class Unauthenticated(FacegateError):
    """Missing or unknown API key."""

    status_code = 401
    code = "unauthenticated"


class Forbidden(FacegateError):
    """The API key lacks the scope."""

    status_code = 403
    code = "forbidden"


class ClientNotAllowed(Forbidden):
    """A keyless compatibility route called from outside its configured networks."""

    code = "client_not_allowed"


class NotFound(FacegateError):
    """No such resource."""

    status_code = 404
    code = "not_found"


class Conflict(FacegateError):
    """The resource exists already or changed meanwhile."""

    status_code = 409
    code = "conflict"


class RecognizerMismatch(Conflict):
    """The collection was built with another recognizer: its embeddings are not comparable."""

    code = "recognizer_mismatch"


class BodyTimeout(FacegateError):
    """The request body did not arrive within the body deadline (a slow or stalled upload)."""

    status_code = 408
    code = "body_timeout"


class Overloaded(FacegateError):
    """Too many requests in flight (Retry-After)."""

    status_code = 429
    code = "overloaded"


class KeyOverloaded(Overloaded):
    """This API key has its share of the in-flight requests already (Retry-After)."""

    code = "key_overloaded"


class RateLimited(Overloaded):
    """This API key is over its request rate (Retry-After)."""

    code = "rate_limited"


class ShuttingDown(FacegateError):
    """The gateway is draining before shutdown (Retry-After)."""

    status_code = 503
    code = "shutting_down"


class DeadlineExceeded(FacegateError):
    """The request took longer than its deadline."""

    status_code = 504
    code = "deadline_exceeded"


class UpstreamError(FacegateError):
    """The inference server failed."""


class UpstreamUnavailable(UpstreamError):
    """Triton or the model is unavailable (Retry-After)."""

    status_code = 503
    code = "upstream_unavailable"


class GalleryUnavailable(UpstreamUnavailable):
    """The gallery database cannot be reached, or no gallery is configured."""

    code = "gallery_unavailable"


class GalleryStorageFull(GalleryUnavailable):
    """The gallery database's disk is full: writes fail until space is freed; reads work."""

    code = "gallery_storage_full"


class UpstreamTimeout(UpstreamError):
    """Triton did not answer in time."""

    status_code = 504
    code = "upstream_timeout"


class UpstreamFailed(UpstreamError):
    """Triton answered with an error."""

    status_code = 502
    code = "upstream_failed"


# The tree in the order of the drawing: what the OpenAPI docs and the REST client read.
ERRORS: tuple[type[FacegateError], ...] = (
    FacegateError,
    InvalidInput,
    UndecodableImage,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidParameter,
    FaceQualityTooLow,
    NoFaceFound,
    Unauthenticated,
    Forbidden,
    ClientNotAllowed,
    NotFound,
    Conflict,
    RecognizerMismatch,
    BodyTimeout,
    Overloaded,
    KeyOverloaded,
    RateLimited,
    ShuttingDown,
    DeadlineExceeded,
    UpstreamUnavailable,
    GalleryUnavailable,
    GalleryStorageFull,
    UpstreamTimeout,
    UpstreamFailed,
)


def error_by_code() -> dict[str, type[FacegateError]]:
    """The tree keyed by error code (codes are unique)."""
    return {cls.code: cls for cls in ERRORS}


def describe(cls: type[FacegateError]) -> str:
    """One line for the docs: the first line of the class docstring."""
    return (cls.__doc__ or cls.code).strip().splitlines()[0].rstrip(".")


def error_body(code: str, message: str, request_id: str | None = None) -> dict[str, dict[str, str]]:
    detail = {"code": code, "message": message}
    if request_id is not None:
        detail["request_id"] = request_id
    return {"error": detail}


def error_response(exc: FacegateError) -> JSONResponse:
    """The response for a domain error: its status, body and Retry-After."""
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else {}
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="facegate"'
    return JSONResponse(error_body(exc.code, exc.message), exc.status_code, headers=headers)


def internal_error_response(exc: BaseException, request_id: str) -> JSONResponse:
    """The catch-all: log the traceback with the request id, answer a 500 in the same body.

    The log line carries the exception and its traceback only; request bodies (images,
    embeddings) are never part of it.
    """
    log.error(
        "unhandled %s while serving request %s",
        type(exc).__name__,
        request_id,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    message = f"internal error: quote request id {request_id} when you report it"
    return JSONResponse(error_body(FacegateError.code, message, request_id), 500)


def _facegate_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FacegateError)
    return error_response(exc)


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
    # Starlette's own routing errors (404 unknown path, 405 wrong method).
    assert isinstance(exc, StarletteHTTPException)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    return JSONResponse(
        error_body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None)
    )


def install_error_handlers(app: FastAPI) -> None:
    """One error body everywhere: domain errors, parameter validation, routing errors.

    Anything else is answered by GatewayMiddleware (the outermost layer, added last) with
    internal_error_response, where the request id is still known.
    """
    app.add_exception_handler(FacegateError, _facegate_response)
    app.add_exception_handler(RequestValidationError, _validation_response)
    app.add_exception_handler(StarletteHTTPException, _http_response)
