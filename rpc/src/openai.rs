//! OpenAI Batch-API input (JSONL), as accepted by `verinfer job submit --file`.
//!
//! Each line is `{"custom_id": ..., "method": "POST", "url": "/v1/chat/completions" |
//! "/v1/completions", "body": {"model": ..., "messages" | "prompt": ..., "max_tokens": ...}}`.
//! Lines are grouped into jobs by (model, max_tokens), in file order, because one signed job
//! has one SKU and one decode length.
//!
//! A line is parsed into a [`Request`] (chat messages, text, or token ids) and then turned into
//! a token-id [`Prompt`] by [`BatchLine::token_prompt`] with the SKU's tokenizer, on the client,
//! before the job is signed: the signed job (and so the L1) carries token ids, never text, so no
//! worker chooses how a prompt is tokenized (issue #9, attack 6). Chat messages are rendered with
//! the model's own chat template ([`Tokenize::chat`]; the CLI implements it with
//! `verinfer_prover::chat::PromptEncoder`), text is tokenized with the tokenizer's special tokens
//! (a BOS where its post-processor adds one).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use verinfer_primitives::job::Prompt;

/// A line that cannot be used, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct OpenAiError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// One chat message of a request (its text content; text parts are concatenated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// The text.
    pub content: String,
}

/// What a line asks the model to continue, before tokenization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `/v1/chat/completions` `messages`.
    Chat(Vec<ChatMessage>),
    /// `/v1/completions` text `prompt`.
    Text(String),
    /// `/v1/completions` token-id `prompt`.
    Tokens(Vec<u32>),
}

/// A SKU's tokenizer on the client: renders and tokenizes prompts, and checks token ids.
pub trait Tokenize {
    /// Token ids of a text prompt (with the tokenizer's special tokens).
    fn text(&self, text: &str) -> Result<Vec<u32>, String>;
    /// Token ids of chat messages rendered with the model's chat template (with the assistant's
    /// opening, as `add_generation_prompt`).
    fn chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, String>;
    /// Refuses ids the model cannot embed.
    fn check(&self, ids: &[u32]) -> Result<(), String>;
}

/// One request of the batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The caller's id of the request, unique in the file.
    pub custom_id: String,
    /// `body.model` (a SKU name or a 0x SKU id).
    pub model: String,
    /// The request.
    pub request: Request,
    /// `body.max_tokens` (or the default given to the parser).
    pub max_tokens: u64,
}

impl BatchLine {
    /// The prompt to sign: always token ids. Chat and text requests need the SKU's tokenizer;
    /// token ids are checked by it when one is given.
    pub fn token_prompt(&self, tokenizer: Option<&dyn Tokenize>) -> Result<Prompt, OpenAiError> {
        let at = |reason: String| err(self.line, reason);
        let ids = match (&self.request, tokenizer) {
            (Request::Tokens(ids), None) => ids.clone(),
            (Request::Tokens(ids), Some(t)) => {
                t.check(ids).map_err(at)?;
                ids.clone()
            }
            (Request::Text(s), Some(t)) => t.text(s).map_err(at)?,
            (Request::Chat(m), Some(t)) => t.chat(m).map_err(at)?,
            (Request::Text(_) | Request::Chat(_), None) => {
                return Err(at(format!(
                    "{:?} needs the tokenizer of model {:?} to be tokenized before signing",
                    self.custom_id, self.model
                )))
            }
        };
        Ok(Prompt::Tokens(ids))
    }
}

/// Lines of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobGroup {
    /// Model of every line.
    pub model: String,
    /// Decode length of every line.
    pub max_tokens: u64,
    /// The lines, in file order (prompt i of the job is `lines[i]`).
    pub lines: Vec<BatchLine>,
}

fn err(line: usize, reason: impl Into<String>) -> OpenAiError {
    OpenAiError {
        line,
        reason: reason.into(),
    }
}

fn content_text(line: usize, c: &Value) -> Result<String, OpenAiError> {
    match c {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => out.push_str(t),
                    _ => return Err(err(line, "only text content parts are supported")),
                }
            }
            Ok(out)
        }
        _ => Err(err(
            line,
            "message content must be a string or a list of text parts",
        )),
    }
}

