#!/usr/bin/env bash
# The plan's unit costs measured on a GPU machine lent through the device tool (issue 22's targets are
# "by the plan on 16 cores + one GPU": a measurement made there replaces the scaled and published figures).
#
#   bash bench/device_costs.sh fetch      here: the wheels that machine lacks (Python 3.12) into .whl/
#   bash bench/device_costs.sh measure    there (the device tool's `run`, carry [".whl"]): install them
#                                         under /tmp/site, then python -m genrestudy.run.plan_machine for
#                                         the paper and audit profiles, Keras on JAX (else PyTorch);
#                                         writes $OUT/costs-<profile>-<backend>.json
#   then here:  ./run_all.sh --profile paper --plan --costs costs-paper-jax.json
#               ./run_all.sh --profile audit --plan --costs costs-audit-jax.json --workers 8
#
# That machine has PyTorch and JAX but no TensorFlow, and no package index: what it lacks of the study's
# stack travels as wheels (versions of constraints/py3.11.txt, the closest pinned set).
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(keras==3.15.1 namex==0.1.0 optree==0.20.0 lightgbm==4.7.0 librosa==0.11.0 soundfile==0.14.0 soxr==1.1.0
        audioread==3.1.0 pooch==1.9.0 decorator==5.3.1 deap==1.4.4 cffi==2.1.1 pycparser==3.12
        platformdirs==4.14.9)

fetch() {
    local platforms=()
    for n in 39 35 34 31 28 27 24 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    mkdir -p .whl
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
    du -sh .whl
}

measure() {
    : "${OUT:?measure runs on the device machine, where \$OUT is set}"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD/lib" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    local backend profile
    for backend in jax torch; do
        KERAS_BACKEND=$backend python3 -c "import keras" 2>/dev/null || continue
        for profile in paper audit; do
            KERAS_BACKEND=$backend python3 -m genrestudy.run.plan_machine --profile "$profile" \
                --out "$OUT/costs-$profile-$backend.json" 2>&1 | tee "$OUT/plan_machine-$profile-$backend.log"
        done
        return 0
    done
    echo "device_costs.sh: Keras imports under neither JAX nor PyTorch there" >&2
    return 1
}

case "${1:-}" in
    fetch) fetch ;;
    measure) measure ;;
    *) echo "usage: bash bench/device_costs.sh fetch|measure" >&2; exit 2 ;;
esac
