//! Resolving a Knative `Destination` (`uri`, `ref`, or `ref` + relative `uri`) to a URL.
//!
//! - `uri` alone must be an absolute `http`/`https` URL and is used as is;
//! - `ref` to a core `v1` Service → `http://<name>.<namespace>.svc.<cluster domain>`;
//! - `ref` to any other kind → that object's `status.address.url` (Knative's Addressable duck type);
//! - `ref` + `uri` → the `uri` path appended to the referent's URL.
//!
//! A referent that does not exist, is not addressable, or that the controller may not read is a
//! resolution failure (a status condition with the reason), not an error: the object is reconciled
//! again when it changes and periodically. Other API failures are errors (retried with backoff).

use crate::crd::{Destination, KReference};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::Client;

/// The outcome of resolving one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The URL to deliver to.
    Url(String),
    /// Cannot be resolved now; why.
    Failed(String),
}

/// Whether `s` is an absolute http(s) URL with a host.
pub fn is_absolute_http(s: &str) -> bool {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

/// `base` with a relative `uri` appended (`/path`, `path`, `?query` all work).
pub fn join(base: &str, relative: &str) -> String {
    if relative.is_empty() {
        return base.to_owned();
    }
    if relative.starts_with('?') {
        return format!("{base}{relative}");
    }
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        relative.trim_start_matches('/')
    )
}

/// The cluster URL of a Service.
pub fn service_url(name: &str, namespace: &str, cluster_domain: &str) -> String {
    format!("http://{name}.{namespace}.svc.{cluster_domain}")
}

fn is_core_service(r: &KReference) -> bool {
    r.kind == "Service"
        && match (&r.api_version, &r.group) {
            (Some(v), _) => v == "v1",
            (None, Some(g)) => g.is_empty(),
            (None, None) => true,
        }
}

fn not_found_or_forbidden(e: &kube::Error) -> Option<String> {
    match e {
        kube::Error::Api(s) if s.code == 404 || s.code == 403 => Some(s.message.clone()),
        _ => None,
    }
}

/// Resolves `dest` of an object in `namespace`.
pub async fn resolve(
    client: &Client,
    namespace: &str,
    dest: &Destination,
    cluster_domain: &str,
) -> Result<Resolved, kube::Error> {
    let Some(r) = &dest.reference else {
        return Ok(match dest.uri.as_deref() {
            Some(u) if is_absolute_http(u) => Resolved::Url(u.to_owned()),
            Some(u) => Resolved::Failed(format!(
                "uri {u:?} is not an absolute http(s) URL (a relative uri needs a ref)"
            )),
            None => Resolved::Failed("neither ref nor uri is set".to_owned()),
        });
    };
    if dest.uri.as_deref().is_some_and(is_absolute_http) {
        return Ok(Resolved::Failed(
            "uri must be relative when ref is set (or drop ref and keep the absolute uri)".into(),
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(namespace);
    let base = if is_core_service(r) {
        let api: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
        match api.get_opt(&r.name).await {
            Ok(Some(_)) => service_url(&r.name, ns, cluster_domain),
            Ok(None) => {
                return Ok(Resolved::Failed(format!(
                    "Service {ns}/{} not found",
                    r.name
                )))
            }
            Err(e) => match not_found_or_forbidden(&e) {
                Some(m) => return Ok(Resolved::Failed(format!("Service {ns}/{}: {m}", r.name))),
                None => return Err(e),
            },
        }
    } else {
        let Some(api_version) = r.api_version.as_deref() else {
            return Ok(Resolved::Failed(format!(
                "ref to kind {} needs apiVersion",
                r.kind
            )));
        };
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, &r.kind);
        let ar = match kube::discovery::pinned_kind(client, &gvk).await {
            Ok((ar, _)) => ar,
            Err(e) => {
                return match not_found_or_forbidden(&e) {
                    Some(_) => Ok(Resolved::Failed(format!(
                        "kind {} ({api_version}) is not served by this cluster",
                        r.kind
                    ))),
                    None => match e {
                        kube::Error::Discovery(d) => Ok(Resolved::Failed(format!(
                            "kind {} ({api_version}): {d}",
                            r.kind
                        ))),
                        e => Err(e),
                    },
                }
            }
        };
        match addressable_url(client, &ar, ns, &r.name).await? {
            Ok(url) => url,
            Err(why) => return Ok(Resolved::Failed(why)),
        }
    };
    Ok(Resolved::Url(join(
        &base,
        dest.uri.as_deref().unwrap_or(""),
    )))
}

async fn addressable_url(
    client: &Client,
    ar: &ApiResource,
    ns: &str,
    name: &str,
) -> Result<Result<String, String>, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let obj = match api.get_opt(name).await {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(Err(format!("{} {ns}/{name} not found", ar.kind))),
        Err(e) => {
            return match not_found_or_forbidden(&e) {
                Some(m) => Ok(Err(format!("{} {ns}/{name}: {m}", ar.kind))),
                None => Err(e),
            }
        }
    };
    match obj.data["status"]["address"]["url"].as_str() {
        Some(u) if !u.is_empty() => Ok(Ok(u.to_owned())),
        _ => Ok(Err(format!(
            "{} {ns}/{name} has no status.address.url (not addressable, or not ready yet)",
            ar.kind
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_joins() {
        assert!(is_absolute_http("http://x"));
        assert!(is_absolute_http("https://x:1/p"));
        assert!(!is_absolute_http("/p"));
        assert!(!is_absolute_http("http:///p"));
        assert!(!is_absolute_http("ftp://x"));
        assert_eq!(
            join("http://s.ns.svc.cluster.local", "/a/b"),
            "http://s.ns.svc.cluster.local/a/b"
        );
        assert_eq!(join("http://s/", "a"), "http://s/a");
        assert_eq!(join("http://s/p", "?q=1"), "http://s/p?q=1");
        assert_eq!(join("http://s", ""), "http://s");
        assert_eq!(
            service_url("svc", "ns", "cluster.local"),
            "http://svc.ns.svc.cluster.local"
        );
    }
}
