//! Which tasks a listing asks for (`GET /tasks`, `POST /tasks/cancel`, `DELETE /tasks`), and
//! how one task is judged against it from its record and its Meilisearch view. The store
//! answers the same question from its indexes; [`TaskQuery::matches`] is the definition.

use std::collections::BTreeSet;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::aggregate::Status;
use crate::record::TaskRecord;

/// An open interval of instants, in nanoseconds since the Unix epoch: Meilisearch's
/// `after…`/`before…` filters are both exclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub after: Option<i64>,
    pub before: Option<i64>,
}

impl DateRange {
    pub fn is_any(&self) -> bool {
        self.after.is_none() && self.before.is_none()
    }

    /// Whether a task's date is inside; a task without the date never is (a filter on
    /// `finishedAt` leaves out unfinished tasks).
    pub fn contains(&self, t: Option<i64>) -> bool {
        match t {
            Some(t) => self.after.is_none_or(|a| t > a) && self.before.is_none_or(|b| t < b),
            None => self.is_any(),
        }
    }

    /// Whether some instant of `[min, max]` is inside.
    pub(crate) fn meets(&self, min: i64, max: i64) -> bool {
        self.after.is_none_or(|a| max > a) && self.before.is_none_or(|b| min < b)
    }

    /// Whether every instant of `[min, max]` is inside.
    pub(crate) fn covers(&self, min: i64, max: i64) -> bool {
        self.after.is_none_or(|a| min > a) && self.before.is_none_or(|b| max < b)
    }
}

/// An instant as the store keeps it: nanoseconds since the epoch, saturated to `i64` (years
/// 1677 to 2262).
pub fn nanos(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN + 1 } else { i64::MAX })
}

/// An RFC 3339 date, in nanoseconds.
pub fn parse_date(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(nanos)
}

/// A date of a task view, in nanoseconds.
pub fn view_date(v: &Value) -> Option<i64> {
    v.as_str().and_then(parse_date)
}

/// The filters of a task listing; `None` is "any". A task matches when it passes every filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQuery {
    pub uids: Option<BTreeSet<u64>>,
    pub statuses: Option<BTreeSet<Status>>,
    pub types: Option<BTreeSet<String>>,
    pub index_uids: Option<BTreeSet<String>>,
    pub canceled_by: Option<BTreeSet<u64>>,
    pub enqueued: DateRange,
    pub started: DateRange,
    pub finished: DateRange,
    /// Start at this uid (inclusive), in the listing's direction.
    pub from: Option<u64>,
    /// How many tasks to return at most.
    pub limit: usize,
    /// Oldest first (uids ascending) instead of newest first.
    pub reverse: bool,
    /// Tasks of indexes whose uid starts with this are left out (Miroir's own indexes,
    /// which a client never sees).
    pub hidden_indexes: Option<&'static str>,
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self {
            uids: None,
            statuses: None,
            types: None,
            index_uids: None,
            canceled_by: None,
            enqueued: DateRange::default(),
            started: DateRange::default(),
            finished: DateRange::default(),
            from: None,
            limit: usize::MAX,
            reverse: false,
            hidden_indexes: None,
        }
    }
}

impl TaskQuery {
    /// Whether some filter needs the task's current view (status, cancelation, dates); the
    /// others are known from the record alone.
    pub fn needs_views(&self) -> bool {
        self.statuses.is_some()
            || self.canceled_by.is_some()
            || !self.enqueued.is_any()
            || !self.started.is_any()
            || !self.finished.is_any()
    }

    /// The filters known from the record alone: uids, types, indexes.
    pub fn matches_record(&self, r: &TaskRecord) -> bool {
        self.uids.as_ref().is_none_or(|u| u.contains(&r.uid.0))
            && self.types.as_ref().is_none_or(|t| t.contains(&r.kind))
            && self
                .index_uids
                .as_ref()
                .is_none_or(|i| r.index_uid.as_ref().is_some_and(|u| i.contains(u)))
            && self.hidden_indexes.is_none_or(|prefix| {
                !r.index_uid
                    .as_deref()
                    .is_some_and(|u| u.starts_with(prefix))
            })
    }

    /// The filters that need the task's current view (status, cancelation, dates).
    pub fn matches_view(&self, view: &Value) -> bool {
        let status = view["status"]
            .as_str()
            .and_then(Status::parse)
            .unwrap_or(Status::Enqueued);
        self.statuses.as_ref().is_none_or(|s| s.contains(&status))
            && self
                .canceled_by
                .as_ref()
                .is_none_or(|c| view["canceledBy"].as_u64().is_some_and(|u| c.contains(&u)))
            && self.enqueued.contains(view_date(&view["enqueuedAt"]))
            && self.started.contains(view_date(&view["startedAt"]))
            && self.finished.contains(view_date(&view["finishedAt"]))
    }

    /// Whether a task with this record and current view matches.
    pub fn matches(&self, r: &TaskRecord, view: &Value) -> bool {
        self.matches_record(r) && self.matches_view(view)
    }

    /// Whether `uid` lies at or after `from` in the listing's direction.
    pub(crate) fn after_from(&self, uid: u64) -> bool {
        match (self.from, self.reverse) {
            (None, _) => true,
            (Some(f), false) => uid <= f,
            (Some(f), true) => uid >= f,
        }
    }
}

/// The view a record shows without asking its nodes: its cached final view, once nothing is
/// left to wait for (a task deletion still waits for the unfinished tasks it matched).
pub fn settled_view(r: &TaskRecord) -> Option<&Value> {
    r.terminal.as_ref().filter(|_| r.awaiting.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn date_bounds_are_exclusive_and_a_missing_date_matches_only_no_bound() {
        let r = DateRange {
            after: Some(10),
            before: Some(20),
        };
        assert!(!r.contains(Some(10)) && r.contains(Some(11)) && !r.contains(Some(20)));
        assert!(!r.contains(None));
        assert!(DateRange::default().contains(None));
        assert!(r.meets(0, 11) && !r.meets(0, 10) && r.meets(19, 30) && !r.meets(20, 30));
        assert!(r.covers(11, 19) && !r.covers(10, 19) && !r.covers(11, 20));
    }

    #[test]
    fn view_filters_read_status_cancelation_and_dates() {
        let view = json!({
            "status": "canceled",
            "canceledBy": 9,
            "enqueuedAt": "2026-01-01T00:00:00Z",
            "startedAt": null,
            "finishedAt": "2026-01-01T00:00:01.5Z",
        });
        let mut q = TaskQuery {
            statuses: Some([Status::Canceled].into()),
            canceled_by: Some([9].into()),
            ..TaskQuery::default()
        };
        assert!(q.matches_view(&view));
        q.started.after = Some(0);
        assert!(!q.matches_view(&view), "no startedAt: outside any bound");
        q.started = DateRange::default();
        q.finished.before = view_date(&json!("2026-01-01T00:00:01.5Z"));
        assert!(!q.matches_view(&view), "exclusive");
        q.finished.before = q.finished.before.map(|b| b + 1);
        assert!(q.matches_view(&view));
        assert!(q.needs_views());
        assert!(!TaskQuery::default().needs_views());
    }
}
