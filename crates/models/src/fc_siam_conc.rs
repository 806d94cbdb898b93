//! FC-Siam-conc (Daudt, Le Saux, Boulch, "Fully convolutional siamese networks for change
//! detection", ICIP 2018), as in the authors' `siamunet_conc.py`: a shared four-stage encoder
//! applied to both dates, and a U-Net decoder fed at every level with both dates' features
//! concatenated.

use tch::Tensor;
use tch::nn;

use changedet_data::{Normalization, Preset};

pub use crate::fc_unet::Config;
use crate::fc_unet::{self, Decoder, Encoder};
use crate::{ChangeModel, ChangeOutput, ModelCard, ModelConfig, Recipe, Result};

/// The model's own configuration type, so that the registry tells it from FC-Siam-diff's.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct FcSiamConcConfig(pub Config);

#[derive(Debug)]
pub struct FcSiamConc {
    encoder: Encoder,
    decoder: Decoder,
}

impl FcSiamConc {
    pub fn new(vs: &nn::Path, cfg: &Config) -> Self {
        FcSiamConc { encoder: Encoder::new(vs, cfg, cfg.in_channels), decoder: Decoder::new(vs, cfg, 2) }
    }
}

impl ChangeModel for FcSiamConc {
    fn forward_t(&self, before: &Tensor, after: &Tensor, train: bool) -> ChangeOutput {
        let (skips_1, _) = self.encoder.forward_t(before, train); //     [n,16,h,w] … [n,128,h/8,w/8]
        let (skips_2, bottom) = self.encoder.forward_t(after, train); // bottom: [n,128,h/16,w/16]
        let joined: Vec<Tensor> = skips_1.iter().zip(&skips_2).map(|(a, b)| Tensor::cat(&[a, b], 1)).collect(); // [n,2c,…]
        ChangeOutput { logits: self.decoder.forward_t(&bottom, &joined, train), semantic: None } // [n,classes,h,w]
    }
}

impl ModelConfig for FcSiamConcConfig {
    fn build(&self, vs: &nn::Path) -> Result<Box<dyn ChangeModel>> {
        self.0.check("fc-siam-conc")?;
        Ok(Box::new(FcSiamConc::new(vs, &self.0)))
    }

    fn normalization(&self) -> Normalization {
        self.0.normalization
    }

    fn card(&self) -> ModelCard {
        ModelCard {
            paper: "Daudt, Le Saux, Boulch, Fully convolutional siamese networks for change detection, ICIP 2018",
            summary: "siamese U-Net whose skips carry both dates' features concatenated; 1.55 M parameters",
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
        let model = FcSiamConc::new(&vs.root(), &Config::default());
        let x = Tensor::zeros([2, 3, 37, 50], (tch::Kind::Float, tch::Device::Cpu));
        assert_eq!(model.forward_t(&x, &x, false).logits.size(), [2, 2, 37, 50]);
        let params: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        // The official siamunet_conc.py with 3-band inputs.
        assert_eq!(params, 1_545_986);
    }
}
