//! The TMA tensor maps of v4 (`kernels/matmul_v4_wgmma.sm90a.cu`): each operand as a
//! 2-D bf16 tensor, copied in boxes whose contiguous side is 64 elements (one 128-byte
//! swizzle row), swizzled as wgmma reads them, zeros past the edges.

use cudarc::driver::sys;

use super::gemm::Gemm;
use crate::Result;
use crate::cuda::CudaError;
use crate::cuda::module::Arg;

/// The maps of A and B for a tile of 128 x `tile_n`: an operand stored with k contiguous
/// is copied in one box of all its rows of the tile (128 of A, `tile_n` of B); one stored
/// with m or n contiguous in boxes of 64 x 64 (the kernel issues one per 64 of m or n).
pub(super) fn operand_maps(g: &Gemm, tile_n: u32) -> Result<([u64; 16], [u64; 16])> {
    let s = &g.shape;
    let a = if s.layout.a_t() {
        encode(g.a, (s.m, s.k), 64)?
    } else {
        encode(g.a, (s.k, s.m), 128)?
    };
    let b = if s.layout.b_t() {
        encode(g.b, (s.k, s.n), tile_n)?
    } else {
        encode(g.b, (s.n, s.k), 64)?
    };
    Ok((a, b))
}

/// The map of a contiguous row-major bf16 matrix of `rows` rows of `cols` elements at
/// device address `ptr`, copied in boxes of `box_rows` rows by 64 columns.
fn encode(ptr: Arg, (cols, rows): (usize, usize), box_rows: u32) -> Result<[u64; 16]> {
    let Arg::Ptr { ptr, .. } = ptr else {
        unreachable!("matmul operands are buffers")
    };
    let dims = [cols as u64, rows as u64];
    let strides = [cols as u64 * 2]; // bytes between rows (the outer dimension)
    let boxes = [64u32, box_rows];
    let element_strides = [1u32, 1];
    let mut map = sys::CUtensorMap { opaque: [0; 16] };
    // SAFETY: every pointer points to a local array of the length the rank (2) implies,
    // `map` is writable, and `ptr` is the address of a live device buffer of at least
    // rows * cols bf16 (checked by the caller) whose rows are 16-byte multiples (the
    // caller's `rows_of_16_bytes`); the driver only encodes it, nothing is read.
    unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map,
            sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            2,
            ptr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            element_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    }
    .result()
    .map_err(|e| CudaError::driver("cuTensorMapEncodeTiled", e))?;
    Ok(map.opaque)
}
