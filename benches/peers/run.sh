#!/usr/bin/env bash
# Measure hnswlib, faiss-cpu (IndexHNSWFlat) and an exact numpy scan on a d1vec benchmark folder
# (docs/bench.md), writing DIR/results/peers.jsonl. Builds benches/peers/.venv on first use.
#
#   benches/peers/run.sh DIR [--threads 1,2] [--ef 16,32,64,128,256] [--queries N] [more: --help]
#   benches/peers/run.sh --setup       only build the virtual environment
#   benches/peers/run.sh --selftest    check peers.py on synthetic data against an oracle
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
stamp="$venv/.requirements"
python="${PYTHON:-python3}"

ensure_venv() {
    if [[ -f "$stamp" ]] && cmp -s "$stamp" "$here/requirements.txt"; then
        return
    fi
    echo "peers: building $venv (hnswlib compiles from source: about a minute)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
}

if [[ $# -eq 0 ]]; then
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi

ensure_venv
case "$1" in
    --setup) exit 0 ;;
    --selftest) shift; cd "$here" && exec "$venv/bin/python" selftest.py "$@" ;;
    *) exec "$venv/bin/python" "$here/peers.py" "$@" ;;
esac
