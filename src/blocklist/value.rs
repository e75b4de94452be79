//! Packing of the 64-bit fst value of one key.
//!
//! ```text
//! bits  0..4   flags: BLOCK_SELF, BLOCK_BELOW, ALLOW_SELF, ALLOW_BELOW
//! bits  4..12  category id of the block rule (index into the header's category table)
//! bits 12..26  list id of the block rule (index into the list table)
//! bits 26..40  list id of the allow rule
//! bits 40..64  note id (1-based index into the header's note table; 0 = none)
//! ```
//! Most keys share category and list ids, so the fst stores the outputs compactly.

/// The rule blocks the name itself.
pub const BLOCK_SELF: u64 = 1;
/// The rule blocks names below the name.
pub const BLOCK_BELOW: u64 = 2;
/// The rule allows the name itself.
pub const ALLOW_SELF: u64 = 4;
/// The rule allows names below the name.
pub const ALLOW_BELOW: u64 = 8;

/// Largest category id.
pub const MAX_CATEGORY: u64 = (1 << 8) - 1;
/// Largest list id.
pub const MAX_LIST: u64 = (1 << 14) - 1;
/// Largest note id.
pub const MAX_NOTE: u64 = (1 << 24) - 1;

/// Pack the fields of a value.
pub fn pack(flags: u64, category: u64, block_list: u64, allow_list: u64, note: u64) -> u64 {
    debug_assert!(flags < 16 && category <= MAX_CATEGORY && block_list <= MAX_LIST);
    debug_assert!(allow_list <= MAX_LIST && note <= MAX_NOTE);
    flags | category << 4 | block_list << 12 | allow_list << 26 | note << 40
}

/// Flag bits.
pub fn flags(v: u64) -> u64 {
    v & 0xf
}
/// Category id of the block rule.
pub fn category(v: u64) -> usize {
    ((v >> 4) & MAX_CATEGORY) as usize
}
/// List id of the block rule.
pub fn block_list(v: u64) -> usize {
    ((v >> 12) & MAX_LIST) as usize
}
/// List id of the allow rule.
pub fn allow_list(v: u64) -> usize {
    ((v >> 26) & MAX_LIST) as usize
}
/// Note id (0 = none).
pub fn note(v: u64) -> usize {
    (v >> 40) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = pack(BLOCK_SELF | ALLOW_BELOW, 200, 16000, 3, 1 << 20);
        assert_eq!(flags(v), BLOCK_SELF | ALLOW_BELOW);
        assert_eq!(category(v), 200);
        assert_eq!(block_list(v), 16000);
        assert_eq!(allow_list(v), 3);
        assert_eq!(note(v), 1 << 20);
    }
}
