//! The budget's admission: which due hashtags get pages, in service order, and which freshness
//! polls the calls left over can pay for.

use super::poll::Want;
use super::report::Due;
use super::Pager;

impl Pager {
    /// Gives each due hashtag, in service order, the pages its backlog is estimated to need;
    /// the first that does not fit waits with every one after it on its credential.
    pub(super) fn admit(&mut self) {
        let mut free = self.left.clone();
        let mut blocked = vec![false; self.lanes.len()];
        for &i in &self.order {
            let r = &mut self.runs[i];
            if r.want == Want::Done {
                continue;
            }
            let Some(lane_free) = free.get_mut(r.tag.lane) else {
                r.want = Want::Done;
                r.refused += 1;
                continue;
            };
            let need = match r.due {
                Due::First => 1,
                _ => self.settings.pages_for(
                    r.behind_at_start + r.rate * self.settings.overlap.as_secs_f64() / 3600.0,
                ),
            };
            let hourly = self.lanes.get(r.tag.lane).map_or(0, |l| l.calls_per_hour);
            if !blocked[r.tag.lane] && need <= *lane_free {
                *lane_free -= need;
                r.reserved = need;
            } else if !blocked[r.tag.lane] && need > hourly && *lane_free > 0 {
                // More than a whole hour's budget: waiting would never make it fit. It takes
                // what is left; what ages out of the 24 hours meanwhile is reported given up.
                r.reserved = *lane_free;
                *lane_free = 0;
                blocked[r.tag.lane] = true;
            } else {
                blocked[r.tag.lane] = true;
                r.want = Want::Done;
                r.refused += 1;
            }
        }
        self.admit_fresh(free, &blocked);
    }

    /// Freshness polls from what the due hashtags left: the hashtags with most posts estimated
    /// waiting first, each given the pages it is estimated to need, while each credential keeps
    /// what its hashtags' due polls cost in an hour ([`Settings::calls_per_hour`] at their
    /// rates). So freshness spends only calls the hour can spare, and a due poll later in the
    /// hour still finds its calls; a credential where a due hashtag waited gets none.
    ///
    /// [`Settings::calls_per_hour`]: super::settings::Settings::calls_per_hour
    fn admit_fresh(&mut self, mut free: Vec<u64>, blocked: &[bool]) {
        let mut keep = vec![0.0f64; self.lanes.len()];
        for r in &self.runs {
            if let Some(k) = keep.get_mut(r.tag.lane) {
                *k += self.settings.calls_per_hour(r.rate);
            }
        }
        // What the due polls reserved comes out of the hashtag allowance first.
        let mut own: Vec<u64> = self
            .fresh_left
            .iter()
            .zip(self.left.iter().zip(&free))
            .map(|(f, (l, fr))| f.saturating_sub(l.saturating_sub(*fr)))
            .collect();
        let mut candidates: Vec<usize> = (0..self.runs.len())
            .filter(|&i| self.runs[i].waiting > 0.0)
            .collect();
        candidates.sort_by(|&a, &b| {
            let (x, y) = (&self.runs[a], &self.runs[b]);
            y.waiting
                .total_cmp(&x.waiting)
                .then_with(|| x.tag.name.cmp(&y.tag.name))
        });
        for i in candidates {
            let r = &mut self.runs[i];
            let lane = r.tag.lane;
            let (Some(lane_free), Some(own), Some(keep), Some(false)) = (
                free.get_mut(lane),
                own.get_mut(lane),
                keep.get(lane),
                blocked.get(lane),
            ) else {
                continue;
            };
            let need = self.settings.pages_for(
                r.behind_at_start + r.rate * self.settings.overlap.as_secs_f64() / 3600.0,
            );
            let spare = ((*lane_free).min(*own) as f64 - keep.ceil()).max(0.0) as u64;
            if need <= spare {
                *lane_free -= need;
                *own -= need;
                r.reserved = need;
                r.due = Due::Fresh;
                r.want = Want::Start;
            }
        }
    }
}
