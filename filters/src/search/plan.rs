//! From a client's search body to the node sub-request bodies and what the merge must remember.
//!
//! Every node is asked for hits from offset 0 (a hit on page 3 of the merged answer can be the
//! first hit of one node): the whole window, or the part of it its share of the shards makes
//! likely (`depth`), then the rest if the merge needs it; with the ranking details that order
//! hits across nodes, and with its filter restricted to the shards it answers for.

use serde_json::{Map, Value};

use super::context::{covers, FacetOrder, IndexContext, NodeDisplay};
use crate::error::{Code, MiroirError};
use crate::hidden;
use crate::routing::{NodeScope, ShardId};

/// Meilisearch's default `limit` and `hitsPerPage`.
const DEFAULT_LIMIT: usize = 20;

/// How the client paginates, and therefore the shape of the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pagination {
    OffsetLimit { offset: usize, limit: usize },
    Page { page: usize, hits_per_page: usize },
}

/// What the merge needs to know about the request.
#[derive(Clone, Debug)]
pub struct MergePlan {
    pub pagination: Pagination,
    /// The client's window over the merged hits after `maxTotalHits` capping.
    pub offset: usize,
    pub limit: usize,
    /// Hits asked from every node.
    pub depth: usize,
    /// Whether a node may be asked for fewer than `depth` hits, then for the rest when the
    /// merge needs them (`super::depth`): not with distinct, which drains every node, nor for
    /// a semantic search, whose nearest neighbours are approximate and not one ranking a
    /// shorter request is a prefix of.
    pub shallow: bool,
    /// `q` as the client sent it.
    pub query: String,
    pub show_score: bool,
    pub show_details: bool,
    /// What the nodes are asked for to order hits across them.
    pub rank_by: RankBy,
    /// The effective distinct attribute (request over settings).
    pub distinct: Option<String>,
    /// Field paths retrieved only for the merge; removed from hits.
    pub strip: Vec<String>,
    /// The subset of `strip` that the client would not see in `_formatted` either.
    pub strip_formatted: Vec<String>,
    /// Facets whose counts cross-shard distinct corrects for the duplicates it drops.
    pub distinct_facets: DistinctFacets,
    /// When every field was retrieved for the merge: the client's `attributesToRetrieve`,
    /// and what `_formatted` may keep (`None`: everything).
    pub project: Option<Vec<String>>,
    pub project_formatted: Option<Vec<String>>,
    pub facets_requested: bool,
    pub client_facet_limit: usize,
    pub node_facet_limit: usize,
    pub facet_orders: std::collections::BTreeMap<String, FacetOrder>,
    /// The client's displayed list when Miroir enforces it (nodes display everything).
    pub enforce_displayed: Option<Vec<String>>,
    /// The body was forwarded unread; some node must reject it.
    pub forwarded: bool,
}

impl MergePlan {
    pub fn facet_order(&self, facet: &str) -> FacetOrder {
        self.facet_orders
            .get(facet)
            .or_else(|| self.facet_orders.get("*"))
            .copied()
            .unwrap_or(FacetOrder::Alpha)
    }
}

/// What orders hits from different nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankBy {
    /// `_rankingScoreDetails`, rule by rule: exact for every ranking rule.
    Details,
    /// `_rankingScore`: exact when only relevancy rules rank, and cheaper for the nodes to
    /// write and for the merge to read.
    Score,
}

/// Which facet fields a dropped duplicate's values are subtracted from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DistinctFacets {
    #[default]
    None,
    Named(Vec<String>),
    /// Facet patterns with wildcards: every facet the nodes reported.
    Reported,
}

/// The client's filter, kept in a form that is cheap to combine with a shard clause.
#[derive(Clone, Debug)]
enum ClientFilter {
    None,
    Expr(String),
    /// The serialized array without its closing `]`.
    Array(Vec<u8>),
    /// Not a filter (a number, an object): sent alone so the node answers Meilisearch's
    /// type error, which it does before reading any document.
    Invalid(Vec<u8>),
}

/// A planned search: node bodies on demand plus the merge plan.
#[derive(Clone, Debug)]
pub struct SearchPlan {
    body: ShardBody,
    pub(crate) merge: MergePlan,
    /// The primary-key values the filter pins (see [`super::filter_expr`]): only their shards
    /// need asking.
    pinned: Option<std::collections::BTreeSet<String>>,
}

