#!/usr/bin/env bash
# `make demo`: build a tiny model folder locally, mirror it into an embedded registry, show it.
# Works offline: the model is synthesised here, nothing is downloaded.
set -euo pipefail
HOME_DIR="${1:-$PWD/.demo}"
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$HERE/../.venv/bin"
MODEL_DIR="$HOME_DIR/tiny-llm"

rm -rf "$HOME_DIR"
mkdir -p "$HOME_DIR"
export MODELCTL_HOME="$HOME_DIR/registry"

echo "==> building a tiny model folder in $MODEL_DIR"
"$BIN/python" "$HERE/synthmodel.py" "$MODEL_DIR" --size 6M --shards 3 >/dev/null
ls -l "$MODEL_DIR"

echo
echo "==> modelctl mirror $MODEL_DIR --name demo/tiny-llm"
"$BIN/modelctl" mirror "$MODEL_DIR" --name demo/tiny-llm

echo
echo "==> the same bytes again: same checkpoint, nothing new stored"
"$BIN/modelctl" mirror "$MODEL_DIR" --name demo/tiny-llm

echo
echo "==> modelctl models"
"$BIN/modelctl" models

echo
echo "==> modelctl inspect demo/tiny-llm"
"$BIN/modelctl" inspect demo/tiny-llm

echo
echo "==> modelctl attest demo/tiny-llm: the registry signs a model signature and provenance"
# Demo only: real deployments keep this passphrase in a secret store.
export MODELCTL_SIGNING_KEY_PASSPHRASE="demo-only-passphrase"
"$BIN/modelctl" attest demo/tiny-llm --signature-out "$HOME_DIR/model.sig" \
    --public-key-out "$HOME_DIR/registry.pub"

echo
echo "==> modelctl verify: the folder against the registry's signature (model_signing compatible)"
"$BIN/modelctl" verify "$MODEL_DIR" --signature "$HOME_DIR/model.sig" \
    --public-key "$HOME_DIR/registry.pub"

echo
echo "==> flip one byte of a shard: verify must say no (exit 1)"
cp -r "$MODEL_DIR" "$HOME_DIR/tampered"
printf '\x00' | dd of="$HOME_DIR/tampered/model-00002-of-00003.safetensors" bs=1 seek=4096 \
    conv=notrunc status=none
if "$BIN/modelctl" verify "$HOME_DIR/tampered" --signature "$HOME_DIR/model.sig" \
    --public-key "$HOME_DIR/registry.pub"; then
    echo "tampering went unnoticed: this is a bug" >&2
    exit 1
fi

echo
echo "==> modelctl scan: a checkpoint whose pickle runs a command when loaded (never loaded here)"
cp "$HERE/../tests/assets/corpus/pickle/os_system_global_reduce_p0.pkl" "$HOME_DIR/pytorch_model.bin"
if "$BIN/modelctl" scan "$HOME_DIR/pytorch_model.bin"; then
    echo "the scanner missed a code-execution pickle: this is a bug" >&2
    exit 1
fi

echo
echo "==> what is on disk (content-addressed blobs)"
find "$MODELCTL_HOME/blobs/sha256" -type f | sed "s|$MODELCTL_HOME/||" | sort | head -5
echo "    ... $(find "$MODELCTL_HOME/blobs/sha256" -type f | wc -l) blobs in all"
echo
echo "registry home: $MODELCTL_HOME (set MODELCTL_HOME to use it with modelctl)"

echo
echo "==> the web UI: a clean checkpoint (allowed in prod) and denied ones, scanned and attested"
"$BIN/python" "$HERE/demo_ui.py" "$HOME_DIR/ui-models" | tee "$HOME_DIR/ui-tokens.txt"
ADMIN_TOKEN="$(awk '$1 == "token" && $2 == "admin" {print $3}' "$HOME_DIR/ui-tokens.txt")"
UI_PORT="${DEMO_UI_PORT:-8080}"
echo
echo "The web UI: http://127.0.0.1:$UI_PORT on the demo data (modelctl serve)."
echo "Sign in with the admin token: $ADMIN_TOKEN"
echo "(the other roles' tokens are in $HOME_DIR/ui-tokens.txt; demo only: tokens are secrets)"
# Serve in the foreground when run from a terminal (or with DEMO_SERVE=1); a script that
# captures the output (tests, CI) gets the data and the tokens without a server left running.
if [ "${DEMO_SERVE:-}" = "1" ] || { [ -t 1 ] && [ "${DEMO_NO_SERVE:-}" != "1" ]; }; then
    echo "Press Ctrl-C to stop it."
    exec "$BIN/modelctl" serve --host 127.0.0.1 --port "$UI_PORT"
fi
echo "(not started: output is not a terminal; run with DEMO_SERVE=1 to serve, or:"
echo "  MODELCTL_HOME=$MODELCTL_HOME MODELCTL_SIGNING_KEY_PASSPHRASE=... $BIN/modelctl serve)"
