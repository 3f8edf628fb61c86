#!/usr/bin/env bash
# The study in one command.
#   ./run_all.sh          set up .venv on first use, then run every numbered notebook in order
#   ./run_all.sh test     the full test suite: pytest on lib/ + nbval on every notebook
#   ./run_all.sh lab      JupyterLab on the notebooks, with the project's environment
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv
PY="$VENV/bin/python"
STAMP="$VENV/.genrestudy-installed"

setup() {
    # (re)install when the venv is missing or pyproject.toml changed since the last install
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        return
    fi
    echo "== setting up $VENV (first use or changed dependencies; a few minutes)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        { echo "run_all.sh: Python >= 3.10 is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
    [ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -e '.[test]'
    echo "$want" > "$STAMP"
}

run_study() {
    local out=build/executed
    mkdir -p "$out"
    local started=$SECONDS
    for nb in notebooks/[0-9][0-9]_*.ipynb; do
        local name
        name=$(basename "$nb")
        echo "== $name"
        if ! "$VENV/bin/papermill" --log-output --no-progress-bar "$nb" "$out/$name" > "$out/${name%.ipynb}.log" 2>&1; then
            echo "run_all.sh: $name failed; its error:" >&2
            grep -A 15 -E "^(-{10,}|[A-Za-z]*Error|Exception)" "$out/${name%.ipynb}.log" | tail -n 25 >&2 || tail -n 25 "$out/${name%.ipynb}.log" >&2
            echo "full log: $out/${name%.ipynb}.log; executed notebook: $out/$name" >&2
            exit 1
        fi
    done
    echo "== done in $((SECONDS - started)) s"
    echo "executed notebooks and logs: $out/"
    echo "figures: figures/"; ls figures/*.png 2>/dev/null | sed 's/^/  /'
    echo "tables:  results/"; ls results/*.csv 2>/dev/null | sed 's/^/  /'
}

run_tests() {
    # figures and tables made by the tests go to build/test, not over the study's own outputs
    export GENRESTUDY_FIGURES="$PWD/build/test/figures" GENRESTUDY_RESULTS="$PWD/build/test/results"
    "$PY" -m pytest tests --nbval-lax --nbval-current-env notebooks "$@"
}

case "${1:-study}" in
    study) setup; run_study ;;
    test) shift; setup; run_tests "$@" ;;
    lab) setup; exec "$VENV/bin/jupyter" lab notebooks ;;
    -h|--help|help) sed -n '2,5p' "$0" | sed 's/^# //' ;;
    *) echo "run_all.sh: unknown command '$1' (expected: test, lab, or nothing)" >&2; exit 2 ;;
esac
