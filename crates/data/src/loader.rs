use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::augment::cropped_sample;
use crate::sampling::DecodedPair;
use crate::{Augment, DataError, Dataset, DecodedPairs, Image, Normalization, PairSample, Result, Sample};

/// Batches that are decoded ahead of the one the model is working on.
const PREFETCH: usize = 2;

/// A batch ready for a model: both dates normalised, planar `[n, bands, h, w]`, and labels
/// `[n, h, w]` with values 0/1/[`crate::IGNORE`].
#[derive(Debug, Clone)]
pub struct Batch {
    pub names: Vec<String>,
    pub height: usize,
    pub width: usize,
    /// Bands of each date (3 for RGB).
    pub bands: usize,
    pub before: Vec<f32>,
    pub after: Vec<f32>,
    pub label: Option<Vec<u8>>,
    /// Semantic change datasets: each date's class maps `[n, h, w]` (0..K, K = unlabeled).
    pub semantic: Option<[Vec<u8>; 2]>,
    /// Each pair's class names per date (ChangeCLIP's prompts), possibly empty.
    pub classes: Vec<[Vec<String>; 2]>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The order in which an epoch visits the dataset: a permutation that depends only on the seed
/// and the epoch, so that a resumed run sees exactly the batches the interrupted one would have.
pub fn epoch_order(len: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, epoch as u64, u64::MAX)));
    }
    order
}

/// A 64-bit mix of (seed, epoch, sample) for independent per-sample random streams.
fn mix(seed: u64, epoch: u64, sample: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ sample.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Decodes, augments and normalises batches on a background thread (each batch's pairs in
/// parallel), handing them out in order. Dropping the loader stops the work. Every batch comes
/// out, or an error: a decoder that panics, or a worker that stops early, is an error naming
/// the pairs, never a shorter iteration.
pub struct BatchLoader {
    receiver: Receiver<Result<Batch>>,
    worker: Option<JoinHandle<()>>,
    /// Batches not yet handed out.
    remaining: usize,
}

type LoadBatch = fn(&Dataset, &[Sample], &LoaderConfig) -> Result<Batch>;

pub struct LoaderConfig {
    pub batch_size: usize,
    pub augment: Augment,
    pub normalization: Normalization,
    pub seed: u64,
    pub epoch: usize,
    /// Decoded pairs kept across loaders (`None`: decode every sample's pair from its files).
    pub cache: Option<Arc<DecodedPairs>>,
}

impl BatchLoader {
    /// Loads the pairs `indices` of `dataset` in that order, `batch_size` at a time; the last
    /// batch may be smaller.
    pub fn new(dataset: &Dataset, indices: Vec<usize>, config: LoaderConfig) -> Self {
        Self::samples(dataset, Sample::pairs(indices), config)
    }

    /// Loads `samples` (whole pairs or patches) in that order, as [`BatchLoader::new`].
    pub fn samples(dataset: &Dataset, samples: Vec<Sample>, config: LoaderConfig) -> Self {
        Self::spawn(dataset, samples, config, load_batch)
    }

    fn spawn(dataset: &Dataset, indices: Vec<Sample>, config: LoaderConfig, load: LoadBatch) -> Self {
        let dataset = dataset.clone();
        let remaining = indices.len().div_ceil(config.batch_size.max(1));
        let (sender, receiver) = sync_channel(PREFETCH);
        let worker = std::thread::spawn(move || {
            for chunk in indices.chunks(config.batch_size.max(1)) {
                let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(&dataset, chunk, &config)));
                let batch = loaded.unwrap_or_else(|panic| Err(panicked(&dataset, chunk, panic.as_ref())));
                if sender.send(batch).is_err() {
                    break;
                }
            }
        });
        BatchLoader { receiver, worker: Some(worker), remaining }
    }
}

