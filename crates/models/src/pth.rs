//! Reads PyTorch checkpoints (`torch.save` zip archives: `*/data.pkl` + `*/data/<key>` storages)
//! without executing anything. The pickle is interpreted by a small stack machine that knows
//! only containers, scalars and the handful of globals tensor reconstruction needs; any other
//! global is refused before it could be called, which is the whole point: a `.pth` from the
//! internet can otherwise run arbitrary code when loaded with `torch.load(weights_only=False)`.
//!
//! mmengine checkpoints (released ChangeCLIP weights) also hold training records built from
//! numpy values and `HistoryBuffer` objects. A short list of such data-only constructors is
//! accepted and turned into inert placeholders, never interpreted; the weights are read from the
//! `state_dict` entry.
//!
//! A checkpoint is a file from the internet, so reading one is bounded: archive entries may
//! decompress to at most [`DECOMPRESSION_FACTOR`] × the file's size in all; values taken from the
//! pickle's memo or DUP are copies that may add at most [`EXPANSION_FACTOR`] nodes per pickle
//! byte (strings weighing by their length); containers nest at most [`MAX_DEPTH`] deep; and a
//! tensor may hold no more elements than its storage. Memory therefore stays within a small
//! multiple of the file size, and every malformed input is an error naming the file, never a
//! panic. Memo values are copied under that budget rather than shared by reference: sharing would
//! make the value tree a graph that every walk over it (debug output, key collection, drop) must
//! treat as one, or a few hundred bytes of doubling unfold into 2^256 paths.
//!
//! TorchScript archives (`torch.jit.save`, e.g. OpenAI's `RN50.pt`) keep their tensors the same
//! way; their `data.pkl` is a tree of module objects (`__torch__.*` classes). Those become inert
//! [`Value::Object`]s holding their attributes: no method of them exists here, let alone runs,
//! and the TorchScript code in the archive is never read.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::{ModelError, Result};

/// Archive entries may decompress to this many times the file's size, all together (stored
/// entries, which `torch.save` writes, take exactly their size).
pub const DECOMPRESSION_FACTOR: u64 = 4;
/// Values the memo and DUP copy may add up to this many nodes per pickle byte (a string or
/// byte string counts one node per [`BYTES_PER_NODE`] bytes, so that copying long ones is
/// paid for by their length).
pub const EXPANSION_FACTOR: usize = 8;
/// Bytes of a copied string that cost as much as one copied node (about a node's size).
pub const BYTES_PER_NODE: usize = 32;
/// Deepest container nesting accepted (module trees of real checkpoints stay under 40).
pub const MAX_DEPTH: u32 = 256;

/// A value of the unpickled object graph. Tensors stay references into the archive until
/// [`PthFile::tensor`] materialises them.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Insertion-ordered, as Python dicts are.
    Dict(Vec<(Value, Value)>),
    Tensor(TensorRef),
    /// A TorchScript module or class instance: its qualified class name and attributes.
    Object { class: String, attributes: Vec<(Value, Value)> },
    Global(Global),
    Storage { kind: Kind, key: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildParameter,
    Storage(Kind),
    /// TorchScript's typed-container helpers (`torch.jit._pickle`): they return their argument.
    TypedContainer,
    /// A `__torch__.*` class, instantiated only as an inert [`Value::Object`].
    ScriptClass(String),
    /// A data-only constructor of training records (numpy scalars and arrays, mmengine's
    /// `HistoryBuffer`): its result is an inert [`Value::Object`] that nothing reads.
    Record(String),
}

#[derive(Debug, Clone)]
pub struct TensorRef {
    pub kind: Kind,
    storage: String,
    offset: i64,
    pub size: Vec<i64>,
    stride: Vec<i64>,
}

