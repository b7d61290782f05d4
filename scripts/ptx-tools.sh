# Sourced by build-ptx.sh and check-ptx.sh: installs the PTX tools from PyPI into a
# virtualenv (once; pinned versions) and sets NVCC (nvcc 13.0, which emits PTX ISA 9.0)
# and PTXAS (ptxas 12.9, which assembles PTX ISA up to 8.8: what a CUDA 12.9 driver takes).
# No GPU, driver or CUDA toolkit is needed. The virtualenv lives in $GPT2_PTX_TOOLS
# (default: ~/.cache/gpt2-rs/ptx-tools); CI can cache that folder.

PTX_TOOLS_PINS=(
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
    nvidia-cuda-nvcc-cu12==12.9.86
)

ptx_tools_setup() {
    local dir="${GPT2_PTX_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/gpt2-rs/ptx-tools}"
    local stamp="$dir/.pins"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${PTX_TOOLS_PINS[*]}" ]]; then
        echo "installing PTX tools into $dir" >&2
        rm -rf "$dir"
        python3 -m venv "$dir"
        "$dir/bin/pip" install --quiet --disable-pip-version-check "${PTX_TOOLS_PINS[@]}"
        echo "${PTX_TOOLS_PINS[*]}" >"$stamp"
    fi
    local site
    site="$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    NVCC="$site/nvidia/cu13/bin/nvcc"
    PTXAS="$site/nvidia/cuda_nvcc/bin/ptxas"
    [[ -x "$NVCC" && -x "$PTXAS" ]] || { echo "PTX tools missing under $dir" >&2; return 1; }
}
