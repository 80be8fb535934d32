"""`facegate models fetch|import|install|synthetic`: put models into the Triton model repository."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.ops.commands._common import (
    LICENCE_NOTE,
    CliError,
    Subparsers,
    add_pack_options,
    add_repository,
)

if TYPE_CHECKING:
    from gateway.ops.repository.install import InstalledModel
    from gateway.ops.repository.providers import ProviderMode

# The roles are the Triton model names (gateway/triton/spec.py); spelled here so that
# `facegate --help` imports nothing heavy.
ROLES = (
    "detector",
    "recognizer",
    "swapper",
    "genderage",
    "liveness",
    "landmark_2d_106",
    "landmark_3d_68",
)


def subparser_init(commands: Subparsers) -> None:
    models = commands.add_parser(
        "models",
        help="put models into the Triton model repository",
        description="Fetch, import or generate models; all end in one prepare step "
        "(stable tensor names, uint8 BGR inputs, self-check) that writes "
        "<repository>/<model>/1/model.onnx and the model configs.",
    )
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    fetch = model_commands.add_parser(
        "fetch",
        help="download a model pack, verify sha256, prepare and install",
        description="Download InsightFace models and install them: the pack's detector, "
        "recognizer, genderage and landmark models (2d106det, 1k3d68), the swapper, and "
        "insightface 2.1's liveness addon (from its pinned release URL, whichever --source). "
        "genderage, the landmark models and liveness are optional: one that cannot be downloaded or verified is skipped with a warning that "
        f"says how to add it later (`facegate models install ROLE FILE`). {LICENCE_NOTE}",
    )
    add_pack_options(fetch)
    fetch.add_argument(
        "--source",
        choices=("hf", "url"),
        default="hf",
        help="Hugging Face hub (honours HF_ENDPOINT) or the plain HTTPS release URLs",
    )
    fetch.add_argument(
        "--cache-dir", type=Path, default=None, help="where partial downloads are kept for resuming"
    )
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    add_repository(fetch)
    _add_install_options(fetch)
    fetch.set_defaults(func=cmd, action_func=fetch_models)

    imp = model_commands.add_parser(
        "import",
        help="install model files already on disk",
        description="Install det_10g.onnx/w600k_r50.onnx (buffalo_l) or "
        "det_500m.onnx/w600k_mbf.onnx (buffalo_s) and inswapper_128.onnx from DIR "
        "(or DIR/<pack>/), named as in the official packs; genderage.onnx, 2d106det.onnx, "
        "1k3d68.onnx and the liveness addon's liveness.onnx too when they are there.",
    )
    imp.add_argument("dir", type=Path, metavar="DIR", help="folder with the official pack's files")
    add_pack_options(imp)
    imp.add_argument(
        "--no-verify", action="store_true", help="skip the pinned sha256 check (re-exported files)"
    )
    add_repository(imp)
    _add_install_options(imp)
    imp.set_defaults(func=cmd, action_func=import_models)

    one = model_commands.add_parser(
        "install",
        help="install one model file from disk into an existing repository",
        description="Prepare and install FILE as the ROLE model, leaving the repository's other "
        "models as they are: e.g. `facegate models install liveness ./liveness.onnx` adds the "
        "liveness addon downloaded by hand. FILE must have the sha256 of a file facegate pins "
        "for ROLE unless --no-verify (re-exported files). Restart Triton (or `facegate serve`) "
        "to load it.",
    )
    one.add_argument("role", choices=ROLES, metavar="ROLE", help=f"one of {', '.join(ROLES)}")
    one.add_argument("file", type=Path, metavar="FILE", help="the upstream .onnx file")
    one.add_argument(
        "--no-verify", action="store_true", help="skip the pinned sha256 check (re-exported files)"
    )
    add_repository(one)
    _add_provider_option(one)
    one.set_defaults(func=cmd, action_func=install_one_model)

    synthetic = model_commands.add_parser(
        "synthetic",
        help="write contract-true synthetic models (NOT face models)",
        description="Generate models with the real models' exact I/O contracts from a fixed seed, for "
        "offline use, tests (tiny) and benchmarks (realistic compute). They are NOT face models.",
    )
    synthetic.add_argument(
        "--profile",
        choices=("tiny", "realistic"),
        default="tiny",
        help="tiny: fast, selective detector for tests; realistic: real-model compute for benchmarks",
    )
    add_repository(synthetic)
    _add_install_options(synthetic)
    synthetic.set_defaults(func=cmd, action_func=write_synthetic_models)


def _add_provider_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--execution-provider",
        choices=("auto", "cpu", "openvino"),
        default="auto",
        help="the embedded Triton's (and the NGC CPU configs') onnxruntime provider per model: "
        "auto times the CPU provider against OpenVINO (FP32) on this host and keeps OpenVINO "
        "where it is faster and its outputs are equal; openvino keeps it wherever the outputs "
        "are equal; cpu compares nothing. OpenVINO needs scripts/bootstrap.sh's "
        "onnxruntime-openvino (default: auto)",
    )


def _add_install_options(parser: argparse.ArgumentParser) -> None:
    _add_provider_option(parser)
    parser.add_argument(
        "--no-optimize",
        action="store_true",
        help="do not save onnxruntime's optimised model next to each model.onnx (it only speeds "
        "up the embedded Triton's loads on this host; the Helm chart's Triton never reads it)",
    )


def cmd(args: argparse.Namespace) -> int:
    action: Callable[[argparse.Namespace], int] = args.action_func
    return action(args)


def _print_installed(installed: Sequence[InstalledModel]) -> None:
    from gateway.ops.repository.report import describe_installed

    for model in installed:
        print(describe_installed(model))


def write_synthetic_models(args: argparse.Namespace) -> int:
    from gateway.ops.repository.install import install_models
    from gateway.ops.repository.synthetic import NOT_A_FACE_MODEL, build_synthetic_models

    print(
        f"Writing {args.profile} synthetic models ({NOT_A_FACE_MODEL}) to {args.repository} ...",
        flush=True,
    )
    models = build_synthetic_models(args.profile)
    label = {"source": f"synthetic-{args.profile}", "synthetic": NOT_A_FACE_MODEL}
    upstream = {role: getattr(models, role) for role in ROLES}
    # `facegate serve --models synthetic` calls this with a Namespace of its own.
    optimize = not getattr(args, "no_optimize", False)
    installed = install_models(
        args.repository,
        upstream,
        dict.fromkeys(upstream, label),
        optimize=optimize,
        execution_provider=getattr(args, "execution_provider", "auto"),
    )
    _print_installed(installed)
    print("Done. These are NOT face models: use them for tests and benchmarks only.")
    # `facegate serve --models synthetic` calls this too (its namespace has no models_command):
    # the hint is for someone who ran `facegate models synthetic`.
    if getattr(args, "models_command", None) == "synthetic":
        print(f"Next: facegate serve --models synthetic --repository {args.repository}")
    return 0


def _install_upstream_files(
    repository: Path,
    files: dict[str, Path],
    source: str,
    provider: ProviderMode,
    optimize: bool = True,
) -> int:
    import hashlib

    from gateway.ops.repository.install import install_models, load_upstream

    upstream = {}
    provenance = {}
    for role, path in files.items():
        print(f"Loading {role}: {path}", flush=True)
        upstream[role] = load_upstream(path, role)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        provenance[role] = {"source": source, "file": path.name, "sha256": digest}
    installed = install_models(
        repository, upstream, provenance, optimize=optimize, execution_provider=provider
    )
    _print_installed(installed)
    print(f"{LICENCE_NOTE}\nNext: facegate serve --repository {repository}")
    return 0


def import_models(args: argparse.Namespace) -> int:
    from gateway.ops.repository.fetch import FetchError, find_pack_files

    try:
        swapper = None if args.swapper == "none" else args.swapper
        files = find_pack_files(args.dir, args.pack, swapper, verify=not args.no_verify)
    except FetchError as exc:
        raise CliError(str(exc)) from exc
    source = f"import:{args.pack}"
    return _install_upstream_files(
        args.repository, files, source, args.execution_provider, not args.no_optimize
    )


def install_one_model(args: argparse.Namespace) -> int:
    from gateway.ops.repository.fetch import sha256_file
    from gateway.ops.repository.packs import pinned_files

    path: Path = args.file
    if not path.is_file():
        raise CliError(f"{path} is not a file: give the path of the {args.role} .onnx file")
    if not args.no_verify:
        pins = pinned_files(args.role)
        digest = sha256_file(path)
        if digest not in {f.sha256 for f in pins}:
            known = "; ".join(f"{f.filename} {f.sha256}" for f in pins)
            raise CliError(
                f"{path} (sha256 {digest}) is none of the files facegate pins for {args.role} "
                f"({known}). Check that it is the right file, or pass --no-verify for a "
                "re-exported one."
            )
    return _install_upstream_files(
        args.repository, {args.role: path}, f"install:{args.role}", args.execution_provider
    )


def fetch_models(args: argparse.Namespace) -> int:
    import tempfile

    from gateway.ops.repository.fetch import FetchError, fetch_pack
    from gateway.ops.repository.packs import LICENCE_NOTE as TERMS

    # Before any byte is downloaded: fetching means accepting InsightFace's terms.
    print(TERMS, flush=True)
    staging = args.cache_dir or Path(tempfile.gettempdir()) / "facegate-fetch"
    try:
        swapper = None if args.swapper == "none" else args.swapper
        files = fetch_pack(args.pack, swapper, args.source, staging, progress=not args.quiet)
    except FetchError as exc:
        raise CliError(str(exc)) from exc
    source = f"{args.source}:{args.pack}"
    return _install_upstream_files(
        args.repository, files, source, args.execution_provider, not args.no_optimize
    )
