//! libtorch's own operator profiler (Kineto, CPU operators) called from Rust, summarised the way
//! `torch.profiler`'s `key_averages()` sorted by self CPU time summarises a Python run, so that
//! changedet's profile and a reference's read side by side: the same operator names, each with
//! its calls and its self time (its time minus that of the operators it called).
//!
//! The profiler records operators on the thread that calls them; the threads libtorch computes
//! on inside an operator are part of that operator's time.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::fmt;
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn changedet_profiler_start(error: *mut c_char, capacity: usize) -> i32;
    fn changedet_profiler_stop(on_event: EventCallback, context: *mut c_void, error: *mut c_char, capacity: usize) -> i32;
}

type EventCallback = extern "C" fn(context: *mut c_void, name: *const c_char, thread: u64, start_ns: u64, end_ns: u64);

#[derive(Debug, thiserror::Error)]
#[error("libtorch's profiler failed: {0}")]
pub struct ProfilerError(String);

/// One recorded operator call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpEvent {
    pub name: String,
    pub thread: u64,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// One operator's calls and self time over a profiled run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpTime {
    pub name: String,
    pub calls: usize,
    pub self_time: Duration,
}

/// What a profiled run spent, operator by operator, longest self time first.
#[derive(Debug, Clone)]
pub struct Profile {
    pub ops: Vec<OpTime>,
    /// The whole run, operators and everything between them.
    pub wall: Duration,
}

/// Runs `f` with libtorch's profiler recording and returns its result with the profile.
pub fn profile<T>(f: impl FnOnce() -> T) -> Result<(T, Profile), ProfilerError> {
    let recording = Recording::start()?;
    let started = Instant::now();
    let value = f();
    let wall = started.elapsed();
    let events = recording.stop()?;
    Ok((value, Profile { ops: self_times(events), wall }))
}

/// The profiler while it records; dropped without `stop` (when the profiled code panics), it
/// stops and discards what it recorded, so that the next profile can start.
struct Recording {
    stopped: bool,
}

const ERROR_CAPACITY: usize = 1024;

impl Recording {
    fn start() -> Result<Self, ProfilerError> {
        let mut error = [0 as c_char; ERROR_CAPACITY];
        // SAFETY: the shim writes at most `capacity` bytes, NUL-terminated, into `error`.
        match unsafe { changedet_profiler_start(error.as_mut_ptr(), ERROR_CAPACITY) } {
            0 => Ok(Self { stopped: false }),
            _ => Err(error_from(&error)),
        }
    }

