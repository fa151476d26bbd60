//! `/tasks` and `/batches` query parameters: parsing with Meilisearch's per-parameter error
//! codes, and matching tasks against them.

use meili_sim_engine::MeiliError;
use time::{Duration, OffsetDateTime};

use crate::clock::parse_rfc3339;
use crate::error::unknown_param;
use crate::ids::is_valid_index_uid;
use crate::tasks::{Status, Task, TYPES};

/// `None` = not given or `*` (no constraint).
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub uids: Option<Vec<u32>>,
    pub batch_uids: Option<Vec<u32>>,
    pub canceled_by: Option<Vec<u32>>,
    pub types: Option<Vec<String>>,
    pub statuses: Option<Vec<String>>,
    pub index_uids: Option<Vec<String>>,
    pub after_enqueued_at: Option<OffsetDateTime>,
    pub before_enqueued_at: Option<OffsetDateTime>,
    pub after_started_at: Option<OffsetDateTime>,
    pub before_started_at: Option<OffsetDateTime>,
    pub after_finished_at: Option<OffsetDateTime>,
    pub before_finished_at: Option<OffsetDateTime>,
    /// Whether any filter parameter was present at all (even `*`).
    pub any_given: bool,
}

/// Listing parameters of `GET /tasks` and `GET /batches`.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: u32,
    pub from: Option<u32>,
    pub reverse: bool,
}

/// The filter parameters of the task routes, in Meilisearch's order for cancel and delete.
pub const FILTERS: &[&str] = &[
    "uids",
    "batchUids",
    "canceledBy",
    "types",
    "statuses",
    "indexUids",
    "afterEnqueuedAt",
    "beforeEnqueuedAt",
    "afterStartedAt",
    "beforeStartedAt",
    "afterFinishedAt",
    "beforeFinishedAt",
];

pub fn parse_list_query(params: &[(String, String)]) -> Result<(TaskFilter, Page), MeiliError> {
    let mut page = Page {
        limit: 20,
        from: None,
        reverse: false,
    };
    let mut rest = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "limit" => page.limit = parse_u32(v, "invalid_task_limit", "limit")?,
            "from" => page.from = Some(parse_u32(v, "invalid_task_from", "from")?),
            "reverse" => {
                page.reverse = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(MeiliError::invalid(
                            "invalid_task_reverse",
                            format!("Invalid value in parameter `reverse`: could not parse `{v}` as a boolean, expected either `true` or `false`"),
                        ))
                    }
                }
            }
            _ => rest.push((k.clone(), v.clone())),
        }
    }
    // Meilisearch names `batchUids` before `uids` on the listing routes.
    let accepted = [
        "limit",
        "from",
        "reverse",
        "batchUids",
        "uids",
        "canceledBy",
        "types",
        "statuses",
        "indexUids",
        "afterEnqueuedAt",
        "beforeEnqueuedAt",
        "afterStartedAt",
        "beforeStartedAt",
        "afterFinishedAt",
        "beforeFinishedAt",
    ];
    Ok((parse_filter(&rest, &accepted)?, page))
}

