//! Kernels compiled twice: for AVX2 where the CPU has it, and for the baseline.

/// Defines `$name` with the given body (plain loops), compiled twice: for AVX2,
/// used when the CPU has it, and for the baseline instruction set. The compiler
/// vectorises such loops four doubles wide instead of two.
macro_rules! with_avx2 {
    ($(#[$m:meta])* fn $name:ident / $avx:ident / $body:ident ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $block:block) => {
        #[allow(clippy::too_many_arguments)]
        #[inline(always)]
        fn $body($($arg: $ty),*) $(-> $ret)? $block

        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        #[inline]
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: `$avx` only needs AVX2, which this CPU has (checked above).
                return unsafe { $avx($($arg),*) };
            }
            $body($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        fn $avx($($arg: $ty),*) $(-> $ret)? {
            $body($($arg),*)
        }
    };
}

pub(crate) use with_avx2;
