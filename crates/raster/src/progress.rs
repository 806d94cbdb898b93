//! Progress of long jobs (scenes, dataset splits, training): an indicatif bar on a terminal;
//! elsewhere (Slurm, Kubernetes and CI logs, where a bar draws nothing) a line at a steady
//! interval, so that a long run never looks hung. `CHANGEDET_PROGRESS_SECONDS` sets the interval
//! (default 30 s).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    /// Set when stderr is not a terminal.
    lines: Option<Lines>,
}

struct Lines {
    what: String,
    unit: &'static str,
    every: Duration,
    last: Mutex<Instant>,
}

impl Progress {
    /// Progress over `total` `unit`s of `what`, drawn with the indicatif `template` on a
    /// terminal; `shown: false` shows nothing (a caller with a display of its own).
    pub fn new(total: u64, what: &str, unit: &'static str, template: &str, shown: bool) -> Progress {
        if !shown {
            return Progress::hidden(total);
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total).with_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
            return Progress { bar, lines: None };
        }
        let every = std::env::var("CHANGEDET_PROGRESS_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(30.0);
        let lines = Lines { what: what.to_owned(), unit, every: Duration::from_secs_f64(every), last: Mutex::new(Instant::now()) };
        Progress { lines: Some(lines), ..Progress::hidden(total) }
    }

    /// [`Progress::new`] with a plain bar: `[=====>    ] 12/40 pairs 00:01:02 (eta 3m)`.
    pub fn counting(total: u64, what: &str, unit: &'static str, shown: bool) -> Progress {
        Progress::new(total, what, unit, &format!("[{{bar:40}}] {{pos}}/{{len}} {unit} {{elapsed_precise}} (eta {{eta}})"), shown)
    }

    /// Counts without showing anything.
    pub fn hidden(total: u64) -> Progress {
        Progress { bar: ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()), lines: None }
    }

    /// The bar, for its prefix, message and `suspend` (printing around it).
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.report();
    }

    pub fn set_position(&self, position: u64) {
        self.bar.set_position(position);
        self.report();
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Off a terminal: a line once `every` has passed since the last one.
    fn report(&self) {
        let Some(lines) = &self.lines else { return };
        let mut last = lines.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < lines.every {
            return;
        }
        *last = Instant::now();
        let (done, total, elapsed) = (self.bar.position(), self.bar.length().unwrap_or(0), self.bar.elapsed());
        let left = match done {
            0 => "unknown".to_owned(),
            _ => clock(elapsed.mul_f64(total.saturating_sub(done) as f64 / done as f64)),
        };
        let message = self.bar.message();
        let prefix = self.bar.prefix();
        let detail = [prefix.as_str(), message.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(", ");
        let percent = 100.0 * done as f64 / total.max(1) as f64;
        let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
        eprintln!("{}: {done}/{total} {} ({percent:.1} %){detail}, {} elapsed, about {left} left", lines.what, lines.unit, clock(elapsed));
    }
}

/// `1:02:03` or `2:03`.
pub fn clock(duration: Duration) -> String {
    let s = duration.as_secs();
    match s / 3600 {
        0 => format!("{}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clocks_read_as_minutes_or_hours() {
        use std::time::Duration;
        assert_eq!(super::clock(Duration::from_secs(123)), "2:03");
        assert_eq!(super::clock(Duration::from_secs(3723)), "1:02:03");
    }
}
