//! Events waiting in memory for the spool (a full or read-only disk), oldest first.
//!
//! The newest wait as they are; every full block of [`BLOCK`] older ones is kept
//! gzipped (hit events are alike: about a tenth of their size). So the
//! [`super::pipeline::MAX_UNWRITTEN`] events a full disk may leave in memory take a
//! few MB rather than tens, and RSS stays level while the disk fills and empties.
//! Pure: no I/O.

use std::collections::VecDeque;
use std::io::{Read, Write};

/// Events per packed block.
pub const BLOCK: usize = 1000;

enum Block {
    /// Events as they are.
    Loose(Vec<Vec<u8>>),
    /// `n` events, one JSON per line, gzipped.
    Packed { gz: Vec<u8>, n: usize },
}

impl Block {
    fn len(&self) -> usize {
        match self {
            Block::Loose(v) => v.len(),
            Block::Packed { n, .. } => *n,
        }
    }

    fn into_events(self) -> Vec<Vec<u8>> {
        match self {
            Block::Loose(v) => v,
            Block::Packed { gz, n } => unpack(&gz, n),
        }
    }
}

/// The waiting events.
#[derive(Default)]
pub struct Backlog {
    blocks: VecDeque<Block>,
    len: usize,
}

fn pack(events: &[Vec<u8>]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for ev in events {
        let _ = e.write_all(ev);
        let _ = e.write_all(b"\n");
    }
    e.finish().unwrap_or_default()
}

fn unpack(gz: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut text = Vec::new();
    // Made here from memory: it reads back; a failure would only shorten the list.
    let _ = flate2::read::GzDecoder::new(gz).read_to_end(&mut text);
    let mut out = Vec::with_capacity(n);
    out.extend(
        text.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec),
    );
    out
}

impl Backlog {
    /// Events waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add the newest event (one JSON value, without a newline: serde_json escapes
    /// them inside strings).
    pub fn push(&mut self, event: Vec<u8>) {
        match self.blocks.back_mut() {
            Some(Block::Loose(v)) if v.len() < BLOCK => v.push(event),
            _ => self.blocks.push_back(Block::Loose(vec![event])),
        }
        self.len += 1;
    }

    /// Put events back in front (the part of a batch the spool did not take).
    pub fn push_front(&mut self, events: Vec<Vec<u8>>) {
        if !events.is_empty() {
            self.len += events.len();
            self.blocks.push_front(Block::Loose(events));
        }
    }

    /// Take the oldest block's events.
    pub fn pop_front(&mut self) -> Option<Vec<Vec<u8>>> {
        let b = self.blocks.pop_front()?;
        self.len -= b.len();
        Some(b.into_events())
    }

    /// Drop the `n` oldest events; returns how many went.
    pub fn drop_oldest(&mut self, n: usize) -> usize {
        let mut left = n.min(self.len);
        let dropped = left;
        while left > 0 {
            let Some(b) = self.blocks.pop_front() else {
                break;
            };
            self.len -= b.len();
            if b.len() <= left {
                left -= b.len();
            } else {
                let mut rest = b.into_events();
                rest.drain(..left);
                left = 0;
                self.push_front(rest);
            }
        }
        dropped
    }

    /// Gzip every full block that is still loose.
    pub fn pack(&mut self) {
        for b in self.blocks.iter_mut() {
            if let Block::Loose(v) = b
                && v.len() >= BLOCK
            {
                let gz = pack(v);
                *b = Block::Packed { gz, n: v.len() };
            }
        }
    }

    /// Bytes held (event payloads and packed blocks; not the allocator's overhead).
    pub fn bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| match b {
                Block::Loose(v) => v.iter().map(|e| e.len() + 24).sum::<usize>(),
                Block::Packed { gz, .. } => gz.len(),
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> Vec<u8> {
        format!(
            r#"{{"id":"01KB5W9Q1T4W6JX0Y3S0B8{i:06}","type":"hit","time":"2026-11-28T08:00:00.123Z","appliance":"binjiang-01","client":{{"ip":"10.1.{}.{}","place":{{"district":"滨江区","street":"西兴街道","community":"缤纷社区"}}}},"query":{{"name":"a{i}.evil.top","type":"A"}},"match":{{"rule":"evil.top","list":"loan.txt","category":"loan"}},"action":"sinkhole","count":1}}"#,
            i / 250 % 256,
            i % 250
        )
        .into_bytes()
    }

    #[test]
    fn events_come_back_in_order_packed_or_not_and_dropping_takes_the_oldest() {
        let mut b = Backlog::default();
        let n = 3 * BLOCK + 17;
        for i in 0..n {
            b.push(event(i));
            if i % 333 == 0 {
                b.pack();
            }
        }
        b.pack();
        assert_eq!(b.len(), n);
        assert_eq!(b.drop_oldest(BLOCK + 5), BLOCK + 5);
        // Some taken, and part of it put back (a spool that took half).
        let first = b.pop_front().unwrap();
        assert_eq!(first[0], event(BLOCK + 5));
        let (_, back) = first.split_at(100);
        b.push_front(back.to_vec());
        let mut out = Vec::new();
        while let Some(v) = b.pop_front() {
            out.extend(v);
        }
        let want: Vec<Vec<u8>> = (BLOCK + 5 + 100..n).map(event).collect();
        assert_eq!(out, want);
        assert!(b.is_empty());
        assert_eq!(b.drop_oldest(5), 0);
    }

    #[test]
    fn a_full_disk_backlog_of_100k_events_takes_a_few_mb() {
        let mut b = Backlog::default();
        let mut raw = 0;
        for i in 0..100_000 {
            let e = event(i);
            raw += e.len();
            b.push(e);
            if i % 1000 == 999 {
                b.pack();
            }
        }
        assert!(
            b.bytes() * 5 < raw,
            "{} bytes packed of {raw} bytes of events",
            b.bytes()
        );
    }
}