impl Value {
    /// The entries of a dict whose keys are strings.
    fn str_dict(&self) -> Option<Vec<(&str, &Value)>> {
        match self {
            Value::Dict(items) => items.iter().map(|(k, v)| if let Value::Str(k) = k { Some((k.as_str(), v)) } else { None }).collect(),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.str_dict()?.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

fn global(module: &str, name: &str) -> Option<Global> {
    let storage = |kind| Some(Global::Storage(kind));
    match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensor),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch", "FloatStorage") => storage(Kind::Float),
        ("torch", "DoubleStorage") => storage(Kind::Double),
        ("torch", "HalfStorage") => storage(Kind::Half),
        ("torch", "BFloat16Storage") => storage(Kind::BFloat16),
        ("torch", "LongStorage") => storage(Kind::Int64),
        ("torch", "IntStorage") => storage(Kind::Int),
        ("torch", "ShortStorage") => storage(Kind::Int16),
        ("torch", "CharStorage") => storage(Kind::Int8),
        ("torch", "ByteStorage") => storage(Kind::Uint8),
        ("torch", "BoolStorage") => storage(Kind::Bool),
        ("torch.jit._pickle", "restore_type_tag" | "build_intlist" | "build_doublelist" | "build_boollist" | "build_tensorlist") => Some(Global::TypedContainer),
        (m, _) if m == "__torch__" || m.starts_with("__torch__.") => Some(Global::ScriptClass(format!("{module}.{name}"))),
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar" | "_reconstruct")
        | ("numpy", "dtype" | "ndarray")
        | ("_codecs", "encode")
        | ("mmengine.logging.history_buffer", "HistoryBuffer") => Some(Global::Record(format!("{module}.{name}"))),
        _ => None,
    }
}

/// An opened checkpoint: its object graph and the archive its storages live in.
pub struct PthFile {
    pub root: Value,
    storages: HashMap<String, Vec<u8>>,
    path: std::path::PathBuf,
}

fn error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Checkpoint { path: path.to_owned(), message: message.into() }
}

impl PthFile {
    pub fn open(path: &Path) -> Result<PthFile> {
        let file = std::fs::File::open(path).map_err(|e| error(path, format!("cannot open: {e}")))?;
        let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
            .map_err(|e| error(path, format!("not a PyTorch zip checkpoint (legacy pre-1.6 files: re-save with a recent torch.save): {e}")))?;
        let pickle_name = archive
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            .ok_or_else(|| error(path, "no */data.pkl in the archive: not a torch.save checkpoint"))?;
        let prefix = pickle_name.trim_end_matches("data.pkl").to_owned();
        let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut budget = file_len.saturating_mul(DECOMPRESSION_FACTOR).saturating_add(1 << 20);
        let mut read = |name: &str| -> Result<Vec<u8>> {
            let entry = archive.by_name(name).map_err(|e| error(path, format!("archive entry '{name}': {e}")))?;
            // The header's size is a claim: capacity and reading stop at the budget.
            let mut bytes = Vec::with_capacity(entry.size().min(budget) as usize);
            entry.take(budget + 1).read_to_end(&mut bytes).map_err(|e| error(path, format!("archive entry '{name}' is unreadable (truncated file?): {e}")))?;
            budget = budget.checked_sub(bytes.len() as u64).ok_or_else(|| {
                error(path, format!("archive entry '{name}' decompresses to more than {DECOMPRESSION_FACTOR}× the file's size (a zip bomb?)"))
            })?;
            Ok(bytes)
        };
        if let Ok(order) = read(&format!("{prefix}byteorder"))
            && order != b"little"
        {
            return Err(error(path, "big-endian checkpoints are not supported"));
        }
        let pickle = read(&pickle_name)?;
        let root = Unpickler::new(pickle.len()).run(&pickle).map_err(|m| error(path, format!("{pickle_name}: {m}")))?;
        let mut storages = HashMap::new();
        let mut keys = Vec::new();
        collect_storage_keys(&root, &mut keys);
        for key in keys {
            if let std::collections::hash_map::Entry::Vacant(slot) = storages.entry(key) {
                let bytes = read(&format!("{prefix}data/{}", slot.key()))?;
                slot.insert(bytes);
            }
        }
        Ok(PthFile { root, storages, path: path.to_owned() })
    }

