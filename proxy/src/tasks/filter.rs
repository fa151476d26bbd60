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

/// Which route the filter is for: they accept different parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterRoute {
    /// `GET /tasks` and `GET /batches`: the filters plus paging.
    List,
    /// `POST /tasks/cancel` and `DELETE /tasks`: the filters only.
    CancelOrDelete,
}

impl FilterRoute {
    /// The parameters named in Meilisearch's `Unknown parameter` error, in its order.
    fn accepted(self) -> &'static str {
        match self {
            FilterRoute::List => "`limit`, `from`, `reverse`, `batchUids`, `uids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`",
            FilterRoute::CancelOrDelete => "`uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`",
        }
    }
}

/// Meilisearch 1.50's task types, in the order its error lists them.
const TYPES: &[&str] = &[
    "documentAdditionOrUpdate",
    "documentEdition",
    "documentDeletion",
    "settingsUpdate",
    "indexCreation",
    "indexDeletion",
    "indexUpdate",
    "indexSwap",
    "taskCancelation",
    "taskDeletion",
    "dumpCreation",
    "snapshotCreation",
    "export",
    "upgradeDatabase",
    "indexCompaction",
    "networkTopologyChange",
    "dsrUpdate",
    "dsrClear",
];

/// A comma-separated parameter as Meilisearch reads it: empty items dropped, nothing trimmed,
/// `*` anywhere means no constraint (the other items are still checked). An item that fails
/// is named `param[i]` when the list has several items. An empty list matches nothing.
fn parse_list<T: Ord>(
    v: &str,
    param: &str,
    mut item: impl FnMut(&str, &str) -> Result<T, MiroirError>,
) -> Result<Option<BTreeSet<T>>, MiroirError> {
    let items: Vec<&str> = v.split(',').filter(|s| !s.is_empty()).collect();
    let mut out = BTreeSet::new();
    let mut star = false;
    for (i, s) in items.iter().enumerate() {
        if *s == "*" {
            star = true;
            continue;
        }
        let name = if items.len() > 1 {
            format!("{param}[{i}]")
        } else {
            param.to_owned()
        };
        out.insert(item(s, &name)?);
    }
    Ok((!star).then_some(out))
}

fn uid_item(code: Code) -> impl Fn(&str, &str) -> Result<u64, MiroirError> {
    move |s, name| {
        s.parse::<u64>().map_err(|_| {
            MiroirError::new(
                code,
                format!("Invalid value in parameter `{name}`: could not parse `{s}` as a positive integer"),
            )
        })
    }
}

fn index_uid_item(s: &str, name: &str) -> Result<String, MiroirError> {
    let valid = !s.is_empty()
        && s.len() <= 512
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(s.to_owned())
    } else {
        Err(MiroirError::new(
            Code::InvalidIndexUid,
            format!("Invalid value in parameter `{name}`: `{s}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."),
        ))
    }
}

fn type_item(s: &str, name: &str) -> Result<String, MiroirError> {
    if TYPES.contains(&s) {
        return Ok(s.to_owned());
    }
    let all = TYPES
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(MiroirError::new(
        Code::InvalidTaskTypes,
        format!("Invalid value in parameter `{name}`: `{s}` is not a valid task type. Available types are {all}."),
    ))
}

fn status_item(s: &str, name: &str) -> Result<Status, MiroirError> {
    Status::parse(s).ok_or_else(|| MiroirError::new(
        Code::InvalidTaskStatuses,
        format!("Invalid value in parameter `{name}`: `{s}` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`."),
    ))
}

