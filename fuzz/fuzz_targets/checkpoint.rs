//! Whole checkpoint files, as `import` and `eval`/`predict` read them: a zip (`torch.save`,
//! TorchScript) through `read_state_dict`, anything else as a changedet checkpoint through
//! `Checkpoint::read` and `load_model` (its embedded configuration builds a model).
#![no_main]

use changedet_models::{Checkpoint, import};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let zip = data.starts_with(b"PK");
    let file = tempfile::Builder::new().suffix(if zip { ".pth" } else { ".safetensors" }).tempfile().expect("a temporary file");
    std::fs::write(file.path(), data).expect("written");
    if zip {
        let _ = import::read_state_dict(file.path());
    } else if let Ok(checkpoint) = Checkpoint::read(file.path()) {
        let _ = checkpoint.load_model(file.path(), tch::Device::Cpu);
    }
});
