//! [`intrinsic_methods!`]: the [`Simd`](super::Simd) methods that are one intrinsic each, written
//! from a short table per instruction set.

/// Writes trait methods that each return one intrinsic applied to the method's operands, in
/// order, from rows `fn(<operands>) -> <result>: <method> = <intrinsic>, ...;` (one signature, then
/// the methods that have it), then rows `unsafe fn(<operands>) [-> <result>]: ...;` for the
/// `unsafe` methods whose intrinsic reads or writes memory. Every method is `#[inline(always)]`
/// and the same code as if written out, e.g. from
/// `fn(a: __m256i, b: __m256i) -> __m256i: sub_i32 = _mm256_sub_epi32;`:
///
/// ```text
/// #[inline(always)]
/// fn sub_i32(self, a: __m256i, b: __m256i) -> __m256i {
///     // SAFETY: (the macro's, once for every method it writes)
///     unsafe { _mm256_sub_epi32(a, b) }
/// }
/// ```
///
/// For a CPU-feature token's [`Simd`](super::Simd) implementation: `self` is the token, and the
/// `// SAFETY:` comment over each invocation names the target features it proves. A `fn` row may
/// only name intrinsics that need no more than those features and touch registers only; an
/// `unsafe fn` row only intrinsics that, beyond them, access exactly the memory the method's
/// caller provides (its `# Safety` section). Methods made of more than one intrinsic, or that
/// reorder their operands, are written out by hand next to the table.
macro_rules! intrinsic_methods {
    (
        $(fn $operands:tt -> $result:ty: $($method:ident = $intrinsic:path),+;)+
        $(unsafe fn $memory_operands:tt $(-> $memory_result:ty)?: $($memory_method:ident = $memory_intrinsic:path),+;)*
    ) => {
        $($($crate::kernels::simd::intrinsic_methods!(@register $method $operands -> $result = $intrinsic);)+)+
        $($crate::kernels::simd::intrinsic_methods!(
            @memory [$(-> $memory_result)?] $memory_operands: $($memory_method = $memory_intrinsic),+
        );)*
    };
    (@register $method:ident ($($operand:ident: $ty:ty),+) -> $result:ty = $intrinsic:path) => {
        #[inline(always)]
        fn $method(self, $($operand: $ty),+) -> $result {
            // SAFETY: `self` proves the target features the intrinsic needs (the invocation's
            // comment names them), and the intrinsic only reads and writes registers.
            unsafe { $intrinsic($($operand),+) }
        }
    };
    (@memory $result:tt $operands:tt: $($method:ident = $intrinsic:path),+) => {$(
        $crate::kernels::simd::intrinsic_methods!(@memory_method $method $operands $result = $intrinsic);
    )+};
    (@memory_method $method:ident ($($operand:ident: $ty:ty),+) [$(-> $result:ty)?] = $intrinsic:path) => {
        #[inline(always)]
        unsafe fn $method(self, $($operand: $ty),+) $(-> $result)? {
            // SAFETY: `self` proves the target features the intrinsic needs (the invocation's
            // comment names them), and the caller provides the memory it accesses (see the
            // method's `# Safety` section).
            unsafe { $intrinsic($($operand),+) }
        }
    };
}
pub(crate) use intrinsic_methods;
