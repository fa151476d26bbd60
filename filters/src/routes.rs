//! The route table: every Meilisearch route, classified once by how Miroir serves it.
//!
//! `classify` matches a method and path against [`ROUTES`] (their templates split once) without
//! allocating. It only says which route a request is; the filters that own each
//! [`RouteClass`] do the work.

use std::borrow::Cow;
use std::fmt;

/// How Miroir serves a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Any one healthy node answers; every node holds the same answer.
    PassOne,
    /// Every node must apply it; Miroir returns one synthesised answer.
    Broadcast,
    /// Split or routed by the shard of each document id.
    ShardRouted,
    /// One replica per shard answers; Miroir merges the answers.
    FanOutMerge,
    /// Answered by Miroir from its own state.
    Miroir,
    /// Not offered; Miroir answers with an error.
    Unsupported,
}

/// The HTTP methods Meilisearch routes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// Parses an upper-case HTTP method name, as it appears on the wire.
    pub fn parse(method: &str) -> Option<Self> {
        Some(match method {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the route table.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    /// Path pattern, safe as a metrics label. `{uid}` is the index uid, any other `{...}` one
    /// parameter segment, and a final `{*path}` the rest of the path (possibly empty).
    pub template: &'static str,
    pub class: RouteClass,
    /// Stable, unique name for logs and dispatch.
    pub name: &'static str,
}

/// A request matched against the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    pub spec: &'static RouteSpec,
    pub index_uid: Option<&'a str>,
    /// The other captured segment (document id, task uid, key, ...), still percent-encoded.
    pub param: Option<&'a str>,
}

impl<'a> RouteMatch<'a> {
    /// `param` percent-decoded; `None` when absent, malformed or not UTF-8.
    pub fn param_decoded(&self) -> Option<Cow<'a, str>> {
        self.param.and_then(percent_decode)
    }
}

/// Decodes the `%XX` escapes of a path segment. `None` when the result is not UTF-8. An
/// escape that is not one (`%zz`, a lone `%`) stays as written, and `+` stays `+`: it only
/// means a space in query strings (see `query`), never in paths.
pub fn percent_decode(raw: &str) -> Option<Cow<'_, str>> {
    percent_encoding::percent_decode_str(raw).decode_utf8().ok()
}

/// Finds the route of a request. `path` may carry a query string and trailing slashes, as
/// Meilisearch ignores both. `None` for anything Meilisearch does not route either: the proxy
/// passes it to one node so the client gets Meilisearch's own 404.
pub fn classify<'a>(method: &str, path: &'a str) -> Option<RouteMatch<'a>> {
    let method = Method::parse(method)?;
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let path = path.strip_prefix('/')?.trim_end_matches('/');
    compiled()
        .iter()
        .filter(|route| route.spec.method == method)
        .find_map(|route| route.matches(path))
}

/// One segment of a route's template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Literal(&'static str),
    /// `{uid}`: the index uid.
    Uid,
    /// Any other `{...}`: one parameter segment.
    Param,
    /// A final `{*path}`: the rest of the path.
    Rest,
}

/// A row of [`ROUTES`] with its template split once, not on every request.
struct Compiled {
    spec: &'static RouteSpec,
    parts: Vec<Part>,
}

fn compiled() -> &'static [Compiled] {
    static TABLE: std::sync::OnceLock<Vec<Compiled>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        ROUTES
            .iter()
            .map(|spec| Compiled {
                spec,
                parts: spec
                    .template
                    .split('/')
                    .skip(1)
                    .filter(|p| !p.is_empty())
                    .map(|p| match p {
                        "{uid}" => Part::Uid,
                        p if p.starts_with("{*") => Part::Rest,
                        p if p.starts_with('{') => Part::Param,
                        p => Part::Literal(p),
                    })
                    .collect(),
            })
            .collect()
    })
}

