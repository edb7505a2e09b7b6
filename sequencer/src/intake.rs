//! Job intake validation as a pure function: everything about a submitted job that needs no
//! L1 read and no stored state, returning a typed domain error ([`IntakeError`]). The RPC
//! edge maps it to an API error code (`From<IntakeError> for ApiError`), so the rules can be
//! tested, reused (e.g. by a forced-inclusion path) and documented without the transport.
//! Checks run cheapest first, so junk is refused before the signature recovery.

use std::collections::HashMap;

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::Eip712Domain;
use serde_json::json;
use verinfer_primitives::job::{encode_inputs, inputs_hash, plan_shards, Prompt, ShardSpec};
use verinfer_rpc::error::codes;
use verinfer_rpc::sign::recover;
use verinfer_rpc::types::SubmitJobRequest;
use verinfer_rpc::ApiError;

use crate::config::{Limits, Sharding, SkuConfig};
use crate::gas::GasModel;

/// Why a job is refused at intake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// More prompts than `limits.max_prompts_per_job`.
    #[error("prompt count is {got}, limit {limit}")]
    TooManyPrompts { got: u64, limit: u64 },
    /// Prompt token bounds summed over `limits.max_job_bytes`.
    #[error("prompt size is {got}, limit {limit}")]
    TooManyBytes { got: u64, limit: u64 },
    /// No prompt at all.
    #[error("job has no prompt")]
    NoPrompt,
    /// `maxNewTokens = 0`.
    #[error("maxNewTokens must be at least 1")]
    ZeroMaxNewTokens,
    /// An empty prompt.
    #[error("prompt {index} is empty")]
    EmptyPrompt { index: usize },
    /// The prompts do not hash to the signed `inputsHash`.
    #[error("inputsHash {signed} does not match the prompts (hash {computed})")]
    InputsMismatch { signed: B256, computed: B256 },
    /// The signature does not recover to the buyer under the L1's rules (`None`: not a valid
    /// signature at all, e.g. high-s or a `v` the inbox refuses).
    #[error("signature does not recover to buyer {buyer} (got {recovered:?})")]
    BadSignature {
        buyer: Address,
        recovered: Option<Address>,
    },
    /// The SKU is not served here.
    #[error("unknown SKU {0}")]
    UnknownSku(B256),
    /// A prompt plus `maxNewTokens` over the SKU's context.
    #[error("prompt {prompt} needs up to {tokens} tokens with maxNewTokens, SKU context is {max_context}")]
    PromptTooLong {
        prompt: usize,
        tokens: u64,
        max_context: u32,
    },
    /// `maxPrice` below the job's price.
    #[error("maxPrice is below the job's price {required} ({tokens} tokens)")]
    PriceTooLow { required: U256, tokens: u64 },
    /// Posting the job alone would not fit one batch's gas budget.
    #[error("posting this job would need about {gas} gas, over the batch gas budget {budget}")]
    TooLargeForL1 { gas: u64, budget: u64 },
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        let msg = e.to_string();
        match e {
            IntakeError::TooManyPrompts { got, limit } => {
                ApiError::oversized("prompt count", got, limit)
            }
            IntakeError::TooManyBytes { got, limit } => {
                ApiError::oversized("prompt size", got, limit)
            }
            IntakeError::TooLargeForL1 { gas, budget } => {
                ApiError::new(codes::OVERSIZED_REQUEST, msg)
                    .with_data(json!({ "got": gas, "limit": budget }))
            }
            IntakeError::NoPrompt
            | IntakeError::ZeroMaxNewTokens
            | IntakeError::EmptyPrompt { .. }
            | IntakeError::InputsMismatch { .. } => ApiError::malformed(msg),
            IntakeError::BadSignature { .. } => ApiError::new(codes::BAD_SIGNATURE, msg),
            IntakeError::UnknownSku(_) => ApiError::new(codes::UNKNOWN_SKU, msg),
            IntakeError::PromptTooLong {
                prompt,
                tokens,
                max_context,
            } => ApiError::new(codes::PROMPT_TOO_LONG, msg).with_data(
                json!({ "prompt": prompt, "tokens": tokens, "maxContext": max_context }),
            ),
            IntakeError::PriceTooLow { required, tokens } => {
                ApiError::new(codes::PRICE_TOO_LOW, msg)
                    .with_data(json!({ "required": required, "tokens": tokens }))
            }
        }
    }
}

/// What intake checks against (all local configuration).
pub struct IntakeRules<'a> {
    /// The deployment's EIP-712 domain.
    pub domain: &'a Eip712Domain,
    /// Size limits.
    pub limits: &'a Limits,
    /// Sharding policy.
    pub sharding: &'a Sharding,
    /// SKUs served, with their token price.
    pub skus: &'a HashMap<B256, (SkuConfig, U256)>,
    /// The batch gas model.
    pub gas: GasModel,
}

/// A job that passed intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidJob {
    /// Its id (the EIP-712 digest the buyer signed).
    pub id: B256,
    /// How it is cut into shards.
    pub shards: Vec<ShardSpec>,
    /// The SKU's price per token used for the price check.
    pub price_per_token: U256,
}