fn parse_line(n: usize, text: &str, default_max_tokens: u64) -> Result<BatchLine, OpenAiError> {
    let v: Value = serde_json::from_str(text).map_err(|e| err(n, format!("not JSON: {e}")))?;
    let custom_id = v
        .get("custom_id")
        .and_then(Value::as_str)
        .ok_or_else(|| err(n, "missing string custom_id"))?
        .to_string();
    if let Some(m) = v.get("method") {
        if m.as_str() != Some("POST") {
            return Err(err(n, "method must be POST"));
        }
    }
    let url = v
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| err(n, "missing url"))?;
    let body = v.get("body").ok_or_else(|| err(n, "missing body"))?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| err(n, "missing body.model"))?
        .to_string();
    let max_tokens = match body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
    {
        None | Some(Value::Null) => default_max_tokens,
        Some(x) => x
            .as_u64()
            .filter(|t| *t > 0)
            .ok_or_else(|| err(n, "max_tokens must be a positive integer"))?,
    };
    let request = match url {
        "/v1/chat/completions" => {
            let msgs = body
                .get("messages")
                .and_then(Value::as_array)
                .filter(|m| !m.is_empty())
                .ok_or_else(|| err(n, "chat request needs a non-empty messages list"))?;
            let messages = msgs
                .iter()
                .map(|m| {
                    let role = m
                        .get("role")
                        .and_then(Value::as_str)
                        .ok_or_else(|| err(n, "message without role"))?;
                    let content = content_text(n, m.get("content").unwrap_or(&Value::Null))?;
                    Ok(ChatMessage {
                        role: role.to_string(),
                        content,
                    })
                })
                .collect::<Result<Vec<_>, OpenAiError>>()?;
            Request::Chat(messages)
        }
        "/v1/completions" => match body.get("prompt") {
            Some(Value::String(s)) if !s.is_empty() => Request::Text(s.clone()),
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_u64) => {
                Request::Tokens(
                    a.iter()
                        .map(|x| {
                            x.as_u64()
                                .and_then(|t| u32::try_from(t).ok())
                                .ok_or_else(|| err(n, "token id out of range"))
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                Request::Text(a[0].as_str().unwrap_or_default().to_string())
            }
            _ => {
                return Err(err(
                    n,
                    "completion request needs a non-empty prompt (string or token ids)",
                ))
            }
        },
        other => return Err(err(n, format!("unsupported url {other:?}"))),
    };
    Ok(BatchLine {
        line: n,
        custom_id,
        model,
        request,
        max_tokens,
    })
}

/// Parses a whole JSONL file (blank lines skipped). `custom_id`s must be unique.
pub fn parse_batch(text: &str, default_max_tokens: u64) -> Result<Vec<BatchLine>, OpenAiError> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line = parse_line(i + 1, l, default_max_tokens)?;
        if !ids.insert(line.custom_id.clone()) {
            return Err(err(
                i + 1,
                format!("duplicate custom_id {:?}", line.custom_id),
            ));
        }
        out.push(line);
    }
    if out.is_empty() {
        return Err(err(0, "the file holds no request"));
    }
    Ok(out)
}

