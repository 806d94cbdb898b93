//! CLIP as ChangeCLIP uses it: tokenizer, image encoders, text encoders, the DenseCLIP context
//! decoder, checkpoint layouts, and zero-shot scoring.

pub mod context_decoder;
pub mod model;
pub mod modified_resnet;
pub mod text_cleaning;
pub mod text_encoder;
pub mod tokenizer;
pub mod transformer;
pub mod vision_transformer;
pub mod weights;
pub mod zero_shot;

pub use context_decoder::{ContextDecoder, ContextDecoderConfig};
pub use model::{Clip, ImageEncoder};
pub use modified_resnet::{ModifiedResNet, ResNetConfig};
pub use text_encoder::{TextConfig, TextEncoder};
pub use tokenizer::{Tokenizer, TokenizerError};
pub use vision_transformer::{VisionTransformer, VitConfig};
pub use weights::{ClipStateDict, Layout, VisionConfig};
pub use zero_shot::{REMOTE_SENSING_CLASSES, ZeroShot};

use tch::Tensor;

/// What a CLIP image encoder gives ChangeCLIP.
#[derive(Debug)]
pub struct ImageFeatures {
    /// Feature maps at strides 4, 8, 16 and 32 (ViT without necks: the tapped maps).
    pub levels: Vec<Tensor>,
    /// The image embedding `[n, d]` CLIP compares with text.
    pub global: Tensor,
    /// Per-location embeddings `[n, d, h/32, w/32]` (ViT: `h/patch`), DenseCLIP's visual embeddings.
    pub dense: Tensor,
}
