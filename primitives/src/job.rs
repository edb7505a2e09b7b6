//! Buyer jobs, their EIP-712 signing form, and how a job is cut into shards.
//!
//! A buyer signs a [`JobRequest`] as EIP-712 typed data; the struct is the one the L1
//! `BatchInbox` checks (same name, fields and order, so the same type hash), and the job's id is
//! the EIP-712 digest itself. The prompts are not in the typed struct (they can be megabytes):
//! it carries `inputsHash = keccak256(inputs)` where `inputs` ([`encode_inputs`]) is the ABI
//! encoding of the prompts' leaf encodings (`bytes[]`, [`Prompt::leaf_bytes`]). The same bytes
//! are posted to L1 as calldata with the batch (data availability), and the same leaves give a
//! shard's `inputRoot` in its [`crate::Receipt`] (Merkle root over the shard's prompt leaves).
//!
//! The EIP-712 domain binds a signature to one chain and one batch inbox contract, so a job
//! signed for a devnet cannot be replayed on another deployment.

use alloy_primitives::{keccak256, Address, Bytes, B256};
use alloy_sol_types::{eip712_domain, sol, Eip712Domain, SolStruct, SolValue};
use serde::{Deserialize, Serialize};

use crate::merkle::{row_leaf, MerkleTree};

/// EIP-712 domain name of every Verinfer typed-data signature.
pub const DOMAIN_NAME: &str = "Verinfer";
/// EIP-712 domain version.
pub const DOMAIN_VERSION: &str = "1";

sol! {
    /// What a buyer signs (EIP-712 typed data); identical to `JobRequest` of the L1 contracts.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct JobRequest {
        /// The paying account; must be the signer.
        address buyer;
        /// The SKU (model + quantization + arithmetic) to run.
        bytes32 skuId;
        /// keccak256 of the job's inputs (see [`encode_inputs`]).
        bytes32 inputsHash;
        /// Greedy decode length limit per prompt.
        uint64 maxNewTokens;
        /// Most the buyer agrees to pay for the whole job (wei).
        uint256 maxPrice;
        /// Buyer-chosen number, usable once per buyer (replay protection).
        uint64 nonce;
    }

    /// What a worker signs to register with a sequencer (EIP-712 typed data).
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct WorkerRegistration {
        /// The worker's staking address; must be the signer.
        address worker;
        /// The SKUs it serves.
        bytes32[] skus;
        /// Unix time (seconds) of signing; stale registrations are refused.
        uint64 issuedAt;
    }
}

/// The EIP-712 domain of a deployment: chain id and batch inbox address.
pub fn domain(chain_id: u64, batch_inbox: Address) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: batch_inbox,
    }
}

impl JobRequest {
    /// The digest the buyer signs under `domain`; it is also the job's id (as on L1).
    pub fn id(&self, domain: &Eip712Domain) -> B256 {
        self.eip712_signing_hash(domain)
    }
}

impl WorkerRegistration {
    /// The digest the worker signs under `domain`.
    pub fn signing_hash(&self, domain: &Eip712Domain) -> B256 {
        self.eip712_signing_hash(domain)
    }
}

/// Errors decoding job inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputsError {
    /// Not an ABI `bytes[]`.
    #[error("inputs are not an ABI-encoded bytes[]: {0}")]
    NotAbi(String),
    /// A leaf is empty, has an unknown tag, or a partial token id.
    #[error("prompt {index} has an invalid encoding")]
    BadPrompt { index: usize },
}

/// The job's inputs as posted to L1: `abi.encode(bytes[] leaves)`, one leaf per prompt.
pub fn encode_inputs(prompts: &[Prompt]) -> Vec<u8> {
    let leaves: Vec<Bytes> = prompts.iter().map(|p| p.leaf_bytes().into()).collect();
    leaves.abi_encode()
}

/// Inverse of [`encode_inputs`]. Only the canonical encoding is accepted (re-encoding must give
/// the same bytes), so one list of prompts has exactly one inputs hash.
pub fn decode_inputs(inputs: &[u8]) -> Result<Vec<Prompt>, InputsError> {
    let leaves =
        <Vec<Bytes>>::abi_decode(inputs).map_err(|e| InputsError::NotAbi(e.to_string()))?;
    let prompts = leaves
        .iter()
        .enumerate()
        .map(|(index, l)| Prompt::from_leaf_bytes(l).ok_or(InputsError::BadPrompt { index }))
        .collect::<Result<Vec<_>, _>>()?;
    if encode_inputs(&prompts) != inputs {
        return Err(InputsError::NotAbi("not the canonical encoding".into()));
    }
    Ok(prompts)
}

