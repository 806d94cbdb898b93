//! CLIP as ChangeCLIP uses it: tokenizer, image encoders, text encoders, the DenseCLIP context
//! decoder, checkpoint layouts, and zero-shot scoring.

pub mod text_cleaning;
pub mod tokenizer;

pub use tokenizer::{Tokenizer, TokenizerError};
