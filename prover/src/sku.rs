//! SKU files: the quantized model, every constant table and the commitments that identify them.
//!
//! Layout: `b"VINFSKU1"`, the header length (u64 LE), the JSON [`SkuHeader`], zero padding to a
//! multiple of 64, then the data sections (each 64-byte aligned, little-endian, offsets relative
//! to the data start). Loading maps the file; nothing is re-quantized. Quantization itself
//! ([`build`]) uses floating point and is outside the committed path: its integer results are
//! what the weight root commits to.

use crate::chat::ChatTemplate;
use crate::checkpoint::Checkpoint;
use crate::config::{Arch, ModelConfig};
use crate::error::{io_err, ProverError, Result};
use crate::section::{Matrix, Proj, SectionId};
use alloy_primitives::{keccak256, B256};
use memmap2::Mmap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use verinfer_primitives::arith;
use verinfer_primitives::merkle::{hash_leaf, hash_node};
use verinfer_primitives::MerkleTree;

const MAGIC: &[u8; 8] = b"VINFSKU1";
const ALIGN: usize = 64;
/// Version of the SKU file layout (not of the arithmetic).
pub const FORMAT_VERSION: u32 = 1;

/// The integer-relevant configuration of a SKU (hashed into its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuConfig {
    pub arch: Arch,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Rows of the embedding and lm_head (padded vocabulary).
    pub vocab: usize,
    /// Token ids below this are real tokens; argmax never picks one at or above it.
    pub valid_vocab: usize,
    /// Longest sequence (prompt + generated) the RoPE table covers.
    pub max_seq: usize,
    /// `round(rms_norm_eps · 2^32)`.
    pub eps_q32: u64,
    /// The softmax constant `C` (see the arithmetic spec).
    pub softmax_c: u64,
    /// Qwen2-style q/k/v biases present.
    pub qkv_bias: bool,
    pub eos_ids: Vec<u32>,
    pub bos_id: Option<u32>,
}

impl SkuConfig {
    /// Canonical bytes: every field as 8 big-endian bytes in declaration order (arch: 0 Llama,
    /// 1 Qwen2; qkv_bias: 0/1; bos_id: 2^32 when absent), then the EOS ids count and ids.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut fields: Vec<u64> = vec![
            match self.arch {
                Arch::Llama => 0,
                Arch::Qwen2 => 1,
            },
            self.hidden as u64,
            self.intermediate as u64,
            self.layers as u64,
            self.heads as u64,
            self.kv_heads as u64,
            self.head_dim as u64,
            self.vocab as u64,
            self.valid_vocab as u64,
            self.max_seq as u64,
            self.eps_q32,
            self.softmax_c,
            self.qkv_bias as u64,
            self.bos_id.map_or(1 << 32, |b| b as u64),
            self.eos_ids.len() as u64,
        ];
        fields.extend(self.eos_ids.iter().map(|&e| e as u64));
        fields.iter().flat_map(|f| f.to_be_bytes()).collect()
    }

    /// keccak256 of [`Self::canonical_bytes`].
    pub fn hash(&self) -> B256 {
        keccak256(self.canonical_bytes())
    }

    /// Output width of q_proj.
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Output width of k_proj / v_proj.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// One data section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub name: String,
    /// Element type: `i8`, `u32`, `i32` or `bytes`.
    pub dtype: String,
    pub rows: usize,
    pub cols: usize,
    pub offset: usize,
    pub len: usize,
    /// Commitment of the section (rows root, vector root or table root; zero for `bytes`).
    pub root: B256,
}

/// The JSON header of a SKU file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuHeader {
    pub format_version: u32,
    pub spec_version: u32,
    pub config: SkuConfig,
    pub sku_id: B256,
    pub weight_root: B256,
    pub tokenizer_hash: B256,
    pub config_hash: B256,
    /// Where it was built from (informational, not hashed).
    pub source: String,
    pub sections: Vec<Section>,
}

