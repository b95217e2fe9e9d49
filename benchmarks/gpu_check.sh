#!/usr/bin/env bash
# The GPU checks of archlab, as one script for a session lent the device machine.
#
#   bash benchmarks/gpu_check.sh --prepare   # here, once: pure-Python wheels into .whl/ (git-ignored)
#   bash benchmarks/gpu_check.sh             # there, from the repository root, with .whl carried
#
# The GPU image has PyTorch, pytest, typer, rich and pandas but no archlab and no fvcore:
# archlab is read from the checkout (PYTHONPATH), fvcore and its small needs (iopath, yacs,
# termcolor) travel as wheels. What it runs:
#   1. the CUDA tests: tests/test_devices.py, and the cuda tests of latency, memory, fvcore and the calibration;
#   2. benchmarks/gpu_latency.py: MobileNet v1/v2/v2@alpha=1.4 and ResNet-50 at fp32 and fp16,
#      batch 1 and 32, and MobileNetV2 per layer; its JSON files land in $OUT.
# Seven files come back at most: check.log, environment.json, four latency_*.json, one per_layer json.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--prepare" ]]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    mkdir -p .whl
    # fvcore and iopath publish only source archives: pip builds them into py3-none-any wheels
    exec python3 -m pip wheel --no-deps -w .whl fvcore==0.1.5.post20221221 iopath==0.1.10 yacs==0.1.8 termcolor==3.3.0
fi

OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
fi
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
    python3 -m pytest -q -p no:cacheprovider -rs tests/test_devices.py tests/test_latency.py tests/test_memory.py \
        tests/test_fvcore_agreement.py tests/test_cli.py tests/test_calibrate.py -k "cuda or gpu"
    echo "pytest exit code: $?"
    python3 benchmarks/gpu_latency.py --out "$OUT"
    echo "gpu_latency exit code: $?"
} 2>&1 | tee "$OUT/check.log"
