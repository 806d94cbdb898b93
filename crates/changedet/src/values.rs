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

/// A length or area: a finite number, zero or more (NaN would silently keep or drop everything).
pub fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(v) => Err(format!("must be a finite number of at least 0, not {v}")),
        Err(e) => Err(e.to_string()),
    }
}

/// `--precision` of `train`: fp32 or bf16.
/// `--bands`: Sentinel-2 band names in the model's order (`B04,B03,B02`), or `all` for the 13
/// bands in the order of Daudt et al.'s OSCD code.
#[derive(Debug, Clone)]
pub struct Bands(pub Vec<String>);

pub fn sentinel2_bands(text: &str) -> Result<Bands, String> {
    changedet_raster::geo::sentinel2::parse_bands(text).map(Bands).map_err(|e| e.to_string())
}
