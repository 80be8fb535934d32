"""What the command line does when a command fails: one paragraph and a documented exit code.

Expected failures (a model file that is not ONNX or is truncated, a wrong model contract,
a full disk, a missing permission, a port in use, a failure the command already explained)
print one plain paragraph that says what to do next, never a Python traceback. `--debug`
or FACEGATE_DEBUG=1 adds the traceback, for bug reports.

Exit codes (also in README.md):

    0   success
    1   unexpected error (a bug: rerun with --debug and report it)
    2   usage or setup problem the message explains (bad option, missing file, download)
    3   a model file was refused (not ONNX, truncated, wrong contract, failed self-check)
    4   storage: no space left, no permission, read-only file system
    5   a network port is already in use
    130 interrupted (Ctrl-C)

Foreign exceptions are mapped here, by type and errno, never by message text; the most
specific entry of the table wins.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TextIO

DEBUG_ENV = "FACEGATE_DEBUG"


class ExitCode(IntEnum):
    """The exit codes of every facegate command."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    MODEL_REFUSED = 3
    STORAGE = 4
    PORT_IN_USE = 5
    INTERRUPTED = 130


class CommandFailed(Exception):
    """A failure whose message already tells the user what to do next (exit code 2)."""


class ModelRefused(Exception):
    """A model file cannot be served; the message names the file, the step and the fix."""


@dataclass(frozen=True)
class Failure:
    """How one failure is reported: exit code and the paragraph printed to stderr."""

    code: ExitCode
    message: str


def _filename(exc: OSError) -> str:
    return str(exc.filename) if exc.filename else "a file"


def _explain_os_error(exc: OSError) -> Failure | None:
    where = _filename(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Failure(
            ExitCode.STORAGE,
            f"No space left on the device (or quota exceeded) while writing {where}. Files are "
            "written through a temporary name and renamed, so none is half-written; free some "
            "space (a served model set needs about 1 GB, twice that while installing) or point "
            "--repository at a bigger disk, then run the same command again.",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return Failure(
            ExitCode.STORAGE,
            f"Permission denied on {where}. Run facegate as a user that may read and write "
            "there, or choose another --repository / cache folder that this user owns.",
        )
    if exc.errno == errno.EROFS:
        return Failure(
            ExitCode.STORAGE,
            f"{where} is on a read-only file system. Choose a writable --repository (or cache "
            "folder), or mount the volume read-write for the install.",
        )
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return Failure(
            ExitCode.USAGE,
            f"No such file or folder: {where}. Check the path (a relative one starts from the "
            "current folder) and create what is missing, or point the command elsewhere (see "
            "its --help).",
        )
    if exc.errno == errno.EADDRINUSE:
        return Failure(
            ExitCode.PORT_IN_USE,
            f"A port is already in use ({exc.strerror}). Stop the program holding it (`ss -ltnp` "
            "shows which) or choose another one with --port / --grpc-port / --http-port / "
            "--metrics-port.",
        )
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    cause = exc.__cause__
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__
    return chain


def _explain_settings(exc: Exception) -> Failure | None:
    """A FACEGATE_* environment variable the gateway's Settings refused."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError) or exc.title != "Settings":
        return None
    problems = "; ".join(
        f"FACEGATE_{str(error['loc'][0]).upper() if error['loc'] else '?'}: {error['msg']}"
        for error in exc.errors()
    )
    return Failure(
        ExitCode.USAGE,
        f"Invalid setting: {problems}. Fix or unset that environment variable "
        "(docs/OPERATIONS.md lists every setting and its default).",
    )


def explain(exc: BaseException) -> Failure | None:
    """The paragraph and exit code for an expected failure; None when it is unexpected."""
    if isinstance(exc, Exception) and (settings := _explain_settings(exc)):
        return settings
    if isinstance(exc, ModelRefused):
        return Failure(ExitCode.MODEL_REFUSED, str(exc))
    if isinstance(exc, CommandFailed):
        # The command explained it; a taken port still gets its own exit code.
        taken = any(isinstance(c, OSError) and c.errno == errno.EADDRINUSE for c in _causes(exc))
        return Failure(ExitCode.PORT_IN_USE if taken else ExitCode.USAGE, str(exc))
    if isinstance(exc, OSError):
        return _explain_os_error(exc)
    return None


def debug_requested(flag: bool = False) -> bool:
    """--debug on the command line, or FACEGATE_DEBUG set to anything but 0/empty."""
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def run_reported(func: Callable[[], int], debug: bool = False, stream: TextIO | None = None) -> int:
    """Run one command; report a failure as a paragraph (plus traceback when debugging)."""
    out = stream or sys.stderr
    try:
        return func()
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as exc:
        failure = explain(exc) or Failure(
            ExitCode.UNEXPECTED,
            f"facegate hit an unexpected error ({type(exc).__name__}: {exc}). This is a bug: "
            f"rerun the command with --debug (or {DEBUG_ENV}=1) and report the traceback.",
        )
        if debug_requested(debug):
            traceback.print_exception(exc, file=out)
        print(f"error: {failure.message}", file=out)
        return failure.code
