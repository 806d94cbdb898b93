//! The from→to map of semantic change models, one byte per pixel: 0 where unchanged, and
//! `1 + K·from + to` where the land cover changed from class `from` to class `to` of K.

/// The most classes whose codes fit a byte (1 + K² ≤ 255).
pub const MAX_CLASSES: usize = 15;

/// Refuses class counts whose codes would not fit a byte.
pub fn check_classes(classes: usize) -> Result<(), String> {
    match classes <= MAX_CLASSES {
        true => Ok(()),
        false => Err(format!("a from→to map holds at most {MAX_CLASSES} classes in a byte; this model has {classes}")),
    }
}

/// The code of one pixel (`classes` ≤ [`MAX_CLASSES`]).
pub fn encode(from: u8, to: u8, changed: bool, classes: usize) -> u8 {
    if changed { 1 + classes as u8 * from + to } else { 0 }
}

/// `(from, to)` of a changed pixel's code; `None` for 0 (unchanged).
pub fn decode(code: u8, classes: usize) -> Option<(usize, usize)> {
    let index = (code as usize).checked_sub(1)?;
    Some((index / classes, index % classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for classes in [2, 6, 9, MAX_CLASSES] {
            for from in 0..classes as u8 {
                for to in 0..classes as u8 {
                    let code = encode(from, to, true, classes);
                    assert_eq!(decode(code, classes), Some((from as usize, to as usize)));
                }
            }
            assert_eq!(encode(1, 0, false, classes), 0);
            assert_eq!(decode(0, classes), None);
        }
        assert_eq!(encode(2, 5, true, 6), 1 + 6 * 2 + 5);
        assert!(check_classes(MAX_CLASSES).is_ok() && check_classes(MAX_CLASSES + 1).is_err());
    }
}
