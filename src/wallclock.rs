//! The wall clock as Unix seconds, for what is stored, sent or compared across
//! restarts (event times, digests, the feed's validity). Intervals use `Instant`.

use std::time::SystemTime;

/// Seconds since the Unix epoch; 0 for a clock set before 1970.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
