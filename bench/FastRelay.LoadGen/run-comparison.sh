#!/usr/bin/env bash
# Reproduces the FastRelay vs Redis pub/sub comparison from a fresh clone.
#
# Usage: bash bench/FastRelay.LoadGen/run-comparison.sh [--full] [--jit] [--server PATH] [loadgen options...]
#   (default)     fanout, 1 topic x 1000 subscribers, 1 publisher, max rate, 10 s per target,
#                 against fastrelay-ws, fastrelay-tcp and redis back to back (about 1 minute)
#   --full        also: fanout at fixed rates (latency vs throughput sweep), latency at 2000 msg/s,
#                 rooms (1000 x 5) and 10,000 idle connections (about 4 more minutes)
#   --jit         run the server from `dotnet build` output instead of the Native-AOT binary
#   --server PATH use this server binary (or fastrelay.dll) and build nothing for it
#   other options go to every run and win over the defaults, e.g. --repeat 3 (median of 3 interleaved runs),
#                 --diagnostics (server GC collections and allocated bytes per message over EventPipe; builds
#                 bench/FastRelay.GcProbe; the server must be built with EventSourceSupport, as publish.sh does)
#
# Installs redis-server when it is missing (apt-get, as root), publishes the Native-AOT server
# (native-aot/publish.sh; needs clang or gcc) unless artifacts/native/fastrelay exists, builds the load
# generator, runs, and writes results JSON, Markdown tables and SVG charts under artifacts/loadgen/.
# Every run is bounded in time and messages; servers bind to 127.0.0.1 only.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

full=0
jit=0
server=()
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --full) full=1 ;;
        --jit) jit=1 ;;
        --server) server=(--server "$2"); shift ;;
        --server=*) server=(--server "${1#--server=}") ;;
        *) extra+=("$1") ;;
    esac
    shift
done

if ! command -v redis-server >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "run-comparison: installing redis-server (apt-get)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "run-comparison: redis-server is missing: apt-get update && apt-get install -y redis-server" >&2
        exit 2
    fi
fi

if [[ ${#server[@]} -gt 0 ]]; then
    :
elif [[ $jit -eq 1 ]]; then
    dotnet build -c Release src/FastRelay.Server -nologo -clp:NoSummary -v:q
    server=(--server src/FastRelay.Server/bin/Release/net10.0/fastrelay.dll)
elif [[ ! -x artifacts/native/fastrelay ]]; then
    if ! bash native-aot/publish.sh; then
        echo "run-comparison: Native-AOT publish failed; falling back to the JIT server (dotnet build)" >&2
        dotnet build -c Release src/FastRelay.Server -nologo -clp:NoSummary -v:q
        server=(--server src/FastRelay.Server/bin/Release/net10.0/fastrelay.dll)
    fi
fi

dotnet build -c Release bench/FastRelay.LoadGen -nologo -clp:NoSummary -v:q
for arg in "${extra[@]}"; do
    if [[ "$arg" == "--diagnostics" ]]; then
        dotnet build -c Release bench/FastRelay.GcProbe -nologo -clp:NoSummary -v:q
        break
    fi
done
loadgen=(dotnet bench/FastRelay.LoadGen/bin/Release/net10.0/fastrelay-loadgen.dll)

run() { "${loadgen[@]}" "$@" "${server[@]}" "${extra[@]}"; }

run fanout --subscribers 1000 --duration 10 --warmup 2

if [[ $full -eq 1 ]]; then
    run fanout --subscribers 1000 --rates 50,100,200,500 --duration 5 --warmup 2
    run latency --subscribers 50 --rate 2000 --duration 10 --warmup 2
    run rooms --topics 1000 --subscribers 5 --publishers 10 --rate 200 --duration 10 --warmup 2
    run connections --connections 10000
fi

echo "run-comparison: results in artifacts/loadgen/ (JSON, Markdown, SVG)" >&2
