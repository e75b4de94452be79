//! The on-disk spool: segment files of checksummed JSON lines.
//!
//! ```text
//! spool_dir/seg-0000000000000042.log     one record per line: "<crc32 as 8 hex> <json>\n"
//! ```
//! The writer appends to one open segment and fsyncs each batch; it closes the segment
//! (starts the next number) when it is big or old enough. The sender reads only closed
//! segments, in order, and deletes one when every event in it was acknowledged. On start
//! every segment is closed; a torn last record (a crash mid-write) is detected by its
//! checksum, cut off and counted — never fatal. Past `max_bytes` the oldest segments are
//! deleted and their events counted as lost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// What was found on disk at start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Segments waiting to be sent.
    pub segments: usize,
    /// Events in them.
    pub events: u64,
    /// Torn or corrupt records cut off.
    pub torn: u64,
}

/// The spool.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    seg_bytes: u64,
    next_seq: u64,
    current: Option<(u64, File, u64, u64)>,
    fsync: bool,
}

fn seg_name(seq: u64) -> String {
    format!("seg-{seq:016}.log")
}

fn seg_seq(p: &Path) -> Option<u64> {
    let n = p.file_name()?.to_str()?;
    n.strip_prefix("seg-")?.strip_suffix(".log")?.parse().ok()
}

/// Encode one record line.
pub fn encode(json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(json.len() + 10);
    v.extend_from_slice(format!("{:08x} ", crc32fast::hash(json)).as_bytes());
    v.extend_from_slice(json);
    v.push(b'\n');
    v
}

/// Read a segment: the JSON of every valid record, and the number of bad ones.
pub fn read_segment(path: &Path) -> io::Result<(Vec<Vec<u8>>, u64)> {
    let mut out = Vec::new();
    let mut bad = 0;
    let mut r = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        match decode(&line) {
            Some(j) => out.push(j.to_vec()),
            None => bad += 1,
        }
    }
    Ok((out, bad))
}

fn decode(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\n")?;
    if line.len() < 10 || line[8] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
    let json = &line[9..];
    (crc32fast::hash(json) == crc).then_some(json)
}

