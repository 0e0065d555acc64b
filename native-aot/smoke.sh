#!/usr/bin/env bash
# Smoke test of the Native-AOT binary: starts `fastrelay serve`, subscribes over raw TCP and the Unix socket,
# publishes over WebSocket, checks every event arrives in seq order; when fastrelay-sidecar sits next to it, runs
# the README's agent demo (sidecar on the Unix socket, `fastrelay ask` over WebSocket); then stops everything
# with SIGTERM and checks each exits cleanly. Run native-aot/publish.sh (and publish.sh src/FastRelay.Sidecar) first.
#
# Usage: native-aot/smoke.sh [BINARY]   (default: artifacts/native/fastrelay)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="${1:-artifacts/native/fastrelay}"
[[ -x "$bin" ]] || { echo "smoke.sh: $bin not found: run native-aot/publish.sh first" >&2; exit 2; }

work="$(mktemp -d)"
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && kill -9 "$server_pid" 2>/dev/null || true
    jobs -p | xargs -r kill -9 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
ws_port="$(free_port)"
tcp_port="$(free_port)"
sock="$work/relay.sock"

# wait_for FILE PATTERN SECONDS: polls a log file (a script may poll; tests may not).
wait_for() {
    local deadline=$((SECONDS + $3))
    until grep -q "$2" "$1" 2>/dev/null; do
        if (( SECONDS >= deadline )); then
            echo "smoke.sh: timed out waiting for '$2' in $1:" >&2
            cat "$1" >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

"$bin" serve --ws "127.0.0.1:$ws_port" --tcp "127.0.0.1:$tcp_port" --unix "$sock" --shards 2 >"$work/server.log" 2>&1 &
server_pid=$!
wait_for "$work/server.log" "FastRelay ready" 20

"$bin" sub smoke.topic --url "tcp://127.0.0.1:$tcp_port" --count 3 >"$work/sub-tcp.out" 2>"$work/sub-tcp.err" &
sub_tcp=$!
"$bin" sub smoke.topic --url "unix://$sock" --count 3 >"$work/sub-unix.out" 2>"$work/sub-unix.err" &
sub_unix=$!
wait_for "$work/sub-tcp.err" "subscribed" 20
wait_for "$work/sub-unix.err" "subscribed" 20

"$bin" pub smoke.topic "hello from aot" --url "ws://127.0.0.1:$ws_port/ws" --count 3 >"$work/pub.out"

for name in tcp unix; do
    pid_var="sub_$name"
    if ! timeout 20 tail --pid="${!pid_var}" -f /dev/null; then
        echo "smoke.sh: subscriber ($name) did not receive 3 events" >&2
        cat "$work/sub-$name.out" "$work/sub-$name.err" >&2
        exit 1
    fi
    python3 - "$work/sub-$name.out" "$name" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 3, f"{sys.argv[2]}: expected 3 events, got {len(lines)}: {lines}"
assert [e["seq"] for e in lines] == [1, 2, 3], f"{sys.argv[2]}: seqs {[e['seq'] for e in lines]}"
assert all(e["payload"] == "hello from aot" and e["topic"] == "smoke.topic" for e in lines), lines
print(f"smoke.sh: {sys.argv[2]} subscriber got seq 1..3 in order")
PY
done

grep -q '"seq":3' "$work/pub.out" || { echo "smoke.sh: publisher did not get ACK seq 3" >&2; cat "$work/pub.out" >&2; exit 1; }

sidecar="$(dirname "$bin")/fastrelay-sidecar"
if [[ -x "$sidecar" ]]; then
    "$sidecar" run --config "$(dirname "$bin")/examples/echo-agent.json" --relay "unix://$sock" >"$work/sidecar.log" 2>&1 &
    sidecar_pid=$!
    wait_for "$work/sidecar.log" "agent(s) running" 20
    "$bin" ask "hello from aot agents" --url "ws://127.0.0.1:$ws_port/ws" --timeout 20 >"$work/ask.out" 2>"$work/ask.err" \
        || { echo "smoke.sh: fastrelay ask failed" >&2; cat "$work/ask.out" "$work/ask.err" "$work/sidecar.log" >&2; exit 1; }
    [[ "$(cat "$work/ask.out")" == "You said: hello from aot agents" ]] \
        || { echo "smoke.sh: unexpected reply from the agent:" >&2; cat "$work/ask.out" "$work/ask.err" >&2; exit 1; }
    echo "smoke.sh: fastrelay ask got the streamed reply from fastrelay-sidecar"
    kill -TERM "$sidecar_pid"
    if ! timeout 20 tail --pid="$sidecar_pid" -f /dev/null; then
        echo "smoke.sh: fastrelay-sidecar did not stop within 20 s of SIGTERM" >&2
        exit 1
    fi
    wait "$sidecar_pid" && sidecar_status=0 || sidecar_status=$?
    [[ $sidecar_status -eq 0 ]] || { echo "smoke.sh: fastrelay-sidecar exited with $sidecar_status" >&2; cat "$work/sidecar.log" >&2; exit 1; }
else
    echo "smoke.sh: no $sidecar: agent demo not run"
fi

kill -TERM "$server_pid"
if ! timeout 15 tail --pid="$server_pid" -f /dev/null; then
    echo "smoke.sh: server did not stop within 15 s of SIGTERM" >&2
    exit 1
fi
wait "$server_pid" && status=0 || status=$?
server_pid=""
if [[ $status -ne 0 ]]; then
    echo "smoke.sh: server exited with $status after SIGTERM" >&2
    cat "$work/server.log" >&2
    exit 1
fi
[[ ! -e "$sock" ]] || { echo "smoke.sh: Unix socket file left behind" >&2; exit 1; }
echo "smoke.sh: OK (size $(stat -c %s "$bin") bytes)"
