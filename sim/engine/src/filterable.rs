//! `filterableAttributes` rules and how Meilisearch 1.50 matches attribute names against them
//! (milli's `filterable_attributes_rules` and `attribute_patterns`).
//!
//! A string rule (`"genre"`) is a *legacy field*: it matches its own name and every field
//! nested under it (`"a"` covers `a.b`), and a `*` in it is no wildcard (`"*"` and `"gen*"`
//! match only the fields literally named so). An object rule
//! (`{"attributePatterns": [...], "features": {...}}`) holds wildcard patterns (`*`,
//! `prefix*`, `*suffix`, `*infix*`) that match names, not nested fields, and says which
//! features it enables; a string rule enables them all. The first rule that matches a name
//! decides its features, even when it enables none.

use std::collections::BTreeSet;

/// How a name relates to a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternMatch {
    Match,
    /// The name is a parent of what the pattern matches (`a` for the pattern `a.b`).
    Parent,
    NoMatch,
}

/// Whether `field` is `facet` or nested under it (`a.b` under `a`; `ab` is not).
pub fn is_faceted_by(field: &str, facet: &str) -> bool {
    field
        .strip_prefix(facet)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// A wildcard pattern against a name (milli's `match_pattern`).
pub fn match_pattern(pattern: &str, name: &str) -> PatternMatch {
    let matched = if pattern == "*" {
        true
    } else if pattern.len() >= 2 && pattern.starts_with('*') && pattern.ends_with('*') {
        name.contains(&pattern[1..pattern.len() - 1])
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        name.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        name.starts_with(prefix)
    } else {
        pattern == name
    };
    if matched {
        PatternMatch::Match
    } else if is_faceted_by(pattern, name) {
        PatternMatch::Parent
    } else {
        PatternMatch::NoMatch
    }
}

/// A name against a legacy field pattern, taken literally (milli's `match_field_legacy`).
pub fn match_field_legacy(pattern: &str, name: &str) -> PatternMatch {
    if is_faceted_by(name, pattern) {
        PatternMatch::Match
    } else if is_faceted_by(pattern, name) {
        PatternMatch::Parent
    } else {
        PatternMatch::NoMatch
    }
}

/// What a rule enables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterFeatures {
    pub facet_search: bool,
    /// `=`, `!=`, `IN` (and `IS EMPTY`, `IS NULL`, `EXISTS`).
    pub equality: bool,
    /// `<`, `>`, `<=`, `>=`, `TO`.
    pub comparison: bool,
}

impl FilterFeatures {
    /// A string rule's features: everything.
    pub const LEGACY: FilterFeatures = FilterFeatures {
        facet_search: true,
        equality: true,
        comparison: true,
    };

    /// Filtering (and so faceting) is allowed when one filter kind is.
    pub fn is_filterable(&self) -> bool {
        self.equality || self.comparison
    }
}

impl Default for FilterFeatures {
    /// An object rule's features when it leaves them out.
    fn default() -> Self {
        Self {
            facet_search: false,
            equality: true,
            comparison: false,
        }
    }
}

/// One entry of `filterableAttributes`.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterableRule {
    /// A string rule, matched literally (see the module docs).
    Field(String),
    /// An object rule: wildcard patterns and the features they enable.
    Patterns {
        patterns: Vec<String>,
        features: FilterFeatures,
    },
}

impl FilterableRule {
    /// The rule against an attribute name.
    pub fn match_str(&self, name: &str) -> PatternMatch {
        match self {
            FilterableRule::Field(field) => match_field_legacy(field, name),
            FilterableRule::Patterns { patterns, .. } => {
                let mut found = PatternMatch::NoMatch;
                for pattern in patterns {
                    match match_pattern(pattern, name) {
                        PatternMatch::Match => return PatternMatch::Match,
                        PatternMatch::Parent => found = PatternMatch::Parent,
                        PatternMatch::NoMatch => {}
                    }
                }
                found
            }
        }
    }

    /// Whether some name could match both the rule and `other` (a requested facet pattern):
    /// for a string rule, `other` is the rule's field, a parent of it or nested under it.
    pub fn intersects(&self, other: &str) -> bool {
        let hit = |m: PatternMatch| m != PatternMatch::NoMatch;
        match self {
            FilterableRule::Field(field) => hit(match_field_legacy(other, field)),
            FilterableRule::Patterns { patterns, .. } => patterns
                .iter()
                .any(|p| hit(match_pattern(other, p)) || hit(match_pattern(p, other))),
        }
    }

    pub fn features(&self) -> FilterFeatures {
        match self {
            FilterableRule::Field(_) => FilterFeatures::LEGACY,
            FilterableRule::Patterns { features, .. } => *features,
        }
    }

