//! OpenAI Batch-API input (JSONL), as accepted by `verinfer job submit --file`.
//!
//! Each line is `{"custom_id": ..., "method": "POST", "url": "/v1/chat/completions" |
//! "/v1/completions", "body": {"model": ..., "messages" | "prompt": ..., "max_tokens": ...}}`.
//! Lines are grouped into jobs by (model, max_tokens), in file order, because one signed job
//! has one SKU and one decode length.
//!
//! Chat messages become one text prompt: each message as `role: content` on its own line,
//! then `assistant:`; the worker tokenizes it with the SKU's tokenizer. (A SKU-specific chat
//! template would need the tokenizer's template engine on the client; this plain rendering is
//! deterministic and documented instead.)

use std::collections::HashSet;

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

/// One request of the batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLine {
    /// The caller's id of the request, unique in the file.
    pub custom_id: String,
    /// `body.model` (a SKU name or a 0x SKU id).
    pub model: String,
    /// The prompt.
    pub prompt: Prompt,
    /// `body.max_tokens` (or the default given to the parser).
    pub max_tokens: u64,
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
    let prompt = match url {
        "/v1/chat/completions" => {
            let msgs = body
                .get("messages")
                .and_then(Value::as_array)
                .filter(|m| !m.is_empty())
                .ok_or_else(|| err(n, "chat request needs a non-empty messages list"))?;
            let mut s = String::new();
            for m in msgs {
                let role = m
                    .get("role")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err(n, "message without role"))?;
                let content = content_text(n, m.get("content").unwrap_or(&Value::Null))?;
                s.push_str(role);
                s.push_str(": ");
                s.push_str(&content);
                s.push('\n');
            }
            s.push_str("assistant:");
            Prompt::Text(s)
        }
        "/v1/completions" => match body.get("prompt") {
            Some(Value::String(s)) if !s.is_empty() => Prompt::Text(s.clone()),
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_u64) => {
                Prompt::Tokens(
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
                Prompt::Text(a[0].as_str().unwrap_or_default().to_string())
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
        custom_id,
        model,
        prompt,
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
        assert_eq!(
            lines[0].prompt,
            Prompt::Text("system: Be brief.\nuser: Hi\nassistant:".into())
        );
        assert_eq!(lines[1].prompt, Prompt::Text("Once upon".into()));
        assert_eq!(
            (lines[2].prompt.clone(), lines[2].max_tokens),
            (Prompt::Tokens(vec![1, 2, 3]), 32)
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