pub(crate) fn parse_filter(query: &str, route: FilterRoute) -> Result<TaskFilter, MiroirError> {
    let mut f = TaskFilter {
        query: TaskQuery {
            limit: 20,
            // A reshard's shadow index and its tasks are Miroir's own.
            hidden_indexes: Some(crate::cluster::reshards::INTERNAL_PREFIX),
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
        let paging = route == FilterRoute::List;
        match k.as_ref() {
            "limit" if paging => {
                q.limit = v.parse().map_err(|_| {
                    MiroirError::new(Code::InvalidTaskLimit, format!("Invalid value in parameter `limit`: could not parse `{v}` as a positive integer"))
                })?
            }
            "from" if paging => {
                q.from = Some(v.parse().map_err(|_| {
                    MiroirError::new(Code::InvalidTaskFrom, format!("Invalid value in parameter `from`: could not parse `{v}` as a positive integer"))
                })?)
            }
            "reverse" if paging => q.reverse = v == "true",
            "uids" => q.uids = parse_list(&v, "uids", uid_item(Code::InvalidTaskUids))?,
            "statuses" => q.statuses = parse_list(&v, "statuses", status_item)?,
            "types" => q.types = parse_list(&v, "types", type_item)?,
            "indexUids" => q.index_uids = parse_list(&v, "indexUids", index_uid_item)?,
            "canceledBy" => {
                q.canceled_by = parse_list(&v, "canceledBy", uid_item(Code::InvalidTaskCanceledBy))?
            }
            // Miroir runs each task in its own batch, numbered like the task.
            "batchUids" => {
                let batches = parse_list(&v, "batchUids", uid_item(Code::InvalidBatchUids))?;
                q.uids = match (q.uids.take(), batches) {
                    (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
                    (a, b) => a.or(b),
                };
            }
            name @ ("afterEnqueuedAt" | "beforeEnqueuedAt" | "afterStartedAt" | "beforeStartedAt"
            | "afterFinishedAt" | "beforeFinishedAt") => {
                let after = name.starts_with("after");
                // `*` is no constraint, as on a node.
                let at = match &*v {
                    "*" => None,
                    _ => Some(parse_date(&v, after).ok_or_else(|| {
                        MiroirError::new(
                            date_code(name),
                            format!("Invalid value in parameter `{name}`: `{v}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."),
                        )
                    })?),
                };
                let range = if name.ends_with("EnqueuedAt") {
                    &mut q.enqueued
                } else if name.ends_with("StartedAt") {
                    &mut q.started
                } else {
                    &mut q.finished
                };
                let bound = at.map(nanos);
                if after {
                    range.after = bound;
                } else {
                    range.before = bound;
                }
            }
            other => {
                return Err(MiroirError::new(
                    Code::BadRequest,
                    format!("Unknown parameter `{other}`: expected one of {}", route.accepted()),
                ))
            }
        }
        if !matches!(k.as_ref(), "limit" | "from" | "reverse") {
            f.any_filter = true;
            original.push(pair.to_owned());
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

/// RFC 3339, or a bare date: an `after*` bound on a date means after that whole day, as on a
/// node.
fn parse_date(v: &str, after: bool) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t);
    }
    let date =
        time::Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    let day = date.midnight().assume_utc();
    Some(if after {
        day + time::Duration::days(1)
    } else {
        day
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(query: &str, route: FilterRoute) -> String {
        parse_filter(query, route).unwrap_err().message
    }

    #[test]
    fn lists_and_dates_read_as_a_node_reads_them() {
        let f = parse_filter(
            "afterEnqueuedAt=*&beforeFinishedAt=*",
            FilterRoute::CancelOrDelete,
        )
        .unwrap();
        assert!(f.any_filter && f.query.enqueued.is_any() && f.query.finished.is_any());
        assert_eq!(f.original, "?afterEnqueuedAt=*&beforeFinishedAt=*");
        assert!(message("types=indexCreation,foo", FilterRoute::List)
            .starts_with("Invalid value in parameter `types[1]`: `foo` is not a valid task type."));
        assert!(message("statuses=*,x", FilterRoute::List)
            .starts_with("Invalid value in parameter `statuses[1]`"));
        let star = parse_filter("types=*,indexCreation", FilterRoute::List).unwrap();
        assert!(star.query.types.is_none());
        let empty = parse_filter("types=", FilterRoute::List).unwrap();
        assert_eq!(empty.query.types, Some(BTreeSet::new()));
        assert!(message("limit=1", FilterRoute::CancelOrDelete)
            .starts_with("Unknown parameter `limit`: expected one of `uids`, `batchUids`"));
        assert!(message("foo=1", FilterRoute::List).starts_with(
            "Unknown parameter `foo`: expected one of `limit`, `from`, `reverse`, `batchUids`"
        ));
    }

    #[test]
    fn an_after_bound_on_a_day_is_past_that_day() {
        let after = parse_filter("afterEnqueuedAt=2026-01-02", FilterRoute::List).unwrap();
        let before = parse_filter("beforeEnqueuedAt=2026-01-02", FilterRoute::List).unwrap();
        let day = 86_400_000_000_000i64;
        assert_eq!(
            after.query.enqueued.after.unwrap() - before.query.enqueued.before.unwrap(),
            day
        );
    }
}
