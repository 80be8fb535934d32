"""The one seam where onnx's and onnxruntime's exceptions about a model file become refusals.

Mapped by exception type, never by message text. What comes out is a PrepareError (exit
code 3 in the CLI) whose paragraph names the model, the file, the step and what to do.
Errors of the machine (no space, no permission) are left alone: the CLI explains them.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

import onnx
from google.protobuf.message import DecodeError
from onnx.shape_inference import InferenceError
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from gateway.ops.failures import ModelRefused
from gateway.ops.repository.prepare import REEXPORT, PrepareError

# onnxruntime's own exception types (they derive from Exception only).
_ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(ort_errors, name)
    for name in (
        "Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoModel", "NoSuchFile",
        "NotImplemented", "RuntimeException", "EngineError",
    )
    if hasattr(ort_errors, name)
)  # fmt: skip
# A file that is not ONNX, truncated, or a graph the runtime cannot run.
MODEL_ERRORS: tuple[type[Exception], ...] = (
    DecodeError,
    onnx.checker.ValidationError,
    InferenceError,
    ValueError,
    *_ORT_ERRORS,
)


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


@contextmanager
def translate_model_errors(role: str, filename: str, reading: bool = False) -> Iterator[None]:
    """Turn model-file failures inside the block into one-paragraph refusals."""
    where = f"the {role}" + (f" ({filename})" if filename else "")
    try:
        yield
    except ModelRefused as exc:
        raise type(exc)(f"Cannot serve {where}. {exc}") from exc
    except FileNotFoundError as exc:
        if not reading or exc.errno != errno.ENOENT:
            raise
        raise PrepareError(
            f"Cannot read {where}: {exc.filename or 'a file it refers to'} does not exist "
            "(a model saved with external data needs its data file next to it, under the "
            "name it was saved with). Copy the missing file there and run the command again."
        ) from exc
    except MODEL_ERRORS as exc:
        if reading:
            raise PrepareError(
                f"Cannot read {where}: it is not a complete ONNX model ({_brief(exc)}). The "
                "file is probably truncated (an interrupted download or copy) or not an ONNX "
                "file at all. Download it again (facegate models fetch verifies the sha256) "
                "or copy it again, then rerun the command. Nothing was installed."
            ) from exc
        raise PrepareError(
            f"Cannot serve {where}: onnx or onnxruntime rejected it while preparing and "
            f"checking it ({_brief(exc)}). Nothing was installed. {REEXPORT}"
        ) from exc
