//! Loading manifests from files. (Stub.)
#![allow(missing_docs, unused_variables)]
// TEMPORARY STUB
use super::Topology;
#[derive(Debug)]
pub struct ConfigError {
    pub file: String,
    pub doc: usize,
    pub path: String,
    pub message: String,
}
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} doc {}: {}: {}",
            self.file, self.doc, self.path, self.message
        )
    }
}
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);
impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}
impl std::error::Error for ConfigErrors {}
pub struct LoadedConfig {
    pub topology: Topology,
    pub warnings: Vec<String>,
    pub files: Vec<std::path::PathBuf>,
}
pub fn load_paths(paths: &[std::path::PathBuf]) -> Result<LoadedConfig, ConfigErrors> {
    unimplemented!()
}
pub fn load_sources(sources: &[(String, String)]) -> Result<LoadedConfig, ConfigErrors> {
    unimplemented!()
}
