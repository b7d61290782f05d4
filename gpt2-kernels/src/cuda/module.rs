//! Our PTX modules as the host sees them: the committed text (`include_str!`'d from
//! `ptx/`, generated from `kernels/*.cu` by `scripts/build-ptx.sh`), the kernels each op
//! picks by element type, and the argument values a launch passes.
//!
//! The launcher ([`crate::cuda::Gpu`]) parses each kernel's parameter list out of the
//! PTX and refuses a launch whose arguments do not match it in number and sizes, so a
//! host/kernel signature drift is an error, not memory corruption.

/// One PTX module, compiled into the binary.
#[derive(Debug)]
pub(crate) struct Module {
    /// The module's name, the stem of its `.cu` and `.ptx` files.
    pub name: &'static str,
    /// The PTX text.
    pub ptx: &'static str,
}

/// `Module { name, ptx: include_str!("src/cuda/ptx/<name>.ptx") }` (from any file).
macro_rules! ptx_module {
    ($name:literal) => {
        $crate::cuda::module::Module {
            name: $name,
            ptx: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/cuda/ptx/",
                $name,
                ".ptx"
            )),
        }
    };
}
pub(crate) use ptx_module;

/// The f32 and bf16 instantiations of one templated kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernels {
    pub f32: &'static str,
    pub bf16: &'static str,
}

impl Kernels {
    /// The instantiation for element type `T`.
    pub fn of<T: super::GpuFloat>(&self) -> &'static str {
        if T::IS_BF16 { self.bf16 } else { self.f32 }
    }
}

/// `Kernels { f32: "<base>_f32", bf16: "<base>_bf16" }`, the names `INSTANTIATE` gives.
macro_rules! kernels {
    ($base:literal) => {
        $crate::cuda::module::Kernels {
            f32: concat!($base, "_f32"),
            bf16: concat!($base, "_bf16"),
        }
    };
}
pub(crate) use kernels;

/// One kernel argument, in the PTX parameter types our kernels use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Arg {
    /// A device pointer (`.u64`), with the ordinal of the device the memory is on.
    Ptr { ptr: u64, ordinal: usize },
    /// `unsigned int` (`.u32`).
    U32(u32),
    /// `unsigned long long` (`.u64`).
    U64(u64),
    /// `float` (`.f32`).
    F32(f32),
    /// A TMA tensor map (`const __grid_constant__ CUtensorMap`, `.b8 [128]`), by value.
    TensorMap([u64; 16]),
}

impl Arg {
    /// A null device pointer on device `ordinal`: an absent optional operand.
    pub fn null(ordinal: usize) -> Arg {
        Arg::Ptr { ptr: 0, ordinal }
    }

    /// The pointer `bytes` past this one (the caller keeps it inside its buffer).
    pub fn offset(self, bytes: usize) -> Arg {
        match self {
            Arg::Ptr { ptr, ordinal } => Arg::Ptr {
                ptr: ptr + bytes as u64,
                ordinal,
            },
            other => other,
        }
    }

    /// The size of the PTX parameter, in bytes.
    pub fn size(&self) -> usize {
        match self {
            Arg::Ptr { .. } | Arg::U64(_) => 8,
            Arg::U32(_) | Arg::F32(_) => 4,
            Arg::TensorMap(_) => 128,
        }
    }
}

impl Module {
    /// The byte sizes of `entry`'s parameters, in order; `None` if the module has no
    /// such kernel.
    pub fn params(&self, entry: &str) -> Option<Vec<usize>> {
        // `.visible .entry name(\n\t.param .u64 name_param_0,\n ...\n)`; a struct passed
        // by value is `.param .align 64 .b8 name_param_1[128]`.
        let head = format!(".entry {entry}(");
        let start = self.ptx.find(&head)? + head.len();
        let list = &self.ptx[start..start + self.ptx[start..].find(')')?];
        list.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let words: Vec<&str> = p.split_whitespace().collect();
                let ty = words
                    .iter()
                    .find(|w| w.starts_with('.') && !matches!(**w, ".param" | ".align"))?;
                let bits: usize = ty
                    .trim_start_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()?;
                let count = match words.last()?.split_once('[') {
                    Some((_, n)) => n.strip_suffix(']')?.parse().ok()?,
                    None => 1,
                };
                Some(bits / 8 * count)
            })
            .collect()
    }

    /// The compute capability the module's `.target` needs: `(major, minor, exact)`,
    /// where `exact` marks architecture-specific targets (`sm_90a` runs only on 9.0).
    pub fn target(&self) -> Option<(u32, u32, bool)> {
        let line = self.ptx.lines().find(|l| l.starts_with(".target "))?;
        let sm = line.split_whitespace().nth(1)?.trim_end_matches(',');
        let digits = sm.strip_prefix("sm_")?;
        let (digits, exact) = match digits.strip_suffix('a') {
            Some(d) => (d, true),
            None => (digits, false),
        };
        let n: u32 = digits.parse().ok()?;
        Some((n / 10, n % 10, exact))
    }
}

