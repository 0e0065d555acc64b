#!/usr/bin/env bash
# Publishes a project as a Native AOT executable and fails on ANY build, trim or AOT warning.
#
# Usage: native-aot/publish.sh [PROJECT] [OUTPUT_DIR]
#   PROJECT     project folder or .csproj   (default: src/FastRelay.Server, the `fastrelay` executable)
#   OUTPUT_DIR  where the binary goes        (default: artifacts/native)
#   Relative paths are taken from the repository root; the script runs from any folder.
#   RID=linux-arm64 (environment) publishes for another runtime; the default is linux-x64.
#
# Needs: the .NET 10 SDK, a C toolchain to link (clang, or gcc as the ILCompiler's fallback) with binutils,
# and NuGet access on the first run (the ILCompiler packages are restored like any other package).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

project="${1:-src/FastRelay.Server}"
out="${2:-artifacts/native}"
rid="${RID:-linux-x64}"

if [[ ! -e "$project" ]]; then
    echo "publish.sh: project '$project' not found (paths are relative to $(pwd))" >&2
    exit 2
fi

if ! command -v clang >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
    echo "publish.sh: no native linker: install clang (apt-get install -y clang) or gcc" >&2
    exit 2
fi

assembly="$(dotnet msbuild "$project" -nologo -getProperty:AssemblyName -p:Configuration=Release)"
mkdir -p "$out"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

echo "publish.sh: publishing $project ($assembly) as Native AOT for $rid into $out"

# TrimmerSingleWarn=false: report each trim/AOT warning in full instead of one IL2104/IL3053 per package.
set +e
dotnet publish "$project" \
    -c Release -r "$rid" -o "$out" \
    -p:PublishAot=true \
    -p:TrimmerSingleWarn=false \
    -warnaserror \
    -nologo -clp:NoSummary \
    2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# -warnaserror already fails the build on a logged warning; the grep also catches any that bypass MSBuild's logger.
warnings="$(grep -E ': (warning|error) [A-Z]+[0-9]+|\bIL[23][0-9]{3}\b' "$log" | sort -u || true)"
if [[ $status -ne 0 || -n "$warnings" ]]; then
    echo "publish.sh: FAILED (dotnet publish exit code $status)" >&2
    if [[ -n "$warnings" ]]; then
        echo "publish.sh: warnings and errors:" >&2
        echo "$warnings" >&2
    fi
    exit 1
fi

binary="$out/$assembly"
if [[ ! -x "$binary" ]]; then
    echo "publish.sh: FAILED: $binary was not produced" >&2
    exit 1
fi

size=$(stat -c %s "$binary")
echo "publish.sh: OK, no warnings: $binary is $size bytes ($(numfmt --to=iec-i --suffix=B "$size"))"
if [[ -f "$binary.dbg" ]]; then
    echo "publish.sh: debug symbols in $binary.dbg ($(numfmt --to=iec-i --suffix=B "$(stat -c %s "$binary.dbg")"))"
fi
