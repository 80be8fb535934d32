"""Models whose Python-backend stub died while tritonserver lives on: reload them.

Triton does not restart a dead stub: the model stays READY and every request to it fails
with INTERNAL "Stub process '<instance>' is not healthy" until the model is loaded again
(seen with tritonserver 2.51). StubWatch notices a READY model with fewer live stubs than
it had when first seen READY, unloads it and, for a model loaded at startup, loads it
again; a model loaded on demand (the swapper) is left unloaded for the gateway to load on
its next use.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from gateway.ops.servers.sessions import python_stubs
from gateway.triton import spec

log = logging.getLogger(__name__)
CALL_TIMEOUT_S = 120.0


class StubWatch:
    """Tracks the stubs of one tritonserver instance and reloads models that lost one."""

    def __init__(
        self,
        http_url: str,
        repository_key: str,
        startup_models: Sequence[str],
        session_id: int,
        repository: Path,
    ) -> None:
        self._http_url = http_url
        self._repository = repository
        self._headers = {spec.REPOSITORY_KEY_HEADER: repository_key} if repository_key else {}
        self._startup_models = tuple(startup_models)
        self._session_id = session_id
        # Stubs per READY model when first seen READY (instances of that load).
        self._expected: dict[str, int] = {}

    def _post(self, path: str, timeout_s: float) -> bytes:
        request = urllib.request.Request(
            f"{self._http_url}{path}", data=b"{}", headers=self._headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body: bytes = response.read()
            return body

    def _ready_models(self) -> dict[str, str]:
        """{name: version} of the READY models."""
        index = json.loads(self._post("/v2/repository/index", timeout_s=5))
        return {
            entry["name"]: str(entry.get("version", "1"))
            for entry in index
            if entry.get("state") == "READY"
        }

    def broken_models(self) -> list[str]:
        """READY models that have fewer live stubs than when they became READY."""
        try:
            ready = self._ready_models()
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
            return []  # the liveness probe judges an unreachable server
        stubs = python_stubs(self._session_id)
        broken = []
        for model in list(self._expected):
            if model not in ready:
                del self._expected[model]
        for model, version in ready.items():
            live = len(stubs.get(model, []))
            # A Python-backend model has a stub per instance, at least one: a stub killed
            # before this watch first saw the model READY still counts as missing.
            python_model = (self._repository / model / version / "model.py").exists()
            expected = max(self._expected.setdefault(model, live), 1 if python_model else 0)
            if live < expected:
                broken.append(model)
        return broken

    def repair(self) -> str:
        """Reload what broken_models() finds; returns what was done ('' if nothing)."""
        done = []
        for model in self.broken_models():
            self._expected.pop(model, None)
            try:
                self._post(f"/v2/repository/models/{model}/unload", CALL_TIMEOUT_S)
                if model in self._startup_models:
                    self._post(f"/v2/repository/models/{model}/load", CALL_TIMEOUT_S)
                    done.append(f"{model}: its backend process died; reloaded")
                else:
                    done.append(f"{model}: its backend process died; unloaded (loads on next use)")
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                done.append(f"{model}: its backend process died; reloading failed: {exc}")
        return "; ".join(done)
