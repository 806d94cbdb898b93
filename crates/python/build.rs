//! Compiles the tensor bridge (shim/tensor_bridge.cpp) against the headers of the libtorch that
//! torch-sys links and of the Python that pyo3 builds for, and links libtorch_python. The
//! module finds libtorch through `import torch` (the package imports it first, so the libraries
//! are already loaded) or, failing that, beside it in site-packages: no absolute rpath, so that
//! the process never maps a second libtorch.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=shim/tensor_bridge.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys reports where libtorch is"));
    let torch = lib.parent().expect("libtorch's lib folder has a parent");
    let include = torch.join("include");
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
    let python_include = query(&python, "import sysconfig; print(sysconfig.get_paths()['include'])");
    // The version string of the torch whose libtorch this links, for the check at import.
    let version = std::fs::read_to_string(torch.join("version.py")).ok().and_then(|text| {
        text.lines().find_map(|line| line.strip_prefix("__version__ = ").map(|v| v.trim_matches(['\'', '"']).to_owned()))
    });
    println!("cargo:rustc-env=CHANGEDET_LIBTORCH_VERSION={}", version.unwrap_or_else(|| "unknown".into()));
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(python_include.trim())
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("shim/tensor_bridge.cpp")
        .compile("changedet_tensor_bridge");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_python");
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
}

fn query(python: &str, code: &str) -> String {
    let output = Command::new(python).args(["-c", code]).output().unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(output.status.success(), "{python} -c \"{code}\" failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8 path")
}
