//! ChangeCLIP's per-image class lists: one JSON file per image folder,
//! `<folder>_clipcls_<tag>.json` beside it (`test/A` → `test/A_clipcls_56_vit16.json`), holding a
//! list of objects `{"image_path": …, class: "0.1234", …}` with every class in descending order of
//! CLIP zero-shot probability. ChangeCLIP builds each image's foreground prompt from the first 9.
//! [`to_json`] writes the reference's formatting byte for byte.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{DataError, Result};

/// The reference's tag: 56 classes scored by CLIP ViT-B/16.
pub const DEFAULT_TAG: &str = "56_vit16";
/// Classes in a ChangeCLIP prompt.
pub const PROMPT_CLASSES: usize = 9;

/// One image's classes, most probable first, with the probability as the reference prints it.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageClasses {
    pub image_path: String,
    pub classes: Vec<(String, String)>,
}

impl ImageClasses {
    /// Orders `probabilities` (one per class name) as the reference does: descending, ties in
    /// class order (Python's stable sort), printed with 4 decimals.
    pub fn from_probabilities(image_path: String, names: &[String], probabilities: &[f32]) -> Self {
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
        Self { image_path, classes: order.into_iter().map(|i| (names[i].clone(), format!("{:.4}", probabilities[i]))).collect() }
    }
}

impl Serialize for ImageClasses {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.classes.len() + 1))?;
        map.serialize_entry("image_path", &self.image_path)?;
        for (name, probability) in &self.classes {
            map.serialize_entry(name, probability)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ImageClasses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct OrderedEntries;
        impl<'de> Visitor<'de> for OrderedEntries {
            type Value = ImageClasses;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object with \"image_path\" and class probabilities")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<ImageClasses, A::Error> {
                let mut image_path = None;
                let mut classes = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    if key == "image_path" {
                        image_path = Some(value.as_str().ok_or_else(|| serde::de::Error::custom("image_path is not a string"))?.to_owned());
                    } else {
                        let probability = match value {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        classes.push((key, probability));
                    }
                }
                let image_path = image_path.ok_or_else(|| serde::de::Error::missing_field("image_path"))?;
                Ok(ImageClasses { image_path, classes })
            }
        }
        deserializer.deserialize_map(OrderedEntries)
    }
}

/// Where the reference keeps the lists of the images in `image_dir`.
pub fn json_path(image_dir: &Path, tag: &str) -> PathBuf {
    let mut name = image_dir.as_os_str().to_owned();
    name.push(format!("_clipcls_{tag}.json"));
    PathBuf::from(name)
}

/// `entries` in the reference's formatting (`json.dump(indent=4, ensure_ascii=False)`).
pub fn to_json(entries: &[ImageClasses]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    entries.serialize(&mut serializer).expect("strings always serialise");
    bytes
}

/// A folder's lists, looked up by image path (exact, as the reference does) or, when the data
/// moved since the file was written, by file name.
#[derive(Debug, Default)]
pub struct ClassLists {
    by_path: HashMap<String, Vec<String>>,
    path_by_name: HashMap<String, String>,
}

impl ClassLists {
    pub fn read(path: &Path) -> Result<ClassLists> {
        let error = |message: String| DataError::Layout { path: path.to_owned(), message };
        let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
        let entries: Vec<ImageClasses> = serde_json::from_str(&text).map_err(|e| error(format!("not a ChangeCLIP class-list file: {e}")))?;
        let mut lists = ClassLists::default();
        for entry in entries {
            if let Some(name) = Path::new(&entry.image_path).file_name() {
                lists.path_by_name.insert(name.to_string_lossy().into_owned(), entry.image_path.clone());
            }
            lists.by_path.insert(entry.image_path, entry.classes.into_iter().map(|(name, _)| name).collect());
        }
        Ok(lists)
    }

    /// The `k` most probable classes of `image`, if it is listed.
    pub fn top(&self, image: &Path, k: usize) -> Option<&[String]> {
        let exact = self.by_path.get(image.to_string_lossy().as_ref());
        let by_name = || {
            let name = image.file_name()?.to_string_lossy();
            self.by_path.get(self.path_by_name.get(name.as_ref())?)
        };
        exact.or_else(by_name).map(|classes| &classes[..k.min(classes.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_keep_class_order_and_the_file_round_trips() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let entry = ImageClasses::from_probabilities("/d/A/x.png".into(), &names, &[0.25, 0.5, 0.25]);
        assert_eq!(entry.classes, [("b".into(), "0.5000".into()), ("a".into(), "0.2500".into()), ("c".into(), "0.2500".into())]);
        let dir = tempfile::tempdir().unwrap();
        let path = json_path(&dir.path().join("A"), DEFAULT_TAG);
        assert!(path.ends_with("A_clipcls_56_vit16.json"));
        std::fs::write(&path, to_json(std::slice::from_ref(&entry))).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("[\n    {\n        \"image_path\": \"/d/A/x.png\",\n        \"b\": \"0.5000\","), "{text}");
        let lists = ClassLists::read(&path).unwrap();
        assert_eq!(lists.top(Path::new("/d/A/x.png"), 2).unwrap(), ["b", "a"]);
        assert_eq!(lists.top(Path::new("/moved/A/x.png"), 9).unwrap(), ["b", "a", "c"], "found by file name");
        assert!(lists.top(Path::new("/d/A/y.png"), 9).is_none());
    }
}
