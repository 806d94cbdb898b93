//! Mixed precision through libtorch's autocast, as `torch.autocast` runs it: inside the scope,
//! convolutions and matrix products compute in bf16 or fp16 while softmax, norms, reductions and
//! losses stay in fp32 (libtorch's own per-operator lists). [`Autocast`] runs any model so and
//! hands its outputs back in fp32, so nothing after the model changes.
//!
//! tch switches autocast on for CUDA in fp16 only. The dtype, and autocast on the CPU (where bf16
//! runs, and is tested), are set through four C++ functions of libtorch, declared here by their
//! mangled names: a change of their signatures in libtorch fails the link, never a run.

use std::fmt;
use std::str::FromStr;

use tch::{Device, Kind, Tensor};

use crate::input::BatchTensors;
use crate::{ChangeModel, ChangeOutput, Recipe, Result};

/// The arithmetic of a model's forward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
    Fp16,
}

impl Precision {
    pub const NAMES: [&str; 3] = ["fp32", "bf16", "fp16"];

    /// The lower-precision dtype autocast computes in (None for fp32).
    fn reduced(self) -> Option<Kind> {
        match self {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(Kind::BFloat16),
            Precision::Fp16 => Some(Kind::Half),
        }
    }

    /// Runs `f` under autocast to this precision on `device`'s kind of device (fp32, or a device
    /// other than a CPU or a GPU: as it is). The previous autocast state is restored afterwards.
    pub fn autocast<T>(self, device: Device, f: impl FnOnce() -> T) -> T {
        let (Some(dtype), Some(device_type)) = (self.reduced(), device_type(device)) else { return f() };
        let _scope = AutocastScope::enter(device_type, dtype);
        f()
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::NAMES[*self as usize])
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            "fp16" => Ok(Precision::Fp16),
            other => Err(format!("unknown precision '{other}' (use {})", Self::NAMES.join(", "))),
        }
    }
}

/// A model run under autocast, its outputs in fp32.
pub struct Autocast {
    pub inner: Box<dyn ChangeModel>,
    pub precision: Precision,
    pub device: Device,
}

impl ChangeModel for Autocast {
    fn forward_t(&self, before: &Tensor, after: &Tensor, train: bool) -> ChangeOutput {
        fp32(self.precision.autocast(self.device, || self.inner.forward_t(before, after, train)))
    }

    fn forward_with_classes_t(&self, before: &Tensor, after: &Tensor, classes: &[[Vec<String>; 2]], train: bool) -> ChangeOutput {
        fp32(self.precision.autocast(self.device, || self.inner.forward_with_classes_t(before, after, classes, train)))
    }

    /// The loss is computed under autocast too, as in PyTorch's recipe; backward runs outside.
    fn training_loss(&self, batch: &BatchTensors, recipe: &Recipe, epoch: usize) -> Result<Tensor> {
        Ok(self.precision.autocast(self.device, || self.inner.training_loss(batch, recipe, epoch))?.to_kind(Kind::Float))
    }

    fn size_multiple(&self) -> usize {
        self.inner.size_multiple()
    }

    fn freeze_for_inference(&self) {
        self.inner.freeze_for_inference()
    }
}

fn fp32(output: ChangeOutput) -> ChangeOutput {
    ChangeOutput { logits: output.logits.to_kind(Kind::Float), semantic: output.semantic.map(|s| s.map(|t| t.to_kind(Kind::Float))) }
}

/// c10::DeviceType.
fn device_type(device: Device) -> Option<i8> {
    match device {
        Device::Cpu => Some(0),
        Device::Cuda(_) => Some(1),
        _ => None,
    }
}

/// c10::ScalarType.
fn scalar_type(kind: Kind) -> i8 {
    match kind {
        Kind::Half => 5,
        Kind::Float => 6,
        Kind::BFloat16 => 15,
        other => unreachable!("autocast dtype {other:?}"),
    }
}

/// Autocast on for one device type while it lives; the previous state back when dropped (on a
/// panic too). Nesting counts as libtorch's own scopes do: the cache of weights cast to the
/// lower precision is cleared when the outermost scope ends, so that an optimiser step is seen.
struct AutocastScope {
    device_type: i8,
    was_enabled: bool,
    was_dtype: i8,
}

impl AutocastScope {
    fn enter(device_type: i8, dtype: Kind) -> Self {
        // SAFETY: plain setters and getters of libtorch's thread-local autocast state, for a
        // device type and dtype autocast supports; none of them throws for these arguments.
        unsafe {
            let scope = AutocastScope { device_type, was_enabled: ffi::is_autocast_enabled(device_type), was_dtype: ffi::get_autocast_dtype(device_type) };
            ffi::set_autocast_dtype(device_type, scalar_type(dtype));
            ffi::set_autocast_enabled(device_type, true);
            ffi::at_autocast_increment_nesting();
            scope
        }
    }
}

impl Drop for AutocastScope {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        unsafe {
            if ffi::at_autocast_decrement_nesting() == 0 {
                ffi::at_autocast_clear_cache();
            }
            ffi::set_autocast_enabled(self.device_type, self.was_enabled);
            ffi::set_autocast_dtype(self.device_type, self.was_dtype);
        }
    }
}

/// libtorch's autocast controls: `at::autocast::*(c10::DeviceType, ...)` (both enums are int8),
/// and the nesting and cache calls of tch's own C API.
mod ffi {
    unsafe extern "C" {
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device_type: i8) -> bool;
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device_type: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device_type: i8) -> i8;
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device_type: i8, dtype: i8);
        pub fn at_autocast_increment_nesting() -> std::ffi::c_int;
        pub fn at_autocast_decrement_nesting() -> std::ffi::c_int;
        pub fn at_autocast_clear_cache();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv_output_kind() -> Kind {
        let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1).kind()
    }

    /// Convolutions compute in the reduced dtype inside the scope only; nested scopes restore
    /// the outer one's dtype, and fp32 leaves everything as it is.
    #[test]
    fn autocast_applies_inside_the_scope_and_restores_the_state() {
        assert_eq!(conv_output_kind(), Kind::Float);
        let kinds = Precision::Bf16.autocast(Device::Cpu, || {
            let inner = Precision::Fp16.autocast(Device::Cpu, conv_output_kind);
            (conv_output_kind(), inner, Precision::Fp32.autocast(Device::Cpu, conv_output_kind), conv_output_kind())
        });
        assert_eq!(kinds, (Kind::BFloat16, Kind::Half, Kind::BFloat16, Kind::BFloat16));
        assert_eq!(conv_output_kind(), Kind::Float);
        let panicked = std::panic::catch_unwind(|| Precision::Bf16.autocast(Device::Cpu, || panic!("inside")));
        assert!(panicked.is_err());
        assert_eq!(conv_output_kind(), Kind::Float, "a panic inside leaves autocast off");
    }

    #[test]
    fn names_round_trip() {
        for name in Precision::NAMES {
            assert_eq!(name.parse::<Precision>().unwrap().to_string(), name);
        }
        assert!("fp8".parse::<Precision>().unwrap_err().contains("fp32, bf16, fp16"));
    }
}
