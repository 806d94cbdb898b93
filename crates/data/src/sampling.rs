//! What one training sample is: a whole pair (cropped at random by the augmentation), or a
//! fixed patch of it on a grid (Daudt et al.'s training set of overlapping patches), and the
//! decoded pairs kept in memory so that the patches of an image decode it once per run.

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Dataset, Normalization, PairSample, Result, load_pair};

/// Square patches of `side` pixels every `stride` pixels, the last row and column of each image
/// included only where a whole patch fits (Daudt et al.'s `ChangeDetectionDataset`:
/// `ceil((size − side + 1) / stride)` positions per axis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchGrid {
    pub side: u32,
    pub stride: u32,
}

impl std::str::FromStr for PatchGrid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |v: &str| v.trim().parse::<u32>().ok().filter(|&v| v > 0);
        match s.split_once(':').map(|(a, b)| (parse(a), parse(b))) {
            Some((Some(side), Some(stride))) => Ok(PatchGrid { side, stride }),
            _ => Err(format!("'{s}' is not SIDE:STRIDE with both at least 1 (e.g. 96:47)")),
        }
    }
}

impl PatchGrid {
    /// Patch corners along one axis of `size` pixels.
    fn positions(&self, size: u32) -> impl Iterator<Item = u32> + '_ {
        let count = (size + 1).saturating_sub(self.side).div_ceil(self.stride);
        (0..count).map(move |i| i * self.stride)
    }

    /// Every patch of every pair of `dataset`, pair by pair.
    pub fn samples(&self, dataset: &Dataset) -> Result<Vec<Sample>> {
        let sizes = dataset.pairs.par_iter().map(|p| p.size()).collect::<Result<Vec<_>>>()?;
        Ok(sizes
            .into_iter()
            .enumerate()
            .flat_map(|(pair, (w, h))| {
                let xs: Vec<u32> = self.positions(w).collect();
                self.positions(h).flat_map(move |y| xs.clone().into_iter().map(move |x| Sample { pair, window: Some([x, y, self.side]) }))
            })
            .collect())
    }
}

/// One sample: pair `pair` of the dataset, whole or its square `window` `[x, y, side]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub pair: usize,
    pub window: Option<[u32; 3]>,
}

impl Sample {
    /// Whole pairs, in the order given.
    pub fn pairs(indices: impl IntoIterator<Item = usize>) -> Vec<Sample> {
        indices.into_iter().map(|pair| Sample { pair, window: None }).collect()
    }
}

/// Decoded pairs shared by every epoch's loader, with each date's normalisation (a training run
/// over patches reads each image and takes its statistics once, not once per patch). Memory: the
/// decoded pixels of the split. One cache serves one normalisation, the run's.
#[derive(Debug)]
pub struct DecodedPairs(Vec<OnceLock<Arc<DecodedPair>>>);

#[derive(Debug, Clone)]
pub(crate) struct DecodedPair {
    pub sample: PairSample,
    /// The normalisation of each date's whole image (see [`Normalization::for_image`]).
    pub norms: [Normalization; 2],
}

impl DecodedPair {
    pub fn load(dataset: &Dataset, index: usize, normalization: &Normalization) -> Result<Self> {
        let sample = load_pair(dataset, index)?;
        let norms = [&sample.before, &sample.after].map(|image| image.statistics(normalization));
        Ok(DecodedPair { sample, norms })
    }
}

impl DecodedPairs {
    pub fn new(dataset: &Dataset) -> Arc<Self> {
        Arc::new(DecodedPairs((0..dataset.len()).map(|_| OnceLock::new()).collect()))
    }

    pub(crate) fn get(&self, dataset: &Dataset, index: usize, normalization: &Normalization) -> Result<Arc<DecodedPair>> {
        if let Some(pair) = self.0[index].get() {
            return Ok(Arc::clone(pair));
        }
        let pair = Arc::new(DecodedPair::load(dataset, index, normalization)?);
        Ok(Arc::clone(self.0[index].get_or_init(|| pair)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_positions_follow_the_reference_count() {
        let grid = PatchGrid { side: 96, stride: 47 };
        // ceil((256 - 96 + 1) / 47) = 4 positions: 0, 47, 94, 141 (141 + 96 = 237 ≤ 256).
        assert_eq!(grid.positions(256).collect::<Vec<_>>(), [0, 47, 94, 141]);
        assert_eq!(grid.positions(96).collect::<Vec<_>>(), [0]);
        assert_eq!(grid.positions(95).count(), 0);
        assert_eq!("96:47".parse::<PatchGrid>().unwrap(), grid);
        assert!("96:0".parse::<PatchGrid>().is_err() && "96".parse::<PatchGrid>().is_err());
    }
}
