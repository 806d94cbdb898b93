//! FC-EF, early fusion (Daudt, Le Saux, Boulch, "Fully convolutional siamese networks for change
//! detection", ICIP 2018), as in the authors' `unet.py`: the two dates stacked as one image of
//! twice the bands (`in_channels` counts one date's), through a single four-stage U-Net.

use tch::Tensor;
use tch::nn;

use crate::fc_unet::{Decoder, Encoder, FcConfig, Fusion};
use crate::{ChangeModel, ChangeOutput};

/// The configuration the registry stores for this model (the shared one, typed).
pub type FcEfConfig = FcConfig<FcEf>;

#[derive(Debug)]
pub struct FcEf {
    encoder: Encoder,
    decoder: Decoder,
}

impl Fusion for FcEf {
    const NAME: &'static str = "fc-ef";
    const SUMMARY: &'static str = "U-Net on both dates stacked as one image (early fusion); 1.35 M parameters";

    fn build(vs: &nn::Path, cfg: &crate::fc_unet::Config) -> Box<dyn ChangeModel> {
        Box::new(FcEf { encoder: Encoder::new(vs, cfg, 2 * cfg.in_channels), decoder: Decoder::new(vs, cfg, 1) })
    }
}

impl ChangeModel for FcEf {
    fn forward_t(&self, before: &Tensor, after: &Tensor, train: bool) -> ChangeOutput {
        let stacked = Tensor::cat(&[before, after], 1); // [n,2·bands,h,w]
        let (skips, bottom) = self.encoder.forward_t(&stacked, train); // [n,16,h,w] … ; bottom [n,128,h/16,w/16]
        ChangeOutput { logits: self.decoder.forward_t(&bottom, &skips, train), semantic: None } // [n,classes,h,w]
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
        // The official unet.py with two 3-band dates.
        assert_eq!(shape_and_parameters::<FcEf>(), (vec![2, 2, 37, 50], 1_350_578));
    }

    #[test]
    fn starts_from_pytorchs_default_initialisation() {
        assert_pytorch_initialisation::<FcEf>();
    }
}
