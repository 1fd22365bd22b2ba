//! A data object being written as a run goes: each answer's records are joined to it as they
//! arrive (`records::Joiner`), in memory up to [`SPILL_AT`] bytes, then in a temporary file. So a
//! run's memory does not grow with its number of targets: it holds neither the answers nor the
//! records until the end, only this buffer. The bytes are those `records::render` gives for the
//! same records in the same order, so the object downstream reads is the same.

use std::io::{BufRead, Write};

use crate::records::{Compression, Format, Fragment, Joiner, Record};

/// The bytes one [`Spool`] keeps in memory before it continues in a temporary file. A run
/// holds one spool per hashtag, so this bounds the run's memory for its records whatever the
/// number of pages: 30 hashtags hold at most 2 MiB.
pub(super) const SPOOL_SPILL_AT: usize = 64 << 10;

/// The bytes kept in memory before the object continues in a temporary file. 1 MiB holds the
/// objects of about 40 accounts' media: a usual run never touches the disk.
pub(super) const SPILL_AT: usize = 1 << 20;

/// One object's bytes so far.
#[derive(Debug)]
pub(super) struct Output {
    format: Format,
    joiner: Joiner,
    buf: Vec<u8>,
    spill_at: usize,
    /// Where the bytes beyond `spill_at` went (on Lambda, `/tmp`), deleted when dropped.
    spill: Option<tempfile::NamedTempFile>,
    /// The first failure to spill: the object is incomplete, and `finish` answers with it.
    broken: Option<std::io::Error>,
}

/// A finished object, to write.
#[derive(Debug)]
pub(super) enum Body {
    Bytes(Vec<u8>),
    /// In a temporary file, deleted when this is dropped.
    File(tempfile::TempPath),
}

impl Body {
    /// The body as written with `compression`: a spilled body is compressed from its file into
    /// another temporary file, a chunk at a time, so compressing holds no more in memory than
    /// the streaming did.
    pub(super) fn compressed(self, compression: Compression) -> std::io::Result<Body> {
        match (compression, self) {
            (Compression::None, body) => Ok(body),
            (Compression::Gzip, Body::Bytes(b)) => Ok(Body::Bytes(compression.encode(b))),
            (Compression::Gzip, Body::File(path)) => {
                let mut from = std::fs::File::open(&path)?;
                let to = tempfile::NamedTempFile::new()?;
                let mut encoder = flate2::write::GzEncoder::new(to, flate2::Compression::default());
                std::io::copy(&mut from, &mut encoder)?;
                let mut to = encoder.finish()?;
                to.flush()?;
                Ok(Body::File(to.into_temp_path()))
            }
        }
    }

    /// The records of a body written with `compression`, read back: only when an existing
    /// object must be merged with (a redelivery), so memory is spent on parsing then only.
    pub(super) fn records_as(&self, compression: Compression) -> Result<Vec<Record>, String> {
        match self {
            Body::Bytes(b) => compression.parse_object(b),
            Body::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("{}: cannot be read back: {e}", path.display()))?;
                compression.parse_object(&bytes)
            }
        }
    }

    /// The file holding the object, if it was spilled.
    #[cfg(test)]
    fn path(&self) -> Option<&std::path::Path> {
        match self {
            Body::Bytes(_) => None,
            Body::File(p) => Some(p),
        }
    }
}

impl Output {
    pub(super) fn new(format: Format) -> Output {
        Output::spilling_at(format, SPILL_AT)
    }

    pub(super) fn spilling_at(format: Format, spill_at: usize) -> Output {
        let joiner = Joiner::new(format);
        Output {
            format,
            joiner,
            buf: joiner.start().to_vec(),
            spill_at,
            spill: None,
            broken: None,
        }
    }

    /// Records joined so far.
    pub(super) fn count(&self) -> usize {
        self.joiner.count()
    }

