//! The signing provider of the long-running daemons (the watcher, the worker's dispute
//! defender).

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;

/// A provider that signs with `signer` and asks the node for the pending nonce before every
/// transaction. alloy's default nonce cache advances on a failed submission and never
/// resynchronizes, so a daemon whose call reverted in estimation once would send every later
/// transaction behind a nonce gap, and none would ever be mined. These daemons send one
/// transaction at a time, so a fresh pending count is always right.
pub fn daemon_signer(url: Url, signer: PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url)
        .erased()
}