/// A node request body whose `filter` gets the client's filter ANDed with the shard clause of
/// the node's shards, serialized once and completed per node.
#[derive(Clone, Debug)]
pub struct ShardBody {
    /// The body without `filter`, serialized, without its closing `}`.
    head: Vec<u8>,
    filter: ClientFilter,
    /// For a search: how its nodes are asked for their hits.
    window: Option<WindowMode>,
}

/// How a search asks its nodes for hits: in the client's pagination mode, `depth` of them
/// unless told otherwise.
#[derive(Clone, Copy, Debug)]
struct WindowMode {
    page_mode: bool,
    depth: usize,
}

/// The hits a node returns: `limit` of them from `offset` of its own ranking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeWindow {
    pub offset: usize,
    pub limit: usize,
}

impl ShardBody {
    /// Takes `filter` out of `body` and keeps the rest ready to send.
    pub fn new(mut body: Map<String, Value>) -> Result<Self, MiroirError> {
        let filter = match body.remove("filter") {
            None | Some(Value::Null) => ClientFilter::None,
            Some(Value::String(s)) if s.trim().is_empty() => ClientFilter::None,
            Some(Value::String(s)) => ClientFilter::Expr(s),
            Some(Value::Array(a)) if a.is_empty() => ClientFilter::None,
            Some(Value::Array(a)) => {
                let mut raw = to_vec(&Value::Array(a))?;
                raw.pop();
                ClientFilter::Array(raw)
            }
            Some(other) => ClientFilter::Invalid(to_vec(&other)?),
        };
        let mut head = to_vec(&Value::Object(body))?;
        head.pop();
        Ok(Self {
            head,
            filter,
            window: None,
        })
    }
}

// A body whose parameters Miroir cannot read is forwarded as sent (plus the shard clause):
// the nodes then answer Meilisearch's own validation error, which the proxy relays. The
// readers below return `None` for such a parameter.

fn opt_usize(body: &Map<String, Value>, key: &str) -> Option<Option<usize>> {
    match body.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()).map(Some),
        Some(_) => None,
    }
}

fn opt_bool(body: &Map<String, Value>, key: &str) -> Option<bool> {
    match body.get(key) {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => None,
    }
}

/// Plans a search from the client's JSON body.
pub fn plan(request: &[u8], ctx: &IndexContext) -> Result<SearchPlan, MiroirError> {
    let body: Map<String, Value> = if request.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        serde_json::from_slice(request).map_err(|e| {
            MiroirError::new(
                Code::BadRequest,
                format!("The search body is not a JSON object: {e}"),
            )
        })?
    };
    plan_value(body, ctx)
}

/// [`plan`] for a body already parsed (GET parameters converted by the proxy).
pub fn plan_value(
    mut body: Map<String, Value>,
    ctx: &IndexContext,
) -> Result<SearchPlan, MiroirError> {
    crate::hidden::mask_shard_field(&mut body);
    let merge = match merge_plan(&mut body, ctx) {
        Some(m) => m,
        // Forward as sent; only the shard clause is added.
        None => passthrough_plan(ctx),
    };
    let pinned = match (body.get("filter"), &ctx.primary_key) {
        (Some(filter), Some(pk)) => super::filter_expr::pinned_keys(filter, pk),
        _ => None,
    };
    let mut body = ShardBody::new(body)?;
    // A forwarded body keeps the client's own pagination keys.
    body.window = (!merge.forwarded).then_some(WindowMode {
        page_mode: matches!(merge.pagination, Pagination::Page { .. }),
        depth: merge.depth,
    });
    Ok(SearchPlan {
        body,
        merge,
        pinned,
    })
}

fn to_vec(v: &Value) -> Result<Vec<u8>, MiroirError> {
    serde_json::to_vec(v).map_err(|e| MiroirError::new(Code::Internal, e.to_string()))
}

fn passthrough_plan(ctx: &IndexContext) -> MergePlan {
    MergePlan {
        pagination: Pagination::OffsetLimit {
            offset: 0,
            limit: 0,
        },
        offset: 0,
        limit: 0,
        depth: 0,
        shallow: false,
        query: String::new(),
        show_score: false,
        show_details: false,
        rank_by: RankBy::Details,
        distinct: None,
        strip: Vec::new(),
        strip_formatted: Vec::new(),
        distinct_facets: DistinctFacets::None,
        project: None,
        project_formatted: None,
        facets_requested: false,
        client_facet_limit: ctx.max_values_per_facet,
        node_facet_limit: ctx.node_max_values_per_facet,
        facet_orders: ctx.sort_facet_values_by.clone(),
        enforce_displayed: None,
        forwarded: true,
    }
}