    /// Builds the tensor a reference points to (a copy, contiguous, on the CPU).
    pub fn tensor(&self, t: &TensorRef) -> Result<Tensor> {
        let bytes = self.storages.get(&t.storage).ok_or_else(|| error(&self.path, format!("storage '{}' is missing", t.storage)))?;
        let elements = (bytes.len() / t.kind.elt_size_in_bytes()) as i64;
        check_view(t, elements).map_err(|m| error(&self.path, format!("tensor of shape {:?} in storage '{}': {m}", t.size, t.storage)))?;
        let storage = Tensor::f_from_data_size(bytes, &[elements], t.kind)?;
        Ok(storage.f_as_strided(t.size.as_slice(), t.stride.as_slice(), t.offset)?.f_contiguous()?)
    }

    /// The state dict: the top-level dict of tensors, or the one under `state_dict`, `model` or
    /// `module` (the wrappers training scripts use), or for a TorchScript archive every tensor
    /// attribute of the module tree under its dotted path. Keys keep the file's order.
    pub fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        if let Value::Object { .. } = &self.root {
            let mut tensors = Vec::new();
            collect_module_tensors(&self.root, "", &mut tensors);
            if tensors.is_empty() {
                return Err(error(&self.path, "the TorchScript module holds no tensors"));
            }
            return tensors.into_iter().map(|(k, t)| Ok((k, self.tensor(t)?))).collect();
        }
        let candidates = [Some(&self.root), self.root.get("state_dict"), self.root.get("model"), self.root.get("module")];
        let dict = candidates
            .into_iter()
            .flatten()
            .filter_map(Value::str_dict)
            .find(|d| !d.is_empty() && d.iter().all(|(_, v)| matches!(v, Value::Tensor(_))))
            .ok_or_else(|| error(&self.path, "no state dict found (expected a dict of tensors, possibly under 'state_dict')"))?;
        dict.into_iter()
            .map(|(k, v)| match v {
                Value::Tensor(t) => Ok((k.to_owned(), self.tensor(t)?)),
                _ => unreachable!("filtered above"),
            })
            .collect()
    }
}

/// A view must lie inside its storage and hold no more elements than it (so that copying it
/// out costs no more memory than the file), with overflow-safe arithmetic.
fn check_view(t: &TensorRef, elements: i64) -> Step<()> {
    if t.size.len() != t.stride.len() || t.offset < 0 || t.size.iter().chain(&t.stride).any(|&v| v < 0) {
        return Err(format!("negative or mismatched sizes, strides {:?} or offset {}", t.stride, t.offset));
    }
    let numel = t.size.iter().try_fold(1i64, |n, &s| n.checked_mul(s)).ok_or("its element count overflows")?;
    if numel == 0 {
        return Ok(());
    }
    if numel > elements {
        return Err(format!("{numel} elements but its storage holds {elements}"));
    }
    let reach = t.size.iter().zip(&t.stride).try_fold(t.offset, |last, (&s, &st)| (s - 1).checked_mul(st).and_then(|r| last.checked_add(r)));
    match reach {
        Some(last) if last < elements => Ok(()),
        _ => Err("it reaches past its storage".into()),
    }
}

/// Tensor attributes of a TorchScript module tree, named as `state_dict()` names them.
fn collect_module_tensors<'a>(value: &'a Value, prefix: &str, out: &mut Vec<(String, &'a TensorRef)>) {
    let Value::Object { attributes, .. } = value else { return };
    for (name, attribute) in attributes {
        let Value::Str(name) = name else { continue };
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match attribute {
            Value::Tensor(t) => out.push((path, t)),
            Value::Object { .. } => collect_module_tensors(attribute, &path, out),
            _ => {}
        }
    }
}

fn collect_storage_keys(value: &Value, keys: &mut Vec<String>) {
    match value {
        Value::Tensor(t) => keys.push(t.storage.clone()),
        Value::Tuple(v) | Value::List(v) => v.iter().for_each(|v| collect_storage_keys(v, keys)),
        Value::Dict(items) | Value::Object { attributes: items, .. } => items.iter().for_each(|(k, v)| {
            collect_storage_keys(k, keys);
            collect_storage_keys(v, keys)
        }),
        _ => {}
    }
}

