//! The requests a lane may still send: what the run booked for it before its first call, and
//! the requests it sent, retries included.

use super::Session;

impl Session<'_> {
    /// Limits the requests `lane` may still send, retries included, to `calls`: what the run
    /// booked for it before its first call. A request past it is not sent
    /// (`ErrorKind::BudgetSpent`), so no run can spend more than it booked, however the API
    /// fails or pages.
    pub fn limit_calls(&self, lane: usize, calls: u64) {
        if let Ok(mut a) = self.allowance.lock() {
            a.insert(lane, calls);
        }
    }

    /// Requests `lane` may still send under its limit (`None`: not limited).
    pub fn calls_left(&self, lane: usize) -> Option<u64> {
        self.allowance.lock().ok()?.get(&lane).copied()
    }

    /// Takes one request from `lane`'s limit; false when it is spent.
    pub(super) fn take_call(&self, lane: usize) -> bool {
        let Ok(mut a) = self.allowance.lock() else {
            return false;
        };
        match a.get_mut(&lane) {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    /// HTTP requests sent on `lane` so far, retries included.
    pub fn calls_on(&self, lane: usize) -> u64 {
        self.lane_calls
            .lock()
            .map(|c| c.get(&lane).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Counts an optional call not made (page budget or high usage).
    pub fn skipped_optional(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.optional_calls_skipped += 1;
        }
    }
}
