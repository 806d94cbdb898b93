use std::sync::OnceLock;

use anyhow::{Result, bail};
use tch::Device;

/// `auto` (the first GPU if there is one, else the CPU), `cpu`, `cuda` or `cuda:N`.
pub fn parse(spec: &str) -> Result<Device> {
    let device = match spec {
        "auto" => {
            // Without CUDA, auto is the CPU: the reason need not be told.
            let _ = load_cuda();
            return Ok(on_gpu_tuned(Device::cuda_if_available()));
        }
        "cpu" => return Ok(Device::Cpu),
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => bail!("unknown device '{other}' (use auto, cpu, cuda or cuda:N)"),
        },
    };
    if let Err(why) = load_cuda() {
        bail!("device '{spec}' requested, but {why}");
    }
    let Device::Cuda(index) = device else { unreachable!() };
    let available = tch::Cuda::device_count();
    if index as i64 >= available {
        bail!("device '{spec}' requested, but {available} CUDA device(s) are available to libtorch");
    }
    Ok(on_gpu_tuned(device))
}

/// On a GPU, cuDNN's benchmark mode: a run feeds one input size over and over (tiles, crops,
/// fixed-size images), so timing the convolution algorithms once per shape pays off.
fn on_gpu_tuned(device: Device) -> Device {
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    device
}

/// Loads libtorch's CUDA half (`libtorch_cuda.so`, beside the linked `libtorch_cpu.so`) before
/// anything asks libtorch about CUDA. The binary names no symbol of it, so the linker leaves it
/// out, and without it libtorch sees no GPU even on a machine with one. Skipped where no NVIDIA
/// driver is installed: CPU runs do not load a gigabyte of CUDA libraries for nothing.
fn load_cuda() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
            // SAFETY: loading runs the libraries' initialisers, which only register libtorch's
            // CUDA backend; nothing is called through these handles.
            unsafe {
                Library::open(Some("libcuda.so.1"), RTLD_NOW).map_err(|_| "this machine has no NVIDIA driver (libcuda.so.1)".to_owned())?;
                let torch_cuda = Library::open(Some("libtorch_cuda.so"), RTLD_NOW | RTLD_GLOBAL)
                    .map_err(|e| {
                        format!("the libtorch this binary runs on has no CUDA ({e}); `CHANGEDET_TORCH=full bash scripts/setup.sh` installs its CUDA libraries")
                    })?;
                // Loaded for the life of the process.
                std::mem::forget(torch_cuda);
            }
            Ok(())
        })
        .clone()
}