/// Runs the pickle machine on `bytes` alone (no archive, no storages), within the same bounds as
/// [`PthFile::open`]: what the fuzz targets in `fuzz/` exercise.
pub fn parse_pickle(bytes: &[u8]) -> std::result::Result<Value, String> {
    Unpickler::new(bytes.len()).run(bytes)
}

/// The pickle machine. Every stack and memo value carries its nesting depth, so that no
/// container deeper than [`MAX_DEPTH`] is ever built, and copies made by DUP and the memo are
/// charged against an expansion budget.
struct Unpickler {
    stack: Vec<(Value, u32)>,
    marks: Vec<usize>,
    memo: BTreeMap<u32, (Value, u32)>,
    /// Nodes that copies may still add.
    expansion_left: usize,
}

type Step<T> = std::result::Result<T, String>;

impl Unpickler {
    fn new(pickle_len: usize) -> Self {
        Unpickler { stack: Vec::new(), marks: Vec::new(), memo: BTreeMap::new(), expansion_left: pickle_len.saturating_mul(EXPANSION_FACTOR).saturating_add(1 << 16) }
    }

    fn push(&mut self, value: Value) {
        self.stack.push((value, 0));
    }

    /// Pushes a container holding values of depth `inner`.
    fn push_container(&mut self, value: Value, inner: u32) -> Step<()> {
        self.stack.push((value, nest(inner)?));
        Ok(())
    }

    fn pop(&mut self) -> Step<Value> {
        Ok(self.pop_entry()?.0)
    }

    fn pop_entry(&mut self) -> Step<(Value, u32)> {
        self.stack.pop().ok_or_else(|| "stack underflow".to_owned())
    }

    /// The values above the last mark, and the deepest of their depths.
    fn pop_mark(&mut self) -> Step<(Vec<Value>, u32)> {
        let mark = self.marks.pop().ok_or("MARK missing")?;
        if mark > self.stack.len() {
            return Err("MARK beyond the stack (values popped past it)".into());
        }
        Ok(unzip_depths(self.stack.split_off(mark)))
    }

    fn top_entry(&mut self) -> Step<&mut (Value, u32)> {
        self.stack.last_mut().ok_or_else(|| "stack underflow".to_owned())
    }

    /// Puts `items` (of depth `inner`) into the container on top of the stack with `insert`.
    fn extend_top(&mut self, inner: u32, insert: impl FnOnce(&mut Value) -> Step<()>) -> Step<()> {
        let (top, depth) = self.top_entry()?;
        insert(top)?;
        *depth = (*depth).max(nest(inner)?);
        Ok(())
    }

    /// A copy of `entry`, paid for from the expansion budget.
    fn copy(&mut self, entry: &(Value, u32)) -> Step<(Value, u32)> {
        let nodes = count_nodes(&entry.0, self.expansion_left).ok_or("shared values (memo, DUP) expand the pickle past its bound")?;
        self.expansion_left -= nodes;
        Ok(entry.clone())
    }

    fn run(mut self, data: &[u8]) -> Step<Value> {
        let mut input = Input { data, pos: 0 };
        loop {
            let op = input.byte()?;
            if op == b'.' {
                return self.pop(); // STOP
            }
            let handled = self.framing(op, &mut input)? || self.scalar(op, &mut input)? || self.container(op)? || self.reference(op, &mut input)?;
            if !handled {
                return Err(format!("pickle opcode 0x{op:02x} is not supported (only plain containers and tensors are)"));
            }
        }
    }

