//! CLIP's byte-level BPE tokenizer (OpenAI `SimpleTokenizer`, as vendored by ChangeCLIP).
//!
//! Text is cleaned ([`super::text_cleaning`]), split by CLIP's pre-tokenisation pattern, each
//! piece's UTF-8 bytes are mapped to printable characters and merged by BPE rank. A literal
//! `<|startoftext|>`/`<|endoftext|>` in the text is the special token itself, as in OpenAI's and
//! ChangeCLIP's tokenizers (open_clip 3 instead treats `<end_of_text>` as special; changedet
//! follows ChangeCLIP, whose prompts these ids feed).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use regex::Regex;

use super::text_cleaning;

pub const START_OF_TEXT: i64 = 49406;
pub const END_OF_TEXT: i64 = 49407;
pub const VOCAB_SIZE: usize = 49408;
/// Standard CLIP context; ChangeCLIP tokenises its prompts at 64 and adds 13 learned tokens.
pub const CONTEXT_LENGTH: usize = 77;
pub const VOCAB_FILE_NAME: &str = "bpe_simple_vocab_16e6.txt.gz";
/// Environment variable naming the vocabulary file.
pub const VOCAB_ENV: &str = "CHANGEDET_CLIP_VOCAB";
/// Merges used by CLIP: the file's lines 1..=48894 (49408 ids − 2·256 byte symbols − 2 specials).
const MERGE_COUNT: usize = VOCAB_SIZE - 512 - 2;

#[derive(Clone, Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(
        "the CLIP BPE vocabulary '{VOCAB_FILE_NAME}' was not found (looked at: {looked}). `scripts/setup.sh` \
         caches it in .cache/; otherwise take `open_clip/{VOCAB_FILE_NAME}` from the open_clip_torch wheel \
         (`pip download open_clip_torch --no-deps`, it is a zip) and pass its path with --vocab or {VOCAB_ENV}"
    )]
    VocabularyNotFound { looked: String },
    #[error("{path}: not a CLIP BPE vocabulary: {message}")]
    BadVocabulary { path: PathBuf, message: String },
    #[error("'{text}' is {len} tokens long with start and end, more than the context length {context}")]
    TooLong { text: String, len: usize, context: usize },
}

/// Pieces the BPE runs on: specials, English contractions, letter runs, single digits, and
/// runs of anything else that is not whitespace.
static PRE_TOKENIZE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+").expect("static regex")
});

pub struct Tokenizer {
    encoder: HashMap<String, i64>,
    ranks: HashMap<(String, String), usize>,
    byte_symbols: [char; 256],
    cache: Mutex<HashMap<String, Vec<i64>>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("vocabulary", &self.encoder.len()).field("merges", &self.ranks.len()).finish()
    }
}

/// GPT-2's reversible byte → printable character table.
fn byte_symbols() -> [char; 256] {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut table = ['\0'; 256];
    let mut next_unused = 256;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).expect("byte")
        } else {
            next_unused += 1;
            char::from_u32(next_unused - 1).expect("below 0x200")
        };
    }
    table
}

