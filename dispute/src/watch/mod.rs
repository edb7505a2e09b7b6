//! The watcher (`verinfer watch`): follows the L1 batch inbox, audits posted receipts with
//! Freivalds and row recomputation, records everything in redb, and opens disputes on L1 for
//! the receipts it finds wrong. See docs/WATCHER.md.
//!
//! - [`source`]: the [`source::TraceSource`] seam (where trace data comes from) and its
//!   implementations (local re-execution, tensors in memory);
//! - [`audit`]: one receipt's audit, a typed [`audit::Verdict`];
//! - [`chain`]: the L1 follower (confirmations, reorgs, calldata decoding);
//! - [`store`]: the durable state;
//! - [`protocol`]: the verifier's part in the audit protocol (`Audits.sol`);
//! - [`daemon`]: the loop that ties them together.

pub mod audit;
pub mod chain;
pub mod daemon;
pub mod protocol;
pub mod source;
pub mod store;

pub use audit::{policy_seed, AuditInput, Auditor, Evidence, Fraud, GemmSelect, Policy, Verdict};
pub use daemon::{WatchConfig, Watcher};
pub use source::{EngineTrace, MemTrace, SourceError, TraceSource};
pub use store::Store;
