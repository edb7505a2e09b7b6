//! Prompts as the model expects them: chat messages rendered with the model's own chat
//! template, then tokenized with the SKU's tokenizer, the way transformers'
//! `apply_chat_template(messages, add_generation_prompt=True, tokenize=True)` does.
//!
//! - The template is the `chat_template` of `tokenizer_config.json` (a string, or a list of
//!   named templates of which `default` is used), or a `chat_template.jinja` file next to it;
//!   it is rendered with minijinja configured like transformers' Jinja environment
//!   (`trim_blocks`, `lstrip_blocks`, loop controls, Python string methods, `raise_exception`),
//!   with `messages`, `add_generation_prompt` and the special tokens (`bos_token`,
//!   `eos_token`, ...) as variables.
//! - The rendered text is tokenized without special tokens (the template writes them, as in
//!   transformers); a plain text prompt is tokenized with them, so the tokenizer.json's
//!   post-processor decides whether a BOS is prepended (Llama-3's adds `<|begin_of_text|>`).
//! - Every id is checked against the model's vocabulary: an id the model has no row for is
//!   refused here, before anything is signed.
//!
//! This is the client side of a job: its output (token ids) is what the buyer signs.

use crate::error::{ProverError, Result};
use crate::sku::Sku;
use minijinja::value::Serde;
use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One chat message (OpenAI `messages[i]` with its text content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// The text of the message.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The special-token names transformers passes to a chat template
/// (`PreTrainedTokenizerBase.special_tokens_map`).
const SPECIAL_TOKENS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// A model's chat template with the special tokens it may refer to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTemplate {
    /// The Jinja source.
    pub source: String,
    /// `bos_token`, `eos_token`, ... as strings (absent when the config has none).
    pub special_tokens: BTreeMap<String, String>,
    /// `additional_special_tokens` as strings.
    pub additional_special_tokens: Vec<String>,
}

fn tok_err(path: &Path, reason: impl Into<String>) -> ProverError {
    ProverError::Tokenizer {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A special token in `tokenizer_config.json`: a string, or an `AddedToken` object with a
/// `content` field.
fn token_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

impl ChatTemplate {
    /// The template of a `tokenizer_config.json` (`path` is only used in errors); `None` when it
    /// has no `chat_template`.
    pub fn from_tokenizer_config(json: &[u8], path: &Path) -> Result<Option<Self>> {
        let v: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| tok_err(path, format!("not JSON: {e}")))?;
        let source = match &v["chat_template"] {
            serde_json::Value::Null => return Ok(None),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(named) => named
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str())
                .map(String::from)
                .ok_or_else(|| tok_err(path, "chat_template list has no \"default\" template"))?,
            _ => return Err(tok_err(path, "chat_template must be a string or a list")),
        };
        let special_tokens = SPECIAL_TOKENS
            .iter()
            .filter_map(|k| token_text(&v[*k]).map(|t| (k.to_string(), t)))
            .collect();
        let additional_special_tokens = v["additional_special_tokens"]
            .as_array()
            .map(|a| a.iter().filter_map(token_text).collect())
            .unwrap_or_default();
        let t = ChatTemplate {
            source,
            special_tokens,
            additional_special_tokens,
        };
        // Fail at load time, not at the first request, when the template does not parse.
        t.environment().map_err(|e| tok_err(path, e.to_string()))?;
        Ok(Some(t))
    }

    /// The template of a checkpoint directory: `tokenizer_config.json`'s `chat_template`, or
    /// `chat_template.jinja` (newer checkpoints keep it there) with the special tokens of
    /// `tokenizer_config.json`. `None` when neither has one.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>> {
        let cfg_path = dir.join("tokenizer_config.json");
        let jinja_path = dir.join("chat_template.jinja");
        let mut cfg: serde_json::Value = match std::fs::read(&cfg_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| tok_err(&cfg_path, format!("not JSON: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
            Err(e) => return Err(crate::error::io_err(&cfg_path)(e)),
        };
        if jinja_path.exists() {
            let src =
                std::fs::read_to_string(&jinja_path).map_err(crate::error::io_err(&jinja_path))?;
            cfg["chat_template"] = serde_json::Value::String(src);
        }
        let bytes = serde_json::to_vec(&cfg).map_err(|e| tok_err(&cfg_path, e.to_string()))?;
        Self::from_tokenizer_config(&bytes, &cfg_path)
    }

    fn environment(&self) -> std::result::Result<Environment<'_>, JinjaError> {
        let mut env = Environment::new();
        // transformers renders with trim_blocks and lstrip_blocks on.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<Value, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template("chat", &self.source)?;
        Ok(env)
    }

    /// Renders `messages` (with the assistant's opening when `add_generation_prompt`).
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let fail = |e: JinjaError| tok_err(Path::new("<chat_template>"), format!("{e:#}"));
        let env = self.environment().map_err(fail)?;
        let tmpl = env.get_template("chat").map_err(fail)?;
        let mut ctx: BTreeMap<String, Value> = self
            .special_tokens
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        ctx.insert(
            "additional_special_tokens".into(),
            Value::from(Serde(&self.additional_special_tokens)),
        );
        ctx.insert("messages".into(), Value::from(Serde(messages)));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        tmpl.render(Value::from(Serde(&ctx))).map_err(fail)
    }
}

