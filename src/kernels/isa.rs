//! The instruction-set paths ([`Isa`]): their names, their rank within an architecture, and the
//! architecture they belong to. Which one runs is chosen by `crate::dispatch`.

/// One instruction-set path. The order of the variants within an architecture is their rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust: the reference every other path must equal bit for bit.
    Scalar,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// x86-64 AVX-VNNI (VEX-encoded `vpdpbusd` on 256-bit registers).
    AvxVnni,
    /// x86-64 AVX-512 F/BW/VL + VNNI (`vpdpbusd` on 512-bit registers).
    Avx512Vnni,
    /// x86-64 AMX-INT8 (`tdpbusd` on tile registers) for the int8 GEMM, AVX-512 VNNI for the rest.
    Amx,
    /// aarch64 Advanced SIMD.
    Neon,
    /// aarch64 Advanced SIMD with the dot-product extension (`sdot`/`udot`).
    NeonDotprod,
}

impl Isa {
    /// Every path, in the order of `FERROQ_ISA` names.
    pub const ALL: [Isa; 7] = [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni, Isa::Amx, Isa::Neon, Isa::NeonDotprod];

    /// The name used by `FERROQ_ISA` and `ferroq.backend()`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Amx => "amx",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "neon-dotprod",
        }
    }

    /// The path with this `FERROQ_ISA` name, if any.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// How far up its architecture's ladder this path is (scalar is 0 everywhere): a path of
    /// higher rank runs everything a lower one of the same architecture does, faster.
    pub fn rank(self) -> u8 {
        match self {
            Isa::Scalar => 0,
            Isa::Avx2 | Isa::Neon => 1,
            Isa::AvxVnni | Isa::NeonDotprod => 2,
            Isa::Avx512Vnni => 3,
            Isa::Amx => 4,
        }
    }

    /// The CPU architecture whose instructions the path uses (`None` for scalar, which runs
    /// everywhere).
    pub fn architecture(self) -> Option<Architecture> {
        match self {
            Isa::Scalar => None,
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni | Isa::Amx => Some(Architecture::X86_64),
            Isa::Neon | Isa::NeonDotprod => Some(Architecture::Aarch64),
        }
    }

    /// True when this CPU has the instructions and this build has kernels for the path.
    pub fn is_supported(self) -> bool {
        super::table(self).is_some()
    }
}

/// A CPU architecture with SIMD paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    X86_64,
    Aarch64,
}

