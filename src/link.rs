//! What the bootstrap links against. The one symbol the binary took from glibc's `libm.so.6`
//! is `pow`: `f64::powf` in the AWS SDK's client rate limiter (a cube root, for
//! `AWS_RETRY_MODE=adaptive`) and in tokio's poll-time statistics. Defined here, through the `libm` crate (Rust's port of musl's libm, the
//! one `compiler-builtins` uses), the linker resolves it in the binary and drops
//! `libm.so.6`: one shared library fewer for the loader to open, map and relocate at every
//! cold start, and its pages out of the resident set (docs/performance.md).

/// `pow(3)`, as C declares it.
#[unsafe(no_mangle)]
pub extern "C" fn pow(base: f64, exponent: f64) -> f64 {
    libm::pow(base, exponent)
}

#[cfg(test)]
mod tests {
    use super::pow;

    #[test]
    fn pow_takes_the_rate_limiters_cube_roots_and_powers_of_two_as_c_does() {
        // The adaptive retry mode's rate limiter: `(x).powf(1.0 / 3.0)`.
        for cube in [0.001f64, 0.125, 1.0, 8.0, 27.0, 1e6, 12_345.678] {
            let root = pow(cube, 1.0 / 3.0);
            let exact = cube.cbrt();
            assert!(
                (root - exact).abs() <= 4.0 * f64::EPSILON * exact,
                "{cube}: {root} vs {exact}"
            );
        }
        for exponent in 0..=62 {
            assert_eq!(pow(2.0, f64::from(exponent)), (1u64 << exponent) as f64);
        }
    }

    #[test]
    fn pow_follows_c_on_fractions_and_edge_cases() {
        assert_eq!(pow(1.5, 2.0), 2.25);
        assert_eq!(pow(9.0, 0.5), 3.0);
        assert_eq!(pow(2.0, -1.0), 0.5);
        assert_eq!(pow(f64::NAN, 0.0), 1.0);
        assert!(pow(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(pow(10.0, 400.0), f64::INFINITY);
    }
}
