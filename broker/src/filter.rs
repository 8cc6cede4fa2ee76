//! Trigger filters: legacy `filter.attributes` and the Subscriptions API dialects (`spec.filters`).
//!
//! Matching is a pure function of the filter and the event: no IO, no allocation for string attributes.
//! CESQL has a slot ([`Filter::Cesql`]) that the CESQL engine fills in its own issue.

/// A compiled filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Matches every event (no filter configured).
    True,
    /// Legacy `spec.filter.attributes`: every key must be present; a non-empty value must be equal;
    /// an empty value matches any value (Switchyard decision 3).
    Attributes(Vec<(String, String)>),
    /// `exact`: every attribute present and equal.
    Exact(Vec<(String, String)>),
    /// `prefix`: every attribute present and starting with the value.
    Prefix(Vec<(String, String)>),
    /// `suffix`: every attribute present and ending with the value.
    Suffix(Vec<(String, String)>),
    /// `all`: every child matches (non-empty).
    All(Vec<Filter>),
    /// `any`: at least one child matches (non-empty).
    Any(Vec<Filter>),
    /// `not`: the child does not match.
    Not(Box<Filter>),
    /// `cesql`: the expression text; evaluated by the CESQL engine (its own issue). Until then a config
    /// with a `cesql` filter is rejected at load time, so this variant never reaches matching.
    Cesql(String),
}