    /// Protocol, frames, marks and stack shuffles.
    fn framing(&mut self, op: u8, input: &mut Input) -> Step<bool> {
        match op {
            0x80 => drop(input.take(1)?), // PROTO
            0x95 => drop(input.take(8)?), // FRAME
            b'(' => self.marks.push(self.stack.len()),
            b'0' => drop(self.pop()?),
            b'1' => drop(self.pop_mark()?),
            b'2' => {
                let top = self.top_entry()?.clone();
                let copy = self.copy(&top)?;
                self.stack.push(copy)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// None, booleans, integers, floats, strings and bytes.
    fn scalar(&mut self, op: u8, input: &mut Input) -> Step<bool> {
        let value = match op {
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'J' => Value::Int(i32::from_le_bytes(input.array()?) as i64),
            b'K' => Value::Int(input.byte()? as i64),
            b'M' => Value::Int(u16::from_le_bytes(input.array()?) as i64),
            0x8a => {
                let n = input.byte()? as usize;
                let bytes = input.take(n)?;
                if n > 8 {
                    return Err("integer wider than 64 bits".into());
                }
                let mut buf = [if bytes.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 }; 8];
                buf[..n].copy_from_slice(bytes);
                Value::Int(i64::from_le_bytes(buf))
            }
            b'G' => Value::Float(f64::from_be_bytes(input.array()?)),
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => u32::from_le_bytes(input.array()?) as u64,
                    0x8c => input.byte()? as u64,
                    _ => u64::from_le_bytes(input.array()?),
                };
                let s = std::str::from_utf8(input.take_u64(n)?).map_err(|_| "invalid UTF-8 string")?;
                Value::Str(s.to_owned())
            }
            b'U' | b'T' | b'C' | b'B' => {
                let n = if matches!(op, b'U' | b'C') { input.byte()? as u64 } else { u32::from_le_bytes(input.array()?) as u64 };
                let bytes = input.take_u64(n)?.to_vec();
                if matches!(op, b'U' | b'T') { Value::Str(String::from_utf8_lossy(&bytes).into_owned()) } else { Value::Bytes(bytes) }
            }
            _ => return Ok(false),
        };
        self.push(value);
        Ok(true)
    }