    /// The rule's patterns as written.
    pub fn patterns(&self) -> &[String] {
        match self {
            FilterableRule::Field(field) => std::slice::from_ref(field),
            FilterableRule::Patterns { patterns, .. } => patterns,
        }
    }
}

/// The first rule matching `name` and its index (milli's `matching_features`).
pub fn matching_rule<'r>(
    rules: &'r [FilterableRule],
    name: &str,
) -> Option<(usize, &'r FilterableRule)> {
    rules
        .iter()
        .enumerate()
        .find(|(_, rule)| rule.match_str(name) == PatternMatch::Match)
}

/// Whether `name` may be filtered (and faceted): its first matching rule enables filtering.
pub fn is_filterable(rules: &[FilterableRule], name: &str) -> bool {
    matching_rule(rules, name).is_some_and(|(_, rule)| rule.features().is_filterable())
}

/// The patterns of the rules whose features pass `keep`, sorted and deduplicated, as
/// Meilisearch lists them in its errors.
pub fn patterns_where(
    rules: &[FilterableRule],
    keep: impl Fn(&FilterFeatures) -> bool,
) -> BTreeSet<&str> {
    rules
        .iter()
        .filter(|rule| keep(&rule.features()))
        .flat_map(|rule| rule.patterns().iter().map(String::as_str))
        .collect()
}

/// The patterns that are displayed (all of them without a `displayedAttributes` list) and
/// whether some were left out, as Meilisearch's `remove_hidden_fields` filters error lists.
pub fn displayed_only<'p>(
    patterns: BTreeSet<&'p str>,
    displayed: Option<&[String]>,
) -> (Vec<&'p str>, bool) {
    let total = patterns.len();
    let shown: Vec<&str> = match displayed {
        Some(list) => patterns
            .into_iter()
            .filter(|p| list.iter().any(|d| d == p))
            .collect(),
        None => patterns.into_iter().collect(),
    };
    let hidden = shown.len() < total;
    (shown, hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(f: &str) -> FilterableRule {
        FilterableRule::Field(f.into())
    }

    fn patterns(ps: &[&str]) -> FilterableRule {
        FilterableRule::Patterns {
            patterns: ps.iter().map(|p| (*p).to_owned()).collect(),
            features: FilterFeatures::default(),
        }
    }

    #[test]
    fn string_rules_are_literal_and_cover_nested_fields() {
        let rules = [field("a"), field("c.*"), field("*"), field("gen*")];
        assert!(is_filterable(&rules, "a"));
        assert!(is_filterable(&rules, "a.b"));
        assert!(!is_filterable(&rules, "ab"));
        assert!(!is_filterable(&rules, "c.d"));
        assert!(is_filterable(&rules, "c.*"));
        assert!(!is_filterable(&rules, "genre"));
        assert!(is_filterable(&rules, "*"));
        assert_eq!(field("a.b").match_str("a"), PatternMatch::Parent);
    }

    #[test]
    fn object_rules_use_wildcards_without_nested_coverage() {
        let rules = [patterns(&["gen*", "sub"])];
        assert!(is_filterable(&rules, "genre"));
        assert!(is_filterable(&rules, "sub"));
        assert!(!is_filterable(&rules, "sub.x"));
        assert!(is_filterable(&[patterns(&["*"])], "sub.x"));
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let off = FilterableRule::Patterns {
            patterns: vec!["*".into()],
            features: FilterFeatures {
                facet_search: true,
                equality: false,
                comparison: false,
            },
        };
        let rules = [off, field("genre")];
        assert!(!is_filterable(&rules, "genre"));
        assert_eq!(matching_rule(&rules, "genre").map(|(i, _)| i), Some(0));
        assert_eq!(
            patterns_where(&rules, FilterFeatures::is_filterable),
            BTreeSet::from(["genre"])
        );
    }

    #[test]
    fn facet_patterns_intersect_string_rules_by_name_and_nesting_only() {
        assert!(field("genre").intersects("genre"));
        assert!(!field("genre").intersects("*"));
        assert!(!field("genre").intersects("gen*"));
        assert!(field("c.*").intersects("c"));
        assert!(!field("c.*").intersects("c.d"));
        assert!(field("a").intersects("a.b.x"));
        assert!(field("a").intersects("a.*"));
        assert!(patterns(&["gen*"]).intersects("*"));
        assert!(patterns(&["gen*"]).intersects("g*"));
        assert!(patterns(&["gen*"]).intersects("genres"));
        assert!(!patterns(&["gen*"]).intersects("year"));
        assert!(patterns(&["sub"]).intersects("sub.x"));
    }
}
