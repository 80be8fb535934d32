"""Health, readiness and model states, including what happens when Triton is unreachable."""

from __future__ import annotations

import httpx
import pytest

from gateway.ops.servers.triton import EmbeddedTriton
from gateway.triton import spec

from ..conftest import REPOSITORY_KEY, free_port
from ..images import encode, square_image
from .conftest import ServerThread, api_client, gateway_settings

pytestmark = pytest.mark.integration


def test_live_and_ready(client: httpx.Client) -> None:
    assert client.get("/health/live").json() == {"status": "ok", "detail": ""}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def _triton_states(triton: EmbeddedTriton) -> dict[str, str]:
    """Each model's state straight from Triton's repository index (the oracle)."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(triton.grpc_url)
    headers = {spec.REPOSITORY_KEY_GRPC_HEADER: REPOSITORY_KEY}
    index = client.get_model_repository_index(headers=headers, as_json=True)
    return {entry["name"]: entry.get("state") or "UNAVAILABLE" for entry in index["models"]}


@pytest.mark.parametrize("load_first", [False, True], ids=["as-is", "swapper-loaded"])
def test_models_lists_triton_states_and_synthetic_label(
    client: httpx.Client, triton: EmbeddedTriton, load_first: bool
) -> None:
    if load_first:
        assert client.post("/v1/models/swapper/load").status_code == 200
    body = client.get("/v1/models").json()
    states = {m["name"]: m["state"] for m in body["models"]}
    assert states["detector"] == "READY" and states["recognizer"] == "READY"
    # Every model the gateway can use is listed, the optional analysis models included.
    assert {"swapper", "genderage", "liveness"} <= set(states)
    # No load or unload is in progress here, so every state is Triton's own.
    assert states == {name: _triton_states(triton).get(name, "UNAVAILABLE") for name in states}
    if load_first:
        assert states["swapper"] == "READY" and body["swapper"]["state"] == "READY"
        assert body["swapper"]["last_error"] == ""
        assert client.post("/v1/models/swapper/unload").json()["state"] == "UNAVAILABLE"
    assert body["label"] == "synthetic: not a face model"


def test_openapi_documents_both_body_types(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(content)
    assert client.get("/docs").status_code == 200


def test_unreachable_triton_is_503_not_500(triton: EmbeddedTriton) -> None:
    settings = gateway_settings(triton, triton_url=f"127.0.0.1:{free_port()}", triton_timeout_s=2.0)
    with ServerThread(settings) as server, api_client(server.url) as http:
        ready = http.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        response = http.post("/v1/detect", files={"image": encode(square_image(64, 64, []))})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "upstream_unavailable"
        assert response.headers.get("retry-after")
