"""Model states and readiness, as the health and models routes report them."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import FacegateError
from gateway.ports import ModelStates
from gateway.service.swapper_lifecycle import SwapperManager, SwapperStatus


@dataclass(frozen=True)
class Readiness:
    """ready: the detector and recognizer are READY; detail says why not."""

    ready: bool
    detail: str = ""


class ModelStatus:
    """Each model's state, with the swapper's own lifecycle laid over Triton's view."""

    def __init__(
        self,
        backend: ModelStates,
        swapper: SwapperManager,
        required: tuple[str, ...],
        swapper_model: str,
    ) -> None:
        """required: the models that must be READY for the gateway to be ready."""
        self._backend = backend
        self._swapper = swapper
        self._required = required
        self._swapper_model = swapper_model

    @property
    def swapper(self) -> SwapperStatus:
        return self._swapper.status

    async def states(self) -> dict[str, str]:
        """Model name -> state; the swapper shows LOADING/UNLOADING while this gateway acts."""
        states = await self._backend.model_states()
        swapper = self._swapper.status
        if swapper.state in ("LOADING", "UNLOADING"):
            states[self._swapper_model] = swapper.state
        return states

    async def readiness(self) -> Readiness:
        """Ready only while the backend answers and every required model is READY."""
        try:
            states = await self._backend.model_states()
        except FacegateError as exc:
            return Readiness(False, exc.message)
        missing = [name for name in self._required if states.get(name) != "READY"]
        if missing:
            return Readiness(False, ", ".join(f"{name} is {states.get(name)}" for name in missing))
        return Readiness(True)
