use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{DataError, Result};

/// Internal label value of pixels left out of the loss and the metrics.
pub const IGNORE: u8 = 255;

/// How a dataset writes "changed" in its label files. Decoded labels are always 0 (unchanged),
/// 1 (changed) or [`IGNORE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelEncoding {
    /// 0 = unchanged, 1 = changed (WHU-CD in some distributions).
    ZeroOne,
    /// 0 = unchanged, 255 = changed (LEVIR-CD, DSIFN-CD, SYSU-CD).
    ZeroMax,
    /// Lossy (JPEG) labels, as CDD ships them: changed where the value is ≥ 128.
    Threshold128,
    /// 1 = unchanged, 2 = changed (OSCD's GeoTIFF change maps).
    OneTwo,
    /// 0 = unchanged, any other value = changed (OSCD's `cm.png`, read as its official code does).
    NonZero,
}

impl std::fmt::Display for LabelEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LabelEncoding::ZeroOne => "0/1",
            LabelEncoding::ZeroMax => "0/255",
            LabelEncoding::Threshold128 => "≥128 changed",
            LabelEncoding::OneTwo => "1/2",
            LabelEncoding::NonZero => "non-zero changed",
        })
    }
}

impl LabelEncoding {
    fn changed_value(self) -> Option<u8> {
        match self {
            LabelEncoding::ZeroOne => Some(1),
            LabelEncoding::ZeroMax => Some(255),
            LabelEncoding::OneTwo => Some(2),
            LabelEncoding::Threshold128 | LabelEncoding::NonZero => None,
        }
    }

    /// Decodes raw label pixels in place. `ignore` is the file value that marks unlabelled pixels.
    pub fn decode(self, path: &Path, pixels: &mut [u8], ignore: Option<u8>) -> Result<()> {
        let threshold = match self {
            LabelEncoding::Threshold128 => Some(128),
            LabelEncoding::NonZero => Some(1),
            _ => None,
        };
        if let Some(threshold) = threshold {
            for p in pixels.iter_mut() {
                *p = if Some(*p) == ignore { IGNORE } else { u8::from(*p >= threshold) };
            }
            return Ok(());
        }
        let unchanged = if self == LabelEncoding::OneTwo { 1 } else { 0 };
        let changed = self.changed_value();
        let mut bad = BTreeSet::new();
        for p in pixels.iter_mut() {
            *p = if Some(*p) == ignore {
                IGNORE
            } else if *p == unchanged {
                0
            } else if Some(*p) == changed {
                1
            } else {
                bad.insert(*p);
                *p
            };
        }
        if bad.is_empty() { Ok(()) } else { Err(self.values_error(path, bad.into_iter().collect(), ignore)) }
    }

    fn values_error(self, path: &Path, found: Vec<u8>, ignore: Option<u8>) -> DataError {
        let mut expected = match self {
            LabelEncoding::ZeroOne => "0/1 labels (0 = unchanged, 1 = changed)".to_string(),
            LabelEncoding::ZeroMax => "0/255 labels (0 = unchanged, 255 = changed)".to_string(),
            LabelEncoding::OneTwo => "1/2 labels (1 = unchanged, 2 = changed)".to_string(),
            LabelEncoding::Threshold128 | LabelEncoding::NonZero => unreachable!("thresholded labels accept every value"),
        };
        if let Some(i) = ignore {
            expected.push_str(&format!(" with ignore value {i}"));
        }
        DataError::LabelValues { path: path.to_owned(), found, expected }
    }

    /// Picks the encoding that explains every file's set of values. `values` holds, per label
    /// file, the distinct values found in it.
    pub fn detect(values: &[(impl AsRef<Path>, BTreeSet<u8>)], ignore: Option<u8>) -> Result<LabelEncoding> {
        let meaningful = |set: &BTreeSet<u8>| set.iter().copied().filter(|&v| v != 0 && Some(v) != ignore).collect::<Vec<_>>();
        let mut seen_one: Option<&Path> = None;
        let mut seen_max: Option<&Path> = None;
        for (path, set) in values {
            let rest = meaningful(set);
            match rest.as_slice() {
                [] => {}
                [1] => seen_one = seen_one.or(Some(path.as_ref())),
                [255] => seen_max = seen_max.or(Some(path.as_ref())),
                _ => {
                    return Err(DataError::LabelValues {
                        path: path.as_ref().to_owned(),
                        found: set.iter().copied().collect(),
                        expected: "0/1 or 0/255 binary change labels".into(),
                    });
                }
            }
        }
        match (seen_one, seen_max) {
            (Some(one), Some(max)) => Err(DataError::LabelValues {
                path: one.to_owned(),
                found: vec![0, 1],
                expected: format!("the dataset's encoding: {} uses 0/255 while this file uses 0/1", max.display()),
            }),
            (Some(_), None) => Ok(LabelEncoding::ZeroOne),
            _ => Ok(LabelEncoding::ZeroMax),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u8]) -> BTreeSet<u8> {
        v.iter().copied().collect()
    }

    #[test]
    fn detection_and_decoding() {
        let files = [("a.png", set(&[0, 255])), ("b.png", set(&[0]))];
        assert_eq!(LabelEncoding::detect(&files, None).unwrap(), LabelEncoding::ZeroMax);
        let files = [("a.png", set(&[0, 1, 7])), ("b.png", set(&[0, 1]))];
        assert_eq!(LabelEncoding::detect(&files, Some(7)).unwrap(), LabelEncoding::ZeroOne);
        let mixed = [("a.png", set(&[0, 1])), ("b.png", set(&[0, 255]))];
        let err = LabelEncoding::detect(&mixed, None).unwrap_err().to_string();
        assert!(err.contains("a.png") && err.contains("b.png"), "{err}");
        let odd = [("c.png", set(&[0, 3, 255]))];
        let err = LabelEncoding::detect(&odd, None).unwrap_err().to_string();
        assert!(err.contains("c.png") && err.contains("[0, 3, 255]"), "{err}");

        let mut px = vec![0, 255, 9, 0];
        LabelEncoding::ZeroMax.decode(Path::new("x"), &mut px, Some(9)).unwrap();
        assert_eq!(px, vec![0, 1, IGNORE, 0]);
        let mut px = vec![0, 2];
        assert!(LabelEncoding::ZeroOne.decode(Path::new("y.png"), &mut px, None).unwrap_err().to_string().contains("y.png"));
        let mut px = vec![3, 130, 250];
        LabelEncoding::Threshold128.decode(Path::new("z"), &mut px, None).unwrap();
        assert_eq!(px, vec![0, 1, 1]);
    }
}