/// The error of a batch whose loading panicked (a decoder bug on a malformed file).
fn panicked(dataset: &Dataset, chunk: &[Sample], panic: &(dyn std::any::Any + Send)) -> DataError {
    let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
    let pairs: Vec<String> = chunk.iter().map(|s| dataset.pairs[s.pair].before.display().to_string()).collect();
    DataError::Batch { message: format!("decoding the pairs of {} failed: {what}", pairs.join(", ")) }
}

impl Iterator for BatchLoader {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match self.receiver.recv() {
            Ok(batch) => Some(batch),
            Err(_) => {
                let missing = self.remaining + 1;
                self.remaining = 0;
                Some(Err(DataError::Batch { message: format!("the batch loader stopped with {missing} batch(es) not loaded") }))
            }
        }
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        // Without a receiver the worker's next send fails, which ends it.
        drop(std::mem::replace(&mut self.receiver, sync_channel(0).1));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Decodes one pair of the dataset, with the label decoded to 0/1/ignore (and, for semantic
/// change datasets, the class maps).
pub fn load_pair(dataset: &Dataset, index: usize) -> Result<PairSample> {
    let paths = &dataset.pairs[index];
    let (before, after) = match &paths.bands {
        Some(bands) => {
            let [before, after] = crate::oscd::read_dates(paths, bands)?;
            (Image::U16(before), Image::U16(after))
        }
        None => (Image::U8(changedet_raster::read_rgb(&paths.before)?), Image::U8(changedet_raster::read_rgb(&paths.after)?)),
    };
    let (label, semantic) = match (&paths.label, &paths.semantic, dataset.semantic_classes) {
        (_, Some(labels), Some(classes)) => {
            let decoded = crate::semantic::decode(labels, classes)?;
            (Some(decoded.change), Some(decoded.classes))
        }
        (Some(path), _, _) => {
            let mut label = changedet_raster::read_gray(path)?;
            paths.encoding.decode(path, &mut label.data, dataset.ignore_value)?;
            (Some(label), None)
        }
        _ => (None, None),
    };
    Ok(PairSample { name: paths.name.clone(), before, after, label, semantic })
}

fn load_batch(dataset: &Dataset, indices: &[Sample], config: &LoaderConfig) -> Result<Batch> {
    let samples = indices
        .par_iter()
        .map(|&Sample { pair, window }| {
            let decoded = match &config.cache {
                Some(cache) => cache.get(dataset, pair, &config.normalization)?,
                None => Arc::new(DecodedPair::load(dataset, pair, &config.normalization)?),
            };
            let norms = decoded.norms;
            let mut sample = match window {
                Some([x, y, side]) => cropped_sample(&decoded.sample, x, y, side),
                None => Arc::unwrap_or_clone(decoded).sample,
            };
            let stream = window.map_or(pair as u64, |[x, y, _]| mix(pair as u64, x as u64, y as u64));
            let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, config.epoch as u64, stream));
            config.augment.apply(&mut sample, &mut rng)?;
            Ok((sample, norms))
        })
        .collect::<Result<Vec<_>>>()?;
    let (samples, norms): (Vec<PairSample>, Vec<[Normalization; 2]>) = samples.into_iter().unzip();
    let classes = indices.iter().map(|s| dataset.pairs[s.pair].classes.clone()).collect();
    assemble(samples, &norms, classes, &config.normalization)
}

impl Batch {
    /// A batch of pairs held in memory (not read from a dataset), normalised as a dataset's
    /// whole pairs are: each date with its own statistics where `normalization` is per image.
    /// `classes`: each pair's class names per date, or empty for none.
    pub fn of_images(pairs: Vec<PairSample>, classes: Vec<[Vec<String>; 2]>, normalization: &Normalization) -> Result<Batch> {
        if pairs.is_empty() {
            return Err(DataError::Batch { message: "a batch needs at least one pair".into() });
        }
        let classes = if classes.is_empty() { vec![Default::default(); pairs.len()] } else { classes };
        let norms: Vec<[Normalization; 2]> = pairs.iter().map(|p| [&p.before, &p.after].map(|image| image.statistics(normalization))).collect();
        assemble(pairs, &norms, classes, normalization)
    }
}

