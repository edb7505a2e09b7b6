//! Application error codes of the API.
//!
//! Codes outside the JSON-RPC reserved band (-32768..=-32000) belong to Verinfer. Two failures
//! reuse the standard codes because the transport raises them too and one meaning should have
//! one code: malformed params is always `-32602` (whether serde or the sequencer's own checks
//! find the fault) and an oversized request is always `-32007` (whether the HTTP/WS frame limit
//! or the per-job prompt limits trip).

use jsonrpsee::types::ErrorObjectOwned;
use serde_json::json;

/// The numeric codes (see `docs/RPC.md`).
pub mod codes {
    /// Params do not deserialize or are inconsistent (JSON-RPC standard `Invalid params`).
    pub const MALFORMED_PARAMS: i32 = -32602;
    /// Request larger than the configured limits (jsonrpsee's `Request is too big`).
    pub const OVERSIZED_REQUEST: i32 = -32007;
    /// Internal failure of the sequencer (JSON-RPC standard `Internal error`).
    pub const INTERNAL: i32 = -32603;
    /// Signature does not recover to the claimed buyer / worker.
    pub const BAD_SIGNATURE: i32 = 4001;
    /// The (buyer, nonce) pair was already used.
    pub const REPLAYED_NONCE: i32 = 4002;
    /// The SKU id is not served by this sequencer.
    pub const UNKNOWN_SKU: i32 = 4003;
    /// A prompt plus `maxNewTokens` exceeds the SKU's context.
    pub const PROMPT_TOO_LONG: i32 = 4004;
    /// `maxPrice` is below the job's price at the SKU's token price.
    pub const PRICE_TOO_LOW: i32 = 4005;
    /// The buyer's L1 escrow balance, less what open jobs reserve, is below `maxPrice`.
    pub const BALANCE_TOO_LOW: i32 = 4006;
    /// A worker registration's `issuedAt` is too far from the sequencer's clock.
    pub const EXPIRED: i32 = 4007;
    /// `verinfer_getResults` without a valid buyer access signature.
    pub const UNAUTHORIZED: i32 = 4008;
    /// A worker registration that was already used, or not newer than the last one.
    pub const REGISTRATION_REPLAYED: i32 = 4009;
    /// The job cannot be cancelled (already batched, dropped or cancelled).
    pub const NOT_CANCELLABLE: i32 = 4010;
    /// No such job.
    pub const UNKNOWN_JOB: i32 = 4040;
    /// No such shard, or the shard is not assigned to the caller.
    pub const UNKNOWN_SHARD: i32 = 4041;
    /// No such batch.
    pub const UNKNOWN_BATCH: i32 = 4042;
    /// The worker has no registration / session with this sequencer.
    pub const NOT_REGISTERED: i32 = 4100;
    /// The worker's L1 stake is below the minimum.
    pub const STAKE_TOO_LOW: i32 = 4101;
    /// A submitted receipt or its outputs do not match the shard.
    pub const RECEIPT_MISMATCH: i32 = 4102;
    /// The L1 node could not be reached or answered with an error.
    pub const L1_UNAVAILABLE: i32 = 5030;
    /// The server is at its connection or in-flight request bytes limit; retry later.
    pub const BUSY: i32 = 5031;
}

/// A failed API call: the code, a message naming the bad thing, optional structured data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct ApiError {
    /// One of [`codes`].
    pub code: i32,
    /// Human-readable reason.
    pub message: String,
    /// Extra facts (e.g. the required price), JSON.
    pub data: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
    /// Attaches structured data.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
    /// `-32602` with a message.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(codes::MALFORMED_PARAMS, message)
    }
    /// `-32007` naming the limit.
    pub fn oversized(what: &str, got: u64, limit: u64) -> Self {
        Self::new(
            codes::OVERSIZED_REQUEST,
            format!("{what} is {got}, limit {limit}"),
        )
        .with_data(json!({ "got": got, "limit": limit }))
    }
    /// `-32603`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, message)
    }
}

impl From<ApiError> for ErrorObjectOwned {
    fn from(e: ApiError) -> Self {
        ErrorObjectOwned::owned(e.code, e.message, e.data)
    }
}

/// The error code carried by a client-side error, if the server answered with one.
pub fn error_code(err: &jsonrpsee::core::ClientError) -> Option<i32> {
    match err {
        jsonrpsee::core::ClientError::Call(obj) => Some(obj.code()),
        _ => None,
    }
}
