//! What a sink call carries: an object as read, the condition a write is made under, what the
//! write found, and what it sends.

use std::path::Path;

/// An object as read, with the version tag a conditional write can name.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub body: Vec<u8>,
    /// The ETag (S3) or a content hash (folder); `If-Match` compares it.
    pub etag: String,
}

/// The condition a write is made under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Replace whatever is there.
    Overwrite,
    /// Only if there is no object under the key (`If-None-Match: *`).
    Absent,
    /// Only if the object is still this version (`If-Match`).
    Matches(String),
}

/// What a conditional write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The object was written; its new version tag.
    Done(String),
    /// The condition did not hold: another run wrote the key first (HTTP 412, or 409 for a
    /// concurrent conditional write). Nothing was written.
    Conflict,
}

/// What a write sends.
pub(super) enum Payload<'a> {
    Bytes(Vec<u8>),
    File(&'a Path),
}
