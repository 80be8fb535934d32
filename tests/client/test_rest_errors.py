"""FaceRestClient turns every error body of the tree back into its class (no gateway needed)."""

from __future__ import annotations

import httpx
import pytest

from gateway import errors
from gateway.client import FaceRestClient, GatewayError
from gateway.client._inputs import ClientOptions, check_image
from gateway.client.errors import ClientError, InvalidArgument


def _client_answering(response: httpx.Response) -> FaceRestClient:
    return FaceRestClient("http://gateway", transport=httpx.MockTransport(lambda _: response))


@pytest.mark.parametrize("cls", errors.ERRORS, ids=lambda cls: cls.__name__)
def test_each_error_of_the_tree_comes_back_as_itself(cls: type[errors.FacegateError]) -> None:
    answer = errors.error_response(cls("what happened"))
    response = httpx.Response(
        answer.status_code, content=bytes(answer.body), headers=dict(answer.headers)
    )
    with _client_answering(response) as rest, pytest.raises(cls) as caught:
        rest.detect(b"\xff\xd8 not really a jpeg")
    assert type(caught.value) is cls and caught.value.message == "what happened"


def test_an_answer_outside_the_tree_is_a_gateway_error() -> None:
    response = httpx.Response(502, text="<html>bad gateway</html>")
    with _client_answering(response) as rest, pytest.raises(GatewayError) as caught:
        rest.detect(b"data")
    assert (caught.value.status_code, caught.value.code) == (502, "http_error")


def test_misuse_raises_the_sdks_own_errors() -> None:
    with pytest.raises(InvalidArgument, match="batch_size"):
        ClientOptions(batch_size=0)
    with pytest.raises(ClientError, match="not str"):
        check_image("a.jpg", 1000)
    assert not issubclass(InvalidArgument, errors.FacegateError)
