"""`facegate bench`: InsightFace in process against the REST gateway and the direct gRPC client.

Every scenario starts from the same encoded JPEG bytes and runs the same synthetic models
(NOT face models): InsightFace's SCRFD and ArcFaceONNX classes load the upstream-form .onnx
files in this process; the gateway and the gRPC client (over the wire or through shared
memory) use the prepared form of the same graphs on the embedded Triton, started here as
`facegate serve` would. A recognizer floor compares Triton with plain onnxruntime.

    options   BenchOptions (requests, concurrency levels, device), BenchError
    models    synthetic models in both forms, cached under .facegate/bench/<profile>
    images    a 640x480 and a 12 MP photo with 'faces' the synthetic detector finds
    server    the embedded Triton and `facegate gateway` in a child process
    scenarios Scenario (name + run(jpeg) -> Outcome): InsightFace, REST, gRPC, gRPC+shm
    measure   warm-up, latency at concurrency 1, throughput at each concurrency level
    floor     the recognizer on batches of 32 aligned faces: onnxruntime against Triton
    targets   the issues' targets as data, and their verdicts
    machine   CPU, memory, versions, load, git commit
    procfs    resident memory and CPU time of process trees, from /proc
    tables    the tables as rows; text and Markdown renderings
    report    terminal output, docs/BENCHMARKS.md generated block
    plot      docs/benchmarks.png
    run       run_bench: all of the above in order
    swap      the swap benchmark (`facegate bench --swap`)
"""
