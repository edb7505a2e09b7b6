//! Building and signing what the API carries (EIP-712, see `primitives::job`).

use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy_primitives::{Address, Bytes, Signature, B256, U256};
use alloy_sol_types::{Eip712Domain, SolStruct};
use verinfer_primitives::job::{inputs_hash, JobRequest, Prompt, WorkerRegistration};
use verinfer_primitives::Receipt;

use crate::types::{
    CancelJobRequest, RegisterWorkerRequest, SubmitJobRequest, SubmitResultRequest,
};

alloy_sol_types::sol! {
    /// What a buyer signs to read its job's results (EIP-712). The signature is deterministic
    /// (RFC 6979), so the buyer can re-derive it at any time and hand it to whoever may read.
    #[derive(Debug, PartialEq, Eq)]
    struct ResultsAccess {
        /// The job whose results may be read.
        bytes32 jobId;
    }

    /// What a buyer signs to cancel a job that is not yet in a batch (EIP-712).
    #[derive(Debug, PartialEq, Eq)]
    struct CancelJob {
        /// The job to cancel.
        bytes32 jobId;
    }
}

/// secp256k1 group order n divided by 2: the largest `s` the L1 accepts (EIP-2).
pub const SECP256K1_HALF_N: U256 = U256::from_be_bytes([
    0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x5D, 0x57, 0x6E, 0x73, 0x57, 0xA4, 0x50, 0x1D, 0xDF, 0xE9, 0x2F, 0x46, 0x68, 0x1B, 0x20, 0xA0,
]);

