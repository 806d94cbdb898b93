//! A checkpoint is a file from the internet. Thousands of mutated checkpoints (bit flips,
//! truncations, splices, huge declared sizes), made deterministically from the real fixtures, go
//! through `import::read_state_dict` (PyTorch zip + pickle, TorchScript) and through
//! `Checkpoint::read` and `load_model` (changedet's safetensors): each ends in an error or a
//! valid result, never a panic, within a bounded time.

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use changedet_models::{Checkpoint, LoadedModel, ModelSpec, import};

/// Deterministic pseudo-random numbers (xorshift64*), enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `bytes`: flipped bits, a truncation, a spliced copy of a chunk, or a run of
/// 0xff (huge lengths and counts where sizes are stored).
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
        }
        1 => out.truncate(rng.below(out.len())),
        2 => {
            let (from, to) = (rng.below(out.len()), rng.below(out.len()));
            let len = rng.below(64).min(out.len() - from);
            let chunk = out[from..from + len].to_vec();
            out.splice(to..to, chunk);
        }
        _ => {
            let i = rng.below(out.len());
            let end = (i + 1 + rng.below(8)).min(out.len());
            out[i..end].fill(0xff);
        }
    }
    out
}

/// The entries of a zip archive, in order.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            (entry.name().unwrap().into_owned(), data)
        })
        .collect()
}

fn zip_entries(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        zip.start_file(name.as_str(), stored).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Runs `read` on each input written to a file; returns how many were accepted.
fn survive(inputs: Vec<Vec<u8>>, read: impl Fn(&Path) -> bool) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut accepted = 0;
    for (i, bytes) in inputs.iter().enumerate() {
        let path = dir.path().join(format!("mutant-{i}.pth"));
        std::fs::write(&path, bytes).unwrap();
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| read(&path)));
        let elapsed = start.elapsed();
        let Ok(ok) = outcome else { panic!("mutant {i} ({} bytes) made a reader panic; kept at {}", bytes.len(), dir.keep().join(format!("mutant-{i}.pth")).display()) };
        assert!(elapsed < Duration::from_secs(5), "mutant {i} took {elapsed:?}");
        accepted += usize::from(ok);
    }
    // Inputs of at most a few hundred kB: reading them must not have grown the process past
    // libtorch's own footprint by more than a small multiple of that.
    let peak = peak_rss_mib();
    eprintln!("peak resident memory so far: {peak:.0} MiB");
    assert!(peak < 1536.0, "peak resident memory {peak:.0} MiB");
    accepted
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

#[test]
fn mutated_pytorch_checkpoints_are_errors_or_state_dicts() {
    let mut rng = Rng(0x5eed_c0de);
    let mut inputs = Vec::new();
    for name in ["mmengine_checkpoint.pth", "tiny_clip_torchscript.pt"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let entries = unzip(&bytes);
        let pickle = entries.iter().position(|(n, _)| n.ends_with("/data.pkl")).unwrap();
        for _ in 0..600 {
            // The pickle mutated inside a well-formed archive (its checksum made anew) ...
            let mut mutated = entries.clone();
            mutated[pickle].1 = mutate(&entries[pickle].1, &mut rng);
            inputs.push(zip_entries(&mutated));
            // ... and the archive itself mutated.
            inputs.push(mutate(&bytes, &mut rng));
        }
    }
    let count = inputs.len();
    let accepted = survive(inputs, |path| import::read_state_dict(path).is_ok());
    eprintln!("{count} mutated PyTorch checkpoints: {accepted} read, {} refused", count - accepted);
    assert!(accepted < count, "no mutation was refused: the mutations do not reach the reader");
}

#[test]
fn mutated_changedet_checkpoints_are_errors_or_models() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.safetensors");
    tch::manual_seed(0);
    let model = LoadedModel::new(ModelSpec::new("fc-siam-diff", Some(serde_json::json!({"width": 2}))).unwrap(), tch::Device::Cpu).unwrap();
    Checkpoint::write(&path, &model, &[], Some(&serde_json::json!({"step": 1}))).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let mut rng = Rng(0xfeed_beef);
    // Mutations concentrated on the header (the JSON with shapes, offsets and the model's
    // configuration), where a change is a different claim rather than different weights.
    let header_len = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let inputs: Vec<Vec<u8>> = (0..800)
        .map(|i| match i % 2 {
            0 => {
                let mut head = mutate(&bytes[..header_len], &mut rng);
                head.extend_from_slice(&bytes[header_len..]);
                head
            }
            _ => mutate(&bytes, &mut rng),
        })
        .collect();
    let count = inputs.len();
    let accepted = survive(inputs, |path| Checkpoint::read(path).and_then(|c| c.load_model(path, tch::Device::Cpu)).is_ok());
    eprintln!("{count} mutated changedet checkpoints: {accepted} loaded, {} refused", count - accepted);
    assert!(accepted < count);
}