enum Backing {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// A loaded SKU (memory-mapped file or in-memory bytes).
pub struct Sku {
    header: SkuHeader,
    backing: Backing,
    data_start: usize,
    path: PathBuf,
}

impl std::fmt::Debug for Sku {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sku")
            .field("sku_id", &self.header.sku_id)
            .field("path", &self.path)
            .finish()
    }
}

/// Reinterprets bytes as int8 (same size and alignment).
pub(crate) fn as_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have identical size and alignment and every bit pattern is valid.
    unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<i8>(), b.len()) }
}

fn sku_err(path: &Path, reason: impl Into<String>) -> ProverError {
    ProverError::SkuFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The 4-byte little-endian words of a section.
fn le_words(b: &[u8]) -> impl Iterator<Item = [u8; 4]> + '_ {
    b.chunks_exact(4).map(|w| [w[0], w[1], w[2], w[3]])
}

/// Every section a SKU of config `c` must have, with its shape (rows, cols).
fn expected_sections(c: &SkuConfig) -> Vec<(SectionId, usize, usize)> {
    let mut want = Vec::new();
    let mut matrix = |m: Matrix, n: usize, k: usize| {
        want.push((SectionId::Weights(m), n, k));
        want.push((SectionId::Scales(m), 1, n));
    };
    for l in 0..c.layers {
        for p in Proj::ALL {
            let (n, k) = proj_shape(c, p);
            matrix(Matrix::layer(l, p), n, k);
        }
    }
    matrix(Matrix::Embed, c.vocab, c.hidden);
    matrix(Matrix::LmHead, c.vocab, c.hidden);
    if c.qkv_bias {
        for l in 0..c.layers {
            for p in Proj::BIASED {
                want.push((SectionId::Bias { layer: l, proj: p }, 1, proj_shape(c, p).0));
            }
        }
    }
    want.push((SectionId::Exp2, 1, arith::EXP2_LEN));
    want.push((SectionId::Sigmoid, 1, arith::SIGMOID_LEN));
    want.push((SectionId::Rope, c.max_seq, c.head_dim));
    want
}

/// (output channels, input width) of a projection.
fn proj_shape(c: &SkuConfig, p: Proj) -> (usize, usize) {
    match p {
        Proj::Q => (c.q_dim(), c.hidden),
        Proj::K | Proj::V => (c.kv_dim(), c.hidden),
        Proj::O => (c.hidden, c.q_dim()),
        Proj::Gate | Proj::Up => (c.intermediate, c.hidden),
        Proj::Down => (c.hidden, c.intermediate),
    }
}

/// Names of the seven matrices of a layer, in weight-root order.
pub const LAYER_MATRICES: [&str; 7] = ["q", "k", "v", "o", "gate", "up", "down"];

impl Sku {
    /// Maps a SKU file and checks its header and section bounds (not the roots: see
    /// [`Sku::verify`]).
    pub fn load(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        // SAFETY: SKU files are immutable once written; the map lives as long as the Sku.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        Self::from_backing(Backing::Mapped(map), path)
    }

