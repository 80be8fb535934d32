"""`facegate models import` of a folder with every buffalo_l file installs the landmark models."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ops.cli import main
from gateway.ops.repository.packs import BUFFALO_L, BUFFALO_S, pinned_files, select_files
from gateway.ops.repository.synthetic import SyntheticModels
from gateway.triton import spec

# The official pack's file names for each stand-in (2d106det and 1k3d68 sit beside the rest).
BUFFALO_L_NAMES = {
    "det_10g.onnx": "detector",
    "w600k_r50.onnx": "recognizer",
    "genderage.onnx": "genderage",
    "2d106det.onnx": "landmark_2d_106",
    "1k3d68.onnx": "landmark_3d_68",
}


def test_import_of_a_buffalo_l_folder_installs_both_landmark_models(
    tiny_models: SyntheticModels, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "buffalo_l"
    folder.mkdir()
    for filename, role in BUFFALO_L_NAMES.items():
        (folder / filename).write_bytes(getattr(tiny_models, role).SerializeToString())
    repository = tmp_path / "repo"

    argv = ["models", "import", str(folder), "--swapper", "none", "--no-verify"]
    assert main([*argv, "--repository", str(repository)]) == 0

    for name in (spec.LANDMARK_2D106, spec.LANDMARK_3D68):
        assert (repository / name / "1" / "model.onnx").is_file()
        config = (repository / name / "configs" / "embedded.pbtxt").read_text()
        assert f'name: "{name}"' in config and "max_batch_size: 32" in config
    out = capsys.readouterr().out
    assert spec.LANDMARK_2D106 in out and spec.LANDMARK_3D68 in out


def test_both_packs_pin_the_landmark_files_as_optional() -> None:
    for pack in (BUFFALO_L, BUFFALO_S):
        files = select_files(pack.name, None)
        assert files[spec.LANDMARK_2D106].filename == "2d106det.onnx"
        assert files[spec.LANDMARK_3D68].filename == "1k3d68.onnx"
        assert files[spec.LANDMARK_3D68].url == pack.detector.url  # the same release zip
    assert {f.sha256 for f in pinned_files(spec.LANDMARK_3D68)} == {
        "df5c06b8a0c12e422b2ed8947b8869faa4105387f199c477af038aa01f9a45cc"
    }
    assert {f.size_bytes for f in pinned_files(spec.LANDMARK_2D106)} == {5_030_888}