    /// Tuples, lists and dicts, built and extended.
    fn container(&mut self, op: u8) -> Step<bool> {
        match op {
            b')' => self.push(Value::Tuple(vec![])),
            b't' => {
                let (items, inner) = self.pop_mark()?;
                self.push_container(Value::Tuple(items), inner)?
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return Err("stack underflow".into());
                }
                let (items, inner) = unzip_depths(self.stack.split_off(self.stack.len() - n));
                self.push_container(Value::Tuple(items), inner)?
            }
            b']' => self.push(Value::List(vec![])),
            b'l' => {
                let (items, inner) = self.pop_mark()?;
                self.push_container(Value::List(items), inner)?
            }
            b'a' | b'e' => {
                let (items, inner) = if op == b'a' { unzip_depths(vec![self.pop_entry()?]) } else { self.pop_mark()? };
                self.extend_top(inner, |top| match top {
                    Value::List(list) => {
                        list.extend(items);
                        Ok(())
                    }
                    other => Err(format!("APPEND on a non-list {other:?}")),
                })?
            }
            b'}' => self.push(Value::Dict(vec![])),
            b'd' => {
                let (items, inner) = self.pop_mark()?;
                self.push_container(Value::Dict(pairs(items)?), inner)?
            }
            b's' | b'u' => {
                let (items, inner) = if op == b's' {
                    let v = self.pop_entry()?;
                    unzip_depths(vec![self.pop_entry()?, v])
                } else {
                    self.pop_mark()?
                };
                let items = pairs(items)?;
                self.extend_top(inner, |top| match top {
                    Value::Dict(dict) => {
                        dict.extend(items);
                        Ok(())
                    }
                    other => Err(format!("SETITEM on a non-dict {other:?}")),
                })?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Globals (allowed ones only), calls, objects, tensor storages and the memo.
    fn reference(&mut self, op: u8, input: &mut Input) -> Step<bool> {
        match op {
            b'c' => {
                let module = input.line()?;
                let name = input.line()?;
                self.push(Value::Global(allowed(&module, &name)?))
            }
            0x93 => {
                let (Value::Str(name), Value::Str(module)) = (self.pop()?, self.pop()?) else {
                    return Err("STACK_GLOBAL with non-string operands".into());
                };
                self.push(Value::Global(allowed(&module, &name)?))
            }
            b'R' => {
                let (args, depth) = self.pop_entry()?;
                let callable = self.pop()?;
                // The result holds at most what the arguments held.
                self.stack.push((reduce(callable, args)?, depth))
            }
            0x81 => {
                // NEWOBJ: only TorchScript classes, as attribute holders.
                let _args = self.pop()?;
                match self.pop()? {
                    Value::Global(Global::ScriptClass(class) | Global::Record(class)) => self.push(Value::Object { class, attributes: vec![] }),
                    other => return Err(format!("NEWOBJ of {other:?}")),
                }
            }
            b'b' => {
                // BUILD: a TorchScript object's attributes; elsewhere (an OrderedDict's
                // `_metadata`) they carry no tensors.
                let (state, inner) = self.pop_entry()?;
                self.extend_top(inner, |top| {
                    if let (Value::Object { attributes, .. }, Value::Dict(items)) = (top, state) {
                        *attributes = items;
                    }
                    Ok(())
                })?
            }
            b'Q' => {
                let pid = self.pop()?;
                self.push(persistent_load(pid)?)
            }
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => input.byte()? as u32,
                    b'r' => u32::from_le_bytes(input.array()?),
                    _ => self.memo.len() as u32,
                };
                let top = self.top_entry()?.clone();
                let copy = self.copy(&top)?;
                self.memo.insert(key, copy);
            }
            b'h' | b'j' => {
                let key = if op == b'h' { input.byte()? as u32 } else { u32::from_le_bytes(input.array()?) };
                let entry = self.memo.get(&key).ok_or_else(|| format!("memo key {key} unset"))?.clone();
                let copy = self.copy(&entry)?;
                self.stack.push(copy)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The depth of a container around values of depth `inner`, refused past [`MAX_DEPTH`].
fn nest(inner: u32) -> Step<u32> {
    match inner + 1 {
        depth if depth > MAX_DEPTH => Err(format!("containers nest deeper than {MAX_DEPTH}")),
        depth => Ok(depth),
    }
}

fn unzip_depths(entries: Vec<(Value, u32)>) -> (Vec<Value>, u32) {
    let inner = entries.iter().map(|(_, d)| *d).max().unwrap_or(0);
    (entries.into_iter().map(|(v, _)| v).collect(), inner)
}

/// The nodes of `value` (long strings weighing by their length), counted without recursion;
/// `None` once more than `limit`.
fn count_nodes(value: &Value, limit: usize) -> Option<usize> {
    let mut pending = vec![value];
    let mut count = 0usize;
    while let Some(v) = pending.pop() {
        count += 1 + match v {
            Value::Str(s) => s.len() / BYTES_PER_NODE,
            Value::Bytes(b) => b.len() / BYTES_PER_NODE,
            _ => 0,
        };
        if count > limit {
            return None;
        }
        match v {
            Value::Tuple(items) | Value::List(items) => pending.extend(items),
            Value::Dict(items) | Value::Object { attributes: items, .. } => pending.extend(items.iter().flat_map(|(k, v)| [k, v])),
            _ => {}
        }
    }
    Some(count)
}

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.data.len()).ok_or("pickle ends early (truncated file?)")?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// A length read from the file: it must fit the input before anything is taken.
    fn take_u64(&mut self, n: u64) -> Step<&'a [u8]> {
        self.take(usize::try_from(n).map_err(|_| "pickle ends early (truncated file?)")?)
    }

    fn byte(&mut self) -> Step<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Step<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    /// A newline-terminated UTF-8 line (GLOBAL's module and name).
    fn line(&mut self) -> Step<String> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("pickle ends early (truncated file?)")?;
        let line = std::str::from_utf8(&rest[..n]).map_err(|_| "invalid UTF-8 in GLOBAL")?.to_owned();
        self.pos += n + 1;
        Ok(line)
    }
}