/// Rewrites `body` into the node body (minus the filter) and returns the merge plan, or `None`
/// when a parameter is malformed and the body must be forwarded untouched.
fn merge_plan(body: &mut Map<String, Value>, ctx: &IndexContext) -> Option<MergePlan> {
    let offset = opt_usize(body, "offset")?;
    let limit = opt_usize(body, "limit")?;
    let page = opt_usize(body, "page")?;
    let hits_per_page = opt_usize(body, "hitsPerPage")?;
    let show_score = opt_bool(body, "showRankingScore")?;
    let show_details = opt_bool(body, "showRankingScoreDetails")?;
    let query = match body.get("q") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(q)) => q.clone(),
        Some(_) => return None,
    };
    let distinct = match body.get("distinct") {
        None | Some(Value::Null) => ctx.distinct_attribute.clone(),
        Some(Value::String(d)) => Some(d.clone()),
        Some(_) => return None,
    };
    for key in [
        "attributesToRetrieve",
        "attributesToHighlight",
        "attributesToCrop",
    ] {
        // Checked up front: nothing below may bail out once the body is rewritten.
        string_list(body, key)?;
    }
    let facets: Option<Vec<String>> = match body.get("facets") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|f| f.as_str().map(str::to_owned))
                .collect::<Option<_>>()?,
        ),
        Some(_) => return None,
    };

    let mth = ctx.max_total_hits;
    let (pagination, raw_offset, raw_limit) = if page.is_some() || hits_per_page.is_some() {
        let hpp = hits_per_page.unwrap_or(DEFAULT_LIMIT);
        let page = page.unwrap_or(1);
        let window = page
            .checked_sub(1)
            .map_or((0, 0), |p| (hpp.saturating_mul(p), hpp));
        (
            Pagination::Page {
                page,
                hits_per_page: hpp,
            },
            window.0,
            window.1,
        )
    } else {
        let (o, l) = (offset.unwrap_or(0), limit.unwrap_or(DEFAULT_LIMIT));
        (
            Pagination::OffsetLimit {
                offset: o,
                limit: l,
            },
            o,
            l,
        )
    };
    // One node caps the window at maxTotalHits; so does the merge.
    let offset = raw_offset.min(mth);
    let limit = raw_limit.min(mth - offset);
    // Cross-shard distinct must see every node's hits to keep the best per value and to
    // count the duplicates it drops: ask for as many as one node may return. Except for an
    // empty window at offset 0 in offset/limit mode: one node then ranks nothing and counts
    // (total and facets) every match before distinct, as each node asked the same does.
    let empty_at_start =
        matches!(pagination, Pagination::OffsetLimit { .. }) && offset + limit == 0;
    let depth = if distinct.is_some() && !empty_at_start {
        ctx.node_max_total_hits.max(mth)
    } else {
        offset + limit
    };

    // From here on the body is rewritten.
    for key in ["offset", "limit", "page", "hitsPerPage"] {
        body.remove(key);
    }
    // Each node's match count decides how one node orders and cuts facet values (see
    // `facet_cut`). A keyword search's total is that count (Meilisearch 1.50 counts facets
    // over the same candidates, distinct applied or not); a semantic one's is not, so it
    // asks for the `_miroir_shard` counts, which add up to it. That facet costs the nodes
    // 0.6-0.9 ms at p90 on the benchmark's faceted queries.
    let semantic = ["vector", "hybrid"]
        .iter()
        .any(|k| !matches!(body.get(*k), None | Some(Value::Null)));
    if semantic && facets.as_ref().is_some_and(|f| !f.is_empty()) {
        if let Some(Value::Array(list)) = body.get_mut("facets") {
            if !list.iter().any(|f| f == hidden::SHARD_FIELD) {
                list.push(Value::from(hidden::SHARD_FIELD));
            }
        }
    }
    // The window each node returns is written per node (`ShardBody::node_body_window`).
    // The details carry every rule's bucket and sort value in rule order: the only public
    // signal that orders hits from different nodes exactly as one node would whatever the
    // rules. `_rankingScore` leaves out `sort` and custom rules, but when only relevancy rules
    // rank it orders the same and costs the nodes less to write and the merge less to read.
    let sorted = !matches!(body.get("sort"), None | Some(Value::Null));
    let rank_by = if ctx.relevancy_rules_only && !sorted && !semantic && !show_details {
        RankBy::Score
    } else {
        RankBy::Details
    };
    match rank_by {
        RankBy::Score => body.insert("showRankingScore".into(), Value::Bool(true)),
        RankBy::Details => body.insert("showRankingScoreDetails".into(), Value::Bool(true)),
    };

    let enforce_displayed = match (ctx.node_display, ctx.displayed_restriction()) {
        (NodeDisplay::All, Some(displayed)) => {
            restrict_to_displayed(body, displayed)?;
            Some(displayed.to_vec())
        }
        _ => None,
    };

    // Fields the merge reads from hits: the distinct attribute and, to correct facet counts
    // for dropped duplicates, the facets.
    let mut needed: Vec<String> = Vec::new();
    let mut distinct_facets = DistinctFacets::None;
    let (mut project, mut project_formatted) = (None, None);
    if let (Some(d), Some(facets)) = (&distinct, &facets) {
        if facets.iter().any(|f| f.contains('*')) {
            distinct_facets = DistinctFacets::Reported;
            (project, project_formatted) = retrieve_everything(body)?;
        } else {
            needed.extend(facets.iter().cloned());
            distinct_facets = DistinctFacets::Named(facets.clone());
        }
        needed.push(d.clone());
    } else if let Some(d) = &distinct {
        needed.push(d.clone());
    }
    let (strip, strip_formatted) = widen_retrieve(body, &needed)?;

    Some(MergePlan {
        pagination,
        offset,
        limit,
        depth,
        shallow: distinct.is_none() && !semantic,
        query,
        show_score,
        show_details,
        rank_by,
        distinct,
        strip,
        strip_formatted,
        distinct_facets,
        project,
        project_formatted,
        facets_requested: facets.is_some(),
        client_facet_limit: ctx.max_values_per_facet,
        node_facet_limit: ctx.node_max_values_per_facet,
        facet_orders: ctx.sort_facet_values_by.clone(),
        enforce_displayed,
        forwarded: false,
    })
}

