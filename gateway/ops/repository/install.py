"""The one prepare-and-install step that fetch, import and synthetic all end in.

Everything is prepared and self-checked in memory first, so a model that fails its
preparation or self-check installs nothing. Files are then written one by one, each
through a temporary name and an atomic rename: an I/O error midway can leave some models
new and others old, never a half-written file.

Modes: every file written is 0644 and every directory created 0755, whatever the umask.
Triton usually runs as another user than the installer (NGC image uid 1000, the gateway
image 10001; kubelet does not apply fsGroup to read-only mounts), and nothing here is
secret: the files are the models' weights, their configs and the install report.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import onnx
from onnx.external_data_helper import load_external_data_for_model, uses_external_data

from gateway.ops.repository import configs, runner
from gateway.ops.repository.faces_model import write_faces_model
from gateway.ops.repository.prepare import PREPARERS, PreparedModel, make_model_metadata
from gateway.ops.repository.providers import (
    OPENVINO_FOLDER,
    ProviderChoice,
    ProviderMode,
    choose_provider,
)
from gateway.ops.repository.refusals import translate_model_errors
from gateway.ops.repository.selfcheck import SelfCheckResult, self_check
from gateway.ops.repository.sessions import embedded_session

log = logging.getLogger(__name__)
MANIFEST_NAME = "MODELS.json"
RUNNER_SOURCE = Path(__file__).with_name("runner.py")
FILE_MODE = 0o644
DIR_MODE = 0o755


@dataclass(frozen=True)
class InstalledModel:
    """What was written for one model, for the CLI's summary and the manifest."""

    name: str
    path: Path
    source: str
    sha256: str
    max_batch_size: int
    check: SelfCheckResult
    notes: tuple[str, ...]
    provider: ProviderChoice


def _make_dirs(path: Path) -> None:
    """mkdir -p, giving each directory it creates DIR_MODE (mkdir's mode obeys the umask)."""
    missing = []
    for parent in (path, *path.parents):
        if parent.is_dir():
            break
        missing.append(parent)
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        os.chmod(directory, DIR_MODE)


def _write_atomic(path: Path, data: bytes) -> None:
    _make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # mkstemp creates 0600 and os.replace keeps the mode: set it before the rename.
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_session(name: str, provider: ProviderChoice | None = None) -> configs.EmbeddedSession:
    """This host's session settings for `name` (sessions.embedded_session) with the chosen provider.

    On OpenVINO the saved CPU-optimised model is not used (OpenVINO compiles its own graph).
    """
    session = embedded_session(name)
    if provider is None or provider.provider == "cpu":
        return session
    return replace(
        session,
        execution_provider="openvino",
        openvino_path=str(OPENVINO_FOLDER),
        use_optimized_model=False,
    )


def write_configs(
    repository: Path,
    name: str,
    max_batch_size: int,
    model_sha256: str = "",
    provider: ProviderChoice | None = None,
) -> None:
    """Write every config variant of one model (config.pbtxt and configs/*.pbtxt).

    The embedded variant gets this host's session settings (sessions.embedded_session); where
    `provider` chose OpenVINO, the embedded runner and the NGC CPU variant use it.
    """
    layout = configs.layouts(**{f"{name}_max_batch": max_batch_size})[name]
    session = model_session(name, provider)
    for variant in configs.VARIANTS:
        text = configs.render_config(layout, variant, model_sha256, session)
        _write_atomic(repository / name / configs.config_path(variant), text.encode())


def read_manifest(repository: Path) -> dict[str, dict[str, object]]:
    """MODELS.json: per model, its source, sha256, batching, self-check and notes."""
    path = repository / MANIFEST_NAME
    if not path.exists():
        return {}
    data: dict[str, dict[str, object]] = json.loads(path.read_text())
    return data


def _prepare(
    name: str, model: onnx.ModelProto, meta: Mapping[str, str]
) -> tuple[PreparedModel, SelfCheckResult]:
    log.info("preparing %s", name)
    with translate_model_errors(name, meta.get("file", "")):
        ready = PREPARERS[name](model)
        check = self_check(model, ready)
    log.info(
        "%s self-check: max abs diff %.3g (tolerance %g)",
        name,
        check.max_abs_diff,
        check.tolerance,
    )
    make_model_metadata(ready.model, dict(meta))
    return ready, check


