//! What a failed sink call says: what it was doing, where, and whether it ran out of time.

/// What a failed sink call was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    List,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::List => "list",
        }
    }
}

/// A sink call that did not happen. The run fails with it, so Lambda retries the invocation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not {} {location}: {message}", op.verb())]
pub struct SinkError {
    pub op: Op,
    /// `s3://bucket/key` or the file path.
    pub location: String,
    pub message: String,
    /// True when the call ran out of time (its timeout or the run's end).
    pub timed_out: bool,
}