/// Decoded samples of one size, with each date's statistics, as a planar batch.
fn assemble(samples: Vec<PairSample>, norms: &[[Normalization; 2]], classes: Vec<[Vec<String>; 2]>, normalization: &Normalization) -> Result<Batch> {
    let (width, height) = samples[0].before.size();
    if let Some(odd) = samples.iter().find(|s| s.before.size() != (width, height) || s.after.size() != (width, height)) {
        let (ow, oh) = if odd.before.size() != (width, height) { odd.before.size() } else { odd.after.size() };
        return Err(DataError::Batch {
            message: format!("pairs '{}' ({width}×{height}) and '{}' ({ow}×{oh}) cannot share a batch: use a crop size or batch size 1", samples[0].name, odd.name),
        });
    }
    let bands = samples[0].before.bands();
    if let Some(odd) = samples.iter().find(|s| s.before.bands() != bands || s.after.bands() != bands) {
        return Err(DataError::Batch { message: format!("pair '{}' has dates of {} and {} bands where '{}' has {bands}", odd.name, odd.before.bands(), odd.after.bands(), samples[0].name) });
    }
    normalization.check_bands(bands).map_err(|message| DataError::Batch { message: format!("pair '{}': {message}", samples[0].name) })?;
    let image = (width as usize) * (height as usize) * bands;
    let mut before = vec![0f32; samples.len() * image];
    let mut after = vec![0f32; samples.len() * image];
    for (i, (s, [norm_before, norm_after])) in samples.iter().zip(norms).enumerate() {
        s.before.write_planar(norm_before, &mut before[i * image..(i + 1) * image]);
        s.after.write_planar(norm_after, &mut after[i * image..(i + 1) * image]);
    }
    let label = if samples.iter().all(|s| s.label.is_some()) {
        Some(samples.iter().flat_map(|s| s.label.as_ref().expect("checked").data.iter().copied()).collect())
    } else {
        None
    };
    let semantic = samples.iter().all(|s| s.semantic.is_some()).then(|| {
        [0, 1].map(|date| samples.iter().flat_map(|s| s.semantic.as_ref().expect("checked")[date].data.iter().copied()).collect())
    });
    Ok(Batch {
        classes,
        names: samples.into_iter().map(|s| s.name).collect(),
        height: height as usize,
        width: width as usize,
        bands,
        before,
        after,
        label,
        semantic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_decoder_is_an_error_naming_the_pairs() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/levir-cd-256");
        let spec: crate::DatasetSpec = format!("levir-cd:{}", root.display()).parse().unwrap();
        let dataset = Dataset::open(&spec, "all", false, None).unwrap();
        let config = || LoaderConfig { batch_size: 2, augment: Augment::default(), normalization: Normalization::IMAGENET, seed: 0, epoch: 0, cache: None };
        let failing: LoadBatch = |dataset, indices, config| match indices[0].pair {
            2 => panic!("a decoder bug"),
            _ => load_batch(dataset, indices, config),
        };
        let batches: Vec<Result<Batch>> = BatchLoader::spawn(&dataset, Sample::pairs(0..6), config(), failing).collect();
        assert_eq!(batches.len(), 3, "every batch is accounted for");
        let err = batches[1].as_ref().expect_err("the second batch failed").to_string();
        assert!(err.contains("a decoder bug") && err.contains(&dataset.pairs[2].before.display().to_string()), "{err}");
        assert!(batches[0].is_ok() && batches[2].is_ok());
    }

    #[test]
    fn epoch_orders_are_reproducible_and_differ_between_epochs() {
        assert_eq!(epoch_order(50, 7, 3, true), epoch_order(50, 7, 3, true));
        assert_ne!(epoch_order(50, 7, 3, true), epoch_order(50, 7, 4, true));
        let mut sorted = epoch_order(50, 7, 3, true);
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(epoch_order(5, 7, 3, false), vec![0, 1, 2, 3, 4]);
    }
}
