//! The on-disk spool: segment files of checksummed JSON lines.
//!
//! ```text
//! spool_dir/seg-0000000000000042.log     one record per line: "<crc32 as 8 hex> <json>\n"
//! ```
//! The writer appends to one open segment and fsyncs each batch. The segment is
//! closed (the next number starts) when it reaches its size, or when the sender has
//! caught up and is waiting for it: so events reach a healthy platform within a
//! flush, and a long outage leaves a few large files, not one per flush. The sender
//! reads only closed segments, in order, and deletes one when every event in it was
//! acknowledged. The segments' sizes are kept in memory: an append never lists the
//! directory. On start every segment is closed; a torn or corrupt record (a crash
//! mid-write, a bad disk) is skipped by its checksum and counted, and anything in the
//! directory that cannot be read is left alone and reported, never fatal. Past
//! `max_bytes` the oldest segments are deleted and their events counted as lost.

use std::collections::VecDeque;
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
    /// Torn or corrupt records, skipped.
    pub torn: u64,
    /// Entries named like segments that could not be read (a directory, no
    /// permission, an I/O error): left alone.
    pub unreadable: Vec<String>,
}

/// A closed segment.
#[derive(Debug, Clone)]
struct Seg {
    seq: u64,
    bytes: u64,
    events: u64,
}

/// The segment being written.
struct Open {
    seq: u64,
    file: File,
    bytes: u64,
    events: u64,
}

/// The spool.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    seg_bytes: u64,
    next_seq: u64,
    closed: VecDeque<Seg>,
    current: Option<Open>,
    /// Bytes of every segment, closed and open.
    total: u64,
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
    let mut r = SegmentReader::open(path)?;
    let out = r.next_batch(usize::MAX, usize::MAX)?;
    Ok((out, r.bad))
}

/// A segment read a batch at a time: the sender holds one batch, not a whole
/// segment (4 MiB of events, and their allocations, at each catch-up).
pub struct SegmentReader {
    r: BufReader<File>,
    line: Vec<u8>,
    /// A record read that did not fit the last batch.
    held: Option<Vec<u8>>,
    /// Torn or corrupt records skipped so far.
    pub bad: u64,
}

impl SegmentReader {
    /// Open `path`.
    pub fn open(path: &Path) -> io::Result<SegmentReader> {
        Ok(SegmentReader {
            r: BufReader::new(File::open(path)?),
            line: Vec::new(),
            held: None,
            bad: 0,
        })
    }

