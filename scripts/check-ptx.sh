#!/usr/bin/env bash
# CI check of our PTX (no GPU needed):
#  1. the committed gpt2-kernels/src/cuda/ptx/*.ptx is exactly what build-ptx.sh makes
#     from gpt2-kernels/kernels/*.cu (fails if stale, missing or orphaned);
#  2. every module declares the ISA version its target allows (7.8 for sm_80, 8.0 for
#     sm_90a) and assembles with ptxas 12.9 for sm_80 and sm_90 (sm_90a modules: sm_90a),
#     failing on any error. Prints each kernel's registers, spills and shared memory.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ptx-tools.sh
ptx_tools_setup

committed=gpt2-kernels/src/cuda/ptx
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT

bash scripts/build-ptx.sh "$fresh" >/dev/null
if ! diff -r "$committed" "$fresh" >"$fresh.diff" 2>&1; then
    echo "FAIL: committed PTX in $committed is stale; run scripts/build-ptx.sh and commit:" >&2
    head -n 40 "$fresh.diff" >&2
    rm -f "$fresh.diff"
    exit 1
fi
rm -f "$fresh.diff"
echo "ok: committed PTX matches gpt2-kernels/kernels/*.cu"

status=0
for ptx in "$committed"/*.ptx; do
    target="$(awk '$1 == ".target" { print $2; exit }' "$ptx")"
    version="$(awk '$1 == ".version" { print $2; exit }' "$ptx")"
    case "$target" in
        sm_80) want=7.8 archs="sm_80 sm_90" ;;
        sm_90a) want=8.0 archs="sm_90a" ;;
        *) echo "FAIL: $ptx: unexpected .target '$target'" >&2; status=1; continue ;;
    esac
    if [[ "$version" != "$want" ]]; then
        echo "FAIL: $ptx: .version $version, a $target module must declare $want" >&2
        status=1
        continue
    fi
    for arch in $archs; do
        if ! log="$("$PTXAS" -arch="$arch" -v -o /dev/null "$ptx" 2>&1)"; then
            echo "FAIL: ptxas -arch=$arch $ptx:" >&2
            echo "$log" >&2
            status=1
            continue
        fi
        # ptxas -v prints per kernel "Compiling entry function", "N bytes stack frame,
        # S bytes spill stores, L bytes spill loads" and "Used R registers, ... B bytes smem".
        echo "$log" | awk -v m="$(basename "$ptx")" -v a="$arch" '
            /Compiling entry function/ { k++ }
            /spill stores/ { spill += $5 + $9 }
            /Used [0-9]+ registers/ {
                if ($5 > regs) regs = $5
                for (i = 1; i + 2 <= NF; i++) if ($(i + 2) ~ /^smem/ && $i + 0 > smem) smem = $i + 0
            }
            END { printf "ok: %-17s %-6s %2d kernels, max %3d regs, %d B spilled, max %d B smem\n", m, a, k, regs, spill, smem }'
    done
done
exit "$status"
