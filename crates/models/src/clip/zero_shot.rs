//! Zero-shot classification with CLIP, as ChangeCLIP's offline pre-pass runs it
//! (`tools/clip_inference.py`): CLIP's standard preprocessing, the raw class names as texts (no
//! prompt template), `softmax(logit_scale · cos)` over the classes.

use image::RgbImage;
use image::imageops::FilterType;
use tch::{Device, Kind, Tensor};

use super::{Clip, Tokenizer, tokenizer};

/// The 56 remote-sensing classes of ChangeCLIP's `tools/rscls.txt`, in file order.
pub const REMOTE_SENSING_CLASSES: [&str; 56] = [
    "airport", "bare land", "basketball court", "beach", "bridge", "dense residential", "farmland", "forest", "freeway",
    "ground track field", "harbor", "island", "lake", "meadow", "mine", "mountain", "oil tank", "runway", "sea", "solar panel",
    "stadium", "tennis court", "terrace", "wetland", "commercial area", "cotton field", "industrial area", "railway", "interchange",
    "single-family residential", "highway", "intersection", "golf course", "desert", "river", "campus", "prairie", "building",
    "fertile land", "park", "parking lot", "square", "road", "tree", "cars", "shrubbery", "impermeable surface", "ship", "airplane",
    "pond", "church", "chaparral", "storage tanks", "snow land", "container", "cabin",
];

/// CLIP's image statistics (not ImageNet's).
const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// CLIP's preprocessing: bicubic resize of the shorter side to `resolution` (Catmull-Rom, the
/// kernel PIL's BICUBIC uses), centre crop, `[0, 1]`, CLIP mean/std → `[3, r, r]`.
pub fn preprocess(image: &RgbImage, resolution: u32) -> Tensor {
    let (w, h) = image.dimensions();
    // torchvision's Resize(int): the shorter side becomes `resolution`, the other is truncated.
    let (rw, rh) = if w <= h { (resolution, (resolution as u64 * h as u64 / w as u64) as u32) } else { ((resolution as u64 * w as u64 / h as u64) as u32, resolution) };
    let resized = image::imageops::resize(image, rw, rh, FilterType::CatmullRom);
    let (left, top) = (((rw - resolution) as f64 / 2.0).round() as u32, ((rh - resolution) as f64 / 2.0).round() as u32);
    let cropped = image::imageops::crop_imm(&resized, left, top, resolution, resolution).to_image();
    let r = resolution as i64;
    let pixels = Tensor::from_slice(cropped.as_raw()).view([r, r, 3]).permute([2, 0, 1]).to_kind(Kind::Float) / 255.0;
    (pixels - Tensor::from_slice(&MEAN).view([3, 1, 1])) / Tensor::from_slice(&STD).view([3, 1, 1])
}

/// A CLIP with the embeddings of a fixed list of class names.
pub struct ZeroShot {
    pub clip: Clip,
    pub classes: Vec<String>,
    text_embeddings: Tensor,
}

impl ZeroShot {
    /// Embeds `classes` (tokenised at CLIP's 77 tokens, truncated if longer).
    pub fn new(clip: Clip, tokenizer: &Tokenizer, classes: Vec<String>) -> Self {
        let device = clip.vs.device();
        let tokens = tokenizer.tokenize_batch(&classes, tokenizer::CONTEXT_LENGTH).to_device(device);
        let text_embeddings = tch::no_grad(|| clip.encode_texts(&tokens));
        Self { clip, classes, text_embeddings }
    }

    pub fn device(&self) -> Device {
        self.clip.vs.device()
    }

    /// Cosine similarities and `softmax(logit_scale · cos)` probabilities, `[n, classes]` each, of
    /// preprocessed images `[n, 3, r, r]`.
    pub fn scores(&self, images: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let images = self.clip.encode_images(&images.to_device(self.device()));
            let cosine = images.matmul(&self.text_embeddings.transpose(0, 1));
            let probability = self.clip.probabilities(&images, &self.text_embeddings);
            (cosine.to_device(Device::Cpu), probability.to_device(Device::Cpu))
        })
    }
}
