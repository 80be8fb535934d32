"""Synthetic models for both sides: upstream files for InsightFace, a repository for Triton."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gateway.ops.repository.synthetic import Profile
from gateway.triton import spec

log = logging.getLogger(__name__)
INSTANCE_KIND_PATTERN = re.compile(r"kind: KIND_(CPU|GPU)")
PARAMETER_PATTERN = re.compile(r'key: "(\w+)" value: \{ string_value: "([^"]*)" \}')
INSTANCE_GROUP_PATTERN = re.compile(r"instance_group \[ \{ ([^}]*) \} \]")
QUEUE_DELAY_PATTERN = re.compile(r"max_queue_delay_microseconds: (\d+)")


@dataclass(frozen=True)
class BenchModels:
    """Where the two forms of the same synthetic models live."""

    repository: Path
    detector_onnx: Path
    recognizer_onnx: Path
    label: str


def prepare_models(cache_dir: Path, profile: Profile, fresh: bool = False) -> BenchModels:
    """Build (or reuse) the profile's detector and recognizer in both forms.

    Writes <cache_dir>/<profile>/repository (prepared, served by Triton) and
    <cache_dir>/<profile>/upstream/{detector,recognizer}.onnx (upstream form, loaded by
    InsightFace). Reused when MODELS.json says synthetic-<profile>, records the install's
    provider choice (`facegate models`' default, auto: OpenVINO where faster here) and both
    files exist.
    """
    import onnx

    from gateway.ops.repository.install import install_models, read_manifest
    from gateway.ops.repository.synthetic import NOT_A_FACE_MODEL, build_synthetic_models

    root = cache_dir / profile
    repository = root / "repository"
    roles = (spec.DETECTOR, spec.RECOGNIZER)
    files = {role: root / "upstream" / f"{role}.onnx" for role in roles}
    source = f"synthetic-{profile}"
    manifest = read_manifest(repository)
    cached = all(path.exists() for path in files.values()) and all(
        manifest.get(role, {}).get("source") == source
        and "execution_provider" in manifest.get(role, {})
        for role in roles
    )
    if fresh or not cached:
        log.info("building %s synthetic models into %s", profile, root)
        models = build_synthetic_models(profile)
        upstream = {spec.DETECTOR: models.detector, spec.RECOGNIZER: models.recognizer}
        label = {"source": source, "synthetic": NOT_A_FACE_MODEL}
        install_models(
            repository, upstream, dict.fromkeys(upstream, label), execution_provider="auto"
        )
        for role, model in upstream.items():
            files[role].parent.mkdir(parents=True, exist_ok=True)
            partial = files[role].with_suffix(".partial")
            onnx.save(model, str(partial))
            os.replace(partial, files[role])
    else:
        log.info("reusing %s synthetic models in %s", profile, root)
    return BenchModels(repository, files[spec.DETECTOR], files[spec.RECOGNIZER], NOT_A_FACE_MODEL)


def embedded_settings(repository: Path, model: str) -> str:
    """What the model's embedded config sets for Triton, in words (for the report).

    Its instance group, dynamic batcher delay and every `parameters` entry but facegate's
    own bookkeeping (facegate_*), e.g. "KIND_CPU count: 1; queue delay 2000 us;
    intra_op_num_threads=0". Read, never edited: the repository tooling generates it.
    """
    config = repository / model / "configs" / f"{spec.EMBEDDED_CONFIG_NAME}.pbtxt"
    text = config.read_text()
    parts = []
    if group := INSTANCE_GROUP_PATTERN.search(text):
        parts.append(group.group(1).replace("kind: ", "").strip())
    if delay := QUEUE_DELAY_PATTERN.search(text):
        parts.append(f"queue delay {delay.group(1)} us")
    parts += [
        f"{key}={value}"
        for key, value in PARAMETER_PATTERN.findall(text)
        if not key.startswith("facegate_")
    ]
    return "; ".join(parts) or "as generated"


def set_instance_kind(repository: Path, model: str, gpu: bool) -> None:
    """Point the model's embedded config at KIND_GPU or KIND_CPU (model.py then picks CUDA or not).

    The generated embedded configs say KIND_CPU; `facegate bench --device gpu` flips the
    benchmark's own cached copy, and a CPU run flips it back.
    """
    config = repository / model / "configs" / f"{spec.EMBEDDED_CONFIG_NAME}.pbtxt"
    text = config.read_text()
    wanted = INSTANCE_KIND_PATTERN.sub(f"kind: KIND_{'GPU' if gpu else 'CPU'}", text)
    if wanted != text:
        config.write_text(wanted)
