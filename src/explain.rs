//! `switchyard explain`: which triggers of a broker an event would reach, and why not.

use anyhow::{bail, Context};
use std::io::Read;
use std::path::PathBuf;
use switchyard_broker::config::load::load_paths;
use switchyard_broker::config::BrokerKey;
use switchyard_broker::event::Event;
use switchyard_broker::explain::{explain, Explanation};

/// `switchyard explain` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// Knative manifests, as for `serve` (file or directory; repeatable).
    #[arg(
        long = "config",
        env = "SWITCHYARD_CONFIG",
        value_delimiter = ',',
        required = true
    )]
    pub configs: Vec<PathBuf>,
    /// The broker as NAMESPACE/NAME.
    #[arg(long)]
    pub broker: String,
    /// The event: a JSON file (`-` for stdin) holding a structured-mode CloudEvent or a JSON object of
    /// attributes (missing `specversion`, `id`, `source`, `type` are filled with placeholders).
    #[arg(long, default_value = "-")]
    pub event: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Output format of `explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One line per trigger.
    Text,
    /// `{"broker": ..., "triggers": [{"name", "matched", "reason"}]}`.
    Json,
}

/// Builds an event from a structured CloudEvent or a JSON object of attributes. Returns the event and
/// the names of required attributes that were filled with placeholders.
pub fn event_from_json(bytes: &[u8]) -> Result<(Event, Vec<&'static str>), String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the event is not JSON: {e}"))?;
    let Some(obj) = value.as_object_mut() else {
        return Err("the event must be a JSON object".to_owned());
    };
    let mut defaulted = Vec::new();
    for (name, placeholder) in [
        ("specversion", "1.0"),
        ("id", "explain"),
        ("source", "/explain"),
        ("type", "explain"),
    ] {
        if !obj.contains_key(name) {
            obj.insert(name.to_owned(), serde_json::Value::from(placeholder));
            defaulted.push(name);
        }
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    let event =
        switchyard_broker::format::json::parse_event(&bytes).map_err(|e| match &e.field {
            Some(f) => format!("invalid event: {f}: {e}"),
            None => format!("invalid event: {e}"),
        })?;
    Ok((event, defaulted))
}

/// Parses `NAMESPACE/NAME`.
pub fn parse_broker(s: &str) -> Result<BrokerKey, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(BrokerKey::new(ns, name))
        }
        _ => Err(format!("--broker must be NAMESPACE/NAME, got {s:?}")),
    }
}

/// Runs the command and returns what to print.
pub fn run(args: &ExplainArgs) -> anyhow::Result<String> {
    let broker = parse_broker(&args.broker).map_err(anyhow::Error::msg)?;
    let loaded =
        load_paths(&args.configs).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    let mut bytes = Vec::new();
    if args.event == "-" {
        std::io::stdin()
            .take(16 * 1024 * 1024)
            .read_to_end(&mut bytes)
            .context("reading the event from stdin")?;
    } else {
        bytes = std::fs::read(&args.event).with_context(|| format!("reading {}", args.event))?;
    }
    let (event, defaulted) = event_from_json(&bytes).map_err(anyhow::Error::msg)?;
    let Some(x): Option<Explanation> = explain(&loaded.topology, &broker, &event) else {
        bail!("broker {broker} is not defined in the configuration");
    };
    Ok(match args.output {
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&x)?;
            s.push('\n');
            s
        }
        Output::Text => {
            let mut s = x.to_text();
            if !defaulted.is_empty() {
                s.push_str(&format!(
                    "(placeholders used for missing attributes: {})\n",
                    defaulted.join(", ")
                ));
            }
            s
        }
    })
}
