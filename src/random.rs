//! Random bytes from the kernel, for jitter and nonces (no crate for two calls).

/// Fill `b` from `getrandom(2)`; false when the kernel gave fewer bytes.
pub fn fill(b: &mut [u8]) -> bool {
    // SAFETY: the pointer and length describe `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    n == b.len() as isize
}

/// A number in [0, 1), for staggering (0.5 when the kernel gives no random bytes).
pub fn unit() -> f64 {
    let mut b = [0u8; 8];
    if !fill(&mut b) {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn units_are_in_range_and_vary() {
        let v: Vec<f64> = (0..64).map(|_| super::unit()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(v.iter().any(|&x| x != v[0]));
    }
}
