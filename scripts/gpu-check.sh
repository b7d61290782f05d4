#!/usr/bin/env bash
# The GPU check, in two halves, because the GPU machine has the NVIDIA driver but no Rust:
#
#   scripts/gpu-check.sh build   here, with cargo: builds the workspace's test binaries and
#                                the cuda_* benches in release mode with --features cuda,
#                                strips them into gpu-bin/ (git-ignored) with a manifest.
#                                GPU_ONLY=1: only the cuda_* tests and benches (~10 MB
#                                instead of ~35 MB).
#   scripts/gpu-check.sh run     on the GPU machine, from a copy of the repo that carries
#                                gpu-bin/: runs every binary from its package's folder (as
#                                cargo does, so fixtures are found relative to the working
#                                directory): the GPU tests first (cuda_matmul twice: v4 in a
#                                process of its own), then the GPU benches, then PyTorch on
#                                the same bench cases (scripts/bench_torch_gpu.py) and a
#                                summary of each bench line as a % of it, then the other
#                                (CPU) tests, then compute-sanitizer on the GPU tests' small
#                                cases (`sanitize`). Prints one line per kernel, check and
#                                bench case, and a verdict per binary; exits non-zero on any
#                                failure (a missing GPU included). Logs: gpu-bin/logs/ (and
#                                $OUT/gpu-check-logs/ when $OUT is set).
#                                GPU_ONLY=1: skip the CPU tests. SANITIZE=0: skip the sanitizer.
#   scripts/gpu-check.sh sanitize  only the compute-sanitizer part.
#
# With the device tool: build here, then run with carry ["gpu-bin"]. In a short GPU
# session: `GPU_ONLY=1 bash scripts/gpu-check.sh build` here, then on the GPU machine
# `GPU_ONLY=1 SANITIZE=0 bash scripts/gpu-check.sh run`
# (GPU tests, benches, yardstick: about 4 minutes), then if time is left
# `bash scripts/gpu-check.sh sanitize`. The GPU tests run first, so a timeout still leaves
# their lines.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/gpu-bin"
cd "$root"

build() {
    command -v cargo >/dev/null || { echo "build needs cargo (run it where Rust is)" >&2; exit 1; }
    local json
    json="$(mktemp)"
    cargo test --workspace --release --features cuda --no-run --message-format=json >"$json"
    cargo bench --workspace --features cuda --bench 'cuda_*' --no-run --message-format=json >>"$json"
    rm -rf "$bin"
    mkdir -p "$bin"
    # One line per executable: kind, package folder (relative), file name in gpu-bin/.
    python3 - "$json" "$root" "$bin" <<'PY'
import json, os, shutil, sys
path, root, out = sys.argv[1:]
gpu_only = os.environ.get("GPU_ONLY") == "1"
seen, rows = set(), []
for line in open(path):
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    exe = m.get("executable")
    if m.get("reason") != "compiler-artifact" or not exe or exe in seen:
        continue
    kind = "bench" if "bench" in m["target"]["kind"] else "test"
    if kind == "test" and not m["profile"]["test"]:
        continue  # examples and binaries that cargo test only builds
    if gpu_only and not m["target"]["name"].startswith("cuda_"):
        continue  # GPU_ONLY=1: only the GPU tests and benches
    seen.add(exe)
    pkg = os.path.relpath(os.path.dirname(m["manifest_path"]), root)
    # "path+file:///…/gpt2-core#0.1.0" or "path+file:///…#gpt2@0.1.0"
    where, frag = m["package_id"].rsplit("#", 1)
    crate = frag.split("@")[0] if "@" in frag else where.rstrip("/").rsplit("/", 1)[-1]
    name = f"{kind}-{crate}-{m['target']['name']}"
    shutil.copy(exe, os.path.join(out, name))
    # GPU tests first, then the GPU benches, then everything else.
    order = 0 if kind == "test" and "-cuda_" in name else 1 if kind == "bench" else 2
    rows.append((order, name, f"{kind}\t{pkg}\t{name}\n"))
with open(os.path.join(out, "manifest.tsv"), "w") as manifest:
    manifest.writelines(row for _, _, row in sorted(rows))
PY
    rm -f "$json"
    strip "$bin"/test-* "$bin"/bench-*
    echo "gpu-bin/: $(wc -l <"$bin/manifest.tsv") binaries, $(du -sh "$bin" | cut -f1)"
    cat "$bin/manifest.tsv"
}

