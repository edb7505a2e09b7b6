//! The Verinfer JSON-RPC API and its Rust SDK.
//!
//! - [`api`]: the method list as a jsonrpsee trait. `#[rpc(server, client)]` generates
//!   [`VerinferApiServer`] (implemented by the sequencer) and [`VerinferApiClient`] (implemented
//!   for every jsonrpsee HTTP and WebSocket client): the typed SDK the CLI and tests use.
//! - [`types`]: request and response bodies (camelCase JSON).
//! - [`error`]: the application error codes and the [`ApiError`] that carries them.
//! - [`sign`]: helpers that build and sign jobs, registrations and receipts (EIP-712).
//! - [`client`]: connecting to a sequencer over HTTP or WebSocket.
//! - [`openai`]: OpenAI Batch-API JSONL input, grouped into jobs.
//! - [`worker_api`]: the worker daemon's data-availability API (tensor rows with proofs,
//!   chunked GEMM operands) and checks of its answers.
//!
//! Every method, every error code and the JSON shapes are documented in `docs/RPC.md`.

pub mod api;
pub mod client;
pub mod error;
pub mod openai;
pub mod sign;
pub mod types;
pub mod worker_api;

pub use api::{VerinferApiClient, VerinferApiServer};
pub use error::{codes, error_code, ApiError};
