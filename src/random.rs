//! Random bytes from the kernel's CSPRNG (`getrandom(2)`), for keys, nonces, query
//! IDs and jitter: the one place the process takes randomness from.

/// Fill `b` from `getrandom(2)`, across interrupted and partial reads; the error
/// when the kernel refuses.
pub fn try_fill(b: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < b.len() {
        let rest = &mut b[filled..];
        // SAFETY: the pointer and length describe the unfilled part of `b`.
        let r = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += r as usize;
    }
    Ok(())
}

/// Fill `b` from `getrandom(2)`; false when the kernel refused.
pub fn fill(b: &mut [u8]) -> bool {
    try_fill(b).is_ok()
}

/// `n` random bytes.
pub fn bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    try_fill(&mut b)?;
    Ok(b)
}

/// A number below `n` (n ≥ 1), uniform enough for IDs and picks (upstream query
/// IDs must not be guessable: RFC 5452). getrandom(2) does not fail once the pool
/// is ready; if it ever does, the clock's nanoseconds, mixed, still differ per call.
pub fn below(n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let mut b = [0u8; 8];
    if !fill(&mut b) {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b = t.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
    }
    (u64::from_le_bytes(b) % n as u64) as usize
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
