//! Request checks that need the index: `attributesToSearchOn`, `distinct`
//! and filters, each failing with Meilisearch's code and message.

use serde_json::Value;

use crate::error::MeiliError;
use crate::filter::Filter;
use crate::filterable;
use crate::model::{attribute_matches, IndexData};

/// Prefixes a message with `Index \`uid\`: ` as Meilisearch does for index-level errors.
fn prefixed(index: &IndexData, e: MeiliError) -> MeiliError {
    MeiliError {
        message: format!("Index `{}`: {}", index.uid, e.message),
        ..e
    }
}

pub(crate) fn check_search_on(index: &IndexData, attrs: &[String]) -> Result<(), MeiliError> {
    let searchable = index.searchable_fields();
    let wildcard =
        index.settings.searchable_attributes.is_none() || searchable.iter().any(|s| s == "*");
    // With every attribute searchable, Meilisearch 1.50 refuses none: an unknown one just
    // matches nothing (checked on the real binary).
    if wildcard {
        return Ok(());
    }
    for attr in attrs {
        let ok = attr == "*" || searchable.iter().any(|s| attribute_matches(s, attr));
        if !ok {
            return Err(MeiliError::invalid(
                "invalid_search_attributes_to_search_on",
                format!(
                    "Index `{}`: Attribute `{attr}` is not searchable. Available searchable attributes are: `{}`.",
                    index.uid,
                    searchable.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_distinct(index: &IndexData, attr: &str) -> Result<(), MeiliError> {
    let settings = &index.settings;
    let rules = settings.filterable_rules();
    let matched = filterable::matching_rule(&rules, attr);
    if matched.is_some_and(|(_, rule)| rule.features().is_filterable()) {
        return Ok(());
    }
    let (shown, hidden) = filterable::displayed_only(
        filterable::patterns_where(&rules, |f| f.is_filterable()),
        settings.displayed_attributes.as_deref(),
    );
    let tail = match (shown.is_empty(), matched) {
        (_, Some((i, _))) => format!("Note: this attribute matches rule #{i} in filterableAttributes, but this rule does not enable filtering.\nHint: enable filtering in rule #{i} by adding appropriate filter features.\nHint: prepend another rule matching {attr} with filter features before rule #{i}"),
        (true, None) => "This index does not have configured filterable attributes.".to_owned(),
        (false, None) => format!(
            "Available filterable attributes patterns are: `{}{}`.",
            shown.join(", "),
            if hidden { ", <..hidden-attributes>" } else { "" }
        ),
    };
    Err(MeiliError::invalid(
        "invalid_search_distinct",
        format!(
            "Index `{}`: Attribute `{attr}` is not filterable and thus, cannot be used as distinct attribute. {tail}",
            index.uid
        ),
    ))
}

/// Builds the combined filter (request AND tenant token) after checking filterability.
pub(crate) fn build_filter(
    index: &IndexData,
    filter: Option<&Value>,
    extra: Option<&Value>,
    code: &str,
) -> Result<Option<Filter>, MeiliError> {
    let mut combined: Option<Filter> = None;
    for value in [filter, extra].into_iter().flatten() {
        if let Some(f) = Filter::parse(value, code)? {
            f.check_filterable(&index.settings, code)
                .map_err(|e| prefixed(index, e))?;
            combined = Some(match combined {
                Some(c) => c.and(f),
                None => f,
            });
        }
    }
    Ok(combined)
}