# one KIND PKG NAME [VAR=value...] [-- ARGS...]: runs gpu-bin/NAME from its package's folder
# (as cargo does, so fixtures are found relative to the working directory) with the given
# environment and arguments; prints its lines and a verdict; keeps its log in gpu-bin/logs/.
one() {
    local kind=$1 pkg=$2 name=$3
    shift 3
    local envs=() args=()
    while [[ $# -gt 0 && "$1" != -- ]]; do envs+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    args=("$@")
    [[ "$kind" == bench ]] && args=(--bench "${args[@]}")
    runs=$((runs + 1))
    local log="$logs/$(printf %02d "$runs")-$name.log" start=$SECONDS status
    # GPT2_REQUIRE_GPU: here, "no CUDA device" is a failure, not a skip.
    if (cd "$root/$pkg" && env CARGO_MANIFEST_DIR="$root/$pkg" GPT2_REQUIRE_GPU=1 "${envs[@]}" \
        timeout 300 "$bin/$name" "${args[@]}") >"$log" 2>&1; then
        status=PASS
    else
        status="FAIL (exit $?)"
    fi
    case "$name" in
        # Ours print one line per kernel/check/case: show them all.
        *-cuda_*) cat "$log" ;;
        # libtest binaries: the result line, and the failures if any.
        *) grep -E '^test result:|^test .* FAILED|^failures:|panicked' "$log" || true ;;
    esac
    [[ "$status" == PASS ]] || tail -n 40 "$log"
    echo "== $status $name ${envs[*]} ${args[*]} ($((SECONDS - start)) s)"
    [[ "$status" == PASS ]]
}

run() {
    [[ -f "$bin/manifest.tsv" ]] || { echo "no gpu-bin/manifest.tsv: run '$0 build' first" >&2; exit 1; }
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
    rm -rf "$logs"
    mkdir -p "$logs"
    local failed=0 kind pkg name
    while IFS=$'\t' read -r kind pkg name; do
        # GPU_ONLY=1: only our GPU tests and benches (the CPU tests need no GPU machine).
        [[ "${GPU_ONLY:-0}" == 1 && "$name" != *-cuda_* ]] && continue
        case "$name" in
            # matmul v4 (wgmma) runs in a process of its own, after the others: a faulting
            # kernel ends the CUDA context, and would take the other results with it.
            test-gpt2-kernels-cuda_matmul)
                one "$kind" "$pkg" "$name" GPT2_CUDA_WGMMA=off -- '!v4' '!auto' || failed=1
                one "$kind" "$pkg" "$name" -- v4 auto || failed=1
                ;;
            *) one "$kind" "$pkg" "$name" || failed=1 ;;
        esac
    done <"$bin/manifest.tsv"
    yardstick
    [[ "${SANITIZE:-1}" != 0 ]] && { sanitize || failed=1; }
    [[ -n "${OUT:-}" && -d "${OUT:-}" ]] && cp -r "$logs" "$OUT/gpu-check-logs"
    [[ $failed == 0 ]] && echo "gpu-check: all passed" || echo "gpu-check: FAILURES above"
    return "$failed"
}

# PyTorch on the benches' cases (scripts/bench_torch_gpu.py), then each bench line as a %
# of the yardstick's throughput on the same case.
yardstick() {
    if ! python3 -c 'import torch' 2>/dev/null; then
        echo "== SKIP yardstick (python3 has no torch)"
        return 0
    fi
    local start=$SECONDS
    if timeout 300 python3 "$root/scripts/bench_torch_gpu.py" >"$logs/torch.log" 2>&1; then
        echo "== PASS yardstick ($((SECONDS - start)) s)"
    else
        tail -n 20 "$logs/torch.log"
        echo "== FAIL yardstick ($((SECONDS - start)) s)"
    fi
    echo "== yardstick summary (throughput as % of PyTorch's on the same GPU)"
    python3 "$root/scripts/bench_torch_gpu.py" --summary "$logs"/*bench-*.log "$logs/torch.log"
}

# compute-sanitizer (memcheck, racecheck) on the GPU tests' small cases (GPT2_CUDA_QUICK),
# each buffer an exact allocation (GPT2_CUDA_POOL=off) so that memcheck sees its end.
sanitize() {
    if ! command -v compute-sanitizer >/dev/null; then
        echo "== SKIP compute-sanitizer (not installed)"
        return 0
    fi
    mkdir -p "$logs"
    local failed=0 tool test start status filters
    for job in "memcheck cuda_ops" "racecheck cuda_ops" "memcheck cuda_matmul" \
        "memcheck cuda_attention" "racecheck cuda_attention"; do
        read -r tool test <<<"$job"
        [[ -x "$bin/test-gpt2-kernels-$test" ]] || continue
        filters=()
        [[ "$test" == cuda_matmul ]] && filters=('!v4' '!auto')
        start=$SECONDS
        if GPT2_CUDA_QUICK=1 GPT2_CUDA_POOL=off GPT2_CUDA_WGMMA=off GPT2_REQUIRE_GPU=1 \
            timeout 240 compute-sanitizer --tool "$tool" --error-exitcode 86 \
            "$bin/test-gpt2-kernels-$test" "${filters[@]}" >"$logs/sanitizer-$tool-$test.log" 2>&1; then
            status=PASS
        else
            status="FAIL (exit $?)"
            failed=1
            tail -n 40 "$logs/sanitizer-$tool-$test.log"
        fi
        grep -E "^$test:|ERROR SUMMARY|RACECHECK SUMMARY" "$logs/sanitizer-$tool-$test.log" || true
        echo "== $status compute-sanitizer --tool $tool $test, small cases ($((SECONDS - start)) s)"
    done
    return "$failed"
}

logs="$bin/logs"
runs=0
case "${1:-}" in
    build) build ;;
    run) run ;;
    sanitize) sanitize ;;
    *) echo "usage: $0 build | run | sanitize" >&2; exit 2 ;;
esac