    /// The next valid records: up to `max_events`, and no more than `max_bytes` of
    /// JSON (a line each) unless one record alone is larger. Empty at the end.
    pub fn next_batch(&mut self, max_events: usize, max_bytes: usize) -> io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max_events {
            let record = match self.held.take() {
                Some(r) => r,
                None => {
                    self.line.clear();
                    if self.r.read_until(b'\n', &mut self.line)? == 0 {
                        break;
                    }
                    match decode(&self.line) {
                        Some(j) => j.to_vec(),
                        None => {
                            self.bad += 1;
                            continue;
                        }
                    }
                }
            };
            if !out.is_empty() && bytes.saturating_add(record.len() + 1) > max_bytes {
                self.held = Some(record);
                break;
            }
            bytes += record.len() + 1;
            out.push(record);
        }
        Ok(out)
    }
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
    /// Open (creating) the spool in `dir` and take stock of what is there. Only a
    /// directory that cannot be created or listed is an error.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        seg_bytes: u64,
        fsync: bool,
    ) -> io::Result<(Spool, Recovery)> {
        fs::create_dir_all(dir)?;
        let mut rec = Recovery::default();
        let mut next_seq = 0;
        let mut closed = VecDeque::new();
        let mut total = 0;
        for p in Self::list(dir)? {
            let seq = seg_seq(&p).unwrap_or(0);
            next_seq = next_seq.max(seq + 1);
            let read = fs::metadata(&p).and_then(|m| {
                if m.is_file() {
                    read_segment(&p).map(|r| (r, m.len()))
                } else {
                    Err(io::Error::other("not a regular file"))
                }
            });
            let ((good, bad), bytes) = match read {
                Ok(r) => r,
                Err(e) => {
                    rec.unreadable.push(format!("{}: {e}", p.display()));
                    continue;
                }
            };
            rec.torn += bad;
            if good.is_empty() {
                // Nothing to send; a failed delete only leaves an empty file behind.
                let _ = fs::remove_file(&p);
                continue;
            }
            rec.segments += 1;
            rec.events += good.len() as u64;
            total += bytes;
            closed.push_back(Seg {
                seq,
                bytes,
                events: good.len() as u64,
            });
        }
        Ok((
            Spool {
                dir: dir.to_path_buf(),
                max_bytes,
                seg_bytes,
                next_seq,
                closed,
                current: None,
                total,
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
    /// (and of these events, if the batch alone exceeds the cap). On an error the
    /// segment is cut back to where it was, so that a retry of the same batch does not
    /// store any of it twice.
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
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.dir.join(seg_name(seq)))?;
            self.current = Some(Open {
                seq,
                file,
                bytes: 0,
                events: 0,
            });
        }
        let cur = self.current.as_mut().expect("just opened");
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.len() + 10).sum());
        for e in events {
            buf.extend_from_slice(&encode(e));
        }
        let written = cur.file.write_all(&buf).and_then(|()| {
            if self.fsync {
                cur.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            let _ = cur.file.set_len(cur.bytes);
            if cur.events == 0 {
                let seq = cur.seq;
                self.current = None;
                let _ = fs::remove_file(self.dir.join(seg_name(seq)));
            }
            return Err(e);
        }
        cur.bytes += buf.len() as u64;
        cur.events += events.len() as u64;
        self.total += buf.len() as u64;
        if cur.bytes >= self.seg_bytes {
            self.close_current();
        }
        Ok(lost)
    }

    /// Close the open segment so that the sender can take it.
    pub fn close_current(&mut self) {
        if let Some(c) = self.current.take() {
            self.closed.push_back(Seg {
                seq: c.seq,
                bytes: c.bytes,
                events: c.events,
            });
        }
    }

    /// Whether a segment is open with events in it.
    pub fn has_open_events(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.events > 0)
    }

    /// The segments to send now, oldest first: the closed ones, or, when the sender
    /// has caught up with them, the open one, closed at once rather than left to fill
    /// (so a healthy receiver gets what was appended within a flush).
    pub fn ready(&mut self) -> Vec<PathBuf> {
        if self.closed.is_empty() && self.has_open_events() {
            self.close_current();
        }
        self.closed()
    }

    /// Closed segments, oldest first.
    pub fn closed(&self) -> Vec<PathBuf> {
        self.closed
            .iter()
            .map(|s| self.dir.join(seg_name(s.seq)))
            .collect()
    }

    /// Files of the spool (closed segments and the open one).
    pub fn files(&self) -> usize {
        self.closed.len() + usize::from(self.current.is_some())
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.total
    }

    /// Make room for `incoming` more bytes under the cap: delete the oldest segments
    /// (the open one last) until it fits; returns the number of events lost. The spool
    /// never grows past `max_bytes`.
    fn make_room(&mut self, incoming: u64) -> io::Result<u64> {
        let mut lost = 0;
        while self.total + incoming > self.max_bytes {
            if self.closed.is_empty() {
                self.close_current();
            }
            let Some(s) = self.closed.pop_front() else {
                break;
            };
            let p = self.dir.join(seg_name(s.seq));
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.closed.push_front(s);
                    return Err(e);
                }
            }
            lost += s.events;
            self.total = self.total.saturating_sub(s.bytes);
            tracing::error!(segment = %p.display(), events = s.events, "report spool full: oldest events dropped, never sent");
        }
        Ok(lost)
    }

    /// Delete a segment the platform acknowledged.
    pub fn ack(&mut self, path: &Path) -> io::Result<()> {
        let Some(seq) = seg_seq(path) else {
            return Ok(());
        };
        if let Some(i) = self.closed.iter().position(|s| s.seq == seq) {
            let s = self.closed.remove(i).expect("found");
            self.total = self.total.saturating_sub(s.bytes);
        }
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> Vec<u8> {
        format!("{{\"id\":\"{i:026}\",\"pad\":\"{}\"}}", "x".repeat(100)).into_bytes()
    }

    #[test]
    fn a_segment_is_read_in_batches_by_count_and_bytes_skipping_bad_records() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(seg_name(1));
        let mut text = Vec::new();
        for i in 0..25 {
            text.extend(encode(&ev(i)));
            if i == 10 {
                text.extend(b"deadbeef {\"torn\n");
            }
        }
        std::fs::write(&path, &text).unwrap();
        let len = ev(0).len() + 1;
        let mut r = SegmentReader::open(&path).unwrap();
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        loop {
            let b = r.next_batch(10, 4 * len).unwrap();
            if b.is_empty() {
                break;
            }
            sizes.push(b.len());
            all.extend(b);
        }
        assert_eq!(
            sizes,
            vec![4, 4, 4, 4, 4, 4, 1],
            "bytes bind before the count"
        );
        assert_eq!(
            all,
            (0..25).map(ev).collect::<Vec<_>>(),
            "in order, none lost"
        );
        assert_eq!(r.bad, 1);
        let mut r = SegmentReader::open(&path).unwrap();
        assert_eq!(r.next_batch(10, usize::MAX).unwrap().len(), 10);
        assert_eq!(
            r.next_batch(3, 1).unwrap().len(),
            1,
            "one record even when larger"
        );
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
        let segs = s.closed();
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
        let before = s.bytes();
        s.ack(&segs[0]).unwrap();
        assert_eq!(s.closed().len(), segs.len() - 1);
        assert!(s.bytes() < before);
        assert!(!segs[0].exists());
    }

    #[test]
    fn torn_tail_is_skipped_not_fatal() {
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
                torn: 1,
                unreadable: vec![]
            }
        );
        let (good, bad) = read_segment(&s.closed()[0]).unwrap();
        assert_eq!((good, bad), (vec![ev(1), ev(2)], 1));
        // a flipped byte in the middle is caught by the checksum too
        let mut bytes = fs::read(&seg).unwrap();
        bytes[20] ^= 1;
        fs::write(&seg, &bytes).unwrap();
        // (the torn tail is still there: segments are read around bad records, never
        // rewritten, so that a full disk cannot make the repair fail)
        let (_, rec) = Spool::open(d.path(), 1 << 30, 1 << 20, true).unwrap();
        assert_eq!(rec.torn, 2);
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
            .iter()
            .map(|p| read_segment(p).unwrap().0.len())
            .sum();
        assert_eq!(
            kept as u64 + lost,
            200,
            "every event is either kept or counted as lost"
        );
        let first = &read_segment(&s.closed()[0]).unwrap().0[0];
        assert_ne!(first, &ev(0), "the oldest went first");
    }

    #[test]
    fn what_cannot_be_read_is_left_alone_and_reported() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = Spool::open(d.path(), 1 << 30, 1 << 20, true).unwrap();
            s.append(&[ev(1)]).unwrap();
        }
        fs::create_dir(d.path().join(seg_name(7))).unwrap();
        let (mut s, rec) = Spool::open(d.path(), 1 << 30, 1 << 20, true).unwrap();
        assert_eq!((rec.segments, rec.events), (1, 1));
        assert_eq!(rec.unreadable.len(), 1, "{rec:?}");
        assert!(rec.unreadable[0].contains("seg-0000000000000007.log"));
        // New segments are numbered past it.
        s.append(&[ev(2)]).unwrap();
        s.close_current();
        assert!(s.closed().last().unwrap().ends_with(seg_name(8)));
    }

    #[test]
    fn a_day_long_outage_leaves_few_files_and_appends_do_not_slow_down() {
        // 24 h at 10 distinct hits/s, one batch per 100 ms flush, with the sender
        // never catching up: segments roll by size only.
        let d = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(d.path(), 256 << 20, 4 << 20, false).unwrap();
        let per_flush: Vec<Vec<u8>> = (0..1).map(ev).collect();
        let flushes = 24 * 3600 * 10;
        let mut lost = 0;
        let t = std::time::Instant::now();
        let mut first = None;
        for i in 0..flushes {
            lost += s.append(&per_flush).unwrap();
            if i == 10_000 {
                first = Some(t.elapsed());
            }
        }
        let total = t.elapsed();
        let files = fs::read_dir(d.path()).unwrap().count();
        assert!(files < 100, "{files} files after a day");
        assert_eq!(files, s.files());
        let on_disk: u64 = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(on_disk, s.bytes(), "the byte count kept in memory is right");
        assert!(s.bytes() <= 256 << 20);
        assert_eq!(lost, 0);
        // The last 10,000 appends cost about what the first 10,000 did (a readdir per
        // append made them 80 times slower by the end of the day).
        let first = first.unwrap();
        let per_append_late = total.saturating_sub(first).as_secs_f64() / (flushes - 10_000) as f64;
        let per_append_early = first.as_secs_f64() / 10_000.0;
        assert!(
            per_append_late < per_append_early * 5.0,
            "appends went from {per_append_early:e} s to {per_append_late:e} s"
        );
    }

    #[test]
    fn a_failed_append_leaves_nothing_half_written() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(d.path(), 1 << 30, 1 << 20, true).unwrap();
        s.append(&[ev(1)]).unwrap();
        // The next append fails: its file handle is swapped for a read-only one.
        let path = d.path().join(seg_name(0));
        s.current.as_mut().unwrap().file = File::open(&path).unwrap();
        assert!(s.append(&[ev(2), ev(3)]).is_err());
        assert_eq!(read_segment(&path).unwrap(), (vec![ev(1)], 0));
        assert_eq!(s.bytes(), fs::metadata(&path).unwrap().len());
    }
}