/// Groups lines into jobs by (model, max_tokens), first appearance first, each job at most
/// `max_prompts` lines.
pub fn group_jobs(lines: Vec<BatchLine>, max_prompts: usize) -> Vec<JobGroup> {
    let max_prompts = max_prompts.max(1);
    let mut groups: Vec<JobGroup> = Vec::new();
    for l in lines {
        match groups.iter_mut().find(|g| {
            g.model == l.model && g.max_tokens == l.max_tokens && g.lines.len() < max_prompts
        }) {
            Some(g) => g.lines.push(l),
            None => groups.push(JobGroup {
                model: l.model.clone(),
                max_tokens: l.max_tokens,
                lines: vec![l],
            }),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"llama3-8b","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":16}}
{"custom_id":"b","method":"POST","url":"/v1/completions","body":{"model":"llama3-8b","prompt":"Once upon","max_tokens":16}}

{"custom_id":"c","method":"POST","url":"/v1/completions","body":{"model":"llama3-8b","prompt":[1,2,3]}}
{"custom_id":"d","method":"POST","url":"/v1/completions","body":{"model":"qwen","prompt":"x","max_tokens":16}}
"#;

    #[test]
    fn parses_chat_completion_and_token_prompts() {
        let lines = parse_batch(FILE, 32).unwrap();
        assert_eq!(lines.len(), 4);
        let msg = |role: &str, content: &str| ChatMessage {
            role: role.into(),
            content: content.into(),
        };
        assert_eq!(
            lines[0].request,
            Request::Chat(vec![msg("system", "Be brief."), msg("user", "Hi")])
        );
        assert_eq!(lines[1].request, Request::Text("Once upon".into()));
        assert_eq!(
            (lines[2].request.clone(), lines[2].max_tokens, lines[2].line),
            (Request::Tokens(vec![1, 2, 3]), 32, 4)
        );
        let groups = group_jobs(lines, 100);
        let shape: Vec<(String, u64, Vec<String>)> = groups
            .iter()
            .map(|g| {
                (
                    g.model.clone(),
                    g.max_tokens,
                    g.lines.iter().map(|l| l.custom_id.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("llama3-8b".into(), 16, vec!["a".into(), "b".into()]),
                ("llama3-8b".into(), 32, vec!["c".into()]),
                ("qwen".into(), 16, vec!["d".into()]),
            ]
        );
        assert_eq!(group_jobs(parse_batch(FILE, 32).unwrap(), 1).len(), 4);
    }

    /// A stand-in tokenizer for the dispatch logic only (one id per byte, chat as
    /// role bytes then content bytes); the real tokenizer and chat template are tested in
    /// verinfer-prover's tests/chat.rs and the CLI.
    struct Bytes;
    impl Tokenize for Bytes {
        fn text(&self, text: &str) -> Result<Vec<u32>, String> {
            Ok(text.bytes().map(u32::from).collect())
        }
        fn chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, String> {
            Ok(messages
                .iter()
                .flat_map(|m| m.role.bytes().chain(m.content.bytes()))
                .map(u32::from)
                .collect())
        }
        fn check(&self, ids: &[u32]) -> Result<(), String> {
            match ids.iter().find(|&&t| t >= 256) {
                Some(t) => Err(format!("token id {t} ≥ vocabulary 256")),
                None => Ok(()),
            }
        }
    }

    #[test]
    fn every_signed_prompt_is_token_ids() {
        let lines = parse_batch(FILE, 32).unwrap();
        let signed: Vec<Prompt> = lines
            .iter()
            .map(|l| l.token_prompt(Some(&Bytes)).unwrap())
            .collect();
        assert_eq!(
            signed[1],
            Prompt::Tokens("Once upon".bytes().map(u32::from).collect())
        );
        assert_eq!(signed[2], Prompt::Tokens(vec![1, 2, 3]));
        assert!(signed.iter().all(|p| matches!(p, Prompt::Tokens(_))));
        // Text and chat cannot be signed without the tokenizer; token ids can.
        let e = lines[0].token_prompt(None).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("tokenizer"), "{e}");
        assert!(lines[1].token_prompt(None).is_err());
        assert_eq!(
            lines[2].token_prompt(None).unwrap(),
            Prompt::Tokens(vec![1, 2, 3])
        );
        // Token ids the model cannot embed are refused with their line.
        let big = parse_batch(
            "{\"custom_id\":\"x\",\"url\":\"/v1/completions\",\"body\":{\"model\":\"m\",\"prompt\":[5,300]}}",
            8,
        )
        .unwrap();
        let e = big[0].token_prompt(Some(&Bytes)).unwrap_err();
        assert_eq!((e.line, e.reason.contains("300")), (1, true), "{e}");
    }

    #[test]
    fn bad_lines_name_their_line_and_fault() {
        let bad = |s: &str| parse_batch(s, 8).unwrap_err();
        assert_eq!(bad("nope").line, 1);
        let e = bad("{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":{\"model\":\"m\"}}");
        assert!(e.reason.contains("unsupported url"), "{e}");
        let e = bad("{\"custom_id\":\"a\",\"url\":\"/v1/completions\",\"body\":{\"model\":\"m\",\"prompt\":\"\"}}");
        assert!(e.reason.contains("non-empty prompt"), "{e}");
        let dup = "{\"custom_id\":\"a\",\"url\":\"/v1/completions\",\"body\":{\"model\":\"m\",\"prompt\":\"x\"}}\n";
        let e = bad(&format!("{dup}{dup}"));
        assert_eq!((e.line, e.reason.contains("duplicate")), (2, true));
        let e =
            bad("{\"custom_id\":\"a\",\"method\":\"GET\",\"url\":\"/v1/completions\",\"body\":{}}");
        assert!(e.reason.contains("POST"));
        assert!(parse_batch("\n\n", 8).is_err());
    }
}
