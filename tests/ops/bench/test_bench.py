"""`facegate bench`: a smoke run on the tiny models, targets, tables and the report block."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from gateway.ops.bench.floor import FloorResult
from gateway.ops.bench.images import FACE_LAYOUT, BenchImage, bench_images
from gateway.ops.bench.measure import Measurement, planned_requests, split_evenly, throughput_chunks
from gateway.ops.bench.models import embedded_settings
from gateway.ops.bench.options import BenchError, BenchOptions, parse_concurrency
from gateway.ops.bench.report import (
    BLOCK_BEGIN,
    BLOCK_END,
    GPU_BLOCK_BEGIN,
    GPU_BLOCK_END,
    GPU_PLOT_NAME,
    PLOT_NAME,
    write_report,
)
from gateway.ops.bench.scenarios import Outcome, Scenario
from gateway.ops.bench.summary import BenchReport
from gateway.ops.bench.swapcall import SwapResult
from gateway.ops.bench.targets import Target, evaluate
from gateway.ops.cli import main

SCENARIOS = (
    "insightface",
    "insightface-tuned",
    "insightface-openvino",
    "rest",
    "grpc",
    "grpc+shm",
    "faces-model",
)


def _table(out: str, first_cells: list[str]) -> list[list[str]]:
    lines = out.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.split()[: len(first_cells)] == first_cells
    )
    end = lines.index("", start)
    return [line.split() for line in lines[start + 1 : end]]


@pytest.mark.integration
def test_quick_run_on_tiny_models_covers_every_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--quick", "--profile", "tiny", "--cache-dir", str(tmp_path)]
    argv += ["--requests", "2", "--throughput-requests", "4", "--concurrency", "4"]
    argv += ["--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    latency = _table(out, ["image", "scenario", "faces"])
    assert [row[:3] for row in latency] == [
        [image, side, str(len(FACE_LAYOUT))]
        for image in ("640x480", "4000x3000")
        for side in SCENARIOS
    ]
    throughput = _table(out, ["image", "scenario", "img/s", "@1"])
    assert [row[:2] for row in throughput] == [
        [image, side] for image in ("640x480", "4000x3000") for side in SCENARIOS
    ]
    n = len(SCENARIOS)
    for row in throughput[:n]:  # the sweep image has a rate at 1 and 4
        assert all(float(cell) > 0 for cell in row[2:4])
    for row in throughput[n:]:  # the 12 MP image is measured at concurrency 1 only
        assert float(row[2]) > 0 and row[3] == "-"
    floor = _table(out, ["side", "batch"])
    assert [row[:2] for row in floor] == [
        ["onnxruntime", "tuned"],
        ["onnxruntime", "32"],
        ["triton", "grpc"],
        ["triton", "grpc+shm"],
    ]
    assert all(float(row[-2]) > 0 for row in floor)
    swap = _table(out, ["side", "calls"])
    assert [row[:2] for row in swap] == [
        ["insightface", "1"],
        ["insightface-tuned", "1"],
        ["rest", "1"],
    ]
    assert "insightface-tuned (and its swap side): intra_op_num_threads=" in out
    # What each in-process side's sessions really ran on: OpenVINO for both models on the
    # OpenVINO side (the synthetic detector's box means are AveragePools it compiles), the
    # CPU provider on the others.
    assert "insightface, insightface-tuned: sessions ran on: detector: CPUExecutionProvider" in out
    openvino = next(line for line in out.splitlines() if "insightface-openvino: sessions" in line)
    assert "recognizer: OpenVINOExecutionProvider" in openvino
    assert "detector: OpenVINOExecutionProvider" in openvino
    assert "OpenVINO failed" not in openvino
    verdicts = _table(out, ["target", "where"])
    # See TARGETS: p50 3 subjects x 3 baselines x 2 images, c=4 3 x 2 (c=16 not run here),
    # the floor 2, the swap 2.
    assert len(verdicts) == 18 + 6 + 2 + 2
    for row in verdicts:
        # One round: no 'within noise'; the verdict follows from the ratio and the limit.
        # Cells split on spaces: the first "<n>x" is the target's limit, the second the ratio.
        assert row[-1] in ("met", "MISSED")
        sign = "<=" if "<=" in row else ">="
        limit, *measured = [float(c[:-1]) for c in row if re.fullmatch(r"[\d.]+x", c)]
        if measured and abs(measured[0] - limit) > 0.006:  # the table rounds to 2 decimals
            met = measured[0] <= limit if sign == "<=" else measured[0] >= limit
            assert row[-1] == ("met" if met else "MISSED"), row


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


def test_concurrency_list_always_has_1_and_every_round_fills_its_workers() -> None:
    assert parse_concurrency("16,4") == (1, 4, 16)
    with pytest.raises(BenchError):
        parse_concurrency("0,4")
    with pytest.raises(BenchError):
        parse_concurrency("four")
    options = BenchOptions(throughput_requests=16, rounds=2, concurrency=(1, 4, 16))
    assert throughput_chunks(options, 4) == [8, 8] and throughput_chunks(options, 16) == [16, 16]
    # per scenario: 2 images x 20 latency + 16 at c=4 + 32 at c=16 on the first image
    assert planned_requests(options, 2) == 2 * 20 + 16 + 32


def _measurement(
    name: str, rounds_ms: list[list[float]], rates: dict[int, list[tuple[int, float]]]
) -> Measurement:
    return Measurement(name, "640x480", 4, rounds_ms, rates)


def test_targets_say_within_noise_only_when_the_rounds_disagree() -> None:
    base = _measurement("a", [[100.0] * 3, [100.0] * 3], {4: [(8, 1.0), (8, 1.0)]})
    # overall p50 102 > 100 but round 1 meets it; throughput 7.5/s < 8/s in both rounds
    other = _measurement("b", [[99.0] * 3, [104.0] * 3], {4: [(8, 1.05), (8, 1.09)]})
    results = {("a", "640x480"): base, ("b", "640x480"): other}
    targets = (
        Target("b", "a", "p50", 1.0, True, "test"),
        Target("b", "a", "throughput", 1.0, False, "test"),
        Target("b", "a", "throughput", 0.9, False, "test", concurrency=16),  # not measured
    )
    p50, throughput = evaluate(results, ["640x480"], [], targets=targets)
    assert p50.verdict == "within noise" and p50.round_ratios == (0.99, 1.04)
    assert throughput.verdict == "MISSED" and throughput.where == "640x480 c=4"
    floor = [FloorResult("ort", "", 32, [[100.0]]), FloorResult("triton", "", 32, [[110.0]])]
    (verdict,) = evaluate({}, [], floor, (), (Target("triton", "ort", "floor", 0.9, False, "t"),))
    assert verdict.verdict == "met" and math.isclose(verdict.ratio, 100 / 110)
    shown = Target("b", "a", "throughput", 1.0, False, "test", concurrency=4, judged=False)
    (reported,) = evaluate(results, ["640x480"], [], (), (shown,))
    assert reported.verdict == "reported" and reported.ratio < 1.0


def test_swap_goal_is_judged_on_warm_call_p50() -> None:
    swap = [
        SwapResult("insightface", "", [[1000.0, 1000.0], [1000.0]]),
        SwapResult("rest", "", [[850.0, 850.0], [950.0]]),
    ]
    goal = Target("rest", "insightface", "swap", 0.9, True, "t")
    (verdict,) = evaluate({}, [], [], swap, (goal,))
    assert verdict.verdict == "met" and math.isclose(verdict.ratio, 0.85)
    assert verdict.round_ratios == (0.85, 0.95) and verdict.where == "warm call"
    assert evaluate({}, [], [], swap[:1], (goal,)) == []  # a side not measured: no verdict


def _report() -> BenchReport:
    def unused(jpeg: bytes) -> Outcome:
        raise AssertionError("not called")

    scenarios = (
        Scenario("insightface", "the baseline", unused),
        Scenario("insightface-tuned", "tuned", unused),
        Scenario("rest", "a row", unused),
    )
    image = BenchImage("640x480", b"", 640, 480, 4)
    tuned = Measurement(
        "insightface-tuned", image.name, 4, [[80.0, 90.0]], {1: [(2, 0.17)], 4: [(8, 1.0)]}
    )
    base = Measurement(
        "insightface",
        image.name,
        4,
        [[100.0, 110.0]],
        {1: [(2, 0.2)], 4: [(8, 2.0)]},
        {"decode": [1.0, 3.0]},
    )
    other = Measurement(
        "rest",
        image.name,
        4,
        [[120.0, 130.0]],
        {1: [(2, 0.25)], 4: [(8, 4.0)]},
        {"server total": [115.0, 125.0]},
    )
    floor = (
        FloorResult("onnxruntime tuned", "plain", 32, [[100.0, 100.0]]),
        FloorResult("triton grpc", "t", 32, [[125.0, 125.0]]),
    )
    swap = (
        SwapResult("insightface", "defaults", [[1000.0]]),
        SwapResult("insightface-tuned", "tuned", [[800.0]]),
        SwapResult("rest", "route", [[880.0]]),
    )
    return BenchReport(
        options=BenchOptions(concurrency=(1, 4)),
        scenarios=scenarios,
        images=(image,),
        results={
            ("insightface", image.name): base,
            ("insightface-tuned", image.name): tuned,
            ("rest", image.name): other,
        },
        floor=floor,
        swap=swap,
        machine={"CPU": "test CPU"},
        settings={"onnxruntime threads": "0"},
        date="today",
        commit="abc1234",
        duration_s=1.0,
    )


def test_report_block_is_replaced_and_hand_written_text_kept(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Title\n\nBefore.\n\n{BLOCK_BEGIN}\nold numbers\n{BLOCK_END}\n\nAfter.\n")
    write_report(path, _report(), plot=False)
    write_report(path, _report(), plot=False)
    text = path.read_text()
    assert text.startswith("# Title\n\nBefore.\n\n") and text.endswith("\n\nAfter.\n")
    assert text.count(BLOCK_BEGIN) == text.count(BLOCK_END) == 1
    assert "old numbers" not in text and "test CPU" in text
    # p50 125 vs 105 (defaults) and 85 (tuned); img/s 8 vs 10 and ~11.8 at 1, 2 vs 4 and 8 at 4
    assert "| 640x480 | rest | 4 | 125.0 | 129.5 | 1.19x | 1.47x |" in text
    assert "| 640x480 | insightface-tuned | 4 | 85.0 | 89.5 | 0.81x | baseline |" in text
    assert "| 640x480 | rest | 8.00 | 2.00 | 0.80x | 0.50x | 0.68x | 0.25x |" in text
    assert "| rest p50 <= 0.80x insightface | 640x480 | 1.19x | 1.19 | MISSED |" in text
    assert "| rest p50 <= 0.90x insightface-tuned | 640x480 | 1.47x | 1.47 | MISSED |" in text
    assert "| triton grpc | 32 | 2 | 125.0 | 256.0 | 0.80x |" in text
    assert (
        "| triton grpc faces/s >= 0.97x onnxruntime tuned | batch 32 | 0.80x | 0.80 | MISSED |"
        in text
    )
    assert "| rest | 1 | 880.0 | 880.0 | 0.88x | 1.10x |" in text
    assert "| rest swap p50 <= 0.90x insightface | warm call | 0.88x | 0.88 | met |" in text
    assert (
        "| rest swap p50 <= 1.00x insightface-tuned | warm call | 1.10x | 1.10 | MISSED |" in text
    )
    assert "outside the handler 5.0" in text and PLOT_NAME not in text


def test_report_is_created_from_a_template_with_its_plot(tmp_path: Path) -> None:
    path = tmp_path / "docs" / "BENCHMARKS.md"
    plot = write_report(path, _report())
    assert plot == path.parent / PLOT_NAME
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    text = path.read_text()
    assert text.count(BLOCK_BEGIN) == 1 and f"]({PLOT_NAME})" in text


def test_gpu_report_has_its_own_block_and_plot(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(
        f"{BLOCK_BEGIN}\nCPU numbers\n{BLOCK_END}\n\n{GPU_BLOCK_BEGIN}\n_Not run yet._\n{GPU_BLOCK_END}\n"
    )
    report = dataclasses.replace(_report(), options=BenchOptions(concurrency=(1, 4), device="gpu"))
    plot = write_report(path, report)
    text = path.read_text()
    assert plot == tmp_path / GPU_PLOT_NAME and plot.exists()
    assert "CPU numbers" in text and "_Not run yet._" not in text
    assert text.count(GPU_BLOCK_BEGIN) == 1 and "--device gpu`" in text


def test_triton_settings_are_quoted_from_the_embedded_configs() -> None:
    repository = Path(__file__).parents[3] / "model_repository"
    for model in ("detector", "recognizer"):
        text = embedded_settings(repository, model)
        assert text.startswith("KIND_CPU count: ") and "queue delay " in text
        assert "intra_op_num_threads=" in text and "facegate_" not in text
