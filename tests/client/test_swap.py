"""swap() through the direct client: loads the swapper with the key, explains how without it."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.client import FaceClient, FaceRestClient, UpstreamUnavailable
from gateway.ops.servers.triton import EmbeddedTriton

from ..api.test_swap import SOURCE, TARGET, unload_in_triton
from ..conftest import REPOSITORY_KEY

pytestmark = pytest.mark.integration


def test_swap_without_key_says_how_to_load_then_with_key_loads_and_equals_rest(
    triton: EmbeddedTriton, rest: FaceRestClient
) -> None:
    unload_in_triton(triton)
    with FaceClient(triton.grpc_url) as keyless, pytest.raises(UpstreamUnavailable) as caught:
        keyless.swap(SOURCE, TARGET)
    assert "POST /v1/models/swapper/load" in caught.value.message
    assert "repository_key=" in caught.value.message

    with FaceClient(triton.grpc_url, repository_key=REPOSITORY_KEY) as keyed:
        ours = keyed.swap(SOURCE, TARGET, target_face="all")
    theirs = rest.swap(SOURCE, TARGET, target_face="all")
    assert ours.faces_swapped == theirs.faces_swapped == 2
    assert np.array_equal(ours.img_bgr, theirs.img_bgr)

    # Loaded now: a client without the key swaps too.
    with FaceClient(triton.grpc_url, use_shared_memory=False) as keyless:
        assert keyless.swap([SOURCE, SOURCE], TARGET).faces_swapped == 1
