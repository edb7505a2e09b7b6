//! Verinfer's economics model: does the protocol meet the PRD's three economic criteria?
//!
//! - *cheaper than retail inference*: the buyer's price per token (compute + audit + L1 gas)
//!   against cited retail and batch API prices ([`price`]);
//! - *workers earn more consistently than PoW mining*: the spread of a worker's daily income
//!   against a solo and a pooled miner with the same expected income ([`earnings`], [`pow`]);
//! - *fraud is economically irrational*: the expected value of cheating over every cheating
//!   and audit rate, selective cheating, collusion, and the stake and slash that make it
//!   negative ([`cheating`]); and the cost of griefing an honest worker ([`griefing`]).
//!
//! Every input comes from a [`Config`] in which each number carries its source
//! (`ops/econ/default.toml` is the built-in default); nothing in the output is typed in by
//! hand. [`Report::build`] turns a config into markdown tables and SVG plots; `verinfer econ`
//! writes them, and `docs/ECONOMICS.md` is that output for the default config (a test fails
//! when the committed copy drifts).
//!
//! This is an off-chain report: it uses `f64` freely. The project's integer-only rule is for
//! the committed inference path (what the L1 re-computes), which nothing here touches.

pub mod cheating;
pub mod config;
pub mod earnings;
mod error;
pub mod fmt;
pub mod griefing;
pub mod plot;
pub mod pow;
pub mod price;
pub mod report;

pub use config::{Config, Sourced, DEFAULT_TOML};
pub use error::EconError;
pub use report::Report;
