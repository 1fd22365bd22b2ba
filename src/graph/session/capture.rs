//! The raw capture: every body a run received, kept until it is written, and the recorded
//! bodies a replayed run reads instead of calling.

use std::sync::atomic::Ordering;

use serde_json::Value;

use super::Session;
use crate::graph::error::{decode, ErrorKind, GraphError};
use crate::graph::replay::{read_recorded, Captured};
use crate::graph::source::Source;

impl Session<'_> {
    /// The bodies received so far, for the raw capture.
    pub fn take_captured(&self) -> Vec<Captured> {
        self.captured
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    /// Takes the body captured under `path` (a [`replay`](crate::graph::replay) name such as
    /// `brands/dior.json`), so that a caller writing it at once does not keep it until the end
    /// of the run.
    pub fn take_capture(&self, path: &str) -> Option<Captured> {
        let mut captured = self.captured.lock().ok()?;
        let i = captured.iter().position(|c| c.path == path)?;
        Some(captured.remove(i))
    }

    /// Adds a file to the raw capture (what the run knew beside the bodies it received).
    pub fn add_capture(&self, path: &str, body: &[u8]) {
        self.capture(path, body);
    }

    /// Reads a recorded body (`.json` or `.json.gz`) and decodes it like a live one.
    pub(super) async fn replay(&self, relative: &str) -> Result<Value, GraphError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Source::Replay(dir) = self.source else {
            return Err(GraphError::local(
                ErrorKind::NoSource,
                "no recorded responses",
            ));
        };
        match read_recorded(dir, relative, self.settings.max_body_bytes) {
            Ok(Some(bytes)) => {
                self.capture(relative, &bytes);
                decode(200, &bytes, None)
            }
            Ok(None) => Err(GraphError::local(
                ErrorKind::NotFound,
                format!(
                    "no recorded response {} (nor .gz)",
                    dir.join(relative).display()
                ),
            )),
            Err(e) => Err(GraphError::local(ErrorKind::BadResponse, e)),
        }
    }

    pub(super) fn capture(&self, path: &str, body: &[u8]) {
        if let Ok(mut c) = self.captured.lock() {
            // A retried call keeps the body that decided its outcome: the last one.
            c.retain(|x| x.path != path);
            c.push(Captured {
                path: path.to_string(),
                body: body.to_vec(),
            });
        }
    }
}