/// String entries of an attribute list; `None` when absent, `Some(None)` when malformed.
fn string_list(body: &Map<String, Value>, key: &str) -> Option<Option<Vec<String>>> {
    match body.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some),
        Some(_) => None,
    }
}

/// With nodes displaying every field, narrows what they retrieve, highlight and crop to the
/// client's `displayedAttributes`, as one node would.
fn restrict_to_displayed(body: &mut Map<String, Value>, displayed: &[String]) -> Option<()> {
    let retrieve = string_list(body, "attributesToRetrieve")?;
    let narrowed = narrow(retrieve.as_deref().unwrap_or(&["*".to_owned()]), displayed);
    body.insert("attributesToRetrieve".into(), Value::from(narrowed));
    for key in ["attributesToHighlight", "attributesToCrop"] {
        if let Some(list) = string_list(body, key)? {
            body.insert(key.into(), Value::from(narrow(&list, displayed)));
        }
    }
    Some(())
}

/// `list ∩ displayed`; entries may carry a crop length suffix (`title:5`).
pub(crate) fn narrow(list: &[String], displayed: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for entry in list {
        let (name, suffix) = match entry.rsplit_once(':') {
            Some((n, len)) if len.parse::<usize>().is_ok() => (n, &entry[n.len()..]),
            _ => (entry.as_str(), ""),
        };
        if name == "*" {
            displayed.iter().for_each(|d| push(format!("{d}{suffix}")));
        } else if displayed.iter().any(|d| covers(d, name)) {
            push(entry.clone());
        } else {
            displayed
                .iter()
                .filter(|d| covers(name, d))
                .for_each(|d| push(format!("{d}{suffix}")));
        }
    }
    out
}

/// Widens an explicit `attributesToRetrieve` to every field; returns the client's
/// list to project hits back to, and the fields `_formatted` may keep. Lists naming nested
/// fields are left alone: projecting back would need a nested projection.
type Projection = (Option<Vec<String>>, Option<Vec<String>>);

fn retrieve_everything(body: &mut Map<String, Value>) -> Option<Projection> {
    let Some(list) = string_list(body, "attributesToRetrieve")? else {
        return Some((None, None));
    };
    if list.iter().any(|a| a == "*" || a.contains('.')) {
        return Some((None, None));
    }
    let mut formatted = list.clone();
    for key in ["attributesToHighlight", "attributesToCrop"] {
        for a in string_list(body, key)?.into_iter().flatten() {
            let name = match a.rsplit_once(':') {
                Some((n, len)) if len.parse::<usize>().is_ok() => n.to_owned(),
                _ => a,
            };
            formatted.push(name);
        }
    }
    let formatted = (!formatted.iter().any(|a| a == "*")).then_some(formatted);
    // `*` also reaches non-displayed facets when the nodes display everything.
    body.insert("attributesToRetrieve".into(), Value::from(vec!["*"]));
    Some((Some(list), formatted))
}

