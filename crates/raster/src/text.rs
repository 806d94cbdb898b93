//! Wording shared by every crate's messages.

/// `1 pair`, `3 pairs`: a count with its noun in the right number (nouns that take an `s`).
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(super::count(1u32, "epoch"), "1 epoch");
        assert_eq!(super::count(0u32, "tile"), "0 tiles");
        assert_eq!(super::count(2u64, "pair"), "2 pairs");
    }
}
