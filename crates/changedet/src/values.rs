//! Parsers of option values that must be positive: a zero batch size, step budget or
//! validation interval would divide by zero or never move, so clap refuses it with the option's
//! name instead.

/// A count of at least 1.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A size in pixels or a batch size for tensors (i64), at least 1.
pub fn at_least_one_i64(text: &str) -> Result<i64, String> {
    at_least_one(text).and_then(|n| i64::try_from(n).map_err(|e| e.to_string()))
}

/// `--precision` of `train`: fp32 or bf16.
pub fn training_precision(text: &str) -> Result<changedet_models::Precision, String> {
    match text.parse()? {
        changedet_models::Precision::Fp16 => Err("fp16 training needs loss scaling, which changedet does not do: use bf16".into()),
        precision => Ok(precision),
    }
}
