//! The text clean-up CLIP applies before tokenising: `ftfy.fix_text`, HTML unescaping twice,
//! whitespace collapsing and lower-casing (OpenAI's `basic_clean` + `whitespace_clean`).
//!
//! ftfy is a large heuristic library; this is the part of its default `fix_text` that changes
//! text a user would type or a dataset would hold: HTML entities, mojibake of UTF-8 read as
//! Windows-1252/Latin-1 (one character at a time, as ftfy's `decode_inconsistent_utf8` does),
//! C1 controls read as Windows-1252, Latin ligatures, full-width characters, curly quotes,
//! control characters and NFC normalisation. Whole-text re-decoding through other legacy
//! encodings (MacRoman, cp437, …) is not attempted.

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// `whitespace_clean(basic_clean(text)).lower()`.
pub fn clean(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = htmlize::unescape(htmlize::unescape(fixed.as_str()).into_owned()).into_owned();
    collapse_whitespace(unescaped.trim()).to_lowercase()
}

fn collapse_whitespace(text: &str) -> String {
    static WHITESPACE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").expect("static regex"));
    WHITESPACE.replace_all(text, " ").trim().to_owned()
}

/// ftfy applies its fixes until the text stops changing.
fn fix_text(text: &str) -> String {
    let mut current = text.to_owned();
    for _ in 0..4 {
        let next = fix_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn fix_once(text: &str) -> String {
    // ftfy unescapes HTML itself only when the text does not look like HTML markup.
    let text = if text.contains('<') { text.to_owned() } else { htmlize::unescape(text).into_owned() };
    let text = remove_terminal_escapes(&text);
    let text = repair_utf8_mojibake(&text);
    let text: String = text.chars().map(c1_control_as_windows_1252).collect();
    let text = text.chars().flat_map(expand_latin_ligature).collect::<String>();
    let text: String = text.chars().map(narrow_full_width).collect();
    let text: String = text.chars().map(uncurl_quote).collect();
    let text: String = text.chars().filter(|&c| !is_removed_control(c)).collect();
    text.nfc().collect()
}

fn remove_terminal_escapes(text: &str) -> String {
    static ESCAPES: LazyLock<Regex> = LazyLock::new(|| Regex::new("\x1b\\[((?:\\d|;)*)([a-zA-Z])").expect("static regex"));
    ESCAPES.replace_all(text, "").into_owned()
}

/// Windows-1252's characters for bytes 0x80–0x9F ("sloppy": the five holes map to the C1
/// control of the same number, as ftfy's `sloppy-windows-1252` codec does).
const WINDOWS_1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–',
    '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

/// The byte a character stands for in sloppy Windows-1252, or in Latin-1 for the C1 controls.
fn windows_1252_byte(c: char) -> Option<u8> {
    match c as u32 {
        0..=0xff => Some(c as u8),
        _ => WINDOWS_1252_HIGH.iter().position(|&h| h == c).map(|i| 0x80 + i as u8),
    }
}

/// Replaces each run of 2–4 characters that, written back as Windows-1252 bytes, is exactly one
/// UTF-8 multi-byte character ("cafÃ©" → "café").
fn repair_utf8_mojibake(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let sequence_len = match windows_1252_byte(chars[i]) {
            Some(0xc2..=0xdf) => 2,
            Some(0xe0..=0xef) => 3,
            Some(0xf0..=0xf4) => 4,
            _ => 0,
        };
        if sequence_len > 0 && i + sequence_len <= chars.len() {
            let bytes: Option<Vec<u8>> = chars[i..i + sequence_len].iter().map(|&c| windows_1252_byte(c)).collect();
            if let Some(Ok(decoded)) = bytes.map(String::from_utf8) {
                out.push_str(&decoded);
                i += sequence_len;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn c1_control_as_windows_1252(c: char) -> char {
    match c as u32 {
        0x80..=0x9f => WINDOWS_1252_HIGH[c as usize - 0x80],
        _ => c,
    }
}

fn expand_latin_ligature(c: char) -> Vec<char> {
    let expanded = match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return vec![c],
    };
    expanded.chars().collect()
}

/// Full-width forms (U+FF01–U+FFEF) and the ideographic space become their NFKC equivalents
/// when those are a single character.
fn narrow_full_width(c: char) -> char {
    match c as u32 {
        0x3000 => ' ',
        0xff01..=0xffef => {
            let mut nfkc = std::iter::once(c).nfkc();
            match (nfkc.next(), nfkc.next()) {
                (Some(n), None) => n,
                _ => c,
            }
        }
        _ => c,
    }
}

fn uncurl_quote(c: char) -> char {
    match c {
        '\u{2bc}' | '\u{2018}'..='\u{201b}' => '\'',
        '\u{201c}'..='\u{201f}' => '"',
        _ => c,
    }
}

/// ftfy's `remove_control_chars`: C0 controls other than tab/line feed/form feed/carriage
/// return, DEL, deprecated format characters, the byte-order mark, interlinear annotations,
/// musical formatting and tag characters.
fn is_removed_control(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0x206a..=0x206f | 0xfeff | 0xfff9..=0xfffc | 0x1d173..=0x1d17a | 0xe0000..=0xe007f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mojibake_is_repaired_but_real_latin_text_is_not() {
        assert_eq!(clean("cafÃ© naÃ¯ve"), "café naïve");
        assert_eq!(clean("café Ångström ©"), "café ångström ©");
        assert_eq!(clean("â€œquotedâ€\u{9d}"), "\"quoted\"");
    }

    #[test]
    fn ligatures_full_width_and_controls() {
        assert_eq!(clean("ﬁeld\u{0007} ＡＢＣ１２"), "field abc12");
    }
}
