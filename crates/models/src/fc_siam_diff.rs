//! FC-Siam-diff (Daudt, Le Saux, Boulch, "Fully convolutional siamese networks for change
//! detection", ICIP 2018), as in the authors' `siamunet_diff.py`: a shared four-stage encoder
//! applied to both dates, and a U-Net decoder fed at every level with |features₁ − features₂|.

use tch::Tensor;
use tch::nn;

use crate::fc_unet::{Decoder, Encoder, FcConfig, Fusion};
use crate::{ChangeModel, ChangeOutput};

/// The configuration the registry stores for this model (the shared one, typed).
pub type Config = FcConfig<FcSiamDiff>;

#[derive(Debug)]
pub struct FcSiamDiff {
    encoder: Encoder,
    decoder: Decoder,
}

impl Fusion for FcSiamDiff {
    const NAME: &'static str = "fc-siam-diff";
    const SUMMARY: &'static str = "siamese U-Net whose skips carry |features₁ − features₂|; 1.35 M parameters";

    fn build(vs: &nn::Path, cfg: &crate::fc_unet::Config) -> Box<dyn ChangeModel> {
        Box::new(FcSiamDiff { encoder: Encoder::new(vs, cfg, cfg.in_channels), decoder: Decoder::new(vs, cfg, 1) })
    }
}

impl ChangeModel for FcSiamDiff {
    fn forward_t(&self, before: &Tensor, after: &Tensor, train: bool) -> ChangeOutput {
        let (skips_1, _) = self.encoder.forward_t(before, train); //     [n,16,h,w] … [n,128,h/8,w/8]
        let (skips_2, bottom) = self.encoder.forward_t(after, train); // bottom: [n,128,h/16,w/16]
        let differences: Vec<Tensor> = skips_1.iter().zip(&skips_2).map(|(a, b)| (a - b).abs()).collect();
        ChangeOutput { logits: self.decoder.forward_t(&bottom, &differences, train), semantic: None } // [n,classes,h,w]
    }

    fn freeze_for_inference(&self) {
        crate::fc_unet::freeze_for_inference(&self.encoder, &self.decoder);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fc_unet::{assert_pytorch_initialisation, shape_and_parameters};

    #[test]
    fn shapes_and_parameter_count() {
        // Daudt et al. give 1.35 M parameters for FC-Siam-diff.
        assert_eq!(shape_and_parameters::<FcSiamDiff>(), (vec![2, 2, 37, 50], 1_350_146));
    }

    #[test]
    fn starts_from_pytorchs_default_initialisation() {
        assert_pytorch_initialisation::<FcSiamDiff>();
    }
}
