"""`facegate bench`: a smoke run on the tiny models, and the report's generated block."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.bench.images import FACE_LAYOUT, bench_images
from gateway.bench.measure import Measurement, split_evenly
from gateway.bench.options import BenchOptions
from gateway.bench.report import BLOCK_BEGIN, BLOCK_END, BenchReport, write_report
from gateway.bench.scenarios import Outcome, Scenario
from gateway.cli import main


@pytest.mark.integration
def test_quick_run_on_tiny_models_prints_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--quick", "--profile", "tiny", "--cache-dir", str(tmp_path)]
    argv += ["--requests", "2", "--throughput-requests", "4", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "p50 ratio" in out and "throughput ratio" in out
    lines = out.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.split()[:3] == ["image", "scenario", "faces"]
    )
    end = lines.index("", start)
    table = [line.split() for line in lines[start + 1 : end]]
    assert [row[:3] for row in table] == [
        [image, side, str(len(FACE_LAYOUT))]
        for image in ("640x480", "4000x3000")
        for side in ("insightface", "rest")
    ]
    for row in table[1::2]:  # the REST rows carry a ratio and a verdict for each target
        assert sum(cell in ("met", "MISSED") for cell in row) == 2


def test_report_needs_the_realistic_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--profile", "tiny", "--write-report", str(tmp_path / "B.md")]
    assert main(argv) == 2
    assert "--profile realistic" in capsys.readouterr().err
    assert not (tmp_path / "B.md").exists()


def test_images_are_4_to_3_jpegs() -> None:
    small, large = bench_images()
    assert (small.width, small.height, large.width, large.height) == (640, 480, 4000, 3000)
    assert small.jpeg[:3] == large.jpeg[:3] == b"\xff\xd8\xff"


def test_split_evenly_keeps_the_total() -> None:
    for total in range(0, 30):
        for parts in range(1, 5):
            chunks = split_evenly(total, parts)
            assert sum(chunks) == total and max(chunks) - min(chunks) <= 1


def _report() -> BenchReport:
    def unused(jpeg: bytes) -> Outcome:
        raise AssertionError("not called")

    scenarios = (
        Scenario("base", "the baseline", unused),
        Scenario("other", "a row", unused, p50_ratio_max=1.10, throughput_ratio_min=1.0),
    )
    from gateway.bench.images import BenchImage

    image = BenchImage("640x480", b"", 640, 480, 4)
    base = Measurement("base", image.name, 4, [100.0, 110.0], 8, 2.0, {"decode": [1.0, 3.0]})
    other = Measurement(
        "other", image.name, 4, [120.0, 130.0], 8, 4.0, {"server total": [115.0, 125.0]}
    )
    return BenchReport(
        options=BenchOptions(),
        scenarios=scenarios,
        images=(image,),
        results={("base", image.name): base, ("other", image.name): other},
        machine={"CPU": "test CPU"},
        settings={"onnxruntime threads": "0"},
        date="today",
        commit="abc1234",
        duration_s=1.0,
    )


def test_report_block_is_replaced_and_hand_written_text_kept(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Title\n\nBefore.\n\n{BLOCK_BEGIN}\nold numbers\n{BLOCK_END}\n\nAfter.\n")
    write_report(path, _report())
    write_report(path, _report())
    text = path.read_text()
    assert text.startswith("# Title\n\nBefore.\n\n") and text.endswith("\n\nAfter.\n")
    assert text.count(BLOCK_BEGIN) == text.count(BLOCK_END) == 1
    assert "old numbers" not in text and "test CPU" in text
    # p50 125 vs 105 and throughput 2/s vs 4/s: both targets missed
    assert "| other | 4 | 125.0 |" in text
    assert "1.19x MISSED (<= 1.10)" in text and "0.50x MISSED (>= 1.00)" in text
    assert "outside the handler 5.0" in text


def test_report_is_created_from_a_template(tmp_path: Path) -> None:
    path = tmp_path / "docs" / "BENCHMARKS.md"
    write_report(path, _report())
    assert path.read_text().count(BLOCK_BEGIN) == 1
