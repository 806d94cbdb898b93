//! Ctrl-C, SIGTERM and SIGHUP (a scheduler's cancel, a closed terminal): no destructor runs when
//! the process ends, so the handler removes the hidden files of outputs still being written
//! (everything else on disk is whole), says what it removed and how to go on, and ends the process.

use std::sync::Mutex;

/// What to tell the user about going on, set by the command that knows (`train`: `--resume`).
static NEXT_STEP: Mutex<String> = Mutex::new(String::new());

/// Exit status of a process ended by SIGINT, as shells report it.
const INTERRUPTED: i32 = 130;

pub fn install() {
    // Installing fails only if a handler exists already; then the default behaviour stays.
    let _ = ctrlc::set_handler(|| {
        let removed = changedet_raster::atomic::remove_unfinished();
        let next = NEXT_STEP.lock().map(|s| s.clone()).unwrap_or_default();
        let mut message = String::from("interrupted");
        if !removed.is_empty() {
            let names: Vec<String> = removed.iter().take(3).map(|p| p.display().to_string()).collect();
            let more = if removed.len() > 3 { format!(" and {} more", removed.len() - 3) } else { String::new() };
            message += &format!("; removed {} unfinished file(s): {}{more}", removed.len(), names.join(", "));
        }
        if next.is_empty() {
            message += "; the outputs finished before are whole; run the same command again to start over";
        } else {
            message += &format!("; {next}");
        }
        eprintln!("{message}");
        // SAFETY: ends the process at once, without running exit handlers that would race with
        // libtorch's and GDAL's threads still at work.
        unsafe { libc::_exit(INTERRUPTED) };
    });
}

/// Sets what the interrupt message says about going on.
pub fn set_next_step(text: String) {
    if let Ok(mut next) = NEXT_STEP.lock() {
        *next = text;
    }
}
