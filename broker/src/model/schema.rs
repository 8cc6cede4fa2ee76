//! Schemas that `schemars` cannot derive (free-form objects, a list-or-string, string patterns), used by
//! the model's `JsonSchema` derives (feature `schema`) and by the controller's status types.

/// An object whose fields the API server keeps as they are (validated by Switchyard).
pub fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A list of such objects (a Trigger's `filters`, nested without limit).
pub fn free_form_object_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}

/// NATS servers: a list or one comma-separated string (no structural type fits both).
pub fn list_or_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // A list or a string: no structural type fits both, so the decoder validates it (SpecValid).
    schemars::json_schema!({
        "description": "NATS servers: a list of `nats://host:port`, `tls://host:port` or `host:port` \
                        (an item may itself be comma-separated), or one comma-separated string.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// `binary` or `structured`.
pub fn content_mode(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Content mode: `binary` (the default) or `structured`.",
        "type": "string",
        "enum": ["binary", "structured"]
    })
}

/// `earliest` or `latest`.
pub fn initial_offset(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Where a new consumer group starts: `earliest` or `latest` (the default).",
        "type": "string",
        "enum": ["earliest", "latest"]
    })
}

/// A NATS subject without wildcards.
pub fn nats_subject(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Subject the events are published to (no wildcards).",
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[^.*>\\s]+(\\.[^.*>\\s]+)*$"
    })
}

/// A NATS subject with `*` tokens and a final `>` allowed.
pub fn nats_subject_with_wildcards(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Subject to subscribe to; a token may be the wildcard `*` and the last token may be `>`.",
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^([^.*>\\s]+|\\*)(\\.([^.*>\\s]+|\\*))*(\\.>)?$|^>$"
    })
}

/// A core NATS queue group.
pub fn nats_queue_group(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Core NATS queue group shared by the processes that run this source.",
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[^.*>\\s]+(\\.[^.*>\\s]+)*$"
    })
}

/// A JetStream stream or consumer name.
pub fn nats_name(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A JetStream stream or consumer name.",
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[^.*>/\\\\\\s]+$"
    })
}
