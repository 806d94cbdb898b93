//! A training process killed with SIGKILL at arbitrary moments (inside steps, checkpoint
//! writes and validations) and resumed each time ends with exactly the weights and optimiser
//! state of an uninterrupted run: the real process and the real files, not the library alone.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use changedet_models::Checkpoint;
use common::*;

const PAIRS: [&str; 4] = ["test_102_0512_0000.png", "test_121_0768_0256.png", "test_2_0000_0000.png", "test_2_0000_0512.png"];

fn train(dataset: &str, split: &str, out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_changedet"));
    command.args(["train", "--dataset", dataset, "--train-split", split, "--val-split", split, "--out", s(out)]);
    command.args(["--model-config", r#"{"width": 4}"#, "--epochs", "8", "--batch-size", "1", "--crop", "128", "--checkpoint-every", "1", "--device", "cpu"]);
    command.args(extra).stdout(Stdio::null()).stderr(Stdio::null());
    command
}

#[test]
fn a_run_killed_at_any_moment_resumes_to_the_uninterrupted_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = format!("levir-cd:{}", levir_256().display());
    let split = write_list(&tmp.path().join("four.txt"), &PAIRS);
    let (whole, killed) = (tmp.path().join("whole"), tmp.path().join("killed"));

    // Timed warm: a first run from a fresh venv reads libtorch from disk, and against that time
    // the warm, resumed runs finished before their kills (2 kills in a CI rehearsal).
    assert!(train(&dataset, &split, &tmp.path().join("warm-up"), &[]).status().unwrap().success());
    let start = Instant::now();
    assert!(train(&dataset, &split, &whole, &[]).status().unwrap().success());
    let duration = start.elapsed();

    // Kill after fractions of an uninterrupted run's time, resuming each time, until a run ends.
    // The machine's load can drop after the timed run (a CI rehearsal beside a compilation timed
    // 23 s, then resumed runs finished before their kills): then the sequence starts over on a
    // clock twice as fast.
    let mut kills = 0;
    for attempt in 0..4 {
        let clock = duration.div_f64(f64::from(1 << attempt));
        kills = killed_run(&dataset, &split, &killed, clock);
        if kills >= 3 {
            break;
        }
    }
    eprintln!("{kills} kills; an uninterrupted run takes {duration:?}");
    assert!(kills >= 3, "only {kills} kills landed inside a run ({duration:?} uninterrupted)");
    assert!(partial_files(&killed).is_empty(), "half-written files left: {:?}", partial_files(&killed));

    let (a, b) = (Checkpoint::read(&whole.join("last.safetensors")).unwrap(), Checkpoint::read(&killed.join("last.safetensors")).unwrap());
    for (name, tensor) in a.model.iter().chain(&a.optimizer) {
        let other = b.model.get(name).or_else(|| b.optimizer.get(name)).unwrap_or_else(|| panic!("{name} missing after {kills} kills"));
        assert!(tensor.equal(other), "{name} differs after {kills} kills");
    }
    assert_eq!(a.training.unwrap()["step"], b.training.unwrap()["step"]);
}

/// Trains into `out` from scratch, killing the run after fractions of `clock` and resuming it,
/// until a run ends; returns the number of kills.
fn killed_run(dataset: &str, split: &str, out: &Path, clock: Duration) -> usize {
    let mut kills = 0;
    for fraction in [0.2, 0.3, 0.4, 0.35, 0.45, 0.3, 0.5, 0.4].into_iter().chain(std::iter::repeat(10.0)) {
        let resume = kills > 0 && out.join("last.safetensors").exists();
        let mut child = train(dataset, split, out, &[if resume { "--resume" } else { "--overwrite" }]).spawn().unwrap();
        let deadline = Instant::now() + clock.mul_f64(fraction);
        let status = loop {
            match child.try_wait().unwrap() {
                Some(status) => break Some(status),
                None if Instant::now() >= deadline => break None,
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        match status {
            Some(status) => {
                assert!(status.success(), "a resumed run failed");
                return kills;
            }
            None => {
                child.kill().unwrap(); // SIGKILL: no chance to clean up
                child.wait().unwrap();
                kills += 1;
            }
        }
    }
    unreachable!("the last fractions outlast any run")
}

/// Files whose name starts with a dot: the staged outputs of a run still writing.
fn hidden_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with('.')).collect()
}

/// Sends `signal` to `child` once `ready` holds (within `patience`), and returns its exit
/// status and what it wrote to stderr.
fn interrupt(child: std::process::Child, ready: impl Fn() -> bool, patience: Duration, signal: i32) -> (Option<i32>, String) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < patience, "the run never reached the moment to interrupt it");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: a plain signal to our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let output = child.wait_with_output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// SIGTERM (a scheduler's cancel) in the middle of a scene: the staged maps are removed, the
/// message says so, and the process ends as interrupted (they used to stay, tens of MB each).
#[test]
fn a_scene_stopped_by_sigterm_leaves_no_staged_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("scene");
    let image = |date: &str| shared_data(&format!("levir-cd-1024/{date}/test_1.png")).display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_changedet"))
        .args(["predict", "--scene", "--before", &image("A"), "--after", &image("B"), "--out", s(&out), "--tile", "128", "--overlap", "64", "--device", "cpu"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, stderr) = interrupt(child, || !hidden_files(&out).is_empty(), Duration::from_secs(60), libc::SIGTERM);
    assert_eq!(status, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted; removed") && stderr.contains("change.tif"), "{stderr}");
    assert!(hidden_files(&out).is_empty(), "left: {:?}", hidden_files(&out));
}

/// Ctrl-C in training says how to go on.
#[test]
fn an_interrupted_training_says_how_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = format!("levir-cd:{}", levir_256().display());
    let split = write_list(&tmp.path().join("four.txt"), &PAIRS);
    let out = tmp.path().join("run");
    let child = train(&dataset, &split, &out, &[]).stderr(Stdio::piped()).spawn().unwrap();
    let (status, stderr) = interrupt(child, || out.join("last.safetensors").exists(), Duration::from_secs(120), libc::SIGINT);
    assert_eq!(status, Some(130), "{stderr}");
    assert!(stderr.contains(&format!("changedet train --out {} --resume", out.display())), "{stderr}");
    assert!(partial_files(&out).is_empty() && hidden_files(&out).is_empty(), "left: {:?}", hidden_files(&out));
}