    /// Joins `fragment`'s records after those already there. After a failure to spill, the
    /// object is incomplete: nothing more is added and [`Output::finish`] fails.
    pub(super) fn append(&mut self, fragment: &Fragment) -> std::io::Result<()> {
        if let Some(e) = &self.broken {
            return Err(std::io::Error::new(e.kind(), e.to_string()));
        }
        let (separator, bytes) = self.joiner.join(fragment);
        self.buf.extend_from_slice(separator);
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= self.spill_at {
            if let Err(e) = self.flush() {
                self.broken = Some(std::io::Error::new(e.kind(), e.to_string()));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Moves the buffered bytes to the temporary file (created on the first spill).
    fn flush(&mut self) -> std::io::Result<()> {
        spill(&mut self.spill, &mut self.buf)
    }

    /// Closes the object.
    pub(super) fn finish(mut self) -> std::io::Result<Body> {
        if let Some(e) = self.broken.take() {
            return Err(e);
        }
        self.buf.extend_from_slice(self.joiner.finish());
        if self.spill.is_none() {
            return Ok(Body::Bytes(self.buf));
        }
        self.flush()?;
        match self.spill.take() {
            Some(mut file) => {
                file.flush()?;
                Ok(Body::File(file.into_temp_path()))
            }
            None => Ok(Body::Bytes(self.buf)),
        }
    }
}

/// One part of a data object (one hashtag's records), kept in the order pushed: in memory up to
/// [`SPOOL_SPILL_AT`] bytes, then in a temporary file. The parts are joined into the object in
/// configuration order at the end ([`Output::append_spool`]), whatever order their pages came
/// in, without holding them all in memory.
#[derive(Debug, Default)]
pub(super) struct Spool {
    /// One rendered record per line (a rendered record holds no raw newline).
    buf: Vec<u8>,
    file: Option<tempfile::NamedTempFile>,
    broken: Option<std::io::Error>,
}

impl Spool {
    /// Keeps `record` after those already pushed.
    pub(super) fn push(&mut self, record: &Record) {
        if self.broken.is_some() {
            return;
        }
        // A map of strings and integers always serialises.
        let _ = serde_json::to_writer(&mut self.buf, record);
        self.buf.push(b'\n');
        if self.buf.len() >= SPOOL_SPILL_AT {
            if let Err(e) = self.flush() {
                self.broken = Some(e);
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        spill(&mut self.file, &mut self.buf)
    }
}

/// Moves `buf` to the end of `file`, a temporary file created on the first call.
fn spill(file: &mut Option<tempfile::NamedTempFile>, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let file = match file {
        Some(f) => f,
        None => file.insert(tempfile::NamedTempFile::new()?),
    };
    file.write_all(buf)?;
    buf.clear();
    Ok(())
}

/// Records joined per fragment when a spool is read back: bounds what is parsed at once.
const JOIN_BATCH: usize = 64;

impl Output {
    /// Joins a spool's records after those already there, reading it back a few records at a
    /// time.
    pub(super) fn append_spool(&mut self, mut spool: Spool) -> std::io::Result<()> {
        if let Some(e) = spool.broken.take() {
            self.broken
                .get_or_insert(std::io::Error::new(e.kind(), e.to_string()));
            return Err(e);
        }
        let format = self.format;
        let reader: Box<dyn BufRead> = match spool.file.take() {
            None => Box::new(std::io::Cursor::new(std::mem::take(&mut spool.buf))),
            Some(mut file) => {
                spool.flush_into(&mut file)?;
                let reopened = file.reopen()?;
                // The file is deleted when `file` is dropped, after reading.
                let reader = std::io::BufReader::new(reopened);
                Box::new(KeepAlive {
                    reader,
                    _file: file,
                })
            }
        };
        let mut fragment = Fragment::new(format);
        for line in reader.split(b'\n') {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            let record: Record = serde_json::from_slice(&line)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            fragment.push(&record);
            if fragment.len() >= JOIN_BATCH {
                self.append(&fragment)?;
                fragment = Fragment::new(format);
            }
        }
        self.append(&fragment)
    }
}

impl Spool {
    fn flush_into(&mut self, file: &mut tempfile::NamedTempFile) -> std::io::Result<()> {
        file.write_all(&self.buf)?;
        file.flush()?;
        self.buf.clear();
        Ok(())
    }
}

/// A reader that keeps its temporary file (and so the file's deletion) alive while reading.
struct KeepAlive<R> {
    reader: R,
    _file: tempfile::NamedTempFile,
}

impl<R: std::io::Read> std::io::Read for KeepAlive<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

impl<R: BufRead> BufRead for KeepAlive<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.reader.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.reader.consume(amt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records;
    use serde_json::Value;

    /// A gzip body, in memory or spilled, is the gzip of the rendered bytes and reads back as
    /// the same records.
    #[test]
    fn a_compressed_body_inflates_to_the_rendering_in_memory_and_spilled() {
        let records: Vec<Record> = (0..200)
            .map(|i| {
                let mut r = Record::new();
                r.insert("user_id".into(), Value::from("1"));
                r.insert("media_id".into(), Value::from(i.to_string()));
                r
            })
            .collect();
        for format in [Format::Json, Format::Ndjson] {
            for spill_at in [usize::MAX, 64] {
                let mut output = Output::spilling_at(format, spill_at);
                let mut fragment = Fragment::new(format);
                for r in &records {
                    fragment.push(r);
                }
                output.append(&fragment).expect("appended");
                let body = output
                    .finish()
                    .expect("finished")
                    .compressed(Compression::Gzip)
                    .expect("compressed");
                assert_eq!(body.path().is_some(), spill_at == 64);
                let bytes = match &body {
                    Body::Bytes(b) => b.clone(),
                    Body::File(p) => std::fs::read(p).expect("read"),
                };
                let inflated = crate::graph::gunzip(&bytes).expect("gzip");
                assert_eq!(inflated, records::render(&records, format), "{format:?}");
                assert_eq!(body.records_as(Compression::Gzip), Ok(records.clone()));
                assert!(body.records_as(Compression::None).is_err());
            }
        }
    }

    fn post(id: u64) -> Record {
        let mut r = Record::new();
        r.insert("user_id".into(), Value::from("1"));
        r.insert("media_id".into(), Value::from(id.to_string()));
        r.insert("caption".into(), Value::from("Été 👜\r\nà Paris"));
        r
    }

    #[test]
    fn an_object_spilled_to_a_file_holds_the_bytes_of_the_whole_rendering() {
        let records: Vec<Record> = (0..50).map(post).collect();
        for format in [Format::Json, Format::Ndjson] {
            for spill_at in [1, 300, 1 << 20] {
                let mut out = Output::spilling_at(format, spill_at);
                for chunk in records.chunks(7) {
                    let mut fragment = Fragment::new(format);
                    chunk.iter().for_each(|r| fragment.push(r));
                    out.append(&fragment).expect("append");
                }
                assert_eq!(out.count(), 50);
                let body = out.finish().expect("finish");
                assert_eq!(body.path().is_some(), spill_at < 1 << 20);
                let bytes = match &body {
                    Body::Bytes(b) => b.clone(),
                    Body::File(p) => std::fs::read(p).expect("read"),
                };
                assert_eq!(bytes, records::render(&records, format), "{format:?}");
                assert_eq!(body.records_as(Compression::None), Ok(records.clone()));
                let path = body.path().map(std::path::Path::to_path_buf);
                drop(body);
                assert!(
                    path.is_none_or(|p| !p.exists()),
                    "the spill file is deleted"
                );
            }
        }
    }

    #[test]
    fn spools_joined_in_order_hold_the_bytes_of_the_whole_rendering() {
        // Three hashtags' records; the second spills to its temporary file (past 64 KiB).
        let parts: Vec<Vec<Record>> = vec![
            (0..3).map(post).collect(),
            (100..1600).map(post).collect(),
            Vec::new(),
            (2000..2010).map(post).collect(),
        ];
        for format in [Format::Json, Format::Ndjson] {
            let mut out = Output::new(format);
            for part in &parts {
                let mut spool = Spool::default();
                part.iter().for_each(|r| spool.push(r));
                out.append_spool(spool).expect("joined");
            }
            let all: Vec<Record> = parts.iter().flatten().cloned().collect();
            assert_eq!(out.count(), all.len());
            let bytes = match out.finish().expect("finish") {
                Body::Bytes(b) => b,
                Body::File(p) => std::fs::read(p).expect("read"),
            };
            assert_eq!(bytes, records::render(&all, format), "{format:?}");
        }
    }
}
