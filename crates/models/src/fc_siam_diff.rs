//! FC-Siam-diff (Daudt, Le Saux, Boulch, "Fully convolutional siamese networks for change
//! detection", ICIP 2018), as in the authors' `siamunet_diff.py`: a shared four-stage encoder
//! applied to both dates, and a U-Net decoder fed at every level with |features₁ − features₂|.

use tch::Tensor;
use tch::nn;

use changedet_data::{Normalization, Preset};

pub use crate::fc_unet::Config;
use crate::fc_unet::{self, Decoder, Encoder};
use crate::{ChangeModel, ChangeOutput, ModelCard, ModelConfig, Recipe, Result};

#[derive(Debug)]
pub struct FcSiamDiff {
    encoder: Encoder,
    decoder: Decoder,
}

impl FcSiamDiff {
    pub fn new(vs: &nn::Path, cfg: &Config) -> Self {
        FcSiamDiff { encoder: Encoder::new(vs, cfg, cfg.in_channels), decoder: Decoder::new(vs, cfg, 1) }
    }
}

impl ChangeModel for FcSiamDiff {
    fn forward_t(&self, before: &Tensor, after: &Tensor, train: bool) -> ChangeOutput {
        let (skips_1, _) = self.encoder.forward_t(before, train); //     [n,16,h,w] … [n,128,h/8,w/8]
        let (skips_2, bottom) = self.encoder.forward_t(after, train); // bottom: [n,128,h/16,w/16]
        let differences: Vec<Tensor> = skips_1.iter().zip(&skips_2).map(|(a, b)| (a - b).abs()).collect();
        ChangeOutput { logits: self.decoder.forward_t(&bottom, &differences, train), semantic: None } // [n,classes,h,w]
    }
}

impl ModelConfig for Config {
    fn build(&self, vs: &nn::Path) -> Result<Box<dyn ChangeModel>> {
        self.check("fc-siam-diff")?;
        Ok(Box::new(FcSiamDiff::new(vs, self)))
    }

    fn normalization(&self) -> Normalization {
        self.normalization
    }

    fn card(&self) -> ModelCard {
        ModelCard {
            paper: "Daudt, Le Saux, Boulch, Fully convolutional siamese networks for change detection, ICIP 2018",
            summary: "siamese U-Net whose skips carry |features₁ − features₂|; 1.35 M parameters",
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
        let model = FcSiamDiff::new(&vs.root(), &Config::default());
        let x = Tensor::zeros([2, 3, 37, 50], (tch::Kind::Float, tch::Device::Cpu));
        let out = model.forward_t(&x, &x, false);
        assert_eq!(out.logits.size(), [2, 2, 37, 50]);
        let params: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        // Daudt et al. give 1.35 M parameters for FC-Siam-diff.
        assert_eq!(params, 1_350_146);
    }
}
