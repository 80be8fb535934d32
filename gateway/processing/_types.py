"""Array type aliases shared by the processing modules."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

UInt8Array = npt.NDArray[np.uint8]
Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
# Inputs accepted in any float precision (model outputs, landmarks, affines).
AnyFloatArray = npt.NDArray[np.floating[Any]]
IndexArray = npt.NDArray[np.intp]

# cv2's Scalar for a black border; its stubs want a sequence, not a bare float.
BLACK: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
