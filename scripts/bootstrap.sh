#!/usr/bin/env bash
# Set up a fresh machine: a .venv with facegate, the embedded Triton and the test tools.
# Usage: scripts/bootstrap.sh            (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
echo "==> installing facegate[embedded,test] (numpy 1.26 pinned: see constraints.txt)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[embedded,test]'

# OpenVINO's onnxruntime (PyPI onnxruntime-openvino) is another build of the same `onnxruntime`
# module: in site-packages it would overwrite the venv's onnxruntime (and insightface would
# pull that back). It goes into a folder of its own, which only the processes that choose
# OpenVINO put on sys.path (gateway/ops/repository/providers.py). Its dependencies are
# onnxruntime's (numpy, protobuf, flatbuffers, packaging: already installed) plus sympy,
# which only onnxruntime's tools import, not the runtime (--no-deps leaves it out).
openvino_dir=".venv/lib/facegate-openvino"
# sed, not grep | cut: under pipefail a grep that finds nothing would end the script silently.
openvino_pin=$(sed -n 's/^onnxruntime-openvino==//p' constraints.txt)
if [ -z "$openvino_pin" ]; then
    echo "warning: constraints.txt pins no onnxruntime-openvino; skipping it:" \
        "models stay on the CPU provider" >&2
elif [ ! -d "$openvino_dir/onnxruntime_openvino-${openvino_pin}.dist-info" ]; then
    echo "==> installing onnxruntime-openvino ${openvino_pin} into $openvino_dir"
    rm -rf "$openvino_dir"
    # Optional: no wheel for this platform (aarch64, macOS) or a mirror without it must not end
    # the setup; providers.py then keeps every model on the CPU provider.
    if ! .venv/bin/python -m pip install --quiet --no-deps --target "$openvino_dir" \
        -c constraints.txt "onnxruntime-openvino==${openvino_pin}"; then
        rm -rf "$openvino_dir"
        echo "warning: could not install onnxruntime-openvino ${openvino_pin} (no wheel for" \
            "this platform or index?): models stay on the CPU provider" >&2
    fi
fi

# Debian packages the tests use: docker-compose validates docker-compose.yml without a
# Docker engine (tests/deploy); libb64-0d is needed by perf_analyzer (tests/ops/test_perf.py);
# chromium and chromium-driver run the console's browser tests (tests/console).
missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ -e /usr/lib/x86_64-linux-gnu/libb64.so.0d ] || ldconfig -p 2>/dev/null | grep -q libb64.so.0d || missing+=(libb64-0d)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing Debian packages: ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "warning: missing Debian packages for some tests: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    fi
fi
echo "==> ready: .venv/bin/facegate --help"
