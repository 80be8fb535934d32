"""The error tree: complete, drawn truthfully in its docstring, one code per class."""

from __future__ import annotations

import inspect
import re

from gateway import errors

# Every status the issue and the house style ask the gateway to answer with.
REQUIRED_STATUSES = {400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503, 504}


def _classes_in_module() -> list[type[errors.FacegateError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.FacegateError) and cls.__module__ == errors.__name__
    ]


def test_every_status_is_covered_and_codes_are_unique() -> None:
    assert {cls.status_code for cls in errors.ERRORS} >= REQUIRED_STATUSES
    codes = [cls.code for cls in errors.ERRORS]
    assert len(codes) == len(set(codes))
    assert errors.error_by_code()["no_face"] is errors.NoFaceFound


def test_the_registry_holds_every_concrete_class_of_the_module() -> None:
    # UpstreamError is the abstract parent of the upstream failures: it is never raised.
    concrete = {cls for cls in _classes_in_module() if cls is not errors.UpstreamError}
    assert concrete == set(errors.ERRORS)


def test_the_docstring_draws_the_tree_as_it_is() -> None:
    drawn = {}
    for line in (errors.__doc__ or "").splitlines():
        found = re.match(r"^[\s│├└─]*(\w+)\s+(\d{3})\s+(\w+)", line)
        if found:
            drawn[found.group(1)] = (int(found.group(2)), found.group(3))
    assert drawn == {cls.__name__: (cls.status_code, cls.code) for cls in errors.ERRORS}
    # The drawing's indentation is the inheritance: each class under its parent.
    for line in (errors.__doc__ or "").splitlines():
        name = re.search(r"[├└]── (\w+)", line)
        if name:
            cls = getattr(errors, name.group(1))
            assert issubclass(cls, errors.FacegateError) and cls is not errors.FacegateError


def test_retry_after_and_www_authenticate_headers() -> None:
    response = errors.error_response(errors.Overloaded("busy", retry_after_s=1))
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    response = errors.error_response(errors.Unauthenticated("who?"))
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert b'"code":"unauthenticated"' in response.body