/// `keccak256(encode_inputs(prompts))`, the request's `inputsHash`.
pub fn inputs_hash(prompts: &[Prompt]) -> B256 {
    keccak256(encode_inputs(prompts))
}

/// One prompt, either raw text (tokenized by the worker with the SKU's tokenizer) or token ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Prompt {
    /// UTF-8 text.
    Text(String),
    /// Token ids of the SKU's tokenizer.
    Tokens(Vec<u32>),
}

/// Leaf tag of a text prompt.
const PROMPT_TEXT_TAG: u8 = 0x00;
/// Leaf tag of a token-id prompt.
const PROMPT_TOKENS_TAG: u8 = 0x01;

impl Prompt {
    /// The row bytes of this prompt's Merkle leaf: a tag byte (0 = text, 1 = token ids), then the
    /// UTF-8 bytes or each token id as 4 big-endian bytes.
    pub fn leaf_bytes(&self) -> Vec<u8> {
        match self {
            Prompt::Text(s) => {
                let mut v = Vec::with_capacity(1 + s.len());
                v.push(PROMPT_TEXT_TAG);
                v.extend_from_slice(s.as_bytes());
                v
            }
            Prompt::Tokens(t) => {
                let mut v = Vec::with_capacity(1 + 4 * t.len());
                v.push(PROMPT_TOKENS_TAG);
                for id in t {
                    v.extend_from_slice(&id.to_be_bytes());
                }
                v
            }
        }
    }

    /// Inverse of [`Prompt::leaf_bytes`] (`None` for an unknown tag, invalid UTF-8 or a
    /// partial token id).
    pub fn from_leaf_bytes(b: &[u8]) -> Option<Self> {
        let (tag, rest) = b.split_first()?;
        match *tag {
            PROMPT_TEXT_TAG => String::from_utf8(rest.to_vec()).ok().map(Prompt::Text),
            PROMPT_TOKENS_TAG if rest.len() % 4 == 0 => Some(Prompt::Tokens(
                rest.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )),
            _ => None,
        }
    }

    /// An upper bound on the prompt's token count. Exact for token ids; for text the UTF-8 byte
    /// length plus one (a byte-level BPE token covers at least one byte; +1 for a BOS token),
    /// so limits enforced with it never let an over-long prompt through.
    pub fn token_bound(&self) -> u64 {
        match self {
            Prompt::Text(s) => s.len() as u64 + 1,
            Prompt::Tokens(t) => t.len() as u64,
        }
    }
}

/// Merkle root over the prompts' leaf encodings (a shard's `inputRoot`).
pub fn prompts_root(prompts: &[Prompt]) -> B256 {
    let leaves: Vec<Vec<u8>> = prompts.iter().map(Prompt::leaf_bytes).collect();
    MerkleTree::from_leaf_hashes(leaves.iter().map(|l| row_leaf(l)).collect()).root()
}

/// Row bytes of one completion's leaf under a receipt's `outputRoot`: the generated token ids,
/// 4 big-endian bytes each.
pub fn completion_leaf_bytes(tokens: &[u32]) -> Vec<u8> {
    crate::rows::u32_row_bytes(tokens)
}

/// Merkle root over completions, one leaf per prompt (a receipt's `outputRoot`).
pub fn outputs_root(outputs: &[Vec<u32>]) -> B256 {
    let leaves: Vec<Vec<u8>> = outputs.iter().map(|o| completion_leaf_bytes(o)).collect();
    MerkleTree::from_leaf_hashes(leaves.iter().map(|l| row_leaf(l)).collect()).root()
}

/// A contiguous run of a job's prompts, run by one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardSpec {
    /// Position of the shard inside the job.
    pub index: u32,
    /// Index of the shard's first prompt in the job.
    pub first_prompt: u32,
    /// Number of prompts in the shard (at least one).
    pub prompt_count: u32,
}

/// Identity of a shard: `keccak256(abi.encode(jobId, shardIndex))`.
pub fn shard_id(job_id: B256, index: u32) -> B256 {
    keccak256((job_id, index).abi_encode())
}