fn allowed(module: &str, name: &str) -> Step<Global> {
    global(module, name).ok_or_else(|| {
        format!("refused: the pickle calls '{module}.{name}', which is not tensor reconstruction; such a file could run arbitrary code and is not loaded")
    })
}

fn pairs(items: Vec<Value>) -> Step<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return Err("odd number of dict items".into());
    }
    let mut it = items.into_iter();
    Ok(std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect())
}

fn int_list(value: &Value) -> Step<Vec<i64>> {
    match value {
        Value::Tuple(v) | Value::List(v) => v.iter().map(|v| if let Value::Int(i) = v { Ok(*i) } else { Err(format!("expected an integer, got {v:?}")) }).collect(),
        other => Err(format!("expected a tuple of integers, got {other:?}")),
    }
}

fn reduce(callable: Value, args: Value) -> Step<Value> {
    let Value::Tuple(args) = args else { return Err("REDUCE arguments are not a tuple".into()) };
    match callable {
        Value::Global(Global::OrderedDict) => Ok(Value::Dict(vec![])),
        Value::Global(Global::RebuildTensor) => match args.as_slice() {
            [Value::Storage { kind, key }, Value::Int(offset), size, stride, ..] => Ok(Value::Tensor(TensorRef {
                kind: *kind,
                storage: key.clone(),
                offset: *offset,
                size: int_list(size)?,
                stride: int_list(stride)?,
            })),
            _ => Err("malformed _rebuild_tensor_v2 arguments".into()),
        },
        Value::Global(Global::Record(class)) => Ok(Value::Object { class, attributes: vec![] }),
        Value::Global(Global::TypedContainer) => args.into_iter().next().ok_or_else(|| "typed container without a value".to_owned()),
        Value::Global(Global::RebuildParameter) => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => Err("malformed _rebuild_parameter arguments".into()),
        },
        other => Err(format!("cannot call {other:?}")),
    }
}

