//! The filters of `GET /tasks`, `POST /tasks/cancel` and `DELETE /tasks`, parsed and judged
//! as Meilisearch parses and judges them.

use std::collections::HashSet;

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::query;
use miroir_tasks::TaskRecord;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The filters of `GET /tasks`, `POST /tasks/cancel` and `DELETE /tasks`.
#[derive(Debug, Default)]
pub(crate) struct TaskFilter {
    pub(crate) uids: Option<HashSet<u64>>,
    pub(crate) statuses: Option<HashSet<String>>,
    pub(crate) types: Option<HashSet<String>>,
    pub(crate) index_uids: Option<HashSet<String>>,
    pub(crate) canceled_by: Option<HashSet<u64>>,
    /// `(field, after, before)` bounds on the task's dates.
    pub(crate) dates: Vec<(&'static str, Option<OffsetDateTime>, Option<OffsetDateTime>)>,
    pub(crate) limit: usize,
    pub(crate) from: Option<u64>,
    pub(crate) reverse: bool,
    /// The filter as the client wrote it, for `details.originalFilter`.
    pub(crate) original: String,
    pub(crate) any_filter: bool,
}

const STATUSES: [&str; 5] = ["enqueued", "processing", "succeeded", "failed", "canceled"];

fn parse_list(v: &str) -> Option<HashSet<String>> {
    if v == "*" {
        return None;
    }
    Some(
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

pub(crate) fn parse_filter(query: &str) -> Result<TaskFilter, MiroirError> {
    let mut f = TaskFilter {
        limit: 20,
        ..TaskFilter::default()
    };
    let mut original = Vec::new();
    // Pair by pair, each also kept as written for `details.originalFilter`.
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = query::pairs(pair).next() else {
            continue;
        };
        match k.as_ref() {
            "limit" => {
                f.limit = v.parse().map_err(|_| {
                    MiroirError::new(Code::InvalidTaskLimit, format!("Invalid value in parameter `limit`: could not parse `{v}` as a positive integer"))
                })?
            }
            "from" => {
                f.from = Some(v.parse().map_err(|_| {
                    MiroirError::new(Code::InvalidTaskFrom, format!("Invalid value in parameter `from`: could not parse `{v}` as a positive integer"))
                })?)
            }
            "reverse" => f.reverse = v == "true",
            "uids" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                f.uids = match parse_list(&v) {
                    None => None,
                    Some(set) => Some(
                        set.iter()
                            .map(|u| u.parse::<u64>())
                            .collect::<Result<HashSet<u64>, _>>()
                            .map_err(|_| MiroirError::new(Code::InvalidTaskUids, format!("Invalid value in parameter `uids`: could not parse `{v}` as a positive integer")))?,
                    ),
                };
            }
            "statuses" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                f.statuses = parse_list(&v);
                if let Some(bad) = f.statuses.iter().flatten().find(|s| !STATUSES.contains(&s.as_str())) {
                    return Err(MiroirError::new(
                        Code::InvalidTaskStatuses,
                        format!("Invalid value in parameter `statuses`: `{bad}` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`."),
                    ));
                }
            }
            "types" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                f.types = parse_list(&v);
            }
            "indexUids" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                f.index_uids = parse_list(&v);
            }
            "canceledBy" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                f.canceled_by = parse_uid_list(&v, "canceledBy", Code::InvalidTaskCanceledBy)?;
            }
            // Miroir runs each task in its own batch, numbered like the task.
            "batchUids" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                let batches = parse_uid_list(&v, "batchUids", Code::InvalidTaskUids)?;
                f.uids = match (f.uids.take(), batches) {
                    (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
                    (a, b) => a.or(b),
                };
            }
            name @ ("afterEnqueuedAt" | "beforeEnqueuedAt" | "afterStartedAt" | "beforeStartedAt"
            | "afterFinishedAt" | "beforeFinishedAt") => {
                f.any_filter = true;
                original.push(pair.to_owned());
                let at = parse_date(&v).ok_or_else(|| {
                    MiroirError::new(
                        date_code(name),
                        format!("Invalid value in parameter `{name}`: `{v}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."),
                    )
                })?;
                let field = if name.ends_with("EnqueuedAt") {
                    "enqueuedAt"
                } else if name.ends_with("StartedAt") {
                    "startedAt"
                } else {
                    "finishedAt"
                };
                let slot = match f.dates.iter().position(|(k, _, _)| *k == field) {
                    Some(i) => i,
                    None => {
                        f.dates.push((field, None, None));
                        f.dates.len() - 1
                    }
                };
                if name.starts_with("after") {
                    f.dates[slot].1 = Some(at);
                } else {
                    f.dates[slot].2 = Some(at);
                }
            }
            _ => {}
        }
    }
    f.original = format!("?{}", original.join("&"));
    Ok(f)
}

impl TaskFilter {
    /// The filters known from the record alone.
    pub(crate) fn matches_record(&self, r: &TaskRecord) -> bool {
        self.uids.as_ref().is_none_or(|u| u.contains(&r.uid.0))
            && self.types.as_ref().is_none_or(|t| t.contains(&r.kind))
            && self
                .index_uids
                .as_ref()
                .is_none_or(|i| r.index_uid.as_ref().is_some_and(|u| i.contains(u)))
    }

    /// The filters that need the task's current view (status, cancelation, dates).
    pub(crate) fn matches_view(&self, view: &Value) -> bool {
        let status = view["status"].as_str().unwrap_or("enqueued");
        let in_range =
            |(field, after, before): &(&str, Option<OffsetDateTime>, Option<OffsetDateTime>)| {
                match view[*field]
                    .as_str()
                    .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
                {
                    Some(t) => after.is_none_or(|a| t > a) && before.is_none_or(|b| t < b),
                    None => false,
                }
            };
        self.statuses.as_ref().is_none_or(|s| s.contains(status))
            && self
                .canceled_by
                .as_ref()
                .is_none_or(|c| view["canceledBy"].as_u64().is_some_and(|u| c.contains(&u)))
            && self.dates.iter().all(in_range)
    }
}

fn date_code(param: &str) -> Code {
    match param {
        "afterEnqueuedAt" => Code::InvalidTaskAfterEnqueuedAt,
        "beforeEnqueuedAt" => Code::InvalidTaskBeforeEnqueuedAt,
        "afterStartedAt" => Code::InvalidTaskAfterStartedAt,
        "beforeStartedAt" => Code::InvalidTaskBeforeStartedAt,
        "afterFinishedAt" => Code::InvalidTaskAfterFinishedAt,
        _ => Code::InvalidTaskBeforeFinishedAt,
    }
}

fn parse_date(v: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t);
    }
    let date =
        time::Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.midnight().assume_utc())
}

fn parse_uid_list(v: &str, name: &str, code: Code) -> Result<Option<HashSet<u64>>, MiroirError> {
    match parse_list(v) {
        None => Ok(None),
        Some(set) => set
            .iter()
            .map(|u| u.parse::<u64>())
            .collect::<Result<HashSet<u64>, _>>()
            .map(Some)
            .map_err(|_| {
                MiroirError::new(code, format!("Invalid value in parameter `{name}`: could not parse `{v}` as a positive integer"))
            }),
    }
}
