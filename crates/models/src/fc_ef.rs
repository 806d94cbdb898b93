//! FC-EF, early fusion (Daudt, Le Saux, Boulch, "Fully convolutional siamese networks for change
//! detection", ICIP 2018), as in the authors' `unet.py`: the two dates stacked as one image of
//! twice the bands, through a single four-stage U-Net.

use tch::Tensor;
use tch::nn;

use changedet_data::{Normalization, Preset};

pub use crate::fc_unet::Config;
use crate::fc_unet::{self, Decoder, Encoder};
use crate::{ChangeModel, ChangeOutput, ModelCard, ModelConfig, Recipe, Result};

/// The model's own configuration type, so that the registry tells it from FC-Siam-diff's;
/// `in_channels` counts one date's bands.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct FcEfConfig(pub Config);

#[derive(Debug)]
pub struct FcEf {
    encoder: Encoder,
    decoder: Decoder,
}

impl FcEf {
    pub fn new(vs: &nn::Path, cfg: &Config) -> Self {
        FcEf { encoder: Encoder::new(vs, cfg, 2 * cfg.in_channels), decoder: Decoder::new(vs, cfg, 1) }
    }
}

impl ChangeModel for FcEf {
    fn forward_t(&self, before: &Tensor, after: &Tensor, train: bool) -> ChangeOutput {
        let stacked = Tensor::cat(&[before, after], 1); // [n,2·bands,h,w]
        let (skips, bottom) = self.encoder.forward_t(&stacked, train); // [n,16,h,w] … ; bottom [n,128,h/16,w/16]
        ChangeOutput { logits: self.decoder.forward_t(&bottom, &skips, train), semantic: None } // [n,classes,h,w]
    }
}

impl ModelConfig for FcEfConfig {
    fn build(&self, vs: &nn::Path) -> Result<Box<dyn ChangeModel>> {
        self.0.check("fc-ef")?;
        Ok(Box::new(FcEf::new(vs, &self.0)))
    }

    fn normalization(&self) -> Normalization {
        self.0.normalization
    }

    fn card(&self) -> ModelCard {
        ModelCard {
            paper: "Daudt, Le Saux, Boulch, Fully convolutional siamese networks for change detection, ICIP 2018",
            summary: "U-Net on both dates stacked as one image (early fusion); 1.35 M parameters",
        }
    }

    fn reference_recipe(&self, dataset: Preset) -> Recipe {
        fc_unet::recipe(dataset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_parameter_count() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = FcEf::new(&vs.root(), &Config::default());
        let x = Tensor::zeros([2, 3, 37, 50], (tch::Kind::Float, tch::Device::Cpu));
        assert_eq!(model.forward_t(&x, &x, false).logits.size(), [2, 2, 37, 50]);
        let params: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        // The official unet.py with two 3-band dates.
        assert_eq!(params, 1_350_578);
    }
}
