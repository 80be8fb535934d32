"""The one prepare-and-install step that fetch, import and synthetic all end in.

Everything is prepared and self-checked in memory first, so a model that fails its
preparation or self-check installs nothing. Files are then written one by one, each
through a temporary name and an atomic rename: an I/O error midway can leave some models
new and others old, never a half-written file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import onnx

from gateway.ops.repository import configs
from gateway.ops.repository.prepare import PREPARERS, PreparedModel, make_model_metadata
from gateway.ops.repository.selfcheck import SelfCheckResult, self_check
from gateway.triton import spec

log = logging.getLogger(__name__)
MANIFEST_NAME = "MODELS.json"
RUNNER_SOURCE = Path(__file__).with_name("runner.py")


@dataclass(frozen=True)
class InstalledModel:
    """What was written for one model, for the CLI's summary and the manifest."""

    name: str
    path: Path
    source: str
    max_batch_size: int
    check: SelfCheckResult
    notes: tuple[str, ...]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_configs(repository: Path, name: str, max_batch_size: int) -> None:
    """Write every config variant of one model (config.pbtxt and configs/*.pbtxt)."""
    detector_batch = max_batch_size if name == spec.DETECTOR else 8
    layout = configs.layouts(detector_batch)[name]
    for variant in configs.VARIANTS:
        text = configs.render_config(layout, variant)
        _write_atomic(repository / name / configs.config_path(variant), text.encode())


def read_manifest(repository: Path) -> dict[str, dict[str, object]]:
    """MODELS.json: per model, its source, sha256 of the upstream file and synthetic label."""
    path = repository / MANIFEST_NAME
    if not path.exists():
        return {}
    data: dict[str, dict[str, object]] = json.loads(path.read_text())
    return data


def install_models(
    repository: Path,
    upstream: Mapping[str, onnx.ModelProto],
    provenance: Mapping[str, Mapping[str, str]],
) -> list[InstalledModel]:
    """Prepare, self-check and write the given upstream models into the repository.

    `upstream` maps model name (spec.DETECTOR, ...) to the upstream graph; `provenance`
    maps the same names to metadata recorded in the ONNX file and MODELS.json (source,
    sha256, synthetic label).
    """
    prepared: list[tuple[PreparedModel, SelfCheckResult]] = []
    for name, model in upstream.items():
        log.info("preparing %s", name)
        ready = PREPARERS[name](model)
        check = self_check(model, ready)
        log.info(
            "%s self-check: max abs diff %.3g (tolerance %g)",
            name,
            check.max_abs_diff,
            check.tolerance,
        )
        make_model_metadata(ready.model, dict(provenance.get(name, {})))
        prepared.append((ready, check))
    manifest = read_manifest(repository)
    installed = []
    for ready, check in prepared:
        version_dir = repository / ready.name / "1"
        _write_atomic(version_dir / "model.onnx", ready.model.SerializeToString())
        _write_atomic(version_dir / "model.py", RUNNER_SOURCE.read_bytes())
        write_configs(repository, ready.name, ready.max_batch_size)
        meta = dict(provenance.get(ready.name, {}))
        manifest[ready.name] = {
            **meta,
            "max_batch_size": ready.max_batch_size,
            "self_check_max_abs_diff": check.max_abs_diff,
            "notes": list(ready.notes),
        }
        installed.append(
            InstalledModel(
                ready.name,
                version_dir / "model.onnx",
                meta.get("source", "?"),
                ready.max_batch_size,
                check,
                ready.notes,
            )
        )
    _write_atomic(repository / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())
    return installed
