//! Keyword options from Python (sent as one JSON object), taken one by one and parsed as the
//! CLI parses the same options; any left over is an error naming it.

use std::str::FromStr;

use pyo3::PyResult;
use serde_json::{Map, Value};

use crate::errors::input;

pub struct Options {
    what: &'static str,
    values: Map<String, Value>,
}

impl Options {
    /// `json`, a JSON object of the options of `what` (for messages: "training", "scene").
    pub fn parse(what: &'static str, json: &str) -> PyResult<Self> {
        let values = serde_json::from_str(json).map_err(|e| input(format!("{what} options: {e}")))?;
        Ok(Options { what, values })
    }

    /// The option `key` unless it is missing or None.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.values.remove(key).filter(|v| !v.is_null())
    }

    pub fn text(&mut self, key: &str) -> PyResult<Option<String>> {
        self.take(key).map(|v| text(key, v)).transpose()
    }

    /// A string or a list of strings.
    pub fn texts(&mut self, key: &str) -> PyResult<Option<Vec<String>>> {
        self.take(key)
            .map(|value| match value {
                Value::Array(items) => items.into_iter().map(|v| text(key, v)).collect(),
                other => Ok(vec![text(key, other)?]),
            })
            .transpose()
    }

    /// A string parsed as the CLI parses this option.
    pub fn parsed<T: FromStr>(&mut self, key: &str) -> PyResult<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.text(key)?.map(|text| text.parse().map_err(|e| input(format!("{key} '{text}': {e}")))).transpose()
    }

    pub fn number<T: TryFrom<u64>>(&mut self, key: &str) -> PyResult<Option<T>> {
        self.take(key).map(|value| value.as_u64().and_then(|n| T::try_from(n).ok()).ok_or_else(|| input(format!("{key} must be a whole number in range, not {value}")))).transpose()
    }

    /// A whole number of at least 1.
    pub fn count(&mut self, key: &str) -> PyResult<Option<usize>> {
        match self.number::<usize>(key)? {
            Some(0) => Err(input(format!("{key} must be at least 1"))),
            n => Ok(n),
        }
    }

    pub fn real(&mut self, key: &str) -> PyResult<Option<f64>> {
        self.take(key).map(|value| value.as_f64().ok_or_else(|| input(format!("{key} must be a number, not {value}")))).transpose()
    }

    pub fn flag(&mut self, key: &str) -> PyResult<Option<bool>> {
        self.take(key).map(|value| value.as_bool().ok_or_else(|| input(format!("{key} must be True or False, not {value}")))).transpose()
    }

    /// Refuses the options nobody took.
    pub fn finish(self) -> PyResult<()> {
        match self.values.keys().next() {
            Some(unknown) => Err(input(format!("unknown {} option '{unknown}'", self.what))),
            None => Ok(()),
        }
    }
}

fn text(key: &str, value: Value) -> PyResult<String> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(input(format!("{key} must be a string, not {other}"))),
    }
}