/// Signing failed (the local signer reports it).
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(#[from] alloy::signers::Error);

/// A job before signing: what the buyer chooses.
#[derive(Debug, Clone)]
pub struct JobDraft {
    /// SKU to run.
    pub sku_id: B256,
    /// Prompts.
    pub prompts: Vec<Prompt>,
    /// Decode length per prompt.
    pub max_new_tokens: u64,
    /// Price cap (wei).
    pub max_price: U256,
    /// Unused nonce of the buyer.
    pub nonce: u64,
}

fn sign_digest(signer: &PrivateKeySigner, digest: &B256) -> Result<Bytes, SignError> {
    let sig: Signature = signer.sign_hash_sync(digest)?;
    Ok(Bytes::from(sig.as_bytes().to_vec()))
}

/// Builds the EIP-712 job (buyer = signer, inputsHash computed) and signs it.
pub fn sign_job(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    draft: JobDraft,
) -> Result<SubmitJobRequest, SignError> {
    let job = JobRequest {
        buyer: signer.address(),
        skuId: draft.sku_id,
        inputsHash: inputs_hash(&draft.prompts),
        maxNewTokens: draft.max_new_tokens,
        maxPrice: draft.max_price,
        nonce: draft.nonce,
    };
    let signature = sign_digest(signer, &job.id(domain))?;
    Ok(SubmitJobRequest {
        job,
        prompts: draft.prompts,
        signature,
    })
}

/// Signs a worker registration for `skus`, issued at `issued_at` (unix seconds).
pub fn sign_registration(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    skus: Vec<B256>,
    issued_at: u64,
) -> Result<RegisterWorkerRequest, SignError> {
    let registration = WorkerRegistration {
        worker: signer.address(),
        skus,
        issuedAt: issued_at,
    };
    let signature = sign_digest(signer, &registration.signing_hash(domain))?;
    Ok(RegisterWorkerRequest {
        registration,
        signature,
    })
}

/// Signs a shard's receipt (EIP-712 over the `Receipt` struct) and packs the result.
pub fn sign_result(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    receipt: Receipt,
    outputs: Vec<Vec<u32>>,
) -> Result<SubmitResultRequest, SignError> {
    let signature = sign_digest(signer, &receipt.eip712_signing_hash(domain))?;
    Ok(SubmitResultRequest {
        outputs,
        receipt,
        signature,
    })
}

/// The digest a buyer signs to read `job_id`'s results.
pub fn results_access_digest(domain: &Eip712Domain, job_id: B256) -> B256 {
    ResultsAccess { jobId: job_id }.eip712_signing_hash(domain)
}

/// The buyer's read capability for `job_id`'s results (`verinfer_getResults`'s `access`).
pub fn sign_results_access(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    job_id: B256,
) -> Result<Bytes, SignError> {
    sign_digest(signer, &results_access_digest(domain, job_id))
}

/// The digest a buyer signs to cancel `job_id`.
pub fn cancel_digest(domain: &Eip712Domain, job_id: B256) -> B256 {
    CancelJob { jobId: job_id }.eip712_signing_hash(domain)
}

/// A signed `verinfer_cancelJob` request.
pub fn sign_cancel(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    job_id: B256,
) -> Result<CancelJobRequest, SignError> {
    Ok(CancelJobRequest {
        job_id,
        signature: sign_digest(signer, &cancel_digest(domain, job_id))?,
    })
}

/// The address that signed `digest` under exactly the rules of the L1 `BatchInbox._recover`,
/// so that every signature the RPC accepts is one the L1 accepts (and vice versa):
/// - 65 bytes `r ‖ s ‖ v`;
/// - `v` in {27, 28}, or {0, 1} (the inbox adds 27 to a `v` below 27); nothing else: EIP-155
///   style `v` (35, 36, ...) is refused;
/// - `s <= n/2` (no malleable high-s twin);
/// - `ecrecover` must not give the zero address (this also refuses `r = 0`, `s = 0` and
///   `r`, `s >= n`).
pub fn recover(digest: &B256, signature: &[u8]) -> Option<Address> {
    if signature.len() != 65 {
        return None;
    }
    let r = U256::from_be_slice(&signature[0..32]);
    let s = U256::from_be_slice(&signature[32..64]);
    let mut v = signature[64];
    if v < 27 {
        v = v.wrapping_add(27);
    }
    if s > SECP256K1_HALF_N || (v != 27 && v != 28) || r.is_zero() || s.is_zero() {
        return None;
    }
    let sig = Signature::new(r, s, v == 28);
    match sig.recover_address_from_prehash(digest) {
        Ok(a) if a != Address::ZERO => Some(a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verinfer_primitives::job::domain;

    #[test]
    fn signed_job_recovers_to_buyer_and_tampering_breaks_it() {
        let signer = PrivateKeySigner::random();
        let d = domain(31337, Address::repeat_byte(7));
        let req = sign_job(
            &signer,
            &d,
            JobDraft {
                sku_id: B256::repeat_byte(1),
                prompts: vec![Prompt::Text("hi".into()), Prompt::Tokens(vec![1, 2])],
                max_new_tokens: 8,
                max_price: U256::from(100u64),
                nonce: 1,
            },
        )
        .unwrap();
        assert_eq!(req.job.buyer, signer.address());
        assert_eq!(
            recover(&req.job.id(&d), &req.signature),
            Some(signer.address())
        );
        let mut j = req.job.clone();
        j.maxPrice = U256::from(99u64);
        assert_ne!(recover(&j.id(&d), &req.signature), Some(signer.address()));
        assert_eq!(recover(&req.job.id(&d), &req.signature[..64]), None);
        // JSON round trip keeps everything.
        let s = serde_json::to_string(&req).unwrap();
        let back: SubmitJobRequest = serde_json::from_str(&s).unwrap();
        assert_eq!(back, req);
    }

    /// secp256k1 group order n.
    fn order() -> U256 {
        SECP256K1_HALF_N * U256::from(2u64) + U256::from(1u64)
    }

    fn signed() -> (B256, Vec<u8>, Address) {
        let signer = PrivateKeySigner::random();
        let digest = B256::repeat_byte(0x11);
        let sig = sign_digest(&signer, &digest).unwrap().to_vec();
        (digest, sig, signer.address())
    }

    #[test]
    fn l1_rule_low_s_with_v_27_28_and_0_1_recovers() {
        let (digest, sig, who) = signed();
        assert!(sig[64] == 27 || sig[64] == 28);
        assert_eq!(recover(&digest, &sig), Some(who));
        // The inbox adds 27 to v < 27, so v in {0, 1} is the same signature.
        let mut raw = sig.clone();
        raw[64] -= 27;
        assert_eq!(recover(&digest, &raw), Some(who));
    }

    #[test]
    fn l1_rule_high_s_twin_is_refused() {
        // (r, n - s, v ^ 1) recovers the same key (the malleable twin); the inbox refuses it.
        let (digest, sig, who) = signed();
        let s = U256::from_be_slice(&sig[32..64]);
        let mut twin = sig.clone();
        twin[32..64].copy_from_slice(&(order() - s).to_be_bytes::<32>());
        twin[64] = if sig[64] == 27 { 28 } else { 27 };
        let plain = Signature::new(
            U256::from_be_slice(&twin[0..32]),
            U256::from_be_slice(&twin[32..64]),
            twin[64] == 28,
        );
        assert_eq!(
            plain.recover_address_from_prehash(&digest).ok(),
            Some(who),
            "a lenient recovery accepts the twin"
        );
        assert_eq!(recover(&digest, &twin), None);
    }

    #[test]
    fn l1_rule_eip155_v_is_refused() {
        let (digest, sig, _) = signed();
        for v in [35u8, 36, 2, 26, 29, 37, 255] {
            let mut bad = sig.clone();
            bad[64] = v;
            assert_eq!(recover(&digest, &bad), None, "v = {v}");
        }
    }

    #[test]
    fn l1_rule_length_and_zero_values_are_refused() {
        let (digest, sig, _) = signed();
        assert_eq!(recover(&digest, &sig[..64]), None);
        assert_eq!(recover(&digest, &[sig.clone(), vec![0]].concat()), None);
        let mut zs = sig.clone();
        zs[32..64].fill(0);
        assert_eq!(recover(&digest, &zs), None, "s = 0");
        let mut zr = sig.clone();
        zr[0..32].fill(0);
        assert_eq!(recover(&digest, &zr), None, "r = 0");
        let mut big_r = sig.clone();
        big_r[0..32].copy_from_slice(&order().to_be_bytes::<32>());
        assert_eq!(recover(&digest, &big_r), None, "r = n");
    }

    #[test]
    fn access_and_cancel_signatures_are_bound_to_the_job() {
        let signer = PrivateKeySigner::random();
        let d = domain(31337, Address::repeat_byte(7));
        let a = sign_results_access(&signer, &d, B256::repeat_byte(1)).unwrap();
        assert_eq!(
            recover(&results_access_digest(&d, B256::repeat_byte(1)), &a),
            Some(signer.address())
        );
        assert_ne!(
            recover(&results_access_digest(&d, B256::repeat_byte(2)), &a),
            Some(signer.address())
        );
        let c = sign_cancel(&signer, &d, B256::repeat_byte(1)).unwrap();
        assert_ne!(c.signature, a, "cancel and access are different types");
        assert_eq!(
            recover(&cancel_digest(&d, B256::repeat_byte(1)), &c.signature),
            Some(signer.address())
        );
    }
}
