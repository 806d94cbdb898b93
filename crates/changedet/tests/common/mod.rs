//! Helpers shared by the command-line tests: the binary, the real sample data, temporary folders.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The LEVIR-CD 256×256 crops in ../shared/data (real imagery and labels, read in place).
pub fn levir_256() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/levir-cd-256");
    assert!(root.join("A").is_dir(), "the shared sample data is expected at {}", root.display());
    root.canonicalize().unwrap()
}

pub fn shared_data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data").join(rel).canonicalize().unwrap()
}

/// Runs `changedet ARGS` on the CPU and returns its output.
pub fn changedet(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_changedet")).args(args).output().expect("changedet runs");
    eprintln!("$ changedet {}\n{}{}", args.join(" "), String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    output
}

/// Runs `changedet ARGS`, requiring success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let output = changedet(args);
    assert!(output.status.success(), "changedet {} failed", args.join(" "));
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `changedet ARGS`, requiring failure; returns stderr.
pub fn fails(args: &[&str]) -> String {
    let output = changedet(args);
    assert!(!output.status.success(), "changedet {} should have failed", args.join(" "));
    String::from_utf8(output.stderr).unwrap()
}

/// Writes a split list (one pair file name per line).
pub fn write_list(path: &Path, names: &[&str]) -> String {
    std::fs::write(path, names.iter().map(|n| format!("{n}\n")).collect::<String>()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Files left under `dir` whose name marks an unfinished write.
pub fn partial_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".part") || n.starts_with(".tmp")))
        .collect()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Headless chromium with a profile of its own (instances sharing one hand their work to the
/// first and wait on it). A run that hangs (seen once in minutes on a loaded machine, chromium
/// busy with its own processes while the page's server answered) is killed after a minute and
/// run once more.
fn chromium(args: &[&str]) -> Output {
    for _ in 0..2 {
        let profile = tempfile::tempdir().unwrap();
        // Output goes to files: a full pipe would stall the browser while this waits on it.
        let (stdout, stderr) = (profile.path().join("stdout"), profile.path().join("stderr"));
        let mut child = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"])
            .arg(format!("--user-data-dir={}", profile.path().join("profile").display()))
            .args(args)
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("chromium runs (scripts/setup.sh installs it)");
        let start = std::time::Instant::now();
        let deadline = start + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if let Some(status) = child.try_wait().unwrap() {
            eprintln!("chromium {args:?}: {:.1} s", start.elapsed().as_secs_f64());
            return Output { status, stdout: std::fs::read(&stdout).unwrap(), stderr: std::fs::read(&stderr).unwrap() };
        }
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("chromium {args:?} hung for a minute: killed, running it again");
    }
    panic!("chromium {args:?} hung twice");
}

/// A page's DOM after its scripts ran (Debian's headless chromium), and the console messages
/// it logged.
pub fn dom(url: &str) -> (String, Vec<String>) {
    let out = chromium(&["--dump-dom", url]);
    let console = String::from_utf8_lossy(&out.stderr).lines().filter(|l| l.contains(":CONSOLE")).map(str::to_owned).collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

/// A screenshot of a page once loaded, `size` = (width, height), saved at `path`.
pub fn screenshot(url: &str, path: &Path, size: (u32, u32)) -> image::RgbImage {
    let out = chromium(&[&format!("--screenshot={}", path.display()), &format!("--window-size={},{}", size.0, size.1), url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    image::open(path).unwrap().into_rgb8()
}
