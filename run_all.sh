#!/usr/bin/env bash
# The study in one command.
#   ./run_all.sh          set up .venv on first use, then run every numbered notebook in order
#   ./run_all.sh test     the full test suite: pytest on lib/ + nbval on every notebook
#   ./run_all.sh lab      JupyterLab on the notebooks, with the project's environment
#   ./run_all.sh clean    remove the caches (data/cache) and say how much they held
#   ./run_all.sh pin      record the exact package versions of .venv in constraints/ (after tests pass)
#   ./run_all.sh [--profile demo|paper] [-p NAME VALUE ...] [NN ...]
#                         a profile (default: paper when data/gtzan exists, else demo), parameters
#                         given to every notebook that has them (e.g. -p n_mels 96), and
#                         optionally only the notebooks numbered NN (e.g. 03), same parameters
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv
PY="$VENV/bin/python"
STAMP="$VENV/.genrestudy-installed"

pinned() {
    # the exact versions the test command passed with, for this Python (constraints/pyX.Y.txt)
    local version
    version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    [ -z "${GENRESTUDY_UNPINNED:-}" ] && [ -f "constraints/py$version.txt" ] && echo "constraints/py$version.txt"
    return 0
}

setup() {
    # (re)install when the venv is missing or pyproject.toml or the pinned versions changed since
    local want constraints
    constraints=$(pinned)
    want=$(cat pyproject.toml ${constraints:+"$constraints"} | sha256sum | cut -d' ' -f1)
    if [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        return
    fi
    echo "== setting up $VENV (first use or changed dependencies; a few minutes)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        { echo "run_all.sh: Python >= 3.10 is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
    [ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
    if [ -n "$constraints" ]; then
        echo "   pinned versions: $constraints (GENRESTUDY_UNPINNED=1 installs the newest allowed instead)"
        "$PY" -m pip install --quiet -c "$constraints" -e '.[test]'
    else
        echo "   no pinned versions for this Python (constraints/); installing the newest allowed by pyproject.toml"
        "$PY" -m pip install --quiet -e '.[test]'
    fi
    # the notebooks' kernel ("Python 3 (genrestudy)") is this environment's Python, inside .venv only
    "$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (genrestudy)" > /dev/null
    echo "$want" > "$STAMP"
}

run_study() {
    local profile="" selected=() overrides=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --profile) profile="${2:?--profile needs demo or paper}"; shift 2 ;;
            --profile=*) profile="${1#--profile=}"; shift ;;
            -p|--parameter) [ $# -ge 3 ] || { echo "run_all.sh: $1 needs NAME VALUE" >&2; exit 2; }
                overrides+=(-p "$2" "$3"); shift 3 ;;
            [0-9][0-9]) selected+=("$1"); shift ;;
            *) echo "run_all.sh: unknown argument '$1' (expected --profile demo|paper, -p NAME VALUE, or notebook numbers like 03)" >&2; exit 2 ;;
        esac
    done
    [ -n "$profile" ] || profile=$("$PY" -m genrestudy.profiles default)
    "$PY" -m genrestudy.profiles check "$profile" "${overrides[@]}" || exit 1
    local out=build/executed/$profile
    mkdir -p "$out"
    echo "== profile: $profile"
    local started=$SECONDS
    for nb in notebooks/[0-9][0-9]_*.ipynb; do
        local name stem
        name=$(basename "$nb")
        stem=${name%.ipynb}
        if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " == *" ${name:0:2} "* ]]; then
            continue
        fi
        echo "== $name"
        local t0=$SECONDS budget
        budget=$("$PY" -m genrestudy.profiles budget "$profile" "$nb")
        # executed copies get one line per step: no progress bars (tqdm reads TQDM_DISABLE), no
        # TensorFlow start-up chatter; the console and JupyterLab keep their bars
        if ! TQDM_DISABLE=1 TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/papermill" --log-output --no-progress-bar \
                -y "$("$PY" -m genrestudy.profiles params "$profile" "$nb" "${overrides[@]}")" \
                "$nb" "$out/$name" > "$out/$stem.log" 2>&1; then
            echo "run_all.sh: $name failed; its error:" >&2
            grep -A 15 -E "^(-{10,}|[A-Za-z]*Error|Exception)" "$out/$stem.log" | tail -n 25 >&2 || tail -n 25 "$out/$stem.log" >&2
            echo "full log: $out/$stem.log; executed notebook: $out/$name" >&2
            exit 1
        fi
        local ran=$((SECONDS - t0))
        "$VENV/bin/jupyter" nbconvert --to html --log-level ERROR --output-dir build/html "$out/$name" ||
            echo "run_all.sh: could not render $name to HTML (the executed notebook is in $out/)" >&2
        echo "   $ran s${budget:+ (demo budget $budget s)}; HTML in $((SECONDS - t0 - ran)) s"
    done
    echo "== done in $((SECONDS - started)) s (profile $profile)"
    echo "executed notebooks and logs: $out/; to read in a browser: build/html/"
    echo "figures: figures/"; ls figures/*.png 2>/dev/null | sed 's/^/  /'
    echo "tables:  results/"; ls results/*.csv 2>/dev/null | sed 's/^/  /'
    [ -f results/README.md ] && echo "all tables gathered in results/README.md"
}

pin() {
    # after ./run_all.sh test passed: record this environment's exact versions for this Python
    local version target
    version=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    target="constraints/py$version.txt"
    mkdir -p constraints
    { echo "# exact versions ./run_all.sh test passed with on Python $version; refresh: ./run_all.sh pin"
      "$PY" -m pip freeze --exclude-editable | grep -v '^genrestudy'; } > "$target"
    echo "wrote $target ($(grep -vc '^#' "$target") packages)"
}

run_tests() {
    # figures and tables made by the tests go to build/test, not over the study's own outputs
    export GENRESTUDY_FIGURES="$PWD/build/test/figures" GENRESTUDY_RESULTS="$PWD/build/test/results"
    "$PY" -m pytest tests --nbval-lax --nbval-current-env notebooks "$@"
}

case "${1:-study}" in
    study) shift || true; setup; run_study "$@" ;;
    --profile|--profile=*|-p|--parameter|[0-9][0-9]) setup; run_study "$@" ;;
    test) shift; setup; run_tests "$@" ;;
    clean) shift; setup; "$PY" -m genrestudy.cache clean "$@" ;;
    pin) shift; setup; pin ;;
    lab) shift; setup
        # Jupyter refuses root without --allow-root (containers often run as root)
        [ "$(id -u)" = 0 ] && set -- --allow-root "$@"
        exec "$VENV/bin/jupyter" lab notebooks "$@" ;;
    -h|--help|help) sed -n '2,11p' "$0" | sed 's/^# //' ;;
    *) echo "run_all.sh: unknown command '$1' (expected: test, lab, clean, pin, or nothing)" >&2; exit 2 ;;
esac
