//! Build script shared by every crate that links libtorch: embeds the libtorch library folder
//! (reported by torch-sys as `DEP_TCH_LIBTORCH_LIB`) as an rpath, so that binaries and tests run
//! without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
