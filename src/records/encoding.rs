//! How records become an object's bytes and back: the file format, the compression, a rendering
//! whole or in fragments joined as they arrive, and reading a written object back.

use serde::Serialize;

use super::Record;

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON array per file, as the replaced system wrote (Spark `multiLine`, DuckDB `format='array'`).
    Json,
    /// One JSON object per line (Athena, `jq -c`).
    Ndjson,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" => Some(Format::Json),
            "ndjson" => Some(Format::Ndjson),
            _ => None,
        }
    }

    /// The object's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// Whether data objects are gzip-compressed. `None` is the replaced system's contract; `Gzip`
/// suits a lake (smaller objects, fewer bytes scanned). A compressed object's key ends in `.gz`
/// (the configuration refuses anything else), which is how DuckDB, Spark and Athena know to
/// inflate it; it is written as `application/gzip` without `Content-Encoding`, so every client
/// downloads the bytes the key promises instead of having them inflated on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
}

impl Compression {
    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "none" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            _ => None,
        }
    }

    /// The object's `Content-Type`, given its format.
    pub fn content_type(self, format: Format) -> &'static str {
        match self {
            Compression::None => format.content_type(),
            Compression::Gzip => "application/gzip",
        }
    }

    /// The object's bytes for rendered records.
    pub fn encode(self, rendered: Vec<u8>) -> Vec<u8> {
        match self {
            Compression::None => rendered,
            Compression::Gzip => crate::graph::gzip(&rendered),
        }
    }

    /// Reads an object's records back: inflated first when compressed (bounded, see
    /// `graph::gunzip`).
    pub fn parse_object(self, bytes: &[u8]) -> Result<Vec<Record>, String> {
        match self {
            Compression::None => parse(bytes),
            Compression::Gzip => {
                let inflated =
                    crate::graph::gunzip(bytes).map_err(|e| format!("not gzip data: {e}"))?;
                parse(&inflated)
            }
        }
    }
}

/// Serialises records in the configured format. Field order is the record's own order.
pub fn render(records: &[Record], format: Format) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 512 + 4);
    match format {
        Format::Json => {
            out.push(b'[');
            for (i, r) in records.iter().enumerate() {
                out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
                // A map of strings and integers always serialises.
                let _ = serde_json::to_writer(&mut out, r);
            }
            out.extend_from_slice(if records.is_empty() { b"]\n" } else { b"\n]\n" });
        }
        Format::Ndjson => {
            for r in records {
                let _ = serde_json::to_writer(&mut out, r);
                out.push(b'\n');
            }
        }
    }
    out
}

/// Records rendered on their own, in the order pushed, to be joined into a whole object by
/// [`Joiner`]. A run renders each answer's records as it arrives and drops them, so it never
/// holds every record as a map; the joined bytes are exactly what [`render`] gives for all the
/// records in the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    format: Format,
    bytes: Vec<u8>,
    count: usize,
}

impl Fragment {
    pub fn new(format: Format) -> Fragment {
        Fragment {
            format,
            bytes: Vec::new(),
            count: 0,
        }
    }

    /// Renders one record after those already pushed.
    pub fn push(&mut self, record: &Record) {
        if self.format == Format::Json && self.count > 0 {
            self.bytes.extend_from_slice(b",\n");
        }
        // A map of strings and integers always serialises.
        let _ = serde_json::to_writer(&mut self.bytes, record);
        if self.format == Format::Ndjson {
            self.bytes.push(b'\n');
        }
        self.count += 1;
    }

    /// Records pushed.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Joins [`Fragment`]s into the bytes of one object, handing out the pieces in order to a
/// writer: `start`, then `join` per fragment, then `finish`. The result equals [`render`] of
/// the fragments' records, concatenated.
#[derive(Debug, Clone, Copy)]
pub struct Joiner {
    format: Format,
    count: usize,
}

impl Joiner {
    pub fn new(format: Format) -> Joiner {
        Joiner { format, count: 0 }
    }

    /// The bytes before the first record.
    pub fn start(&self) -> &'static [u8] {
        match self.format {
            Format::Json => b"[",
            Format::Ndjson => b"",
        }
    }

    /// The separator to write before `fragment`'s bytes, which follow it; counts its records.
    pub fn join<'f>(&mut self, fragment: &'f Fragment) -> (&'static [u8], &'f [u8]) {
        if fragment.is_empty() {
            return (b"", b"");
        }
        let separator: &[u8] = match (self.format, self.count) {
            (Format::Json, 0) => b"\n",
            (Format::Json, _) => b",\n",
            (Format::Ndjson, _) => b"",
        };
        self.count += fragment.count;
        (separator, &fragment.bytes)
    }

    /// The bytes after the last record.
    pub fn finish(&self) -> &'static [u8] {
        match (self.format, self.count) {
            (Format::Json, 0) => b"]\n",
            (Format::Json, _) => b"\n]\n",
            (Format::Ndjson, _) => b"",
        }
    }

    /// Records joined so far.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// Reads a written object back, in either format (a JSON array, or one object per line).
pub fn parse(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text).map_err(|e| format!("not a JSON array of records: {e}"));
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("line {} is not a record: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tests::post;
    use serde_json::Value;

    #[test]
    fn fragments_joined_are_the_bytes_of_the_whole_rendering() {
        let mut caption = post("1", "12", 3);
        caption.insert(
            "caption".into(),
            Value::from("Ciao 👜\r\nnew line \"quoted\" \u{2028}"),
        );
        let records = vec![
            post("1", "10", 5),
            caption,
            post("2", "11", 0),
            post("2", "13", 1),
        ];
        for format in [Format::Json, Format::Ndjson] {
            // Every way of cutting the records into consecutive fragments, empty ones included.
            for cuts in [
                vec![],
                vec![0],
                vec![1],
                vec![2, 2],
                vec![1, 3],
                vec![4],
                vec![0, 4],
            ] {
                let mut joiner = Joiner::new(format);
                let mut out = joiner.start().to_vec();
                let mut from = 0;
                for to in cuts.iter().copied().chain([records.len()]) {
                    let mut fragment = Fragment::new(format);
                    for r in &records[from..to] {
                        fragment.push(r);
                    }
                    assert_eq!(fragment.len(), to - from);
                    let (separator, bytes) = joiner.join(&fragment);
                    out.extend_from_slice(separator);
                    out.extend_from_slice(bytes);
                    from = to;
                }
                out.extend_from_slice(joiner.finish());
                assert_eq!(joiner.count(), records.len());
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&render(&records, format)),
                    "{format:?} cut at {cuts:?}"
                );
            }
            let empty = Joiner::new(format);
            let mut out = empty.start().to_vec();
            out.extend_from_slice(empty.finish());
            assert_eq!(out, render(&[], format));
        }
    }

    #[test]
    fn both_formats_read_back_as_written() {
        let records = vec![post("1", "10", 5), post("2", "11", 0)];
        for format in [Format::Json, Format::Ndjson] {
            assert_eq!(parse(&render(&records, format)), Ok(records.clone()));
        }
        assert_eq!(parse(&render(&[], Format::Json)), Ok(Vec::new()));
        assert_eq!(parse(b""), Ok(Vec::new()));
        assert!(parse(b"[{\"a\": 1}").is_err());
        assert!(parse(b"{\"a\": 1}\nnot json\n").is_err());
    }
}
