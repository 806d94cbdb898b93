use anyhow::{Result, bail};
use tch::Device;

/// `auto` (the first GPU if there is one, else the CPU), `cpu`, `cuda` or `cuda:N`.
pub fn parse(spec: &str) -> Result<Device> {
    let device = match spec {
        "auto" => return Ok(Device::cuda_if_available()),
        "cpu" => return Ok(Device::Cpu),
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => bail!("unknown device '{other}' (use auto, cpu, cuda or cuda:N)"),
        },
    };
    let Device::Cuda(index) = device else { unreachable!() };
    let available = tch::Cuda::device_count();
    if index as i64 >= available {
        bail!("device '{spec}' requested, but {available} CUDA device(s) are available to libtorch");
    }
    Ok(device)
}
