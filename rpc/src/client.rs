//! Connecting to a sequencer. The returned clients implement [`crate::VerinferApiClient`].

use std::time::Duration;

use jsonrpsee::http_client::HttpClientBuilder;
use jsonrpsee::ws_client::WsClientBuilder;

pub use jsonrpsee::core::ClientError;
pub use jsonrpsee::http_client::HttpClient;
pub use jsonrpsee::ws_client::WsClient;

/// Request size the clients accept to send/receive (results with proofs can be large).
const MAX_BODY: u32 = 64 * 1024 * 1024;

/// An HTTP client for `url` (`http://host:port`). No subscriptions over HTTP.
pub fn http(url: &str) -> Result<HttpClient, ClientError> {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(60))
        .max_request_size(MAX_BODY)
        .max_response_size(MAX_BODY)
        .build(url)
}

/// A WebSocket client for `url` (`ws://host:port`), needed for shard subscriptions.
pub async fn ws(url: &str) -> Result<WsClient, ClientError> {
    WsClientBuilder::default()
        .request_timeout(Duration::from_secs(60))
        .max_request_size(MAX_BODY)
        .max_response_size(MAX_BODY)
        .build(url)
        .await
}
