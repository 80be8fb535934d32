"""`facegate bench`: the gateway over REST against InsightFace's in-process pipeline.

Both sides start from the same encoded JPEG bytes and run the same synthetic models (NOT
face models): InsightFace's SCRFD and ArcFaceONNX classes load the upstream-form .onnx
files in this process; the gateway serves the prepared form of the same graphs through the
embedded Triton, started here as `facegate serve` would.

    options   BenchOptions, BenchError
    models    synthetic models in both forms, cached under .facegate/bench/<profile>
    images    a 640x480 and a 12 MP photo with 'faces' the synthetic detector finds
    scenarios Scenario (name + run(jpeg) -> Outcome); the InsightFace and REST sides
    measure   warm-up, latency at concurrency 1, throughput at concurrency N
    report    terminal table, docs/BENCHMARKS.md generated block
    run       run_bench: all of the above in order
"""
