//! The 43 tokenizer goldens (`../shared/golden/clip/tokenizer.json`): ChangeCLIP's tokenize at
//! context 77 and 64, ids compared exactly.

use std::path::Path;

use changedet_models::clip::{Tokenizer, TokenizerError};
use serde_json::Value;

fn golden_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/golden/clip"))
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array().expect("id list").iter().map(|x| x.as_i64().expect("id")).collect()
}

#[test]
fn tokenizer_matches_changeclip_on_every_golden_string() {
    let dir = golden_dir();
    let tokenizer = Tokenizer::from_file(&dir.join("bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap()).unwrap();
    let items = golden["items"].as_array().unwrap();
    assert_eq!(items.len(), 43);
    let mut failures = Vec::new();
    for item in items {
        let (name, text) = (item["name"].as_str().unwrap(), item["text"].as_str().unwrap());
        let expected_pieces = ids(&item["bpe_ids_no_special"]);
        let encoded = tokenizer.encode(text);
        if encoded != expected_pieces {
            failures.push(format!("{name}: bpe {:?} != {:?}", tokenizer.pieces(&encoded), item["bpe_pieces"]));
        }
        for context in [77, 64] {
            let expected = ids(&item[format!("changeclip_ids_ctx{context}").as_str()]);
            let got = tokenizer.tokenize(text, context, true).unwrap();
            if got != expected {
                failures.push(format!("{name}: ctx {context} ids differ"));
            }
            let too_long = expected.len() < item["n_tokens_with_sot_eot"].as_u64().unwrap() as usize;
            assert_eq!(too_long, matches!(tokenizer.tokenize(text, context, false), Err(TokenizerError::TooLong { .. })), "{name}");
        }
    }
    assert!(failures.is_empty(), "{} of 43 strings differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn missing_vocabulary_says_how_to_get_it() {
    let err = Tokenizer::find(Some(Path::new("/nonexistent/bpe.txt.gz"))).err().unwrap().to_string();
    assert!(err.contains("/nonexistent/bpe.txt.gz") && err.contains("open_clip_torch") && err.contains("--vocab"), "{err}");
}
