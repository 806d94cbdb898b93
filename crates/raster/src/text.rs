//! Wording shared by every crate's messages.

/// `1 pair`, `3 pairs`: a count with its noun in the right number (nouns that take an `s`).
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// An error and its causes on one line, `outer: cause: root`, leaving out each cause whose text
/// the line already holds: libraries often put their source's message in their own (the image
/// crate's, GDAL's), and a plain chain would say it two or three times.
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(text.trim_end_matches('.')) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(super::count(1u32, "epoch"), "1 epoch");
        assert_eq!(super::count(0u32, "tile"), "0 tiles");
        assert_eq!(super::count(2u64, "pair"), "2 pairs");
    }

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        let png = || std::io::Error::other("Invalid PNG signature.");
        let decode = anyhow::Error::new(png()).context("Format error decoding Png: Invalid PNG signature.");
        let read = decode.context("bad.png: cannot read image");
        assert_eq!(super::error_line(read.as_ref()), "bad.png: cannot read image: Format error decoding Png: Invalid PNG signature.");
        let distinct = anyhow::Error::new(png()).context("bad.png: cannot read image");
        assert_eq!(super::error_line(distinct.as_ref()), "bad.png: cannot read image: Invalid PNG signature.");
    }
}