impl Tokenizer {
    /// Where the vocabulary is looked for when no path is given: `$CHANGEDET_CLIP_VOCAB`, then the
    /// copy `scripts/setup.sh` caches in the workspace's `.cache/`, then the copy among the CLIP
    /// goldens in the `shared/` folder beside the workspace (so that tests need no set-up).
    pub fn default_vocabulary_paths() -> Vec<PathBuf> {
        let mut paths = Vec::new();
        if let Some(p) = std::env::var_os(VOCAB_ENV) {
            paths.push(PathBuf::from(p));
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        paths.push(workspace.join(".cache").join(VOCAB_FILE_NAME));
        paths.push(workspace.join("../shared/golden/clip").join(VOCAB_FILE_NAME));
        paths
    }

    /// The tokenizer of the default vocabulary ([`Self::find`] without a path), loaded once per
    /// process and shared.
    pub fn shared() -> Result<Arc<Tokenizer>, TokenizerError> {
        static SHARED: OnceLock<Result<Arc<Tokenizer>, TokenizerError>> = OnceLock::new();
        SHARED.get_or_init(|| Tokenizer::find(None).map(Arc::new)).clone()
    }

    /// Loads `path`, or the first default location that exists.
    pub fn find(path: Option<&Path>) -> Result<Tokenizer, TokenizerError> {
        let candidates = match path {
            Some(p) => vec![p.to_owned()],
            None => Self::default_vocabulary_paths(),
        };
        match candidates.iter().find(|p| p.is_file()) {
            Some(p) => Self::from_file(p),
            None => Err(TokenizerError::VocabularyNotFound { looked: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ") }),
        }
    }

    /// Reads the gzipped merges file.
    pub fn from_file(path: &Path) -> Result<Tokenizer, TokenizerError> {
        let bad = |message: String| TokenizerError::BadVocabulary { path: path.to_owned(), message };
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(file).read_to_string(&mut text).map_err(|e| bad(format!("not gzipped UTF-8 text: {e}")))?;
        let merges: Vec<(String, String)> = text
            .split('\n')
            .skip(1)
            .take(MERGE_COUNT)
            .enumerate()
            .map(|(i, line)| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [a, b] => Ok((a.to_owned(), b.to_owned())),
                _ => Err(bad(format!("merge line {} is '{line}', expected two symbols", i + 2))),
            })
            .collect::<Result<_, _>>()?;
        if merges.len() != MERGE_COUNT {
            return Err(bad(format!("{} merges, CLIP needs {MERGE_COUNT}", merges.len())));
        }
        let byte_symbols = byte_symbols();
        // OpenAI lists the byte symbols printable bytes first, then the remapped ones.
        let mut symbol_order = byte_symbols;
        symbol_order.sort_by_key(|&c| (c as u32 > 0xff, c));
        let vocab = symbol_order
            .iter()
            .map(|c| c.to_string())
            .chain(symbol_order.iter().map(|c| format!("{c}</w>")))
            .chain(merges.iter().map(|(a, b)| format!("{a}{b}")))
            .chain(["<|startoftext|>".to_owned(), "<|endoftext|>".to_owned()]);
        let encoder: HashMap<String, i64> = vocab.enumerate().map(|(i, s)| (s, i as i64)).collect();
        let ranks = merges.into_iter().enumerate().map(|(i, m)| (m, i)).collect();
        Ok(Tokenizer { encoder, ranks, byte_symbols, cache: Mutex::new(HashMap::new()) })
    }

    /// BPE ids of `text`, without start/end tokens.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let cleaned = text_cleaning::clean(text);
        let mut ids = Vec::new();
        for piece in PRE_TOKENIZE.find_iter(&cleaned) {
            match piece.as_str() {
                "<|startoftext|>" => ids.push(START_OF_TEXT),
                "<|endoftext|>" => ids.push(END_OF_TEXT),
                piece => {
                    let symbols: String = piece.bytes().map(|b| self.byte_symbols[b as usize]).collect();
                    ids.extend(self.bpe(&symbols));
                }
            }
        }
        ids
    }

    /// `[SOT] + ids + [EOT]` zero-padded to `context`. Too long is an error unless `truncate`,
    /// which cuts to `context` and makes the last id EOT (CLIP's rule).
    pub fn tokenize(&self, text: &str, context: usize, truncate: bool) -> Result<Vec<i64>, TokenizerError> {
        let mut ids = Vec::with_capacity(context);
        ids.push(START_OF_TEXT);
        ids.extend(self.encode(text));
        ids.push(END_OF_TEXT);
        if ids.len() > context {
            if !truncate {
                return Err(TokenizerError::TooLong { text: text.to_owned(), len: ids.len(), context });
            }
            ids.truncate(context);
            ids[context - 1] = END_OF_TEXT;
        }
        ids.resize(context, 0);
        Ok(ids)
    }

    /// [`Self::tokenize`] for several texts, truncating: a `[texts.len(), context]` tensor.
    pub fn tokenize_batch(&self, texts: &[impl AsRef<str>], context: usize) -> tch::Tensor {
        let rows: Vec<i64> = texts.iter().flat_map(|t| self.tokenize(t.as_ref(), context, true).expect("truncating cannot fail")).collect();
        tch::Tensor::from_slice(&rows).view([texts.len() as i64, context as i64])
    }

    /// Vocabulary strings of `ids` (`</w>` marks a word end), for inspection.
    pub fn pieces(&self, ids: &[i64]) -> Vec<String> {
        let mut decoder = vec![""; self.encoder.len()];
        for (s, &i) in &self.encoder {
            decoder[i as usize] = s;
        }
        ids.iter().map(|&i| decoder.get(i as usize).copied().unwrap_or("?").to_owned()).collect()
    }

    fn bpe(&self, piece: &str) -> Vec<i64> {
        if let Some(ids) = self.cache.lock().expect("cache lock").get(piece) {
            return ids.clone();
        }
        let mut word: Vec<String> = piece.chars().map(String::from).collect();
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|pair| self.ranks.get(&(pair[0].clone(), pair[1].clone())).map(|&rank| (rank, pair[0].clone(), pair[1].clone())))
                .min();
            let Some((_, first, second)) = best else { break };
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    merged.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    merged.push(std::mem::take(&mut word[i]));
                    i += 1;
                }
            }
            word = merged;
        }
        let ids: Vec<i64> = word.iter().map(|s| self.encoder[s]).collect();
        self.cache.lock().expect("cache lock").insert(piece.to_owned(), ids.clone());
        ids
    }
}
