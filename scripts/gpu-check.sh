#!/usr/bin/env bash
# The GPU check, in two halves, because the GPU machine has the NVIDIA driver but no Rust:
#
#   scripts/gpu-check.sh build   here, with cargo: builds the workspace's test binaries and
#                                the cuda_* benches in release mode with --features cuda,
#                                strips them into gpu-bin/ (git-ignored) with a manifest.
#   scripts/gpu-check.sh run     on the GPU machine, from a copy of the repo that carries
#                                gpu-bin/: runs every binary from its package's folder (as
#                                cargo does, so fixtures are found relative to the working
#                                directory), then the cuda_ops tests under compute-sanitizer
#                                (memcheck, racecheck) on small cases, if it is installed.
#                                Prints one line per kernel (cuda_ops), per tensor check,
#                                per benchmark, and a verdict per binary; exits non-zero on
#                                any failure (a missing GPU included). Set SANITIZE=0 to
#                                skip compute-sanitizer.
#
# With the device tool: build here, then run with carry ["gpu-bin"] and the command
# `bash scripts/gpu-check.sh run` (a few minutes; the GPU tests run first, so a timeout
# still leaves their lines).
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

run() {
    [[ -f "$bin/manifest.tsv" ]] || { echo "no gpu-bin/manifest.tsv: run '$0 build' first" >&2; exit 1; }
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
    local failed=0 kind pkg name log start status
    while IFS=$'\t' read -r kind pkg name; do
        log="$(mktemp)"
        start=$SECONDS
        local args=()
        [[ "$kind" == bench ]] && args=(--bench)
        # GPT2_REQUIRE_GPU: here, "no CUDA device" is a failure, not a skip.
        if (cd "$root/$pkg" && CARGO_MANIFEST_DIR="$root/$pkg" GPT2_REQUIRE_GPU=1 \
            timeout 300 "$bin/$name" "${args[@]}") >"$log" 2>&1; then
            status=PASS
        else
            status="FAIL (exit $?)"
            failed=1
        fi
        case "$name" in
            # Ours print one line per kernel/check: show them all.
            *-cuda_*) cat "$log" ;;
            # libtest binaries: the result line, and the failures if any.
            *) grep -E '^test result:|^test .* FAILED|^failures:|panicked' "$log" || true ;;
        esac
        [[ "$status" == PASS ]] || tail -n 40 "$log"
        echo "== $status $name ($((SECONDS - start)) s)"
        rm -f "$log"
    done <"$bin/manifest.tsv"

    local ops
    ops="$(ls "$bin"/test-gpt2-kernels-cuda_ops 2>/dev/null || true)"
    if [[ "${SANITIZE:-1}" != 0 && -n "$ops" ]] && command -v compute-sanitizer >/dev/null; then
        for tool in memcheck racecheck; do
            start=$SECONDS
            if GPT2_CUDA_QUICK=1 GPT2_CUDA_POOL=off GPT2_REQUIRE_GPU=1 \
                timeout 240 compute-sanitizer --tool "$tool" --error-exitcode 86 "$ops" \
                    >"$bin/sanitizer-$tool.log" 2>&1; then
                status=PASS
            else
                status="FAIL (exit $?)"
                failed=1
                tail -n 40 "$bin/sanitizer-$tool.log"
            fi
            grep -E '^cuda_ops:|ERROR SUMMARY|RACECHECK SUMMARY' "$bin/sanitizer-$tool.log" || true
            echo "== $status compute-sanitizer --tool $tool cuda_ops, small cases ($((SECONDS - start)) s)"
        done
    else
        echo "== SKIP compute-sanitizer (not installed, or SANITIZE=0)"
    fi
    [[ $failed == 0 ]] && echo "gpu-check: all passed" || echo "gpu-check: FAILURES above"
    return "$failed"
}

case "${1:-}" in
    build) build ;;
    run) run ;;
    *) echo "usage: $0 build | run" >&2; exit 2 ;;
esac
