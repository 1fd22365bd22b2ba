//! The schedule's Graph calls per hour against the hourly budget of its credentials.

use super::{Config, ConfigError, Problem};

/// The schedule's calls per hour against the budget, with the arithmetic for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUse {
    pub calls_per_hour: u64,
    pub limit: u64,
    pub arithmetic: String,
}

impl Config {
    /// The schedule's Graph calls per hour against the budget of `credentials` credentials:
    /// accounts × brands runs + hashtags × hashtag runs + the extra-page allowance. Hashtag
    /// searches are not counted: ids are resolved once and kept.
    pub fn budget_use(&self, credentials: usize) -> BudgetUse {
        let accounts = self.targets.len() as u64;
        let b = &self.budget;
        let h = &self.hashtags;
        let calls = accounts * b.brands_runs_per_hour as u64
            + accounts * h.runs_per_hour as u64
            + h.extra_pages_per_hour as u64;
        let limit = b.calls_per_hour_per_credential as u64 * credentials.max(1) as u64;
        BudgetUse {
            calls_per_hour: calls,
            limit,
            arithmetic: format!(
                "{accounts} accounts × {} brands run/h + {accounts} hashtags × {} runs/h + {} extra pages/h = {calls} calls/h; budget {} calls/h × {} credential(s) = {limit}",
                b.brands_runs_per_hour, h.runs_per_hour, h.extra_pages_per_hour, b.calls_per_hour_per_credential, credentials.max(1)
            ),
        }
    }

    /// Refuses a schedule above the hourly call budget, showing the arithmetic.
    pub fn check_budget(&self, credentials: usize) -> Result<BudgetUse, ConfigError> {
        let used = self.budget_use(credentials);
        if used.calls_per_hour > used.limit {
            return Err(ConfigError {
                file: self.file.clone(),
                problems: vec![Problem {
                    key: "budget".into(),
                    message: format!(
                        "the schedule is over the Graph API budget: {}. Lower hashtags.extra_pages_per_hour or hashtags.runs_per_hour, track fewer targets, or add credentials",
                        used.arithmetic
                    ),
                }],
            });
        }
        Ok(used)
    }
}
