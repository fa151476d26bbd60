//! The filters of `GET /tasks`, `POST /tasks/cancel` and `DELETE /tasks`, parsed as
//! Meilisearch parses them into a `TaskQuery` (judged in `miroir_tasks::query`).

use std::collections::BTreeSet;

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::query;
use miroir_tasks::{nanos, Status, TaskQuery};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The filters of `GET /tasks`, `POST /tasks/cancel` and `DELETE /tasks`.
#[derive(Debug)]
pub(crate) struct TaskFilter {
    /// What the store is asked (its `limit` is the client's).
    pub(crate) query: TaskQuery,
    /// The filter as the client wrote it, for `details.originalFilter`.
    pub(crate) original: String,
    pub(crate) any_filter: bool,
}

fn parse_list(v: &str) -> Option<BTreeSet<String>> {
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
        query: TaskQuery {
            limit: 20,
            ..TaskQuery::default()
        },
        original: String::new(),
        any_filter: false,
    };
    let q = &mut f.query;
    let mut original = Vec::new();
    // Pair by pair, each also kept as written for `details.originalFilter`.
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = query::pairs(pair).next() else {
            continue;
        };
        match k.as_ref() {
            "limit" => {
                q.limit = v.parse().map_err(|_| {
                    MiroirError::new(Code::InvalidTaskLimit, format!("Invalid value in parameter `limit`: could not parse `{v}` as a positive integer"))
                })?
            }
            "from" => {
                q.from = Some(v.parse().map_err(|_| {
                    MiroirError::new(Code::InvalidTaskFrom, format!("Invalid value in parameter `from`: could not parse `{v}` as a positive integer"))
                })?)
            }
            "reverse" => q.reverse = v == "true",
            "uids" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                q.uids = parse_uid_list(&v, "uids", Code::InvalidTaskUids)?;
            }
            "statuses" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                q.statuses = match parse_list(&v) {
                    None => None,
                    Some(names) => Some(names.iter().map(|s| Status::parse(s).ok_or_else(|| MiroirError::new(
                        Code::InvalidTaskStatuses,
                        format!("Invalid value in parameter `statuses`: `{s}` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`."),
                    ))).collect::<Result<_, _>>()?),
                };
            }
            "types" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                q.types = parse_list(&v);
            }
            "indexUids" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                q.index_uids = parse_list(&v);
            }
            "canceledBy" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                q.canceled_by = parse_uid_list(&v, "canceledBy", Code::InvalidTaskCanceledBy)?;
            }
            // Miroir runs each task in its own batch, numbered like the task.
            "batchUids" => {
                f.any_filter = true;
                original.push(pair.to_owned());
                let batches = parse_uid_list(&v, "batchUids", Code::InvalidTaskUids)?;
                q.uids = match (q.uids.take(), batches) {
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
                let range = if name.ends_with("EnqueuedAt") {
                    &mut q.enqueued
                } else if name.ends_with("StartedAt") {
                    &mut q.started
                } else {
                    &mut q.finished
                };
                if name.starts_with("after") {
                    range.after = Some(nanos(at));
                } else {
                    range.before = Some(nanos(at));
                }
            }
            _ => {}
        }
    }
    f.original = format!("?{}", original.join("&"));
    Ok(f)
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

fn parse_uid_list(v: &str, name: &str, code: Code) -> Result<Option<BTreeSet<u64>>, MiroirError> {
    match parse_list(v) {
        None => Ok(None),
        Some(set) => set
            .iter()
            .map(|u| u.parse::<u64>())
            .collect::<Result<BTreeSet<u64>, _>>()
            .map(Some)
            .map_err(|_| {
                MiroirError::new(code, format!("Invalid value in parameter `{name}`: could not parse `{v}` as a positive integer"))
            }),
    }
}
