//! What waits to leave the appliance, and how it is handed over: the hand-over from
//! the DNS path that never waits ([`Handoff`]), the on-disk spool of segments
//! ([`spool`]), the events waiting in memory for it ([`backlog`]), and the signature
//! a receiver checks. The reports to the platform and the alerts to places' workers
//! both send through it.

pub mod backlog;
pub mod spool;

use std::time::SystemTime;

use hmac::{KeyInit, Mac};
use prometheus::IntCounter;
use tokio::sync::mpsc;

/// A bounded hand-over from the DNS path (or the warning page) to a task: it never
/// waits; a full channel drops the item and counts it.
pub struct Handoff<T> {
    tx: mpsc::Sender<T>,
    dropped: IntCounter,
}

impl<T> Clone for Handoff<T> {
    fn clone(&self) -> Self {
        Handoff {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
        }
    }
}

impl<T> Handoff<T> {
    /// A hand-over into `tx`, counting drops in `dropped`.
    pub fn new(tx: mpsc::Sender<T>, dropped: IntCounter) -> Handoff<T> {
        Handoff { tx, dropped }
    }

    /// Hand over without waiting; a full channel drops the item and counts it.
    pub fn send(&self, item: T) {
        if self.tx.try_send(item).is_err() {
            self.dropped.inc();
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut m =
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// A new ULID at `t`: the id of an event or a digest, sortable by time.
pub fn new_id(t: SystemTime) -> String {
    ulid::Ulid::from_datetime(t).to_string()
}