    /// A SKU from the bytes of a SKU file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_backing(Backing::Owned(bytes), Path::new("<memory>"))
    }

    fn from_backing(backing: Backing, path: &Path) -> Result<Self> {
        let bytes: &[u8] = match &backing {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        };
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(sku_err(path, "not a SKU file (bad magic)"));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&bytes[8..16]);
        let hlen = u64::from_le_bytes(len8) as usize;
        let hend = 16usize
            .checked_add(hlen)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| sku_err(path, "header length past the end"))?;
        let header: SkuHeader = serde_json::from_slice(&bytes[16..hend])
            .map_err(|e| sku_err(path, format!("bad header: {e}")))?;
        if header.format_version != FORMAT_VERSION {
            return Err(sku_err(
                path,
                format!("format version {} unsupported", header.format_version),
            ));
        }
        if header.spec_version != arith::SPEC_VERSION {
            return Err(sku_err(
                path,
                format!(
                    "arithmetic spec version {} (this build implements {})",
                    header.spec_version,
                    arith::SPEC_VERSION
                ),
            ));
        }
        let data_start = hend.div_ceil(ALIGN) * ALIGN;
        for s in &header.sections {
            let end = data_start
                .checked_add(s.offset)
                .and_then(|o| o.checked_add(s.len));
            if end.is_none_or(|e| e > bytes.len()) {
                return Err(sku_err(
                    path,
                    format!("section {} extends past the end of the file", s.name),
                ));
            }
            let elem = match s.dtype.as_str() {
                "i8" | "bytes" => 1,
                "u32" | "i32" => 4,
                other => {
                    return Err(sku_err(
                        path,
                        format!("section {} has unknown dtype {other}", s.name),
                    ))
                }
            };
            if s.dtype != "bytes" && s.rows * s.cols * elem != s.len {
                return Err(sku_err(
                    path,
                    format!("section {} size does not match its shape", s.name),
                ));
            }
        }
        let sku = Sku {
            header,
            backing,
            data_start,
            path: path.to_path_buf(),
        };
        sku.check_shapes()?;
        Ok(sku)
    }

    fn check_shapes(&self) -> Result<()> {
        for (id, rows, cols) in expected_sections(&self.header.config) {
            let s = self.section_of(id)?;
            if (s.rows, s.cols) != (rows, cols) {
                return Err(sku_err(
                    &self.path,
                    format!(
                        "section {id} is {}x{}, expected {rows}x{cols}",
                        s.rows, s.cols
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The header.
    pub fn header(&self) -> &SkuHeader {
        &self.header
    }

    /// The configuration.
    pub fn config(&self) -> &SkuConfig {
        &self.header.config
    }

    /// The SKU id.
    pub fn id(&self) -> B256 {
        self.header.sku_id
    }

    fn bytes(&self) -> &[u8] {
        match &self.backing {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }

    /// Section metadata by name.
    pub fn section(&self, name: &str) -> Result<&Section> {
        self.header
            .sections
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| sku_err(&self.path, format!("section {name} missing")))
    }

    /// Section metadata by id.
    pub fn section_of(&self, id: SectionId) -> Result<&Section> {
        self.section(&id.to_string())
    }

    /// Raw bytes of a section by id.
    pub fn data(&self, id: SectionId) -> Result<&[u8]> {
        self.section_bytes(&id.to_string())
    }

    /// The int8 weights of a matrix (row-major, rows = output channels).
    pub fn weights(&self, m: Matrix) -> Result<&[i8]> {
        Ok(as_i8(self.data(SectionId::Weights(m))?))
    }

    /// The per-output-channel Q32 scales of a matrix.
    pub fn scales(&self, m: Matrix) -> Result<Vec<u32>> {
        self.u32s(SectionId::Scales(m))
    }

    /// A `u32` section (scales, the EXP2 and SIGMOID tables) by id.
    pub fn u32s(&self, id: SectionId) -> Result<Vec<u32>> {
        Ok(le_words(self.data(id)?).map(u32::from_le_bytes).collect())
    }

    /// An `i32` section (biases, the RoPE table) by id.
    pub fn i32s(&self, id: SectionId) -> Result<Vec<i32>> {
        Ok(le_words(self.data(id)?).map(i32::from_le_bytes).collect())
    }

    /// The model's chat template, if the SKU carries one (see [`SectionId::ChatTemplate`]).
    pub fn chat_template(&self) -> Result<Option<ChatTemplate>> {
        let Ok(bytes) = self.data(SectionId::ChatTemplate) else {
            return Ok(None);
        };
        serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| sku_err(&self.path, format!("bad chat_template section: {e}")))
    }

    /// The leaves of the weight root, in order (what an L1 opening proves a matrix, bias or
    /// table root against).
    pub fn weight_leaves(&self) -> Result<Vec<B256>> {
        weight_leaves(&self.header.config, &self.header.sections)
    }

    /// Raw bytes of a section.
    pub fn section_bytes(&self, name: &str) -> Result<&[u8]> {
        let s = self.section(name)?;
        let start = self.data_start + s.offset;
        Ok(&self.bytes()[start..start + s.len])
    }

    /// An int8 matrix section (row-major, rows = output channels).
    pub fn matrix(&self, name: &str) -> Result<&[i8]> {
        Ok(as_i8(self.section_bytes(&format!("{name}.w"))?))
    }

    /// A `u32` vector section (weight scales, tables).
    pub fn vec_u32(&self, name: &str) -> Result<Vec<u32>> {
        Ok(le_words(self.section_bytes(name)?)
            .map(u32::from_le_bytes)
            .collect())
    }

    /// An `i32` vector or table section.
    pub fn vec_i32(&self, name: &str) -> Result<Vec<i32>> {
        Ok(le_words(self.section_bytes(name)?)
            .map(i32::from_le_bytes)
            .collect())
    }

    /// The embedded `tokenizer.json`, if the SKU has one.
    pub fn tokenizer_json(&self) -> Option<&[u8]> {
        self.data(SectionId::Tokenizer)
            .ok()
            .filter(|b| !b.is_empty())
    }

    /// The tokenizer, if the SKU has one.
    pub fn tokenizer(&self) -> Result<Option<tokenizers::Tokenizer>> {
        match self.tokenizer_json() {
            None => Ok(None),
            Some(b) => {
                tokenizers::Tokenizer::from_bytes(b)
                    .map(Some)
                    .map_err(|e| ProverError::Tokenizer {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Recomputes every root, the weight root and the SKU id from the data and compares them
    /// with the header.
    pub fn verify(&self) -> Result<()> {
        for s in &self.header.sections {
            let root = section_root(s, self.section_bytes(&s.name)?);
            if root != s.root {
                return Err(sku_err(
                    &self.path,
                    format!("section {} root mismatch", s.name),
                ));
            }
        }
        let wr = weight_root(&self.header.config, &self.header.sections)?;
        if wr != self.header.weight_root {
            return Err(sku_err(&self.path, "weight root mismatch"));
        }
        let tok = self.tokenizer_json().map_or(B256::ZERO, keccak256);
        if tok != self.header.tokenizer_hash || self.header.config.hash() != self.header.config_hash
        {
            return Err(sku_err(&self.path, "tokenizer or config hash mismatch"));
        }
        if sku_id(wr, tok, self.header.config_hash) != self.header.sku_id {
            return Err(sku_err(&self.path, "SKU id mismatch"));
        }
        Ok(())
    }
}

/// `keccak256(weight_root ‖ tokenizer_hash ‖ SPEC_VERSION (4 BE bytes) ‖ config_hash)`.
pub fn sku_id(weight_root: B256, tokenizer_hash: B256, config_hash: B256) -> B256 {
    let mut b = Vec::with_capacity(100);
    b.extend_from_slice(weight_root.as_slice());
    b.extend_from_slice(tokenizer_hash.as_slice());
    b.extend_from_slice(&arith::SPEC_VERSION.to_be_bytes());
    b.extend_from_slice(config_hash.as_slice());
    keccak256(b)
}

/// Commitment of one section (see docs/ARITHMETIC.md §5).
fn section_root(s: &Section, bytes: &[u8]) -> B256 {
    let to_be = |chunk: &[u8]| -> Vec<u8> {
        chunk
            .chunks_exact(4)
            .flat_map(|b| [b[3], b[2], b[1], b[0]])
            .collect()
    };
    match s.dtype.as_str() {
        // Matrix rows: one leaf per output channel, its int8 bytes as they are.
        "i8" => {
            let leaves: Vec<B256> = bytes.par_chunks(s.cols.max(1)).map(hash_leaf).collect();
            MerkleTree::from_leaf_hashes(leaves).root()
        }
        // The RoPE table: one leaf per position.
        _ if s.name == SectionId::Rope.to_string() => {
            let leaves: Vec<B256> = bytes
                .par_chunks(s.cols * 4)
                .map(|r| hash_leaf(&to_be(r)))
                .collect();
            MerkleTree::from_leaf_hashes(leaves).root()
        }
        // Vectors: chunks of VEC_CHUNK elements, big-endian.
        "u32" | "i32" => {
            let leaves: Vec<B256> = bytes
                .chunks(arith::VEC_CHUNK * 4)
                .map(|c| hash_leaf(&to_be(c)))
                .collect();
            MerkleTree::from_leaf_hashes(leaves).root()
        }
        _ => B256::ZERO,
    }
}

/// The weight root over the sections' roots in the documented order.
fn weight_root(c: &SkuConfig, sections: &[Section]) -> Result<B256> {
    Ok(MerkleTree::from_leaf_hashes(weight_leaves(c, sections)?).root())
}

/// The leaves of the weight root (docs/ARITHMETIC.md §5): per layer the q, k, v, o, gate, up,
/// down matrix roots (then the q, k, v bias roots for Qwen2), the embedding and lm_head matrix
/// roots, the EXP2, SIGMOID and ROPE table roots.
fn weight_leaves(c: &SkuConfig, sections: &[Section]) -> Result<Vec<B256>> {
    let root = |id: SectionId| -> Result<B256> {
        let name = id.to_string();
        sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.root)
            .ok_or_else(|| sku_err(Path::new("<sku>"), format!("section {name} missing")))
    };
    let matrix = |m: Matrix| -> Result<B256> {
        Ok(hash_node(
            &root(SectionId::Weights(m))?,
            &root(SectionId::Scales(m))?,
        ))
    };
    let mut leaves = Vec::new();
    for layer in 0..c.layers {
        for proj in Proj::ALL {
            leaves.push(matrix(Matrix::layer(layer, proj))?);
        }
        if c.qkv_bias {
            for proj in Proj::BIASED {
                leaves.push(root(SectionId::Bias { layer, proj })?);
            }
        }
    }
    leaves.push(matrix(Matrix::Embed)?);
    leaves.push(matrix(Matrix::LmHead)?);
    for t in [SectionId::Exp2, SectionId::Sigmoid, SectionId::Rope] {
        leaves.push(root(t)?);
    }
    Ok(leaves)
}

/// Options of [`build`].
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Cap of the sequence length (RoPE table rows); the model's max_position_embeddings is the
    /// other cap.
    pub max_seq: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { max_seq: 4096 }
    }
}

/// Per-output-channel symmetric int8 quantization (float; outside the committed path).
/// `fold` multiplies column `k` first (an RMSNorm gain).
/// `Sw[j] = clamp(round(max_k |W'[j][k]| / 127 · 2^32), 1, 2^32 − 1)`,
/// `Wq[j][k] = clamp(round(W'[j][k] · 2^32 / Sw[j]), −127, 127)`.
pub fn quantize_matrix(w: &[f32], n: usize, k: usize, fold: Option<&[f32]>) -> (Vec<i8>, Vec<u32>) {
    let rows: Vec<(Vec<i8>, u32)> = (0..n)
        .into_par_iter()
        .map(|j| {
            let row: Vec<f64> = (0..k)
                .map(|c| w[j * k + c] as f64 * fold.map_or(1.0, |f| f[c] as f64))
                .collect();
            let amax = row.iter().fold(0f64, |m, v| m.max(v.abs()));
            let sw = (amax / 127.0 * 4294967296.0)
                .round()
                .clamp(1.0, u32::MAX as f64) as u32;
            let inv = 4294967296.0 / sw as f64;
            let q = row
                .iter()
                .map(|v| (v * inv).round().clamp(-127.0, 127.0) as i8)
                .collect();
            (q, sw)
        })
        .collect();
    let mut q = Vec::with_capacity(n * k);
    let mut s = Vec::with_capacity(n);
    for (r, sw) in rows {
        q.extend_from_slice(&r);
        s.push(sw);
    }
    (q, s)
}

struct Writer {
    data: Vec<u8>,
    sections: Vec<Section>,
}

impl Writer {
    fn push(&mut self, id: SectionId, dtype: &str, rows: usize, cols: usize, bytes: Vec<u8>) {
        let pad = self.data.len().div_ceil(ALIGN) * ALIGN - self.data.len();
        self.data.extend(std::iter::repeat_n(0u8, pad));
        let mut s = Section {
            name: id.to_string(),
            dtype: dtype.to_string(),
            rows,
            cols,
            offset: self.data.len(),
            len: bytes.len(),
            root: B256::ZERO,
        };
        s.root = section_root(&s, &bytes);
        self.data.extend_from_slice(&bytes);
        self.sections.push(s);
    }
    fn push_i8(&mut self, id: SectionId, rows: usize, cols: usize, v: &[i8]) {
        self.push(id, "i8", rows, cols, v.iter().map(|&x| x as u8).collect());
    }
    fn push_matrix(&mut self, m: Matrix, n: usize, k: usize, (q, s): (Vec<i8>, Vec<u32>)) {
        self.push_i8(SectionId::Weights(m), n, k, &q);
        self.push_u32(SectionId::Scales(m), 1, n, &s);
    }
    fn push_u32(&mut self, id: SectionId, rows: usize, cols: usize, v: &[u32]) {
        self.push(
            id,
            "u32",
            rows,
            cols,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        );
    }
    fn push_i32(&mut self, id: SectionId, rows: usize, cols: usize, v: &[i32]) {
        self.push(
            id,
            "i32",
            rows,
            cols,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        );
    }
}

/// Quantizes a checkpoint into the bytes of a SKU file.
pub fn build(ck: &Checkpoint, opts: &BuildOptions) -> Result<Vec<u8>> {
    let mc: &ModelConfig = ck.config();
    let tok_bytes = match ck.tokenizer_path() {
        Some(p) => Some(std::fs::read(&p).map_err(io_err(&p))?),
        None => None,
    };
    let valid_vocab = match &tok_bytes {
        Some(b) => {
            let t = tokenizers::Tokenizer::from_bytes(b).map_err(|e| ProverError::Tokenizer {
                path: ck.dir().join("tokenizer.json"),
                reason: e.to_string(),
            })?;
            // A tokenizer with ids the model has no embedding row for would produce prompts
            // the engine cannot run: refuse the pair.
            let n = t.get_vocab_size(true);
            if n > mc.vocab_size {
                return Err(ProverError::Tokenizer {
                    path: ck.dir().join("tokenizer.json"),
                    reason: format!(
                        "the tokenizer has {n} tokens, more than the model's vocab_size {}",
                        mc.vocab_size
                    ),
                });
            }
            n
        }
        None => mc.vocab_size,
    };
    let cfg = SkuConfig {
        arch: mc.arch,
        hidden: mc.hidden_size,
        intermediate: mc.intermediate_size,
        layers: mc.num_hidden_layers,
        heads: mc.num_attention_heads,
        kv_heads: mc.num_key_value_heads,
        head_dim: mc.head_dim,
        vocab: mc.vocab_size,
        valid_vocab,
        max_seq: opts.max_seq.min(mc.max_position_embeddings).max(1),
        eps_q32: ((mc.rms_norm_eps * 4294967296.0).round() as u64).max(1),
        softmax_c: arith::softmax_constant(mc.head_dim),
        qkv_bias: ck.has_qkv_bias(),
        eos_ids: mc.eos_token_ids.clone(),
        bos_id: mc.bos_token_id,
    };
    let h = cfg.hidden;
    let mut w = Writer {
        data: Vec::new(),
        sections: Vec::new(),
    };
    for l in 0..cfg.layers {
        let p = format!("model.layers.{l}");
        let input_layernorm = ck.tensor_f32(&format!("{p}.input_layernorm.weight"), &[h])?;
        let post_attention_layernorm =
            ck.tensor_f32(&format!("{p}.post_attention_layernorm.weight"), &[h])?;
        for proj in Proj::ALL {
            // The norm gain folded into the matrices that read the normalized rows.
            let fold: Option<&[f32]> = match proj {
                Proj::Q | Proj::K | Proj::V => Some(&input_layernorm),
                Proj::Gate | Proj::Up => Some(&post_attention_layernorm),
                Proj::O | Proj::Down => None,
            };
            let (n, k) = proj_shape(&cfg, proj);
            let wf = ck.tensor_f32(&format!("{p}.{}.weight", proj.hf_module()), &[n, k])?;
            w.push_matrix(
                Matrix::layer(l, proj),
                n,
                k,
                quantize_matrix(&wf, n, k, fold),
            );
        }
        if cfg.qkv_bias {
            for proj in Proj::BIASED {
                let n = proj_shape(&cfg, proj).0;
                let b = ck.tensor_f32(&format!("{p}.{}.bias", proj.hf_module()), &[n])?;
                let bq: Vec<i32> = b
                    .iter()
                    .map(|&x| {
                        (x as f64 * 65536.0)
                            .round()
                            .clamp(i32::MIN as f64, i32::MAX as f64) as i32
                    })
                    .collect();
                w.push_i32(SectionId::Bias { layer: l, proj }, 1, n, &bq);
            }
        }
    }
    let embed = ck.tensor_f32("model.embed_tokens.weight", &[cfg.vocab, h])?;
    let embed_q = quantize_matrix(&embed, cfg.vocab, h, None);
    w.push_matrix(Matrix::Embed, cfg.vocab, h, embed_q);
    let norm = ck.tensor_f32("model.norm.weight", &[h])?;
    let head = if mc.tie_word_embeddings {
        embed
    } else {
        ck.tensor_f32("lm_head.weight", &[cfg.vocab, h])?
    };
    let head_q = quantize_matrix(&head, cfg.vocab, h, Some(&norm));
    w.push_matrix(Matrix::LmHead, cfg.vocab, h, head_q);
    w.push_u32(SectionId::Exp2, 1, arith::EXP2_LEN, &arith::exp2_table());
    w.push_u32(
        SectionId::Sigmoid,
        1,
        arith::SIGMOID_LEN,
        &arith::sigmoid_table(),
    );
    let inv = mc.inv_freq();
    let rope: Vec<i32> = (0..cfg.max_seq)
        .flat_map(|p| arith::rope_table_row(p, &inv))
        .collect();
    w.push_i32(SectionId::Rope, cfg.max_seq, cfg.head_dim, &rope);
    w.push(
        SectionId::Tokenizer,
        "bytes",
        1,
        0,
        tok_bytes.clone().unwrap_or_default(),
    );
    // The chat template travels with the SKU for client-side rendering; it is not hashed into
    // the SKU id because a job signs the token ids the client rendered.
    if let Some(t) = ChatTemplate::from_dir(ck.dir())? {
        let json =
            serde_json::to_vec(&t).map_err(|e| sku_err(Path::new("<build>"), e.to_string()))?;
        w.push(SectionId::ChatTemplate, "bytes", 1, 0, json);
    }

    let weight_root = weight_root(&cfg, &w.sections)?;
    let tokenizer_hash = tok_bytes.as_deref().map_or(B256::ZERO, keccak256);
    let config_hash = cfg.hash();
    let header = SkuHeader {
        format_version: FORMAT_VERSION,
        spec_version: arith::SPEC_VERSION,
        sku_id: sku_id(weight_root, tokenizer_hash, config_hash),
        config: cfg,
        weight_root,
        tokenizer_hash,
        config_hash,
        source: ck.dir().display().to_string(),
        sections: w.sections,
    };
    let hjson =
        serde_json::to_vec(&header).map_err(|e| sku_err(Path::new("<build>"), e.to_string()))?;
    let mut out = Vec::with_capacity(16 + hjson.len() + ALIGN + w.data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(hjson.len() as u64).to_le_bytes());
    out.extend_from_slice(&hjson);
    out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    out.extend_from_slice(&w.data);
    Ok(out)
}

/// Builds a SKU from the checkpoint in `model_dir` and writes it to `out`.
pub fn build_file(model_dir: &Path, out: &Path, opts: &BuildOptions) -> Result<Sku> {
    let ck = Checkpoint::open(model_dir)?;
    let bytes = build(&ck, opts)?;
    std::fs::write(out, &bytes).map_err(io_err(out))?;
    Sku::load(out)
}