#[cfg(test)]
impl Module {
    /// Asserts that the PTX declares both instantiations of each of `kernels`, with the
    /// same parameter sizes (the host passes the same arguments to either).
    pub fn assert_declares(&self, kernels: &[Kernels]) {
        for k in kernels {
            let f32 = self.params(k.f32);
            assert!(f32.is_some(), "{}: no kernel `{}`", self.name, k.f32);
            assert_eq!(f32, self.params(k.bf16), "{}: `{}`", self.name, k.bf16);
        }
    }
}

/// Checks a module's `.target` against a device's compute capability `(major, minor)`.
pub(crate) fn check_target(module: &Module, cc: (u32, u32)) -> Result<(), String> {
    let (major, minor, exact) = module
        .target()
        .ok_or_else(|| "no `.target sm_XY` line".to_string())?;
    let fits = if exact {
        cc == (major, minor)
    } else {
        cc >= (major, minor)
    };
    if fits {
        Ok(())
    } else {
        let a = if exact { "a" } else { "" };
        Err(format!(
            "built for sm_{major}{minor}{a}, the device is sm_{}{}",
            cc.0, cc.1
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTX: &str = "//\n.version 7.8\n.target sm_80\n.address_size 64\n\n\
        .visible .entry k_f32(\n\t.param .u64 k_f32_param_0,\n\t.param .u32 k_f32_param_1,\n\
        \t.param .f32 k_f32_param_2\n)\n{\n}\n.visible .entry empty()\n{\n}\n\
        .visible .entry tma(\n\t.param .align 64 .b8 tma_param_0[128],\n\t.param .u32 tma_param_1\n)\n";

    #[test]
    fn params_are_read_from_the_entry_declaration() {
        let m = Module {
            name: "t",
            ptx: PTX,
        };
        assert_eq!(m.params("k_f32"), Some(vec![8, 4, 4]));
        assert_eq!(m.params("empty"), Some(vec![]));
        assert_eq!(m.params("tma"), Some(vec![128, 4]));
        assert_eq!(m.params("k_bf16"), None);
    }

    #[test]
    fn targets_gate_the_compute_capability() {
        let m = Module {
            name: "t",
            ptx: PTX,
        };
        assert_eq!(m.target(), Some((8, 0, false)));
        assert!(check_target(&m, (8, 0)).is_ok());
        assert!(check_target(&m, (9, 0)).is_ok());
        assert!(check_target(&m, (7, 5)).unwrap_err().contains("sm_75"));
        let hopper = Module {
            name: "h",
            ptx: ".version 8.0\n.target sm_90a\n",
        };
        assert_eq!(hopper.target(), Some((9, 0, true)));
        assert!(check_target(&hopper, (9, 0)).is_ok());
        assert!(
            check_target(&hopper, (10, 0))
                .unwrap_err()
                .contains("sm_90a")
        );
    }

    #[test]
    fn args_have_their_ptx_sizes() {
        let sizes: Vec<usize> = [
            Arg::Ptr { ptr: 0, ordinal: 0 },
            Arg::U32(1),
            Arg::U64(2),
            Arg::F32(3.0),
            Arg::TensorMap([0; 16]),
        ]
        .iter()
        .map(Arg::size)
        .collect();
        assert_eq!(sizes, [8, 4, 8, 4, 128]);
    }
}
