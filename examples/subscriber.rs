//! A tiny CloudEvents subscriber that prints every event it receives and answers 202.
//!
//! Run with `cargo run --release --example subscriber [ADDR]` (default 127.0.0.1:8081).

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("subscriber listening on http://{addr}");
    let app = Router::new().fallback(|uri: Uri, headers: HeaderMap, body: Bytes| async move {
        let mut attrs: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("ce-") || k.as_str() == "content-type")
            .map(|(k, v)| format!("{}={}", k, v.to_str().unwrap_or("<binary>")))
            .collect();
        attrs.sort();
        println!(
            "{} {} data={}",
            uri.path(),
            attrs.join(" "),
            String::from_utf8_lossy(&body)
        );
        StatusCode::ACCEPTED
    });
    axum::serve(listener, app).await
}