impl Compiled {
    fn matches<'a>(&self, path: &'a str) -> Option<RouteMatch<'a>> {
        let mut found = RouteMatch {
            spec: self.spec,
            index_uid: None,
            param: None,
        };
        let mut rest = path;
        for part in &self.parts {
            if *part == Part::Rest {
                found.param = Some(rest);
                return Some(found);
            }
            if rest.is_empty() {
                return None;
            }
            let (segment, tail) = rest.split_once('/').unwrap_or((rest, ""));
            match *part {
                Part::Uid if !segment.is_empty() => found.index_uid = Some(segment),
                Part::Param if !segment.is_empty() => found.param = Some(segment),
                Part::Literal(l) if l == segment => {}
                _ => return None,
            }
            rest = tail;
        }
        rest.is_empty().then_some(found)
    }
}

const fn route(
    method: Method,
    template: &'static str,
    class: RouteClass,
    name: &'static str,
) -> RouteSpec {
    RouteSpec {
        method,
        template,
        class,
        name,
    }
}

use Method::{Delete, Get, Patch, Post, Put};
use RouteClass::{Broadcast, FanOutMerge, Miroir, PassOne, ShardRouted, Unsupported};

/// Every route Meilisearch serves, plus Miroir's own `/_miroir` tree. The first row whose
/// method and pattern match wins, so literal segments precede parameters at the same depth.
#[rustfmt::skip]
pub static ROUTES: &[RouteSpec] = &[
    // Root, health, version and global stats.
    route(Get, "/", Miroir, "root"),
    route(Get, "/health", Miroir, "health"),
    route(Get, "/version", PassOne, "version"),
    route(Get, "/stats", FanOutMerge, "stats"),

    // Miroir's own API: any method, any sub-path.
    route(Get, "/_miroir/{*path}", Miroir, "miroir.get"),
    route(Post, "/_miroir/{*path}", Miroir, "miroir.post"),
    route(Put, "/_miroir/{*path}", Miroir, "miroir.put"),
    route(Patch, "/_miroir/{*path}", Miroir, "miroir.patch"),
    route(Delete, "/_miroir/{*path}", Miroir, "miroir.delete"),

    // Indexes.
    route(Get, "/indexes", PassOne, "indexes.list"),
    route(Post, "/indexes", Broadcast, "indexes.create"),
    route(Get, "/indexes/{uid}", PassOne, "index.get"),
    route(Patch, "/indexes/{uid}", Broadcast, "index.update"),
    route(Delete, "/indexes/{uid}", Broadcast, "index.delete"),
    route(Get, "/indexes/{uid}/stats", FanOutMerge, "index.stats"),
    route(Post, "/indexes/{uid}/fields", FanOutMerge, "index.fields"),
    route(Post, "/indexes/{uid}/compact", Broadcast, "index.compact"),

    // Documents.
    route(Get, "/indexes/{uid}/documents", FanOutMerge, "documents.list"),
    route(Post, "/indexes/{uid}/documents", ShardRouted, "documents.replace"),
    route(Put, "/indexes/{uid}/documents", ShardRouted, "documents.update"),
    route(Delete, "/indexes/{uid}/documents", Broadcast, "documents.clear"),
    route(Post, "/indexes/{uid}/documents/delete-batch", ShardRouted, "documents.delete_batch"),
    route(Post, "/indexes/{uid}/documents/delete", Broadcast, "documents.delete_by_filter"),
    route(Post, "/indexes/{uid}/documents/edit", Broadcast, "documents.edit"),
    route(Post, "/indexes/{uid}/documents/fetch", FanOutMerge, "documents.fetch"),
    route(Get, "/indexes/{uid}/documents/{id}", ShardRouted, "document.get"),
    route(Delete, "/indexes/{uid}/documents/{id}", ShardRouted, "document.delete"),

    // Search.
    route(Get, "/indexes/{uid}/search", FanOutMerge, "search.get"),
    route(Post, "/indexes/{uid}/search", FanOutMerge, "search.post"),
    route(Post, "/indexes/{uid}/facet-search", FanOutMerge, "facet_search"),
    route(Get, "/indexes/{uid}/similar", FanOutMerge, "similar.get"),
    route(Post, "/indexes/{uid}/similar", FanOutMerge, "similar.post"),
    route(Post, "/multi-search", FanOutMerge, "multi_search"),

    // Settings, all at once.
    route(Get, "/indexes/{uid}/settings", PassOne, "settings.get"),
    route(Patch, "/indexes/{uid}/settings", Broadcast, "settings.update"),
    route(Delete, "/indexes/{uid}/settings", Broadcast, "settings.reset"),

    // Settings, one at a time. The update verb is Meilisearch's: PUT or PATCH per setting.
    route(Get, "/indexes/{uid}/settings/filterable-attributes", PassOne, "settings.filterable_attributes.get"),
    route(Put, "/indexes/{uid}/settings/filterable-attributes", Broadcast, "settings.filterable_attributes.update"),
    route(Delete, "/indexes/{uid}/settings/filterable-attributes", Broadcast, "settings.filterable_attributes.reset"),
    route(Get, "/indexes/{uid}/settings/sortable-attributes", PassOne, "settings.sortable_attributes.get"),
    route(Put, "/indexes/{uid}/settings/sortable-attributes", Broadcast, "settings.sortable_attributes.update"),
    route(Delete, "/indexes/{uid}/settings/sortable-attributes", Broadcast, "settings.sortable_attributes.reset"),
    route(Get, "/indexes/{uid}/settings/displayed-attributes", PassOne, "settings.displayed_attributes.get"),
    route(Put, "/indexes/{uid}/settings/displayed-attributes", Broadcast, "settings.displayed_attributes.update"),
    route(Delete, "/indexes/{uid}/settings/displayed-attributes", Broadcast, "settings.displayed_attributes.reset"),
    route(Get, "/indexes/{uid}/settings/typo-tolerance", PassOne, "settings.typo_tolerance.get"),
    route(Patch, "/indexes/{uid}/settings/typo-tolerance", Broadcast, "settings.typo_tolerance.update"),
    route(Delete, "/indexes/{uid}/settings/typo-tolerance", Broadcast, "settings.typo_tolerance.reset"),
    route(Get, "/indexes/{uid}/settings/searchable-attributes", PassOne, "settings.searchable_attributes.get"),
    route(Put, "/indexes/{uid}/settings/searchable-attributes", Broadcast, "settings.searchable_attributes.update"),
    route(Delete, "/indexes/{uid}/settings/searchable-attributes", Broadcast, "settings.searchable_attributes.reset"),
    route(Get, "/indexes/{uid}/settings/stop-words", PassOne, "settings.stop_words.get"),
    route(Put, "/indexes/{uid}/settings/stop-words", Broadcast, "settings.stop_words.update"),
    route(Delete, "/indexes/{uid}/settings/stop-words", Broadcast, "settings.stop_words.reset"),
    route(Get, "/indexes/{uid}/settings/non-separator-tokens", PassOne, "settings.non_separator_tokens.get"),
    route(Put, "/indexes/{uid}/settings/non-separator-tokens", Broadcast, "settings.non_separator_tokens.update"),
    route(Delete, "/indexes/{uid}/settings/non-separator-tokens", Broadcast, "settings.non_separator_tokens.reset"),
    route(Get, "/indexes/{uid}/settings/separator-tokens", PassOne, "settings.separator_tokens.get"),
    route(Put, "/indexes/{uid}/settings/separator-tokens", Broadcast, "settings.separator_tokens.update"),
    route(Delete, "/indexes/{uid}/settings/separator-tokens", Broadcast, "settings.separator_tokens.reset"),
    route(Get, "/indexes/{uid}/settings/dictionary", PassOne, "settings.dictionary.get"),
    route(Put, "/indexes/{uid}/settings/dictionary", Broadcast, "settings.dictionary.update"),
    route(Delete, "/indexes/{uid}/settings/dictionary", Broadcast, "settings.dictionary.reset"),
    route(Get, "/indexes/{uid}/settings/synonyms", PassOne, "settings.synonyms.get"),
    route(Put, "/indexes/{uid}/settings/synonyms", Broadcast, "settings.synonyms.update"),
    route(Delete, "/indexes/{uid}/settings/synonyms", Broadcast, "settings.synonyms.reset"),
    route(Get, "/indexes/{uid}/settings/distinct-attribute", PassOne, "settings.distinct_attribute.get"),
    route(Put, "/indexes/{uid}/settings/distinct-attribute", Broadcast, "settings.distinct_attribute.update"),
    route(Delete, "/indexes/{uid}/settings/distinct-attribute", Broadcast, "settings.distinct_attribute.reset"),
    route(Get, "/indexes/{uid}/settings/proximity-precision", PassOne, "settings.proximity_precision.get"),
    route(Put, "/indexes/{uid}/settings/proximity-precision", Broadcast, "settings.proximity_precision.update"),
    route(Delete, "/indexes/{uid}/settings/proximity-precision", Broadcast, "settings.proximity_precision.reset"),
    route(Get, "/indexes/{uid}/settings/localized-attributes", PassOne, "settings.localized_attributes.get"),
    route(Put, "/indexes/{uid}/settings/localized-attributes", Broadcast, "settings.localized_attributes.update"),
    route(Delete, "/indexes/{uid}/settings/localized-attributes", Broadcast, "settings.localized_attributes.reset"),
    route(Get, "/indexes/{uid}/settings/ranking-rules", PassOne, "settings.ranking_rules.get"),
    route(Put, "/indexes/{uid}/settings/ranking-rules", Broadcast, "settings.ranking_rules.update"),
    route(Delete, "/indexes/{uid}/settings/ranking-rules", Broadcast, "settings.ranking_rules.reset"),
    route(Get, "/indexes/{uid}/settings/faceting", PassOne, "settings.faceting.get"),
    route(Patch, "/indexes/{uid}/settings/faceting", Broadcast, "settings.faceting.update"),
    route(Delete, "/indexes/{uid}/settings/faceting", Broadcast, "settings.faceting.reset"),
    route(Get, "/indexes/{uid}/settings/pagination", PassOne, "settings.pagination.get"),
    route(Patch, "/indexes/{uid}/settings/pagination", Broadcast, "settings.pagination.update"),
    route(Delete, "/indexes/{uid}/settings/pagination", Broadcast, "settings.pagination.reset"),
    route(Get, "/indexes/{uid}/settings/embedders", PassOne, "settings.embedders.get"),
    route(Patch, "/indexes/{uid}/settings/embedders", Broadcast, "settings.embedders.update"),
    route(Delete, "/indexes/{uid}/settings/embedders", Broadcast, "settings.embedders.reset"),
    route(Get, "/indexes/{uid}/settings/search-cutoff-ms", PassOne, "settings.search_cutoff_ms.get"),
    route(Put, "/indexes/{uid}/settings/search-cutoff-ms", Broadcast, "settings.search_cutoff_ms.update"),
    route(Delete, "/indexes/{uid}/settings/search-cutoff-ms", Broadcast, "settings.search_cutoff_ms.reset"),
    route(Get, "/indexes/{uid}/settings/facet-search", PassOne, "settings.facet_search.get"),
    route(Put, "/indexes/{uid}/settings/facet-search", Broadcast, "settings.facet_search.update"),
    route(Delete, "/indexes/{uid}/settings/facet-search", Broadcast, "settings.facet_search.reset"),
    route(Get, "/indexes/{uid}/settings/prefix-search", PassOne, "settings.prefix_search.get"),
    route(Put, "/indexes/{uid}/settings/prefix-search", Broadcast, "settings.prefix_search.update"),
    route(Delete, "/indexes/{uid}/settings/prefix-search", Broadcast, "settings.prefix_search.reset"),
    route(Get, "/indexes/{uid}/settings/chat", PassOne, "settings.chat.get"),
    route(Patch, "/indexes/{uid}/settings/chat", Broadcast, "settings.chat.update"),
    route(Delete, "/indexes/{uid}/settings/chat", Broadcast, "settings.chat.reset"),
    route(Get, "/indexes/{uid}/settings/foreign-keys", PassOne, "settings.foreign_keys.get"),
    route(Put, "/indexes/{uid}/settings/foreign-keys", Broadcast, "settings.foreign_keys.update"),
    route(Delete, "/indexes/{uid}/settings/foreign-keys", Broadcast, "settings.foreign_keys.reset"),

    // Tasks and batches: Miroir keeps its own task table. Compaction acts on every node's queue.
    route(Get, "/tasks", Miroir, "tasks.list"),
    route(Delete, "/tasks", Miroir, "tasks.delete"),
    route(Post, "/tasks/cancel", Miroir, "tasks.cancel"),
    route(Post, "/tasks/compact", Broadcast, "tasks.compact"),
    route(Get, "/tasks/{task_uid}", Miroir, "task.get"),
    route(Get, "/tasks/{task_uid}/documents", Miroir, "task.documents"),
    route(Get, "/batches", Miroir, "batches.list"),
    route(Get, "/batches/{batch_uid}", Miroir, "batch.get"),

    // API keys: created with the same uid on every node, so their values agree.
    route(Get, "/keys", PassOne, "keys.list"),
    route(Post, "/keys", Broadcast, "keys.create"),
    route(Get, "/keys/{key}", PassOne, "key.get"),
    route(Patch, "/keys/{key}", Broadcast, "key.update"),
    route(Delete, "/keys/{key}", Broadcast, "key.delete"),

    // Instance-wide operations.
    route(Post, "/dumps", Broadcast, "dumps.create"),
    route(Post, "/snapshots", Broadcast, "snapshots.create"),
    route(Post, "/swap-indexes", Broadcast, "swap_indexes"),
    route(Get, "/experimental-features", PassOne, "experimental_features.get"),
    route(Patch, "/experimental-features", Broadcast, "experimental_features.update"),
    route(Post, "/export", Unsupported, "export"),
    route(Get, "/metrics", Miroir, "metrics"),

    // Network: Meilisearch's own sharding across instances; Miroir is the sharding layer here and
    // shows its topology under `/_miroir/`, so it does not offer this API.
    route(Get, "/network", Unsupported, "network.get"),
    route(Patch, "/network", Unsupported, "network.update"),
    route(Post, "/network/control", Unsupported, "network.control"),

    // Webhooks fire on Miroir's aggregated task completion.
    route(Get, "/webhooks", Miroir, "webhooks.list"),
    route(Post, "/webhooks", Miroir, "webhooks.create"),
    route(Get, "/webhooks/{uuid}", Miroir, "webhook.get"),
    route(Patch, "/webhooks/{uuid}", Miroir, "webhook.update"),
    route(Delete, "/webhooks/{uuid}", Miroir, "webhook.delete"),

    // Logs are per node; chats run searches on one node and cannot see every shard.
    route(Post, "/logs/stream", Unsupported, "logs.stream"),
    route(Delete, "/logs/stream", Unsupported, "logs.stream_cancel"),
    route(Post, "/logs/stderr", Unsupported, "logs.stderr"),
    route(Get, "/chats", Unsupported, "chats.list"),
    route(Get, "/chats/{workspace}", Unsupported, "chat.get"),
    route(Delete, "/chats/{workspace}", Unsupported, "chat.delete"),
    route(Get, "/chats/{workspace}/settings", Unsupported, "chat.settings.get"),
    route(Patch, "/chats/{workspace}/settings", Unsupported, "chat.settings.update"),
    route(Delete, "/chats/{workspace}/settings", Unsupported, "chat.settings.reset"),
    route(Post, "/chats/{workspace}/chat/completions", Unsupported, "chat.completions"),

    // Dynamic search rules. Listing is a POST (it takes a filter body) but only reads.
    route(Post, "/dynamic-search-rules", PassOne, "dynamic_search_rules.list"),
    route(Delete, "/dynamic-search-rules", Broadcast, "dynamic_search_rules.clear"),
    route(Get, "/dynamic-search-rules/{rule}", PassOne, "dynamic_search_rule.get"),
    route(Patch, "/dynamic-search-rules/{rule}", Broadcast, "dynamic_search_rule.upsert"),
    route(Delete, "/dynamic-search-rules/{rule}", Broadcast, "dynamic_search_rule.delete"),

    route(Post, "/render-template", PassOne, "render_template"),
];