/// Cuts a job into shards of consecutive prompts. A shard takes prompts until adding the next
/// would exceed `max_prompts` prompts or `max_tokens` tokens, where a prompt weighs its
/// [`Prompt::token_bound`] plus `max_new_tokens`; a prompt heavier than `max_tokens` alone gets a
/// shard of its own. An empty job has no shard.
pub fn plan_shards(
    prompts: &[Prompt],
    max_new_tokens: u64,
    max_prompts: u32,
    max_tokens: u64,
) -> Vec<ShardSpec> {
    let max_prompts = max_prompts.max(1);
    let mut shards = Vec::new();
    let mut first = 0u32;
    let mut count = 0u32;
    let mut tokens = 0u64;
    for (i, p) in prompts.iter().enumerate() {
        let w = p.token_bound() + max_new_tokens;
        if count > 0 && (count == max_prompts || tokens + w > max_tokens) {
            shards.push(ShardSpec {
                index: shards.len() as u32,
                first_prompt: first,
                prompt_count: count,
            });
            first = i as u32;
            count = 0;
            tokens = 0;
        }
        count += 1;
        tokens += w;
    }
    if count > 0 {
        shards.push(ShardSpec {
            index: shards.len() as u32,
            first_prompt: first,
            prompt_count: count,
        });
    }
    shards
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;

    fn job() -> JobRequest {
        JobRequest {
            buyer: Address::repeat_byte(0xaa),
            skuId: B256::repeat_byte(1),
            inputsHash: B256::repeat_byte(2),
            maxNewTokens: 16,
            maxPrice: U256::from(1000u64),
            nonce: 7,
        }
    }

    #[test]
    fn signing_hash_binds_domain_and_every_field() {
        let d = domain(31337, Address::repeat_byte(9));
        let h = job().id(&d);
        assert_ne!(h, job().id(&domain(1, Address::repeat_byte(9))));
        assert_ne!(h, job().id(&domain(31337, Address::repeat_byte(8))));
        let mut j = job();
        j.maxPrice = U256::from(1001u64);
        assert_ne!(h, j.id(&d));
        let mut j = job();
        j.nonce += 1;
        assert_ne!(h, j.id(&d));
        // The contract's type string; 0x1901 ‖ domainSeparator ‖ hashStruct.
        assert_eq!(
            JobRequest::eip712_encode_type(),
            "JobRequest(address buyer,bytes32 skuId,bytes32 inputsHash,uint64 maxNewTokens,uint256 maxPrice,uint64 nonce)"
        );
        let mut pre = vec![0x19, 0x01];
        pre.extend_from_slice(d.separator().as_slice());
        pre.extend_from_slice(job().eip712_hash_struct().as_slice());
        assert_eq!(h, keccak256(pre));
    }

    #[test]
    fn inputs_round_trip_and_reject_junk() {
        let ps = vec![Prompt::Text("héllo".into()), Prompt::Tokens(vec![1, 70000])];
        let enc = encode_inputs(&ps);
        assert_eq!(decode_inputs(&enc).unwrap(), ps);
        assert_eq!(inputs_hash(&ps), keccak256(&enc));
        assert!(decode_inputs(&enc[..enc.len() - 1]).is_err());
        let bad = vec![Bytes::from(vec![7u8, 1])].abi_encode();
        assert_eq!(
            decode_inputs(&bad),
            Err(InputsError::BadPrompt { index: 0 })
        );
        let bad = vec![Bytes::from(vec![1u8, 1, 2])].abi_encode();
        assert!(decode_inputs(&bad).is_err(), "token ids are whole u32s");
    }

    #[test]
    fn prompt_leaves_distinguish_text_from_tokens() {
        let t = Prompt::Text("ab".into());
        let k = Prompt::Tokens(vec![0x6162]);
        assert_ne!(t.leaf_bytes(), k.leaf_bytes());
        assert_eq!(k.leaf_bytes(), vec![1, 0, 0, 0x61, 0x62]);
        assert_eq!(t.token_bound(), 3);
        assert_ne!(prompts_root(&[t.clone(), k.clone()]), prompts_root(&[k, t]));
    }

    #[test]
    fn shard_plan_covers_every_prompt_once_within_limits() {
        let prompts: Vec<Prompt> = (0..23)
            .map(|i| Prompt::Tokens(vec![1; (i % 5) + 1]))
            .collect();
        let plan = plan_shards(&prompts, 4, 4, 20);
        let mut next = 0u32;
        for (i, s) in plan.iter().enumerate() {
            assert_eq!(s.index as usize, i);
            assert_eq!(s.first_prompt, next);
            assert!(s.prompt_count >= 1 && s.prompt_count <= 4);
            let toks: u64 = prompts
                [s.first_prompt as usize..(s.first_prompt + s.prompt_count) as usize]
                .iter()
                .map(|p| p.token_bound() + 4)
                .sum();
            assert!(
                toks <= 20 || s.prompt_count == 1,
                "shard {i} holds {toks} tokens"
            );
            next += s.prompt_count;
        }
        assert_eq!(next, 23);
        // One oversized prompt still gets a shard.
        let big = vec![Prompt::Tokens(vec![0; 100])];
        assert_eq!(plan_shards(&big, 1, 4, 10).len(), 1);
        assert!(plan_shards(&[], 1, 4, 10).is_empty());
    }

    #[test]
    fn shard_ids_differ_per_index() {
        assert_ne!(shard_id(B256::ZERO, 0), shard_id(B256::ZERO, 1));
    }
}