/// Adds `needed` fields to `attributesToRetrieve` when the client's list leaves them out;
/// returns the paths to strip from hits and from `_formatted`.
pub(super) fn widen_retrieve(
    body: &mut Map<String, Value>,
    needed: &[String],
) -> Option<(Vec<String>, Vec<String>)> {
    let Some(mut list) = string_list(body, "attributesToRetrieve")? else {
        return Some(Default::default());
    };
    if list.iter().any(|a| a == "*") {
        return Some(Default::default());
    }
    let highlighted: Vec<String> = ["attributesToHighlight", "attributesToCrop"]
        .iter()
        .filter_map(|k| string_list(body, k).flatten())
        .flatten()
        .map(|a| match a.rsplit_once(':') {
            Some((n, len)) if len.parse::<usize>().is_ok() => n.to_owned(),
            _ => a,
        })
        .collect();
    let (mut strip, mut strip_formatted) = (Vec::new(), Vec::new());
    for field in needed {
        if list.iter().any(|a| covers(a, field)) || strip.contains(field) {
            continue;
        }
        list.push(field.clone());
        strip.push(field.clone());
        if !highlighted.iter().any(|a| a == "*" || covers(a, field)) {
            strip_formatted.push(field.clone());
        }
    }
    body.insert("attributesToRetrieve".into(), Value::from(list));
    Some((strip, strip_formatted))
}

impl SearchPlan {
    /// What the merge remembers of the request.
    pub fn merge_plan(&self) -> &MergePlan {
        &self.merge
    }

    /// The body for a node answering for `scope`.
    pub fn node_body(&self, scope: NodeScope<'_>) -> Vec<u8> {
        self.body.node_body(scope)
    }

    /// The hits to ask of a node answering for `held` of the `asked` shards of a search: the
    /// whole window, or fewer when the merge may ask again (`depth`).
    pub fn node_depth(&self, held: usize, asked: usize) -> usize {
        if self.merge.shallow {
            super::depth::node_depth(self.merge.depth, held, asked)
        } else {
            self.merge.depth
        }
    }

    /// The body for a node answering for `scope` with its first `depth` hits.
    pub fn node_body_at(&self, scope: NodeScope<'_>, depth: usize) -> Vec<u8> {
        let window = self.body.window.map(|_| NodeWindow {
            offset: 0,
            limit: depth,
        });
        self.body.node_body_window(scope, window)
    }

    /// The body asking a node for its hits after its first `from`, to the end of the window.
    pub fn continuation_body(&self, scope: NodeScope<'_>, from: usize) -> Vec<u8> {
        let window = NodeWindow {
            offset: from,
            limit: self.merge.depth.saturating_sub(from),
        };
        self.body.node_body_window(scope, Some(window))
    }

    /// The shards a search of an index with `shards` shards must ask: those of the ids its
    /// filter pins (at least one, which judges the request), else all of them.
    pub fn shards_to_ask(&self, shards: u32) -> Vec<ShardId> {
        super::filter_expr::shards_to_ask(self.pinned.as_ref(), shards)
    }

    /// The primary-key values the filter pins, if it pins any.
    pub fn pinned(&self) -> Option<&std::collections::BTreeSet<String>> {
        self.pinned.as_ref()
    }
}

impl ShardBody {
    /// The body for a node answering for `scope`: the client's filter, ANDed with the shard
    /// clause unless the node answers for its whole index; for a search, its whole window.
    pub fn node_body(&self, scope: NodeScope<'_>) -> Vec<u8> {
        let window = self.window.map(|w| NodeWindow {
            offset: 0,
            limit: w.depth,
        });
        self.node_body_window(scope, window)
    }