impl Spool {
    /// Open (creating) the spool in `dir`, repairing a torn tail left by a crash.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        seg_bytes: u64,
        fsync: bool,
    ) -> io::Result<(Spool, Recovery)> {
        fs::create_dir_all(dir)?;
        let mut rec = Recovery::default();
        let mut next_seq = 0;
        for p in Self::list(dir)? {
            let seq = seg_seq(&p).unwrap_or(0);
            next_seq = next_seq.max(seq + 1);
            let (good, bad) = read_segment(&p)?;
            if bad > 0 {
                // Rewrite the segment with its valid records only (temp, fsync, rename).
                let tmp = p.with_extension("repair");
                let mut f = File::create(&tmp)?;
                for j in &good {
                    f.write_all(&encode(j))?;
                }
                f.sync_all()?;
                fs::rename(&tmp, &p)?;
                rec.torn += bad;
            }
            if good.is_empty() {
                fs::remove_file(&p)?;
                continue;
            }
            rec.segments += 1;
            rec.events += good.len() as u64;
        }
        Ok((
            Spool {
                dir: dir.to_path_buf(),
                max_bytes,
                seg_bytes,
                next_seq,
                current: None,
                fsync,
            },
            rec,
        ))
    }

    fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| seg_seq(p).is_some())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Append a batch of events (JSON each) to the open segment and fsync it, after
    /// making room under the cap. Returns the number of older events dropped for room
    /// (and of these events, if the batch alone exceeds the cap).
    pub fn append(&mut self, events: &[Vec<u8>]) -> io::Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let incoming: u64 = events.iter().map(|e| e.len() as u64 + 10).sum();
        if incoming > self.max_bytes {
            return Ok(events.len() as u64);
        }
        let lost = self.make_room(incoming)?;
        if self.current.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let f = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.dir.join(seg_name(seq)))?;
            self.current = Some((seq, f, 0, 0));
        }
        let (_, f, size, n) = self.current.as_mut().expect("just opened");
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.len() + 10).sum());
        for e in events {
            buf.extend_from_slice(&encode(e));
        }
        f.write_all(&buf)?;
        if self.fsync {
            f.sync_data()?;
        }
        *size += buf.len() as u64;
        *n += events.len() as u64;
        if *size >= self.seg_bytes {
            self.close_current();
        }
        Ok(lost)
    }

    /// Close the open segment so that the sender can take it.
    pub fn close_current(&mut self) {
        self.current = None;
    }

    /// Whether a segment is open with events in it.
    pub fn has_open_events(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.3 > 0)
    }

    /// Closed segments, oldest first.
    pub fn closed(&self) -> io::Result<Vec<PathBuf>> {
        let open = self.current.as_ref().map(|c| c.0);
        Ok(Self::list(&self.dir)?
            .into_iter()
            .filter(|p| Some(seg_seq(p).unwrap_or(0)) != open)
            .collect())
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        Self::list(&self.dir)
            .map(|v| {
                v.iter()
                    .filter_map(|p| fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Make room for `incoming` more bytes under the cap: delete the oldest segments
    /// (the open one last) until it fits; returns the number of events lost. The spool
    /// never grows past `max_bytes`.
    pub fn make_room(&mut self, incoming: u64) -> io::Result<u64> {
        let mut lost = 0;
        let mut total = self.bytes();
        if total + incoming <= self.max_bytes {
            return Ok(0);
        }
        for p in Self::list(&self.dir)? {
            if total + incoming <= self.max_bytes {
                break;
            }
            if self.current.as_ref().map(|c| c.0) == seg_seq(&p) {
                self.close_current();
            }
            let len = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            let (events, _) = read_segment(&p).unwrap_or_default();
            fs::remove_file(&p)?;
            lost += events.len() as u64;
            total = total.saturating_sub(len);
            tracing::error!(segment = %p.display(), events = events.len(), "report spool full: oldest events dropped, never sent");
        }
        Ok(lost)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Delete an acknowledged segment.
pub fn ack(path: &Path) -> io::Result<()> {
    fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> Vec<u8> {
        format!("{{\"id\":\"{i:026}\",\"pad\":\"{}\"}}", "x".repeat(100)).into_bytes()
    }

    #[test]
    fn append_rotate_read_ack() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, rec) = Spool::open(d.path(), 1 << 30, 1000, true).unwrap();
        assert_eq!(rec, Recovery::default());
        for i in 0..30 {
            s.append(&[ev(i)]).unwrap();
        }
        s.close_current();
        let segs = s.closed().unwrap();
        assert!(segs.len() >= 3, "rotated by size: {segs:?}");
        let mut all = Vec::new();
        for p in &segs {
            let (good, bad) = read_segment(p).unwrap();
            assert_eq!(bad, 0);
            all.extend(good);
        }
        assert_eq!(
            all,
            (0..30).map(ev).collect::<Vec<_>>(),
            "every event, in order"
        );
        ack(&segs[0]).unwrap();
        assert_eq!(s.closed().unwrap().len(), segs.len() - 1);
    }

    #[test]
    fn torn_tail_is_cut_not_fatal() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = Spool::open(d.path(), 1 << 30, 1 << 20, true).unwrap();
            s.append(&[ev(1), ev(2), ev(3)]).unwrap();
        }
        let seg = Spool::list(d.path()).unwrap()[0].clone();
        let mut bytes = fs::read(&seg).unwrap();
        bytes.truncate(bytes.len() - 20); // a crash in the middle of the last record
        fs::write(&seg, &bytes).unwrap();
        let (s, rec) = Spool::open(d.path(), 1 << 30, 1 << 20, true).unwrap();
        assert_eq!(
            rec,
            Recovery {
                segments: 1,
                events: 2,
                torn: 1
            }
        );
        let (good, bad) = read_segment(&s.closed().unwrap()[0]).unwrap();
        assert_eq!((good, bad), (vec![ev(1), ev(2)], 0));
        // a flipped byte in the middle is caught by the checksum too
        let mut bytes = fs::read(&seg).unwrap();
        bytes[20] ^= 1;
        fs::write(&seg, &bytes).unwrap();
        let (_, rec) = Spool::open(d.path(), 1 << 30, 1 << 20, true).unwrap();
        assert_eq!(rec.torn, 1);
        assert_eq!(rec.events, 1);
    }

    #[test]
    fn cap_drops_oldest_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(d.path(), 5_000, 1_000, false).unwrap();
        let mut lost = 0;
        for i in 0..200 {
            lost += s.append(&[ev(i)]).unwrap();
            assert!(s.bytes() <= 5_000, "spool at {} bytes", s.bytes());
        }
        s.close_current();
        let kept: usize = s
            .closed()
            .unwrap()
            .iter()
            .map(|p| read_segment(p).unwrap().0.len())
            .sum();
        assert_eq!(
            kept as u64 + lost,
            200,
            "every event is either kept or counted as lost"
        );
        let first = &read_segment(&s.closed().unwrap()[0]).unwrap().0[0];
        assert_ne!(first, &ev(0), "the oldest went first");
    }
}