/// The key action a route requires, as Meilisearch names it, for the routes Miroir reads,
/// splits or answers itself: it judges the client's key for this action before it reads or
/// validates anything, as a node does. `None` where Miroir leaves the judgment to the nodes
/// (passed-through routes, and those whose action depends on more than the route).
pub fn required_action(spec: &RouteSpec) -> Option<&'static str> {
    let name = spec.name;
    Some(match name {
        "search.get" | "search.post" | "facet_search" | "similar.get" | "similar.post"
        | "multi_search" => "search",
        "documents.list" | "documents.fetch" | "document.get" => "documents.get",
        "documents.replace" | "documents.update" => "documents.add",
        "documents.clear"
        | "documents.delete_batch"
        | "documents.delete_by_filter"
        | "document.delete" => "documents.delete",
        "index.stats" | "stats" => "stats.get",
        "indexes.create" => "indexes.create",
        "index.update" => "indexes.update",
        "index.delete" => "indexes.delete",
        "swap_indexes" => "indexes.swap",
        "keys.list" | "key.get" => "keys.get",
        "keys.create" => "keys.create",
        "key.update" => "keys.update",
        "key.delete" => "keys.delete",
        "dumps.create" => "dumps.create",
        "snapshots.create" => "snapshots.create",
        "tasks.list" | "task.get" | "batches.list" | "batch.get" => "tasks.get",
        "tasks.cancel" => "tasks.cancel",
        "tasks.delete" => "tasks.delete",
        "experimental_features.update" => "experimental.update",
        "webhooks.list" | "webhook.get" => "webhooks.get",
        "webhooks.create" => "webhooks.create",
        "webhook.update" => "webhooks.update",
        "webhook.delete" => "webhooks.delete",
        // Checked against Meilisearch 1.50: a key with only this action passes its check.
        "index.fields" => "fields.post",
        "index.compact" => "indexes.compact",
        "tasks.compact" => "tasks.compact",
        "task.documents" => "tasks.get",
        "metrics" | "logs.stream" | "logs.stream_cancel" | "logs.stderr" => "metrics.get",
        "export" => "export",
        "network.get" => "network.get",
        "network.update" | "network.control" => "network.update",
        "chats.list" | "chat.get" => "chats.get",
        "chat.delete" => "chats.delete",
        "chat.settings.get" => "chatsSettings.get",
        "chat.settings.update" | "chat.settings.reset" => "chatsSettings.update",
        "chat.completions" => "chatCompletions",
        "dynamic_search_rule.upsert" => "dynamicSearchRules.update",
        "dynamic_search_rules.clear" | "dynamic_search_rule.delete" => "dynamicSearchRules.delete",
        _ if name.starts_with("settings.") && name.ends_with(".get") => "settings.get",
        _ if name.starts_with("settings.") => "settings.update",
        _ => return None,
    })
}

#[cfg(test)]
mod action_tests {
    use super::*;

    #[test]
    fn every_route_miroir_handles_by_itself_names_its_action() {
        for spec in ROUTES {
            let judged_by_nodes = spec.class == RouteClass::PassOne
                && !spec.name.starts_with("settings.")
                && !spec.name.starts_with("key");
            // Judged by the nodes: a broadcast edit (its action is not one a key can name
            // alone), and Miroir's own routes (no key, or the admin key).
            let own = spec.template.starts_with("/_miroir")
                || matches!(spec.name, "root" | "health" | "documents.edit");
            assert_eq!(
                required_action(spec).is_some(),
                !judged_by_nodes && !own,
                "{}",
                spec.name
            );
        }
        let search = classify("POST", "/indexes/a/search").unwrap().spec;
        assert_eq!(required_action(search), Some("search"));
        let setting = classify("PUT", "/indexes/a/settings/stop-words")
            .unwrap()
            .spec;
        assert_eq!(required_action(setting), Some("settings.update"));
        let chats = classify("GET", "/chats").unwrap().spec;
        assert_eq!(required_action(chats), Some("chats.get"));
    }
}
