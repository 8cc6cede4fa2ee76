//! Hot reload: the config paths are polled (cheap `stat` calls) and a change is loaded, validated and
//! applied as a whole. An invalid edit is logged and counted (`switchyard_config_reloads_total{result="invalid"}`)
//! and the previous config stays in force.

use crate::live::Live;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_broker::config::load::load_paths;
use tokio_util::sync::CancellationToken;

/// What is watched and the last seen state.
#[derive(Debug)]
pub struct ConfigWatch {
    paths: Vec<PathBuf>,
    fingerprint: Vec<(PathBuf, Option<(SystemTime, u64)>)>,
}

impl ConfigWatch {
    /// Watches the given paths (files or directories) and the files read from them.
    pub fn new(paths: Vec<PathBuf>, _files: Vec<PathBuf>) -> ConfigWatch {
        let fingerprint = fingerprint(&paths);
        ConfigWatch { paths, fingerprint }
    }

    /// Returns true when anything changed since the last call.
    pub fn changed(&mut self) -> bool {
        let now = fingerprint(&self.paths);
        if now != self.fingerprint {
            self.fingerprint = now;
            true
        } else {
            false
        }
    }
}

fn stat(p: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<(SystemTime, u64)>)> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.push((p.clone(), stat(p)));
            if let Ok(rd) = std::fs::read_dir(p) {
                let mut files: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                    })
                    .collect();
                files.sort();
                for f in files {
                    let s = stat(&f);
                    out.push((f, s));
                }
            }
        } else {
            out.push((p.clone(), stat(p)));
        }
    }
    out
}

/// Polls for changes until `stop` is cancelled.
pub(crate) async fn run(
    live: Arc<Live>,
    mut watch: ConfigWatch,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
        if !watch.changed() {
            continue;
        }
        let paths = watch.paths.clone();
        let loaded = match tokio::task::spawn_blocking(move || load_paths(&paths)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "Config reload task failed.");
                continue;
            }
        };
        match loaded {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!("{w}");
                }
                let (b, t) = (
                    loaded.topology.brokers.len(),
                    loaded.topology.triggers.len(),
                );
                match live.apply(loaded.topology).await {
                    Ok(()) => {
                        live.metrics.reload("success");
                        tracing::info!(brokers = b, triggers = t, "Config reloaded.");
                    }
                    Err(e) => {
                        live.metrics.reload("failed");
                        tracing::error!(error = %format!("{e:#}"), "Config reload could not be applied.");
                    }
                }
            }
            Err(errors) => {
                live.metrics.reload("invalid");
                tracing::error!(
                    "Config change rejected; the previous config stays in force:\n{errors}"
                );
            }
        }
    }
}
