"""The command line explains itself and ends in the prepare step."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import pytest

from gateway.ops.cli import COMMANDS, build_parser, main
from gateway.triton import spec


def _command_paths(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
    """Every command and sub-action of the parser, e.g. ['models', 'fetch'], found by walking it."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _command_paths(sub, [*prefix, name])
    return paths


COMMAND_PATHS = _command_paths(build_parser(), [])
# Commands that read or write a model repository.
REPOSITORY_COMMANDS = [
    ["models", "fetch"],
    ["models", "import"],
    ["models", "install"],
    ["models", "synthetic"],
    ["triton"],
    ["serve"],
]


def test_the_registry_has_every_command_word() -> None:
    top = sorted(path[0] for path in COMMAND_PATHS if len(path) == 1)
    # A module name is its command word with "-" written "_" (bench-compat: bench_compat.py).
    assert top == sorted(name.replace("_", "-") for name in COMMANDS)
    assert ["models", "fetch"] in COMMAND_PATHS and ["models", "synthetic"] in COMMAND_PATHS
    assert all(importlib.import_module(f"gateway.ops.commands.{name}").cmd for name in COMMANDS)


@pytest.mark.parametrize("argv", COMMAND_PATHS, ids=lambda argv: " ".join(argv) or "facegate")
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*argv, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: facegate {' '.join(argv)}".rstrip())
    # Every option explains itself: argparse prints a help text after each flag.
    for action in _parser_of(argv)._actions:
        if action.option_strings and action.help != argparse.SUPPRESS:
            assert action.help, f"{' '.join(argv)} {action.option_strings[0]} has no help"
    if argv in REPOSITORY_COMMANDS:
        assert "--repository" in out


def _parser_of(argv: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in argv:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = sub.choices[word]
    return parser


def test_synthetic_writes_a_labelled_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "synthetic", "--repository", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NOT face models" in out
    manifest = json.loads((tmp_path / "MODELS.json").read_text())
    assert set(manifest) == set(spec.ALL_MODELS)
    assert all(entry["synthetic"] == "synthetic: not a face model" for entry in manifest.values())
    for name in manifest:
        assert (tmp_path / name / "1" / "model.onnx").stat().st_size > 0
        assert (tmp_path / name / "1" / "model.py").exists()
        assert (tmp_path / name / "configs" / "embedded.pbtxt").exists()


def test_import_of_a_missing_folder_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            ["models", "import", str(tmp_path / "nowhere"), "--repository", str(tmp_path / "repo")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "error:" in err and "det_10g.onnx" in err
    assert not (tmp_path / "repo" / "MODELS.json").exists()


def test_fetch_states_the_licence_terms_before_downloading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.ops.repository import fetch, packs

    def offline(*args: object, **kwargs: object) -> None:
        print("downloading ...")
        raise fetch.FetchError("offline")

    monkeypatch.setattr(fetch, "fetch_pack", offline)
    assert (
        main(["models", "fetch", "--repository", str(tmp_path), "--cache-dir", str(tmp_path)]) == 2
    )
    out = capsys.readouterr().out
    assert packs.LICENCE_NOTE in out
    assert out.index(packs.LICENCE_NOTE) < out.index("downloading")


def test_install_roles_are_the_triton_model_names() -> None:
    from gateway.ops.commands.models import ROLES
    from gateway.triton import spec

    assert ROLES == spec.ALL_MODELS


@pytest.fixture(scope="module")
def liveness_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import onnx

    from gateway.ops.repository.synthetic import build_synthetic_models

    path = tmp_path_factory.mktemp("upstream") / "liveness.onnx"
    onnx.save(build_synthetic_models("tiny").liveness, str(path))
    return path


def test_install_adds_one_model_and_keeps_the_others(
    tmp_path: Path, liveness_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    assert main(["models", "synthetic", "--repository", str(repo)]) == 0
    before = json.loads((repo / "MODELS.json").read_text())
    detector_bytes = (repo / "detector" / "1" / "model.onnx").read_bytes()
    capsys.readouterr()

    # Not the pinned addon: refused, with the pin and the way out.
    assert (
        main(["models", "install", "liveness", str(liveness_file), "--repository", str(repo)]) == 2
    )
    err = capsys.readouterr().err
    assert "none of the files facegate pins for liveness" in err and "--no-verify" in err
    assert json.loads((repo / "MODELS.json").read_text()) == before

    argv = ["models", "install", "liveness", str(liveness_file), "--no-verify"]
    assert main([*argv, "--repository", str(repo)]) == 0
    after = json.loads((repo / "MODELS.json").read_text())
    assert after["liveness"]["source"] == "install:liveness"
    assert {k: v for k, v in after.items() if k != "liveness"} == {
        k: v for k, v in before.items() if k != "liveness"
    }
    assert (repo / "detector" / "1" / "model.onnx").read_bytes() == detector_bytes


def test_install_of_a_missing_file_or_the_wrong_model_says_what_to_do(
    tmp_path: Path, liveness_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = ["--repository", str(tmp_path / "repo")]
    assert main(["models", "install", "liveness", str(tmp_path / "nope.onnx"), *repo]) == 2
    assert "is not a file" in capsys.readouterr().err
    # A liveness graph offered as the detector: refused by the contract check (exit 3).
    argv = ["models", "install", "detector", str(liveness_file), "--no-verify", *repo]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "Cannot serve the detector" in err and "Traceback" not in err
    assert not (tmp_path / "repo" / "detector").exists()
