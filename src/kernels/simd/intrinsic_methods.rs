//! [`intrinsic_methods!`]: the [`Simd`](super::Simd) methods that are one intrinsic each, written
//! from a short table per instruction set.

/// Writes trait methods that each return one intrinsic applied to the method's operands, in
/// order, from rows `fn(<operands>) -> <result>: <method> = <intrinsic>, ...;` (one signature, then
/// the methods that have it). Every method is `#[inline(always)]` and the same code as if written
/// out, e.g. from `fn(a: __m256i, b: __m256i) -> __m256i: sub_i32 = _mm256_sub_epi32;`:
///
/// ```text
/// #[inline(always)]
/// fn sub_i32(self, a: __m256i, b: __m256i) -> __m256i {
///     unsafe { _mm256_sub_epi32(a, b) }
/// }
/// ```
///
/// For a CPU-feature token's [`Simd`](super::Simd) implementation: `self` is the token, and the
/// `// SAFETY:` comment over each invocation names the target features it proves. A row may
/// only name intrinsics that need no more than those features and touch registers only; methods
/// made of more than one intrinsic, that access memory or reorder their operands are written out
/// by hand next to the table.
macro_rules! intrinsic_methods {
    (@method $method:ident ($($operand:ident: $ty:ty),+) -> $result:ty = $intrinsic:path) => {
        #[inline(always)]
        fn $method(self, $($operand: $ty),+) -> $result {
            // SAFETY: `self` proves the target features the intrinsic needs (the invocation's
            // comment names them), and the intrinsic only reads and writes registers.
            unsafe { $intrinsic($($operand),+) }
        }
    };
    ($(fn $operands:tt -> $result:ty: $($method:ident = $intrinsic:path),+;)+) => {$($(
        $crate::kernels::simd::intrinsic_methods!(@method $method $operands -> $result = $intrinsic);
    )+)+};
}
pub(crate) use intrinsic_methods;