    /// [`Self::node_body`] returning `window` of the node's ranking.
    pub(crate) fn node_body_window(
        &self,
        scope: NodeScope<'_>,
        window: Option<NodeWindow>,
    ) -> Vec<u8> {
        let clause = scope.filter().map(hidden::shard_clause);
        let mut out =
            Vec::with_capacity(self.head.len() + clause.as_ref().map_or(0, String::len) + 96);
        out.extend_from_slice(&self.head);
        let key = |out: &mut Vec<u8>, key: &[u8]| {
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(key);
        };
        if let Some(w) = window {
            // Page mode from the first hit: the nodes count `totalHits` exhaustively only then.
            let page = self.window.is_some_and(|m| m.page_mode) && w.offset == 0;
            let (first, second, from) = if page {
                (&b"\"page\":"[..], &b"\"hitsPerPage\":"[..], 1)
            } else {
                (&b"\"offset\":"[..], &b"\"limit\":"[..], w.offset)
            };
            key(&mut out, first);
            out.extend_from_slice(itoa::Buffer::new().format(from).as_bytes());
            key(&mut out, second);
            out.extend_from_slice(itoa::Buffer::new().format(w.limit).as_bytes());
        }
        match (&self.filter, clause) {
            (ClientFilter::None, None) => {}
            (ClientFilter::None, Some(clause)) => {
                key(&mut out, b"\"filter\":");
                push_json_str(&mut out, &clause);
            }
            (ClientFilter::Expr(expr), None) => {
                key(&mut out, b"\"filter\":");
                push_json_str(&mut out, expr);
            }
            // As array elements (ANDed, each parsed on its own) rather than `(expr) AND clause`:
            // an unbalanced `a = 1) OR (b = 2` fails to parse as on one node instead of
            // escaping the shard clause and counting documents on every node.
            (ClientFilter::Expr(expr), Some(clause)) => {
                key(&mut out, b"\"filter\":[");
                push_json_str(&mut out, expr);
                out.push(b',');
                push_json_str(&mut out, &clause);
                out.push(b']');
            }
            (ClientFilter::Array(raw), clause) => {
                key(&mut out, b"\"filter\":");
                out.extend_from_slice(raw);
                if let Some(clause) = clause {
                    out.push(b',');
                    push_json_str(&mut out, &clause);
                }
                out.push(b']');
            }
            (ClientFilter::Invalid(raw), _) => {
                key(&mut out, b"\"filter\":");
                out.extend_from_slice(raw);
            }
        }
        out.push(b'}');
        out
    }
}

pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::ShardId;
    use serde_json::json;

    fn node_body(request: Value, ctx: &IndexContext, shards: &[u32]) -> (Value, MergePlan) {
        let p = plan(&serde_json::to_vec(&request).unwrap(), ctx).unwrap();
        let shards: Vec<ShardId> = shards.iter().copied().map(ShardId).collect();
        let body = serde_json::from_slice(&p.node_body(NodeScope::shards(&shards))).unwrap();
        (body, p.merge)
    }

    fn whole_node_filter(request: Value) -> Option<Value> {
        let p = plan(
            &serde_json::to_vec(&request).unwrap(),
            &IndexContext::default(),
        )
        .unwrap();
        let scope = NodeScope {
            shards: &[ShardId(0)],
            whole_node: true,
        };
        let body: Value = serde_json::from_slice(&p.node_body(scope)).unwrap();
        body.get("filter").cloned()
    }

    #[test]
    fn a_node_answering_for_all_it_holds_gets_the_clients_filter_alone() {
        assert_eq!(whole_node_filter(json!({"q": "a"})), None);
        assert_eq!(whole_node_filter(json!({"filter": "  "})), None);
        assert_eq!(
            whole_node_filter(json!({"filter": "a = 1 OR b = 2"})),
            Some(json!("a = 1 OR b = 2"))
        );
        assert_eq!(
            whole_node_filter(json!({"filter": [["a = 1", "b = 2"], "c > 3"]})),
            Some(json!([["a = 1", "b = 2"], "c > 3"]))
        );
        assert_eq!(whole_node_filter(json!({"filter": 3})), Some(json!(3)));
    }

    #[test]
    fn the_shard_clause_is_anded_with_every_filter_form() {
        let ctx = IndexContext::default();
        let filter =
            |f: Value| node_body(json!({ "filter": f }), &ctx, &[1, 4]).0["filter"].clone();
        assert_eq!(
            filter(Value::Null),
            json!(r#"_miroir_shard IN [".", ".--"]"#)
        );
        assert_eq!(
            filter(json!("  ")),
            json!(r#"_miroir_shard IN [".", ".--"]"#)
        );
        assert_eq!(filter(json!([])), json!(r#"_miroir_shard IN [".", ".--"]"#));
        assert_eq!(
            filter(json!("a = 1 OR b = 2")),
            json!(["a = 1 OR b = 2", r#"_miroir_shard IN [".", ".--"]"#])
        );
        assert_eq!(
            filter(json!([["a = 1", "b = 2"], "c > 3"])),
            json!([
                ["a = 1", "b = 2"],
                "c > 3",
                r#"_miroir_shard IN [".", ".--"]"#
            ])
        );
        let (body, _) = node_body(json!({}), &ctx, &[0]);
        assert_eq!(body["filter"], json!(r#"_miroir_shard IN ["-"]"#));
    }

    #[test]
    fn nodes_are_asked_for_the_whole_window_from_offset_zero() {
        let ctx = IndexContext::default();
        let (body, m) = node_body(json!({"offset": 30, "limit": 10}), &ctx, &[0]);
        assert_eq!(
            (body["offset"].clone(), body["limit"].clone()),
            (json!(0), json!(40))
        );
        assert_eq!(body["showRankingScoreDetails"], json!(true));
        assert_eq!((m.offset, m.limit, m.depth), (30, 10, 40));

        let (body, m) = node_body(json!({"page": 3, "hitsPerPage": 7}), &ctx, &[0]);
        assert_eq!(
            (body["page"].clone(), body["hitsPerPage"].clone()),
            (json!(1), json!(21))
        );
        assert_eq!(body.get("offset"), None);
        assert_eq!(
            m.pagination,
            Pagination::Page {
                page: 3,
                hits_per_page: 7
            }
        );
        assert_eq!((m.offset, m.limit), (14, 7));
    }

    #[test]
    fn a_node_may_be_asked_for_part_of_the_window_then_for_the_rest() {
        let ctx = IndexContext::default();
        let shards = [ShardId(0)];
        let body = |bytes: Vec<u8>| -> Value { serde_json::from_slice(&bytes).unwrap() };
        let p = plan(br#"{"q":"a","offset":5,"limit":15}"#, &ctx).unwrap();
        assert!(p.merge.shallow);
        assert_eq!(p.node_depth(8, 16), 17);
        let first = body(p.node_body_at(NodeScope::shards(&shards), 17));
        assert_eq!((&first["offset"], &first["limit"]), (&json!(0), &json!(17)));
        let rest = body(p.continuation_body(NodeScope::shards(&shards), 17));
        assert_eq!((&rest["offset"], &rest["limit"]), (&json!(17), &json!(3)));
        assert_eq!(rest["q"], "a");
        assert!(rest["filter"]
            .as_str()
            .is_some_and(|f| f.contains("_miroir_shard")));

        // Page mode asks page 1 first (the nodes then count `totalHits`), the rest by offset.
        let p = plan(br#"{"q":"a","page":2,"hitsPerPage":10}"#, &ctx).unwrap();
        let first = body(p.node_body_at(NodeScope::shards(&shards), 17));
        assert_eq!(
            (&first["page"], &first["hitsPerPage"]),
            (&json!(1), &json!(17))
        );
        assert_eq!(first.get("offset"), None);
        let rest = body(p.continuation_body(NodeScope::shards(&shards), 17));
        assert_eq!((&rest["offset"], &rest["limit"]), (&json!(17), &json!(3)));
        assert_eq!(rest.get("page"), None);

        // Distinct drains every node; a semantic search's neighbours are approximate.
        for request in [
            json!({"q": "a", "distinct": "brand"}),
            json!({"q": "a", "hybrid": {"embedder": "e", "semanticRatio": 1.0}}),
        ] {
            let p = plan(&serde_json::to_vec(&request).unwrap(), &ctx).unwrap();
            assert_eq!(p.node_depth(8, 16), p.merge.depth, "{request}");
        }
    }

    #[test]
    fn the_window_is_capped_by_max_total_hits_like_one_node() {
        let ctx = IndexContext {
            max_total_hits: 50,
            node_max_total_hits: 200,
            ..IndexContext::default()
        };
        let (body, m) = node_body(json!({"offset": 45, "limit": 20}), &ctx, &[0]);
        assert_eq!(body["limit"], json!(50));
        assert_eq!((m.offset, m.limit), (45, 5));
        let (_, m) = node_body(json!({"offset": 90}), &ctx, &[0]);
        assert_eq!((m.offset, m.limit, m.depth), (50, 0, 50));
        // Distinct needs every node hit to drop cross-shard duplicates.
        let (body, _) = node_body(json!({"distinct": "brand"}), &ctx, &[0]);
        assert_eq!(body["limit"], json!(200));
        let (body, _) = node_body(
            json!({"distinct": "brand", "page": 1, "hitsPerPage": 0}),
            &ctx,
            &[0],
        );
        assert_eq!(body["hitsPerPage"], json!(200));
    }

    #[test]
    fn a_count_only_search_with_distinct_asks_nodes_for_no_hits_like_one_node_counts() {
        // Meilisearch 1.50 with `limit: 0` at offset 0 ranks nothing: its total and facet
        // counts are those before distinct. Nodes asked the same answer the same.
        let ctx = IndexContext {
            distinct_attribute: Some("brand".into()),
            ..IndexContext::default()
        };
        let (body, m) = node_body(json!({"limit": 0, "facets": ["brand"]}), &ctx, &[0]);
        assert_eq!(
            (body["offset"].clone(), body["limit"].clone()),
            (json!(0), json!(0))
        );
        assert_eq!(m.depth, 0);
        let (body, _) = node_body(json!({"offset": 3, "limit": 0}), &ctx, &[0]);
        assert_eq!(body["limit"], json!(1000));
    }

    #[test]
    fn retrieval_is_widened_with_merge_fields_and_remembered_for_stripping() {
        let ctx = IndexContext {
            distinct_attribute: Some("brand".into()),
            ..IndexContext::default()
        };
        let (body, m) = node_body(
            json!({"attributesToRetrieve": ["title"], "facets": ["color", "size"]}),
            &ctx,
            &[0],
        );
        assert_eq!(
            body["attributesToRetrieve"],
            json!(["title", "color", "size", "brand"])
        );
        assert_eq!(m.strip, ["color", "size", "brand"]);
        assert_eq!(
            m.distinct_facets,
            DistinctFacets::Named(vec!["color".into(), "size".into()])
        );
        let (body, m) = node_body(json!({"attributesToRetrieve": ["*"]}), &ctx, &[0]);
        assert_eq!(body["attributesToRetrieve"], json!(["*"]));
        assert!(m.strip.is_empty());
    }

    #[test]
    fn miroir_applies_displayed_attributes_when_nodes_display_everything() {
        let ctx = IndexContext {
            displayed_attributes: Some(vec!["title".into(), "meta".into()]),
            node_display: NodeDisplay::All,
            ..IndexContext::default()
        };
        let (body, m) = node_body(
            json!({"attributesToRetrieve": ["title", "secret", "meta.size"], "attributesToHighlight": ["*"], "attributesToCrop": ["*:5"]}),
            &ctx,
            &[0],
        );
        assert_eq!(body["attributesToRetrieve"], json!(["title", "meta.size"]));
        assert_eq!(body["attributesToHighlight"], json!(["title", "meta"]));
        assert_eq!(body["attributesToCrop"], json!(["title:5", "meta:5"]));
        assert_eq!(
            m.enforce_displayed,
            Some(vec!["title".into(), "meta".into()])
        );
        let (body, _) = node_body(json!({}), &ctx, &[0]);
        assert_eq!(body["attributesToRetrieve"], json!(["title", "meta"]));
    }

    #[test]
    fn nodes_write_the_score_alone_when_relevancy_rules_alone_rank() {
        let ctx = IndexContext {
            relevancy_rules_only: true,
            ..IndexContext::default()
        };
        let asked = |request: Value, ctx: &IndexContext| {
            let (body, m) = node_body(request, ctx, &[0]);
            (
                body.get("showRankingScore").cloned(),
                body.get("showRankingScoreDetails").cloned(),
                m.rank_by,
            )
        };
        assert_eq!(
            asked(json!({"q": "a"}), &ctx),
            (Some(json!(true)), None, RankBy::Score)
        );
        // Sort values, vector similarities and the client's own details need the details.
        for request in [
            json!({"q": "a", "sort": ["price:asc"]}),
            json!({"q": "a", "hybrid": {"embedder": "e", "semanticRatio": 1.0}}),
            json!({"vector": [0.1, 0.2]}),
            json!({"q": "a", "showRankingScoreDetails": true}),
        ] {
            assert_eq!(asked(request, &ctx).2, RankBy::Details);
        }
        // Rules not known to be relevancy rules (a custom `price:asc`): the details.
        assert_eq!(
            asked(json!({"q": "a"}), &IndexContext::default()),
            (None, Some(json!(true)), RankBy::Details)
        );
        assert!(crate::search::ranks_by_score([
            "words",
            "sort",
            "exactness"
        ]));
        assert!(!crate::search::ranks_by_score(["words", "price:asc"]));
    }

    #[test]
    fn malformed_parameters_are_forwarded_for_the_node_to_reject() {
        let ctx = IndexContext::default();
        let (body, _) = node_body(json!({"limit": "ten", "filter": 3}), &ctx, &[2]);
        assert_eq!(body["limit"], json!("ten"));
        assert_eq!(body["filter"], json!(3));
        assert!(plan(b"[1]", &ctx).is_err());
        assert!(plan(b"", &ctx).is_ok());
    }
}