fn persistent_load(pid: Value) -> Step<Value> {
    match pid {
        Value::Tuple(items) => match items.as_slice() {
            [Value::Str(tag), Value::Global(Global::Storage(kind)), key, ..] if tag == "storage" => {
                let key = match key {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    _ => return Err("storage key is neither a string nor an integer".into()),
                };
                Ok(Value::Storage { kind: *kind, key })
            }
            _ => Err(format!("unknown persistent id {items:?}")),
        },
        other => Err(format!("unknown persistent id {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A `torch.save`-shaped archive: `pickle` as its data.pkl, `storage` as storage '0'.
    fn archive(pickle: &[u8], storage: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut zip = zip::ZipWriter::new(file.reopen().unwrap());
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", stored).unwrap();
        zip.write_all(pickle).unwrap();
        zip.start_file("archive/data/0", stored).unwrap();
        zip.write_all(storage).unwrap();
        zip.finish().unwrap();
        file
    }

    #[test]
    fn refuses_a_pickle_that_would_call_anything_else() {
        // protocol 2: os.system("echo pwned") — what a malicious checkpoint does on torch.load.
        let pickle = b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
        let file = archive(pickle, &[]);
        let err = PthFile::open(file.path()).err().expect("refused").to_string();
        assert!(err.contains("refused") && err.contains("os.system"), "{err}");
        // The same refusal through STACK_GLOBAL (protocol 4).
        let pickle = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93X\x01\x00\x00\x001\x85R.";
        let err = PthFile::open(archive(pickle, &[]).path()).err().expect("refused").to_string();
        assert!(err.contains("builtins.eval"), "{err}");
    }

    #[test]
    fn malformed_pickles_are_errors_not_panics() {
        let cases: [(&[u8], &str); 3] = [
            // MARK, then a POP below it, then TUPLE: the mark lies beyond the stack.
            (b"\x80\x02N(0t.", "MARK beyond the stack"),
            // A string whose declared length overflows the position arithmetic.
            (b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff.", "ends early"),
            // GLOBAL without its newline.
            (b"\x80\x02ctorch", "ends early"),
        ];
        for (pickle, expected) in cases {
            let err = PthFile::open(archive(pickle, &[]).path()).err().expect("refused").to_string();
            assert!(err.contains(expected), "{pickle:?}: {err}");
        }
    }

    #[test]
    fn hostile_pickles_are_bounded() {
        // 100 000 nested lists: recursion over them (drop, clone) would overflow the stack.
        let mut deep = b"\x80\x02".to_vec();
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.extend(std::iter::repeat_n(b'a', 99_999));
        deep.push(b'.');
        // DUP and TUPLE2 64 times: 2^64 nodes if shared values were copied.
        let mut doubling = b"\x80\x02]".to_vec();
        doubling.extend(b"2\x86".repeat(64));
        doubling.push(b'.');
        // A 16 KiB string fetched from the memo 30 000 times: 490 MB of copies from 76 KB.
        let mut long_string = b"\x80\x02X\x00\x40\x00\x00".to_vec();
        long_string.extend(std::iter::repeat_n(b'a', 1 << 14));
        long_string.extend(b"q\x00");
        long_string.extend(b"h\x00".repeat(30_000));
        long_string.push(b'.');
        let cases = [(deep, "nest deeper than 256"), (doubling, "expand the pickle past its bound"), (long_string, "expand the pickle past its bound")];
        for (pickle, expected) in cases {
            let err = PthFile::open(archive(&pickle, &[]).path()).err().expect("refused").to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn a_view_larger_than_its_storage_is_refused() {
        // 10^12 elements of stride 0 over a 4-float storage: copying it out would take 4 TB.
        let pickle = b"\x80\x02}q\x00X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00\x8a\x06\x00\x10\xa5\xd4\xe8\x00\x85K\x00\x85\x89ccollections\nOrderedDict\n)RtRs.";
        let storage: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let file = archive(pickle, &storage);
        let err = PthFile::open(file.path()).unwrap().state_dict().expect_err("refused").to_string();
        assert!(err.contains("1000000000000 elements but its storage holds 4"), "{err}");
    }

    #[test]
    fn a_zip_bomb_is_refused() {
        // 64 MiB of zeros deflated into a file of a few hundred kB.
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut zip = zip::ZipWriter::new(file.reopen().unwrap());
        let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("archive/data.pkl", deflated).unwrap();
        zip.write_all(&vec![0u8; 64 << 20]).unwrap();
        zip.finish().unwrap();
        let err = PthFile::open(file.path()).err().expect("refused").to_string();
        assert!(err.contains("decompresses to more than 4× the file's size"), "{err}");
    }

    #[test]
    fn reads_the_weights_of_an_mmengine_checkpoint() {
        // Written by scripts/fixtures/mmengine_checkpoint.py: numpy values in `meta`, a
        // HistoryBuffer in `message_hub`, optimizer state, and the weights under `state_dict`.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mmengine_checkpoint.pth");
        let state = PthFile::open(&path).unwrap().state_dict().unwrap();
        let shapes: Vec<(&str, Vec<i64>)> = state.iter().map(|(k, t)| (k.as_str(), t.size())).collect();
        assert_eq!(shapes, [("gamma", vec![4]), ("decode_head.conv_seg.weight", vec![2, 4, 1, 1]), ("backbone.bn1.num_batches_tracked", vec![])]);
        assert_eq!(state[2].1.int64_value(&[]), 1000);
    }

    #[test]
    fn reads_a_tensor_view_with_offset_and_stride() {
        // {'w': _rebuild_tensor_v2(FloatStorage '0', offset 1, size (2,), stride (2,), False, OrderedDict())}
        let pickle = b"\x80\x02}q\x00X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x01K\x02\x85K\x02\x85\x89ccollections\nOrderedDict\n)RtRs.";
        let storage: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let file = archive(pickle, &storage);
        let state = PthFile::open(file.path()).unwrap().state_dict().unwrap();
        assert_eq!(state.len(), 1);
        assert_eq!(state[0].0, "w");
        assert_eq!(Vec::<f32>::try_from(&state[0].1).unwrap(), [2.0, 4.0]);
    }
}