def install_models(
    repository: Path,
    upstream: Mapping[str, onnx.ModelProto],
    provenance: Mapping[str, Mapping[str, str]],
    optimize: bool = True,
    execution_provider: ProviderMode = "cpu",
) -> list[InstalledModel]:
    """Prepare, self-check and write the given upstream models into the repository.

    `optimize`: also save onnxruntime's optimised model for the embedded runner (runner.py)
    of the models whose embedded config uses it (the swapper); without it (or where it
    fails) the runner optimises model.onnx at each load.

    `execution_provider`: "auto" runs each written model on the CPU provider and on
    OpenVINO's and keeps OpenVINO where it is faster with equal outputs; "openvino" keeps it
    wherever the outputs are equal; "cpu" (the default here, for tests and tools that
    install often; the CLI's default is "auto") compares nothing (providers.py).

    `upstream` maps model name (spec.DETECTOR, ...) to the upstream graph; `provenance`
    maps the same names to metadata recorded in the ONNX file and MODELS.json (source,
    file, sha256, synthetic label).
    """
    prepared = [_prepare(name, model, provenance.get(name, {})) for name, model in upstream.items()]
    manifest = read_manifest(repository)
    installed = []
    for ready, check in prepared:
        version_dir = repository / ready.name / "1"
        model_bytes = ready.model.SerializeToString()
        _make_dirs(version_dir)
        # The old stamp goes before the new model arrives: it must never vouch for a new file.
        runner.remove_optimized_model(str(version_dir))
        _write_atomic(version_dir / "model.onnx", model_bytes)
        _write_atomic(version_dir / "model.py", RUNNER_SOURCE.read_bytes())
        digest = hashlib.sha256(model_bytes).hexdigest()
        del model_bytes
        provider = _choose_provider(ready, version_dir, execution_provider)
        if optimize and model_session(ready.name, provider).use_optimized_model:
            _save_optimized(version_dir, ready.name, digest)
        write_configs(repository, ready.name, ready.max_batch_size, digest, provider)
        meta = dict(provenance.get(ready.name, {}))
        manifest[ready.name] = {
            **meta,
            "max_batch_size": ready.max_batch_size,
            "batched": ready.max_batch_size > 0,
            "batch_reason": ready.batch_reason,
            "self_check_max_abs_diff": check.max_abs_diff,
            "self_check_tolerance": check.tolerance,
            "notes": list(ready.notes),
            **provider.record(),
        }
        installed.append(
            InstalledModel(
                ready.name,
                version_dir / "model.onnx",
                meta.get("source", "?"),
                meta.get("sha256", ""),
                ready.max_batch_size,
                check,
                ready.notes,
                provider,
            )
        )
    _write_atomic(repository / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())
    write_faces_model(repository, manifest, _write_atomic)
    _warn_if_closed(repository)
    return installed


def _choose_provider(ready: PreparedModel, version_dir: Path, mode: ProviderMode) -> ProviderChoice:
    """The A/B of providers.choose_provider on the written model.onnx (never fails the install)."""
    if mode != "cpu":
        log.info("%s: timing the CPU provider against OpenVINO on this host", ready.name)
    session = embedded_session(ready.name)
    choice = choose_provider(
        ready.name,
        version_dir / "model.onnx",
        ready.model,
        session.parameters(),
        mode,
        max_batch=ready.max_batch_size,
    )
    if mode != "cpu":
        log.info("%s %s", ready.name, choice.describe())
    return choice


def _save_optimized(version_dir: Path, name: str, digest: str) -> None:
    """Optimise the model once, here, for the embedded runner's later loads (best effort).

    Without the optimised file the runner optimises model.onnx at each load, as it always
    did, so a failure here costs load time, never correctness. The NGC Triton variants read
    model.onnx only.
    """
    log.info("optimising %s for this host (onnxruntime ORT_ENABLE_ALL, saved once)", name)
    try:
        runner.save_optimized_model(str(version_dir), digest, FILE_MODE)
    except Exception as exc:  # onnxruntime raises its own types; none may stop the install
        runner.remove_optimized_model(str(version_dir))
        log.warning(
            "could not save an optimised %s (%s): the embedded Triton will optimise model.onnx "
            "at each load instead, which is slower but serves the same answers",
            name,
            exc,
        )


def _warn_if_closed(repository: Path) -> None:
    """The install leaves an existing repository folder's mode alone, but says when it bars others."""
    if not repository.stat().st_mode & 0o001:
        log.warning(
            "%s is not searchable by other users (mode %o): a Triton running as another user "
            "cannot read the models; chmod 755 it, or install into a folder others may enter",
            repository,
            repository.stat().st_mode & 0o777,
        )


def load_upstream(path: Path, role: str) -> onnx.ModelProto:
    """Read an upstream .onnx file (and its external data, if any) or refuse it plainly."""
    with translate_model_errors(role, path.name, reading=True):
        model = onnx.load(str(path), load_external_data=False)
        if not model.graph.node:
            raise ValueError("the file parses but holds no graph nodes")
        missing = missing_external_data(model, path.parent)
        if missing:
            raise FileNotFoundError(errno.ENOENT, "missing external data", str(missing[0]))
        load_external_data_for_model(model, str(path.parent))
    return model


def missing_external_data(model: onnx.ModelProto, base_dir: Path) -> list[Path]:
    """External data files the model refers to that are not next to it."""
    tensors = [
        *model.graph.initializer,
        *(a.t for n in model.graph.node for a in n.attribute if a.HasField("t")),
    ]
    wanted = {
        base_dir / entry.value
        for tensor in tensors
        if uses_external_data(tensor)
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return sorted(p for p in wanted if not p.is_file())
