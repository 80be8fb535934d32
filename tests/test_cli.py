"""The command line explains itself and ends in the prepare step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.ops.cli import build_parser, main


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["models"],
        ["models", "fetch"],
        ["models", "import"],
        ["models", "synthetic"],
        ["triton"],
    ],
)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*argv, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "usage: facegate" in out
    if argv in (["models", "fetch"], ["models", "import"], ["models", "synthetic"], ["triton"]):
        assert "--repository" in out


def test_synthetic_writes_a_labelled_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "synthetic", "--repository", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NOT face models" in out
    manifest = json.loads((tmp_path / "MODELS.json").read_text())
    assert set(manifest) == {"detector", "recognizer", "swapper", "genderage", "liveness"}
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