/// Turns text and chat prompts into token ids with a SKU's tokenizer and chat template.
pub struct PromptEncoder {
    tokenizer: tokenizers::Tokenizer,
    template: Option<ChatTemplate>,
    /// Rows of the model's embedding: every id must be below it.
    vocab: usize,
}

impl std::fmt::Debug for PromptEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptEncoder")
            .field("vocab", &self.vocab)
            .field("chat_template", &self.template.is_some())
            .finish()
    }
}

impl PromptEncoder {
    /// An encoder from its parts.
    pub fn new(
        tokenizer: tokenizers::Tokenizer,
        template: Option<ChatTemplate>,
        vocab: usize,
    ) -> Self {
        PromptEncoder {
            tokenizer,
            template,
            vocab,
        }
    }

    /// The encoder of a SKU: its embedded tokenizer and chat template. A SKU without a tokenizer
    /// can only take token-id prompts.
    pub fn from_sku(sku: &Sku) -> Result<Self> {
        let tokenizer = sku
            .tokenizer()?
            .ok_or_else(|| tok_err(Path::new("<sku>"), "the SKU has no tokenizer"))?;
        Ok(Self::new(
            tokenizer,
            sku.chat_template()?,
            sku.config().vocab,
        ))
    }

    /// The chat template, if the model has one.
    pub fn template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, add_special_tokens)
            .map_err(|e| tok_err(Path::new("<tokenizer>"), e.to_string()))?;
        let ids = enc.get_ids().to_vec();
        self.check_ids(&ids)?;
        Ok(ids)
    }

    /// Refuses an empty prompt or an id the model has no embedding row for.
    pub fn check_ids(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Err(ProverError::Shard("the prompt has no tokens".into()));
        }
        match ids.iter().find(|&&t| t as usize >= self.vocab) {
            Some(t) => Err(ProverError::Shard(format!(
                "token id {t} ≥ vocabulary {}",
                self.vocab
            ))),
            None => Ok(()),
        }
    }

    /// A text prompt: tokenized with the tokenizer's special tokens (its post-processor adds a
    /// BOS where the model's tokenizer.json prescribes one).
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        self.encode(text, true)
    }

    /// A chat prompt: rendered with the chat template and `add_generation_prompt`, then
    /// tokenized without added special tokens (the template writes them). Refused when the
    /// model has no chat template: a made-up rendering would not be the model's format.
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let t = self.template.as_ref().ok_or_else(|| {
            tok_err(
                Path::new("<sku>"),
                "the model has no chat_template; send a text or token-id prompt",
            )
        })?;
        if messages.is_empty() {
            return Err(ProverError::Shard("a chat prompt needs messages".into()));
        }
        self.encode(&t.render(messages, true)?, false)
    }
}
