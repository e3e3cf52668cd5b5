//! Cron schedules: one task per schedule of the newest version of each
//! deployed process, sleeping on the engine's clock until the next firing.
//!
//! Each firing starts an instance with the business key
//! `schedule-<n>@<firing time>`, so a firing repeated after a crash (between
//! the start and the stored mark) returns the instance it already started
//! instead of starting a second. Firings missed while no engine ran follow
//! the schedule's `missed` policy.

use std::collections::BTreeMap;

use weft_model::schedule::{Missed, Schedule};
use weft_model::{Millis, Span};

use crate::backoff::Backoff;
use crate::{Engine, Result};

/// How many missed firings are walked before the search for the newest one
/// starts again one day before now.
const WALK_LIMIT: usize = 10_000;

impl Engine {
    /// Starts firing the schedules of every deployed process (its newest
    /// version's). Returns how many schedules run.
    pub async fn run_schedules(&self) -> Result<usize> {
        let mut newest: BTreeMap<String, u32> = BTreeMap::new();
        for p in self.read(|s| s.processes()).await? {
            let v = newest.entry(p.name).or_default();
            *v = (*v).max(p.version);
        }
        let mut count = 0;
        for (name, version) in newest {
            let process = self.process(&name, version).await?;
            for (index, schedule) in process.schedules.iter().enumerate() {
                let engine = self.clone();
                let (name, schedule) = (name.clone(), schedule.clone());
                self.spawn(async move { engine.run_schedule(name, index as u32, schedule).await });
                count += 1;
            }
        }
        Ok(count)
    }

    async fn run_schedule(&self, process: String, index: u32, schedule: Schedule) {
        let clock = self.inner.clock.clone();
        let now = clock.now();
        let p = process.clone();
        let mut mark = match self.read(move |s| s.schedule_mark(&p, index)).await {
            Ok(Some(m)) => m,
            // Never fired: start counting from now, not from the epoch.
            Ok(None) => now,
            Err(e) => {
                tracing::error!("schedule {index} of '{process}': cannot read its mark: {e}");
                return;
            }
        };
        if let Some(missed) = newest_missed(&schedule, mark, now) {
            match schedule.missed {
                Missed::Skip => tracing::info!(
                    "schedule {index} of '{process}': skipping firings missed up to {missed}"
                ),
                Missed::RunOnce => self.fire(&process, index, &schedule, missed).await,
            }
        }
        if mark != now {
            mark = now;
            self.mark(&process, index, mark).await;
        }
        while let Some(next) = schedule.cron.next_after(mark) {
            self.doze(clock.sleep_until(next)).await;
            self.fire(&process, index, &schedule, next).await;
            mark = next;
            self.mark(&process, index, mark).await;
        }
    }

    /// Starts the firing's instance, trying again with backoff until its
    /// start is recorded: the schedule's mark moves on only after.
    async fn fire(&self, process: &str, index: u32, schedule: &Schedule, at: Millis) {
        let key = format!("schedule-{index}@{at}");
        let mut backoff = Backoff::new();
        loop {
            match self
                .start_keyed(process, None, schedule.input.clone(), Some(key.clone()))
                .await
            {
                Ok(s) if s.existing => {
                    tracing::info!(
                        "schedule {index} of '{process}': {key} had already started {}",
                        s.id
                    );
                    return;
                }
                Ok(s) => {
                    tracing::info!("schedule {index} of '{process}': {key} started {}", s.id);
                    return;
                }
                Err(e) => {
                    let pause = backoff.pause();
                    self.report_trouble(format!(
                        "schedule {index} of '{process}': {key} did not start: {e}; trying again in {pause}"
                    ));
                    self.pause(pause).await;
                }
            }
        }
    }

    /// Stores the schedule's mark, trying again with backoff until it is.
    async fn mark(&self, process: &str, index: u32, at: Millis) {
        let mut backoff = Backoff::new();
        loop {
            let p = process.to_owned();
            match self.read(move |s| s.put_schedule_mark(&p, index, at)).await {
                Ok(()) => return,
                Err(e) => {
                    let pause = backoff.pause();
                    self.report_trouble(format!(
                        "schedule {index} of '{process}': cannot store its mark: {e}; trying again in {pause}"
                    ));
                    self.pause(pause).await;
                }
            }
        }
    }
}

/// The newest firing after `mark` and at or before `now`, if any.
pub fn newest_missed(schedule: &Schedule, mark: Millis, now: Millis) -> Option<Millis> {
    let mut cursor = mark;
    let mut newest = None;
    let mut walked = 0;
    while let Some(next) = schedule.cron.next_after(cursor) {
        if next > now {
            break;
        }
        newest = Some(next);
        cursor = next;
        walked += 1;
        if walked == WALK_LIMIT {
            let day_before = Millis(now.0.saturating_sub(Span::from_secs(86_400).as_millis()));
            if day_before > cursor {
                cursor = day_before;
            }
        }
    }
    newest
}
