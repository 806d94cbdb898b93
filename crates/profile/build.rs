//! Compiles the C++ shim over libtorch's profiler API against the headers of the libtorch that
//! torch-sys links (its library folder, reported as `DEP_TCH_LIBTORCH_LIB`, sits beside
//! `include/`), with the same C++ ABI.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=shim/profiler.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys reports where libtorch is"));
    // The crate's tests link libtorch too.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let include = lib.parent().expect("libtorch's lib folder has a parent").join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("shim/profiler.cpp")
        .compile("changedet_profiler");
}