    fn stop(mut self) -> Result<Vec<OpEvent>, ProfilerError> {
        self.stopped = true;
        let mut events = Vec::new();
        let mut error = [0 as c_char; ERROR_CAPACITY];
        // SAFETY: `collect_event` casts the context back to the `Vec<OpEvent>` passed here, which
        // outlives the call; the shim calls it only before returning.
        let status = unsafe { changedet_profiler_stop(collect_event, (&raw mut events).cast(), error.as_mut_ptr(), ERROR_CAPACITY) };
        match status {
            0 => Ok(events),
            _ => Err(error_from(&error)),
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.stopped {
            let mut discarded: Vec<OpEvent> = Vec::new();
            let mut error = [0 as c_char; ERROR_CAPACITY];
            // SAFETY: as in `stop`.
            unsafe { changedet_profiler_stop(collect_event, (&raw mut discarded).cast(), error.as_mut_ptr(), ERROR_CAPACITY) };
        }
    }
}

extern "C" fn collect_event(context: *mut c_void, name: *const c_char, thread: u64, start_ns: u64, end_ns: u64) {
    // SAFETY: `context` is the `Vec<OpEvent>` of `Recording::stop`; `name` is a NUL-terminated
    // string the shim keeps alive for the duration of the call.
    let (events, name) = unsafe { (&mut *context.cast::<Vec<OpEvent>>(), CStr::from_ptr(name)) };
    events.push(OpEvent { name: name.to_string_lossy().into_owned(), thread, start_ns, end_ns });
}

fn error_from(error: &[c_char]) -> ProfilerError {
    // SAFETY: the buffer is zero-initialised and the shim NUL-terminates what it writes.
    ProfilerError(unsafe { CStr::from_ptr(error.as_ptr()) }.to_string_lossy().into_owned())
}

/// Self time per operator name: each call's duration minus those of the calls nested in it (on
/// the same thread), summed over calls, longest first.
pub fn self_times(mut events: Vec<OpEvent>) -> Vec<OpTime> {
    // Parents before their children: by thread, then start, the longer of two equal starts first.
    events.sort_by_key(|e| (e.thread, e.start_ns, std::cmp::Reverse(e.end_ns)));
    let mut totals: HashMap<&str, (usize, u64)> = HashMap::new();
    // The calls still open at the current event, with the time of their direct children so far.
    let mut open: Vec<(&OpEvent, u64)> = Vec::new();
    for event in &events {
        while let Some(&(parent, nested_ns)) = open.last() {
            if parent.thread == event.thread && event.start_ns < parent.end_ns {
                break;
            }
            add_call(&mut totals, parent, nested_ns);
            open.pop();
        }
        if let Some((_, nested_ns)) = open.last_mut() {
            *nested_ns += event.end_ns.saturating_sub(event.start_ns);
        }
        open.push((event, 0));
    }
    for (event, nested_ns) in open.into_iter().rev() {
        add_call(&mut totals, event, nested_ns);
    }
    let mut ops: Vec<OpTime> =
        totals.into_iter().map(|(name, (calls, ns))| OpTime { name: name.to_owned(), calls, self_time: Duration::from_nanos(ns) }).collect();
    ops.sort_by(|a, b| b.self_time.cmp(&a.self_time).then_with(|| a.name.cmp(&b.name)));
    ops
}

/// Adds one call and its self time to its operator's totals (calls, nanoseconds).
fn add_call<'a>(totals: &mut HashMap<&'a str, (usize, u64)>, call: &'a OpEvent, nested_ns: u64) {
    let total = totals.entry(&call.name).or_default();
    total.0 += 1;
    total.1 += call.end_ns.saturating_sub(call.start_ns).saturating_sub(nested_ns);
}

impl Profile {
    /// Time inside operators: the sum of every operator's self time.
    pub fn in_operators(&self) -> Duration {
        self.ops.iter().map(|op| op.self_time).sum()
    }

    /// A printable table of the `rows` longest operators, the rest in one line, and the time
    /// spent outside any operator (the caller's own code and libtorch's dispatch before it).
    pub fn table(&self, rows: usize) -> ProfileTable<'_> {
        ProfileTable { profile: self, rows }
    }
}

pub struct ProfileTable<'a> {
    profile: &'a Profile,
    rows: usize,
}

impl fmt::Display for ProfileTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wall = self.profile.wall.as_secs_f64();
        let share = |d: Duration| if wall > 0.0 { 100.0 * d.as_secs_f64() / wall } else { 0.0 };
        let line = |f: &mut fmt::Formatter<'_>, name: &str, d: Duration, calls: usize| {
            writeln!(f, "  {name:<44} {:>9.1} ms {:>5.1} % {calls:>6} calls", d.as_secs_f64() * 1e3, share(d))
        };
        let (shown, rest) = self.profile.ops.split_at(self.rows.min(self.profile.ops.len()));
        for op in shown {
            line(f, &op.name, op.self_time, op.calls)?;
        }
        if !rest.is_empty() {
            let other = format!("{} other operators", rest.len());
            line(f, &other, rest.iter().map(|op| op.self_time).sum(), rest.iter().map(|op| op.calls).sum())?;
        }
        let outside = self.profile.wall.saturating_sub(self.profile.in_operators());
        writeln!(f, "  {:<44} {:>9.1} ms {:>5.1} %", "outside any operator", outside.as_secs_f64() * 1e3, share(outside))?;
        write!(f, "  {:<44} {:>9.1} ms", "whole run", wall * 1e3)
    }
}