#[test]
fn crafted_shapes_and_configurations_are_refused_before_anything_is_built() {
    let path = Path::new("crafted.pth");
    // Tensors of the wrong rank where import reads sizes off shapes.
    let scalar = || tch::Tensor::from(1.0f32);
    let state: std::collections::BTreeMap<String, tch::Tensor> = [("head_seg.0.weight".to_owned(), scalar())].into();
    let err = ModelSpec::for_reference_state_dict("clearscd", &state, path, None).unwrap_err().to_string();
    assert!(err.contains("head_seg.0.weight") && err.contains("too few dimensions"), "{err}");
    let vector = || tch::Tensor::zeros([7], (tch::Kind::Float, tch::Device::Cpu));
    let state: std::collections::BTreeMap<String, tch::Tensor> = [("token_embedding.weight".to_owned(), vector()), ("transformer.resblocks.0.ln_1.weight".to_owned(), vector())].into();
    let clip = changedet_models::clip::ClipStateDict::new(state, path).unwrap();
    let err = clip.text_config(path).unwrap_err().to_string();
    assert!(err.contains("token_embedding.weight") && err.contains("not 2 dimensions"), "{err}");

    // A checkpoint whose embedded configuration asks for a gigantic network.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gigantic.safetensors");
    let config = serde_json::json!({"text": {"context_length": 77, "vocab_size": 49408, "width": 1 << 30, "heads": 8, "layers": 12, "embed_dim": 1024}});
    let metadata = [("format", changedet_models::checkpoint::FORMAT.to_owned()), ("model", "changeclip-rn50".to_owned()), ("config", config.to_string())];
    changedet_models::tensor_io::write(&file, std::iter::empty(), metadata.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).unwrap();
    let err = Checkpoint::read(&file).unwrap().load_model(&file, tch::Device::Cpu).err().expect("refused").to_string();
    assert!(err.contains("text.width is 1073741824"), "{err}");
}

/// A valid file whose weights are whole numbers of another type, or NaN, is refused at load
/// naming the file and the tensor (an I32 copy of a float checkpoint used to load and predict
/// no change at all; a NaN weight used to be reported later as the model's non-finite scores).
#[test]
fn integer_and_non_finite_weights_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    tch::manual_seed(0);
    let model = LoadedModel::new(ModelSpec::new("fc-siam-diff", Some(serde_json::json!({"width": 2}))).unwrap(), tch::Device::Cpu).unwrap();
    let rewrite = |name: &str, edit: &dyn Fn(&str, &tch::Tensor) -> tch::Tensor| {
        let path = dir.path().join(name);
        Checkpoint::write(&path, &model, &[], None).unwrap();
        let file = changedet_models::tensor_io::read(&path).unwrap();
        let tensors: Vec<(String, tch::Tensor)> = file.tensors.iter().map(|(k, t)| (k.clone(), edit(k, t))).collect();
        changedet_models::tensor_io::write(&path, tensors.iter().map(|(k, t)| (k.clone(), t)), file.metadata).unwrap();
        let loaded = Checkpoint::read(&path).unwrap().load_model(&path, tch::Device::Cpu).map(drop).map_err(|e| e.to_string());
        (path, loaded)
    };
    let (path, loaded) = rewrite("int.safetensors", &|_, t| if t.kind() == tch::Kind::Float { t.to_kind(tch::Kind::Int) } else { t.shallow_clone() });
    let err = loaded.expect_err("integer weights refused");
    assert!(err.contains(&path.display().to_string()) && err.contains("is stored as I32") && err.contains("F32"), "{err}");
    let target = "model.conv11d.weight";
    let (path, loaded) = rewrite("nan.safetensors", &|k, t| if k == target { t.fill(f64::NAN) } else { t.shallow_clone() });
    let err = loaded.expect_err("NaN weights refused");
    assert!(err.contains(&path.display().to_string()) && err.contains("'conv11d.weight'") && err.contains("NaN"), "{err}");
    // Half-precision weights (OpenAI's CLIP files store them) are widened, not refused.
    let (_, loaded) = rewrite("half.safetensors", &|k, t| if k == target { t.to_kind(tch::Kind::Half) } else { t.shallow_clone() });
    loaded.expect("half-precision weights load");
}
