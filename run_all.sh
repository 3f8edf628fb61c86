#!/usr/bin/env bash
# The study in one command.
#   ./run_all.sh          set up .venv on first use, then run every numbered notebook in order
#   ./run_all.sh test     the full test suite: pytest on lib/ (two workers) + nbval on every notebook
#   ./run_all.sh lab      JupyterLab on the notebooks, with the project's environment
#   ./run_all.sh clean    remove the cache entries the study wrote (data/cache) and say how much they held
#   ./run_all.sh pin      record the exact package versions of .venv in constraints/ (after tests pass)
#   ./run_all.sh [--profile demo|paper|audit] [-p NAME VALUE ...] [NN ...]
#                         a profile (default: paper when data/gtzan exists, else demo), parameters
#                         given to every notebook that has them (e.g. -p n_mels 96), and
#                         optionally only the notebooks numbered NN (e.g. 03), same parameters;
#                         demo: synthetic data, minutes; paper: the paper's experiments only (one
#                         seed, its split, Table 2's searches, end-to-end ResNet-50, Table 8);
#                         audit: everything the study adds (seeds, protocols, every method and
#                         extractor, neighbouring studies 05-07). Each prints what it leaves out.
#   ./run_all.sh --weights PATH ...   ImageNet weights from a local file or folder instead of
#                         Keras's download (also GENRESTUDY_WEIGHTS=PATH)
#   ./run_all.sh --profile paper --plan [--cores N] [--gpu | --costs FILE] [--workers N]
#                         each notebook's work and estimated duration, here or on a named machine
#   ./run_all.sh --profile paper --scale smoke   every notebook at toy budgets (the wiring's test)
#   ./run_all.sh --scheduler tcp://HOST:8786 ...  the searches and Table 7's method fits on that Dask
#                         cluster (also GENRESTUDY_SCHEDULER=ADDRESS; README: what the workers need)
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
    local want constraints extras
    constraints=$(pinned)
    # the stack for this machine: the `gpu` extra (tensorflow[and-cuda]) where nvidia-smi answers
    # on Linux, else CPU only (GENRESTUDY_STACK=cpu|gpu overrides; lib/genrestudy/run/stack.py)
    extras=$("$PYTHON" lib/genrestudy/run/stack.py extras)
    want=$({ cat pyproject.toml ${constraints:+"$constraints"}; [ "$extras" = test ] || echo "$extras"; } |
           sha256sum | cut -d' ' -f1)
    if [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        "$PY" -m genrestudy.extractors.musicnn_weights fetch --if-missing || true  # fetched since? (offline: one line)
        return
    fi
    echo "== setting up $VENV (first use or changed dependencies; a few minutes); extras: $extras"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        { echo "run_all.sh: Python >= 3.10 is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
    [ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
    if [ -n "$constraints" ]; then
        echo "   pinned versions: $constraints (GENRESTUDY_UNPINNED=1 installs the newest allowed instead)"
        "$PY" -m pip install --quiet -c "$constraints" -e ".[$extras]"
    else
        echo "   no pinned versions for this Python (constraints/); installing the newest allowed by pyproject.toml"
        "$PY" -m pip install --quiet -e ".[$extras]"
    fi
    # the notebooks' kernel ("Python 3 (genrestudy)") is this environment's Python, inside .venv only
    "$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (genrestudy)" > /dev/null
    "$PY" -m genrestudy.extractors.musicnn_weights fetch --if-missing || true  # musicnn's weights; offline: one line, the study runs on
    echo "$want" > "$STAMP"
}

run_notebook() {
    # one notebook of run_study (its locals: profile, out, overrides, selected); $2 prefixes its closing line
    local nb=$1 tag=$2 name stem
    name=$(basename "$nb")
    stem=${name%.ipynb}
    if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " == *" ${name:0:2} "* ]]; then
        return 0
    fi
    local t0=$SECONDS budget skip
    skip=$("$PY" -m genrestudy.run.profiles left-out "$profile" "$nb")
    if [ -n "$skip" ]; then echo "== $name: skipped: $skip"; return 0; fi
    echo "== $name"
    budget=$("$PY" -m genrestudy.run.profiles budget "$profile" "$nb")
    # executed copies get one line per step: no progress bars (tqdm reads TQDM_DISABLE), no
    # TensorFlow start-up chatter; the console and JupyterLab keep their bars
    if ! TQDM_DISABLE=1 TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/papermill" --log-output --no-progress-bar \
            -y "$("$PY" -m genrestudy.run.profiles params "$profile" "$nb" "${overrides[@]}")" \
            "$nb" "$out/$name" > "$out/$stem.log" 2>&1; then
        echo "run_all.sh: $name failed; its error:" >&2
        grep -A 15 -E "^(-{10,}|[A-Za-z]*Error|Exception)" "$out/$stem.log" | tail -n 25 >&2 || tail -n 25 "$out/$stem.log" >&2
        echo "full log: $out/$stem.log; executed notebook: $out/$name" >&2
        return 1
    fi
    local ran=$((SECONDS - t0))
    "$VENV/bin/jupyter" nbconvert --to html --log-level ERROR --output-dir build/html "$out/$name" ||
        echo "run_all.sh: could not render $name to HTML (the executed notebook is in $out/)" >&2
    echo "   $tag$ran s${budget:+ (demo budget $budget s)}; HTML in $((SECONDS - t0 - ran)) s"
}

run_study() {
    local profile="" selected=() overrides=() plan="" machine=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --profile) profile="${2:?--profile needs demo, paper or audit}"; shift 2 ;;
            --profile=*) profile="${1#--profile=}"; shift ;;
            --weights) [ -e "${2:?--weights needs a file or folder}" ] ||
                    { echo "run_all.sh: --weights $2: no such file or folder" >&2; exit 2; }
                export GENRESTUDY_WEIGHTS; GENRESTUDY_WEIGHTS=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
            -p|--parameter) [ $# -ge 3 ] || { echo "run_all.sh: $1 needs NAME VALUE" >&2; exit 2; }
                overrides+=(-p "$2" "$3"); shift 3 ;;
            --scale) export GENRESTUDY_SCALE="${2:?--scale needs full or smoke}"; shift 2 ;;
            --plan) plan=1; shift ;;
            --scheduler) export GENRESTUDY_SCHEDULER="${2:?--scheduler needs an address such as tcp://host:8786}"; shift 2 ;;
            --cores|--workers) machine+=("$1" "${2:?$1 needs a number}"); shift 2 ;;
            --costs) machine+=("$1" "${2:?$1 needs a file written by python -m genrestudy.run.plan_machine}"); shift 2 ;;
            --gpu) machine+=(--gpu); shift ;;
            [0-9][0-9]) selected+=("$1"); shift ;;
            *) echo "run_all.sh: unknown argument '$1' (expected --profile demo|paper|audit, -p NAME VALUE, --weights PATH, --scale full|smoke, --plan [--cores N] [--gpu | --costs FILE] [--workers N], --scheduler ADDRESS, or notebook numbers like 03)" >&2; exit 2 ;;
        esac
    done
    [ -n "$profile" ] || profile=$("$PY" -m genrestudy.run.profiles default)
    # the plan needs neither GTZAN nor the weights: it says what it assumes in their absence
    if [ -n "$plan" ]; then "$PY" -m genrestudy.run.plan "$profile" "${machine[@]}" "${overrides[@]}"; return; fi
    [ ${#machine[@]} -eq 0 ] || { echo "run_all.sh: --cores, --gpu, --costs and --workers go with --plan" >&2; exit 2; }
    # every value checked (type, range, allowed values) before the first notebook: exit 2 on a bad one
    "$PY" -m genrestudy.run.profiles check "$profile" "${overrides[@]}" || exit $?
    local number
    for number in "${selected[@]}"; do
        compgen -G "notebooks/${number}_*.ipynb" > /dev/null ||
            { echo "run_all.sh: no notebook numbered $number (notebooks: $(cd notebooks && ls [0-9][0-9]_*.ipynb | cut -c1-2 | tr '\n' ' '))" >&2; exit 2; }
    done
    # a cluster is checked before the first notebook: reachable, workers with the project and the same cache
    if [ -n "${GENRESTUDY_SCHEDULER:-}" ]; then
        echo "== Dask cluster $GENRESTUDY_SCHEDULER"
        "$PY" -m genrestudy.run.cluster check | sed 's/^/   /'; [ "${PIPESTATUS[0]}" = 0 ] || exit 1
    fi
    local out=build/executed/$profile${GENRESTUDY_SCALE:+-$GENRESTUDY_SCALE}
    mkdir -p "$out"
    echo "== profile: $profile${GENRESTUDY_SCALE:+ (scale $GENRESTUDY_SCALE)}"
    "$PY" -m genrestudy.run.profiles describe "$profile" | sed 's/^/== /'
    # the tables say which profile made them (genrestudy.report.reports reads it)
    export GENRESTUDY_PROFILE="$profile"
    # which device the study will use (and, for the paper profile on a CPU, a measured warning)
    "$PY" -m genrestudy.run.stack device "$profile" | sed 's/^/== /'
    local started=$SECONDS wave waves group
    # one notebook after another; on a cluster, the notebooks of a wave at once (genrestudy.run.cluster.waves)
    if [ -n "${GENRESTUDY_SCHEDULER:-}" ]; then
        mapfile -t waves < <("$PY" -m genrestudy.run.cluster waves notebooks/[0-9][0-9]_*.ipynb)
    else
        waves=(notebooks/[0-9][0-9]_*.ipynb)
    fi
    for wave in "${waves[@]}"; do
        read -r -a group <<< "$wave"
        if [ ${#group[@]} -eq 1 ]; then run_notebook "${group[0]}" "" || exit 1; continue; fi
        local pids=() failed=0 pid
        for nb in "${group[@]}"; do run_notebook "$nb" "$(basename "$nb" .ipynb): " & pids+=($!); done
        for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
        [ "$failed" = 0 ] || exit 1
    done
    echo "== done in $((SECONDS - started)) s (profile $profile)"
    echo "executed notebooks and logs: $out/; to read in a browser: build/html/"
    # where the notebooks wrote (GENRESTUDY_FIGURES / GENRESTUDY_RESULTS move them, as genrestudy.paths does)
    local figures=${GENRESTUDY_FIGURES:-figures} results=${GENRESTUDY_RESULTS:-results}
    echo "figures: $figures/"; ls "$figures"/*.png 2>/dev/null | sed 's/^/  /'
    echo "tables:  $results/"; ls "$results"/*.csv 2>/dev/null | sed 's/^/  /'
    if [ -f "$results/README.md" ]; then echo "all tables gathered in $results/README.md"; fi
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
    if [ $# -gt 0 ]; then  # a selection of tests: one pytest, as given
        "$PY" -m pytest "$@"
        return
    fi
    # the unit tests on two workers (the smoke run of the profiles, the longest test, starts first
    # beside the rest; worksteal: a worker that runs out takes over tests still queued on the other),
    # then every notebook in order under nbval, one kernel at a time
    "$PY" -m pytest tests -n "${GENRESTUDY_TEST_WORKERS:-2}" --dist worksteal
    "$PY" -m pytest --nbval-lax --nbval-current-env notebooks
}

case "${1:-study}" in
    study) shift || true; setup; run_study "$@" ;;
    --profile|--profile=*|-p|--parameter|--weights|--scale|--plan|--scheduler|[0-9][0-9]) setup; run_study "$@" ;;
    test) shift; setup; run_tests "$@" ;;
    clean) shift; setup; "$PY" -m genrestudy.cache clean "$@" ;;
    pin) shift; setup; pin ;;
    lab) shift; setup
        # Jupyter refuses root without --allow-root (containers often run as root)
        [ "$(id -u)" = 0 ] && set -- --allow-root "$@"
        exec "$VENV/bin/jupyter" lab notebooks "$@" ;;
    -h|--help|help) sed -n '2,22p' "$0" | sed 's/^# //' ;;
    *) echo "run_all.sh: unknown command '$1' (expected: test, lab, clean, pin, or nothing)" >&2; exit 2 ;;
esac