/// Checks a submitted job against `rules` (no I/O).
pub fn validate_job(req: &SubmitJobRequest, rules: &IntakeRules) -> Result<ValidJob, IntakeError> {
    let lim = rules.limits;
    let job = &req.job;
    let n = req.prompts.len() as u64;
    if n > u64::from(lim.max_prompts_per_job) {
        return Err(IntakeError::TooManyPrompts {
            got: n,
            limit: lim.max_prompts_per_job.into(),
        });
    }
    let bytes: u64 = req.prompts.iter().map(|p| p.token_bound()).sum();
    if bytes > lim.max_job_bytes {
        return Err(IntakeError::TooManyBytes {
            got: bytes,
            limit: lim.max_job_bytes,
        });
    }
    if n == 0 {
        return Err(IntakeError::NoPrompt);
    }
    if job.maxNewTokens == 0 {
        return Err(IntakeError::ZeroMaxNewTokens);
    }
    if let Some(index) = req.prompts.iter().position(|p| {
        matches!(p, Prompt::Tokens(t) if t.is_empty())
            || matches!(p, Prompt::Text(s) if s.is_empty())
    }) {
        return Err(IntakeError::EmptyPrompt { index });
    }
    let computed = inputs_hash(&req.prompts);
    if computed != job.inputsHash {
        return Err(IntakeError::InputsMismatch {
            signed: job.inputsHash,
            computed,
        });
    }
    let id = job.id(rules.domain);
    let recovered = recover(&id, &req.signature);
    if recovered != Some(job.buyer) {
        return Err(IntakeError::BadSignature {
            buyer: job.buyer,
            recovered,
        });
    }
    let (sku, price) = rules
        .skus
        .get(&job.skuId)
        .ok_or(IntakeError::UnknownSku(job.skuId))?;
    let mut tokens: u64 = 0;
    for (i, p) in req.prompts.iter().enumerate() {
        let need = p.token_bound().saturating_add(job.maxNewTokens);
        if need > u64::from(sku.max_context) {
            return Err(IntakeError::PromptTooLong {
                prompt: i,
                tokens: need,
                max_context: sku.max_context,
            });
        }
        tokens = tokens.saturating_add(need);
    }
    let required = price.saturating_mul(U256::from(tokens));
    if job.maxPrice < required {
        return Err(IntakeError::PriceTooLow { required, tokens });
    }
    let shards = plan_shards(
        &req.prompts,
        job.maxNewTokens,
        rules.sharding.max_prompts,
        rules.sharding.max_tokens,
    );
    let size = [(encode_inputs(&req.prompts).len(), shards.len() as u32)];
    if !rules.gas.fits(&size) {
        return Err(IntakeError::TooLargeForL1 {
            gas: rules.gas.post_gas(&size),
            budget: rules.gas.budget,
        });
    }
    Ok(ValidJob {
        id,
        shards,
        price_per_token: *price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;
    use verinfer_primitives::job::domain;
    use verinfer_rpc::sign::{sign_job, JobDraft};

    fn setup() -> (
        Eip712Domain,
        HashMap<B256, (SkuConfig, U256)>,
        Limits,
        Sharding,
    ) {
        let sku = SkuConfig {
            id: B256::repeat_byte(5),
            name: "s".into(),
            max_context: 64,
        };
        let mut skus = HashMap::new();
        skus.insert(sku.id, (sku, U256::from(10u64)));
        (
            domain(1, Address::repeat_byte(1)),
            skus,
            Limits::default(),
            Sharding::default(),
        )
    }

    fn job(d: &Eip712Domain, prompts: Vec<Prompt>, max_price: u64) -> SubmitJobRequest {
        sign_job(
            &PrivateKeySigner::random(),
            d,
            JobDraft {
                sku_id: B256::repeat_byte(5),
                prompts,
                max_new_tokens: 4,
                max_price: U256::from(max_price),
                nonce: 1,
            },
        )
        .unwrap()
    }

    #[test]
    fn typed_errors_map_to_their_codes() {
        let (d, skus, limits, sharding) = setup();
        let rules = IntakeRules {
            domain: &d,
            limits: &limits,
            sharding: &sharding,
            skus: &skus,
            gas: GasModel { budget: 12_000_000 },
        };
        let ok = job(&d, vec![Prompt::Text("hi".into())], 1000);
        let v = validate_job(&ok, &rules).unwrap();
        assert_eq!(v.id, ok.job.id(&d));
        let cases: Vec<(SubmitJobRequest, i32)> = vec![
            (job(&d, vec![], 1000), codes::MALFORMED_PARAMS),
            (
                job(&d, vec![Prompt::Tokens(vec![])], 1000),
                codes::MALFORMED_PARAMS,
            ),
            (
                job(&d, vec![Prompt::Tokens(vec![1; 61])], 100_000),
                codes::PROMPT_TOO_LONG,
            ),
            (
                job(&d, vec![Prompt::Text("hi".into())], 69),
                codes::PRICE_TOO_LOW,
            ),
            (
                {
                    let mut j = ok.clone();
                    j.signature = vec![0u8; 65].into();
                    j
                },
                codes::BAD_SIGNATURE,
            ),
            (
                {
                    let mut j = ok.clone();
                    j.prompts = vec![Prompt::Text("ho".into())];
                    j
                },
                codes::MALFORMED_PARAMS,
            ),
            (
                {
                    let mut j = ok.clone();
                    j.job.skuId = B256::ZERO;
                    j
                },
                codes::BAD_SIGNATURE,
            ),
        ];
        for (req, code) in cases {
            let e = validate_job(&req, &rules).unwrap_err();
            assert_eq!(ApiError::from(e.clone()).code, code, "{e}");
        }
        let small = GasModel { budget: 200_000 };
        let rules = IntakeRules {
            gas: small,
            ..rules
        };
        let big = job(&d, vec![Prompt::Text("x".repeat(40))], 1_000_000);
        let e = validate_job(&big, &rules);
        assert!(
            matches!(
                e,
                Err(IntakeError::TooLargeForL1 {
                    budget: 200_000,
                    ..
                })
            ),
            "{e:?}"
        );
    }
}