/// The filters of `POST /tasks/cancel` and `DELETE /tasks` (no paging parameters).
pub fn parse_filter(
    params: &[(String, String)],
    accepted: &[&str],
) -> Result<TaskFilter, MeiliError> {
    let mut f = TaskFilter::default();
    for (k, v) in params {
        if !FILTERS.contains(&k.as_str()) {
            return Err(unknown_param(k, accepted));
        }
        f.any_given = true;
        // `*` anywhere in a list means no constraint; the other items are still checked.
        let star = split(v).any(|x| x == "*");
        match k.as_str() {
            "uids" => f.uids = keep(star, u32_list(v, "invalid_task_uids", k)?),
            "batchUids" => f.batch_uids = keep(star, u32_list(v, "invalid_batch_uids", k)?),
            "canceledBy" => f.canceled_by = keep(star, u32_list(v, "invalid_task_canceled_by", k)?),
            "types" => {
                f.types = keep(star, checked_list(v, "invalid_task_types", k, TYPES, "task type", "types")?)
            }
            "statuses" => {
                f.statuses = keep(
                    star,
                    checked_list(v, "invalid_task_statuses", k, &Status::ALL, "task status", "statuses")?,
                )
            }
            "indexUids" => {
                f.index_uids = keep(
                    star,
                    items(v, k)
                        .map(|(uid, name)| {
                            if is_valid_index_uid(uid) {
                                Ok(uid.to_owned())
                            } else {
                                Err(MeiliError::invalid(
                                    "invalid_index_uid",
                                    format!("Invalid value in parameter `{name}`: `{uid}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."),
                                ))
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            date => {
                let after = date.starts_with("after");
                let code = format!("invalid_task_{}", snake(date));
                let parsed = if v == "*" { None } else { Some(parse_date(v, after, &code, date)?) };
                match date {
                    "afterEnqueuedAt" => f.after_enqueued_at = parsed,
                    "beforeEnqueuedAt" => f.before_enqueued_at = parsed,
                    "afterStartedAt" => f.after_started_at = parsed,
                    "beforeStartedAt" => f.before_started_at = parsed,
                    "afterFinishedAt" => f.after_finished_at = parsed,
                    _ => f.before_finished_at = parsed,
                }
            }
        }
    }
    Ok(f)
}

impl TaskFilter {
    pub fn matches(&self, t: &Task) -> bool {
        fn within<T: PartialEq>(list: &Option<Vec<T>>, v: Option<T>) -> bool {
            match list {
                None => true,
                Some(l) => v.is_some_and(|v| l.contains(&v)),
            }
        }
        let after = |bound: Option<OffsetDateTime>, at: Option<OffsetDateTime>| {
            bound.is_none_or(|b| at.is_some_and(|a| a > b))
        };
        let before = |bound: Option<OffsetDateTime>, at: Option<OffsetDateTime>| {
            bound.is_none_or(|b| at.is_some_and(|a| a < b))
        };
        within(&self.uids, Some(t.uid))
            && within(&self.batch_uids, t.batch_uid)
            && within(&self.canceled_by, t.canceled_by)
            && within(&self.types, Some(t.kind.to_owned()))
            && within(&self.statuses, Some(t.status.as_str().to_owned()))
            && within(&self.index_uids, t.index_uid.clone())
            && after(self.after_enqueued_at, Some(t.enqueued_at))
            && before(self.before_enqueued_at, Some(t.enqueued_at))
            && after(self.after_started_at, t.started_at)
            && before(self.before_started_at, t.started_at)
            && after(self.after_finished_at, t.finished_at)
            && before(self.before_finished_at, t.finished_at)
    }
}

/// A comma-separated list as Meilisearch reads it: empty items dropped, nothing trimmed.
fn split(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').filter(|s| !s.is_empty())
}

/// The items other than `*`, each with the name an error gives it: `param[i]` when the list
/// has several items.
fn items<'a>(v: &'a str, param: &'a str) -> impl Iterator<Item = (&'a str, String)> + 'a {
    let many = split(v).nth(1).is_some();
    split(v)
        .enumerate()
        .filter(|(_, x)| *x != "*")
        .map(move |(i, x)| {
            let name = if many {
                format!("{param}[{i}]")
            } else {
                param.to_owned()
            };
            (x, name)
        })
}

fn keep<T>(star: bool, list: Vec<T>) -> Option<Vec<T>> {
    (!star).then_some(list)
}

fn parse_u32(v: &str, code: &str, param: &str) -> Result<u32, MeiliError> {
    v.parse::<u32>().map_err(|_| {
        MeiliError::invalid(
            code,
            format!(
                "Invalid value in parameter `{param}`: could not parse `{v}` as a positive integer"
            ),
        )
    })
}

fn u32_list(v: &str, code: &str, param: &str) -> Result<Vec<u32>, MeiliError> {
    items(v, param)
        .map(|(x, name)| parse_u32(x, code, &name))
        .collect()
}

fn checked_list(
    v: &str,
    code: &str,
    param: &str,
    allowed: &[&str],
    what: &str,
    plural: &str,
) -> Result<Vec<String>, MeiliError> {
    items(v, param)
        .map(|(x, name)| {
            if allowed.contains(&x) {
                Ok(x.to_owned())
            } else {
                Err(MeiliError::invalid(
                    code,
                    format!(
                        "Invalid value in parameter `{name}`: `{x}` is not a valid {what}. Available {plural} are {}.",
                        allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        })
        .collect()
}

/// RFC 3339, or a bare date (which `after*` bounds push to the next day, as Meilisearch does).
fn parse_date(v: &str, after: bool, code: &str, param: &str) -> Result<OffsetDateTime, MeiliError> {
    if let Some(t) = parse_rfc3339(v) {
        return Ok(t);
    }
    let day = parse_rfc3339(&format!("{v}T00:00:00Z")).filter(|_| v.len() == 10);
    match day {
        Some(d) if after => Ok(d + Duration::days(1)),
        Some(d) => Ok(d),
        None => Err(MeiliError::invalid(
            code,
            format!("Invalid value in parameter `{param}`: `{v}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."),
        )),
    }
}

fn snake(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn bad_parameters_use_meilisearch_codes() {
        let code = |p: &[(&str, &str)]| parse_list_query(&q(p)).unwrap_err().code;
        assert_eq!(code(&[("limit", "x")]), "invalid_task_limit");
        assert_eq!(code(&[("statuses", "done")]), "invalid_task_statuses");
        assert_eq!(code(&[("types", "nope")]), "invalid_task_types");
        assert_eq!(
            code(&[("afterEnqueuedAt", "yesterday")]),
            "invalid_task_after_enqueued_at"
        );
        assert_eq!(code(&[("indexUids", "a b")]), "invalid_index_uid");
        assert_eq!(code(&[("what", "1")]), "bad_request");
    }

    #[test]
    fn list_items_are_named_by_position_and_not_trimmed() {
        let message = |p: &[(&str, &str)]| parse_list_query(&q(p)).unwrap_err().message;
        assert!(message(&[("types", "documentAdditionOrUpdate,foo")])
            .starts_with("Invalid value in parameter `types[1]`: `foo`"));
        assert!(message(&[("types", "foo,")]).starts_with("Invalid value in parameter `types`:"));
        assert!(message(&[("uids", "1, 2")])
            .starts_with("Invalid value in parameter `uids[1]`: could not parse ` 2`"));
        assert!(message(&[("statuses", "*,nope")])
            .starts_with("Invalid value in parameter `statuses[1]`"));
        let (f, _) = parse_list_query(&q(&[("types", "*,indexCreation")])).unwrap();
        assert!(f.types.is_none());
        let (f, _) = parse_list_query(&q(&[("types", "")])).unwrap();
        assert_eq!(f.types, Some(vec![]));
    }

    #[test]
    fn star_means_no_constraint_but_counts_as_given() {
        let (f, page) = parse_list_query(&q(&[("statuses", "*"), ("limit", "3")])).unwrap();
        assert!(f.statuses.is_none() && f.any_given);
        assert_eq!(page.limit, 3);
    }
}
