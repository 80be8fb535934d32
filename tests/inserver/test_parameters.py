"""The faces model's request parameters: /v1/detect's bounds, clear refusals."""

from __future__ import annotations

import pytest

from gateway.inserver.parameters import (
    FacesDefaults,
    FacesRequest,
    InvalidRequest,
    parse_parameters,
    parse_parameters_json,
)

FALLBACK = FacesDefaults(threshold=0.5, det_sizes_px=(128, 640), embed=True)


def test_left_out_parameters_take_the_defaults() -> None:
    assert parse_parameters({}, FALLBACK) == FacesRequest((128, 640), 0.5, 0, 0.0, True)
    assert parse_parameters_json("", FALLBACK) == parse_parameters({}, FALLBACK)


def test_typed_and_text_values_alike() -> None:
    typed = parse_parameters(
        {
            "det_sizes": "640",
            "threshold": 0.3,
            "max_faces": 2,
            "min_size": 10,
            "embed": False,
            "attributes": True,
        },
        FALLBACK,
    )
    text = parse_parameters(
        {
            "det_sizes": "640",
            "threshold": "0.3",
            "max_faces": "2",
            "min_size": "10",
            "embed": "false",
            "attributes": "true",
        },
        FALLBACK,
    )
    assert typed == text == FacesRequest((640,), 0.3, 2, 10.0, False, True)
    assert parse_parameters({"det_sizes": 640, "threshold": 1}, FALLBACK).det_sizes_px == (640,)


def test_unknown_names_are_ignored_as_rest_ignores_unknown_query_parameters() -> None:
    assert parse_parameters({"colour": "blue"}, FALLBACK) == parse_parameters({}, FALLBACK)
    assert parse_parameters({"landmarks": "true"}, FALLBACK) == parse_parameters({}, FALLBACK)


@pytest.mark.parametrize(
    "raw",
    [
        {"quality": True},
        {"pose": "true"},
        {"dense_landmarks": True},
        {"liveness": "true"},
        {"liveness": False},
        {"liveness_threshold": 0.5},
        {"landmarks": False},
        {"landmarks": "false"},
    ],
)
def test_detect_options_the_model_does_not_serve_are_refused_by_name(
    raw: dict[str, object],
) -> None:
    (name,) = raw
    with pytest.raises(InvalidRequest, match=f"parameter {name}"):
        parse_parameters(raw, FALLBACK)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"threshold": 1.01}, "between 0 and 1"),
        ({"threshold": -0.1}, "between 0 and 1"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": True}, "not a bool"),
        ({"threshold": "x"}, "not a number"),
        ({"max_faces": 1001}, "between 0 and 1000"),
        ({"max_faces": -1}, "between 0 and 1000"),
        ({"max_faces": 1.5}, "whole number"),
        ({"max_faces": "\u00b2"}, "whole number"),
        ({"max_faces": "\u0663"}, "whole number"),
        ({"min_size": 100_001}, "min_size"),
        ({"embed": "perhaps"}, "bool"),
        ({"embed": 1}, "bool"),
        ({"attributes": "sometimes"}, "attributes"),
        ({"det_sizes": "33"}, "multiple of 32"),
        ({"det_sizes": "128,256,384,512,640"}, "at most 4"),
        ({"det_sizes": ""}, "empty"),
        ({"det_sizes": "6" * 65}, "longer than 64"),
        ({"det_sizes": 1.5}, "string"),
    ],
)
def test_refusals_say_what_is_accepted(raw: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        parse_parameters(raw, FALLBACK)


@pytest.mark.parametrize("text", ["[1]", "not json", "3"])
def test_parameters_that_are_no_json_object_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        parse_parameters_json(text, FALLBACK)
