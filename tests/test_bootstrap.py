"""scripts/bootstrap.sh: onnxruntime-openvino is optional, its failure only a warning.

The real script runs in a scratch copy of the repository whose .venv/bin/python is a stand-in:
it succeeds for every pip call but the --target install of onnxruntime-openvino, which leaves
a partial folder behind and fails (as on aarch64/macOS, or a mirror without the wheel).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPENVINO_DIR = Path(".venv/lib/facegate-openvino")

FAKE_PYTHON = """#!/bin/sh
# Stand-in for .venv/bin/python: pip succeeds, except the --target install, which fails
# after writing part of its folder.
target=""
previous=""
for arg in "$@"; do
    [ "$previous" = "--target" ] && target="$arg"
    previous="$arg"
done
if [ -n "$target" ]; then
    mkdir -p "$target/onnxruntime" && echo "ERROR: No matching distribution found" >&2
    exit 1
fi
exit 0
"""


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(tmp_path: Path, constraints: str) -> subprocess.CompletedProcess[str]:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", repo / "scripts" / "bootstrap.sh")
    (repo / "constraints.txt").write_text(constraints)
    _executable(repo / ".venv" / "bin" / "python", FAKE_PYTHON)
    # The Debian-package step: everything present and not root, so it installs nothing.
    bin_dir = tmp_path / "bin"
    for name in ("docker-compose", "chromium", "chromedriver"):
        _executable(bin_dir / name, "#!/bin/sh\nexit 0\n")
    _executable(bin_dir / "id", "#!/bin/sh\necho 1000\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(repo / "scripts" / "bootstrap.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_failed_openvino_install_is_a_warning_and_leaves_no_partial_folder(
    tmp_path: Path,
) -> None:
    done = _run(tmp_path, (ROOT / "constraints.txt").read_text())

    assert done.returncode == 0, done.stderr
    assert "ready" in done.stdout
    assert "could not install onnxruntime-openvino" in done.stderr
    assert "CPU provider" in done.stderr
    assert not (tmp_path / "repo" / OPENVINO_DIR).exists()


@pytest.mark.parametrize("constraints", ["numpy==1.26.4\n", ""])
def test_constraints_without_the_openvino_pin_are_a_warning(
    tmp_path: Path, constraints: str
) -> None:
    done = _run(tmp_path, constraints)

    assert done.returncode == 0, done.stderr
    assert "ready" in done.stdout
    assert "pins no onnxruntime-openvino" in done.stderr
