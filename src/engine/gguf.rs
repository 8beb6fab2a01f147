//! GGUF container reader over a memory map (versions 2 and 3).
//!
//! Layout (little-endian): magic `GGUF`, version u32, tensor count u64,
//! metadata count u64, metadata key/values, tensor infos, padding to
//! `general.alignment` (default 32), tensor data. Every length, count and
//! offset is checked against the file before use; weights stay in the
//! mapping and are handed out as borrowed slices.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::engine::quant::GgmlType;

/// Little-endian "GGUF".
const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Default data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Longest string accepted (keys, string values, tensor names).
pub const MAX_STRING_LEN: u64 = 64 << 20;
/// Most elements accepted in one metadata array.
pub const MAX_ARRAY_LEN: u64 = 1 << 28;
/// Most nesting levels of arrays inside arrays.
pub const MAX_ARRAY_DEPTH: u32 = 8;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

/// Why a GGUF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a gguf file: magic is {found:02x?}, expected \"GGUF\"")]
    Magic { found: Vec<u8> },
    #[error(
        "gguf version {version} is not supported (only versions 2 and 3; version 1 used 32-bit counts)"
    )]
    Version { version: u32 },
    #[error("{field} needs {needed} bytes at offset {offset}, only {remaining} remaining in file")]
    Truncated {
        field: String,
        needed: u64,
        offset: u64,
        remaining: u64,
    },
    #[error("{field} is {value}, limit is {limit}")]
    TooLarge {
        field: String,
        value: u64,
        limit: u64,
    },
    #[error("{field} has unknown metadata value type {value}")]
    ValueType { field: String, value: u32 },
    #[error("{field} is not valid utf-8")]
    Utf8 { field: String },
    #[error("tensor {name} has unknown ggml type id {id}")]
    TensorType { name: String, id: u32 },
    #[error("tensor {name} has {n_dims} dimensions, limit is {limit}")]
    Dims {
        name: String,
        n_dims: u32,
        limit: u32,
    },
    #[error("tensor {name} has shape {dims:?} whose element count overflows")]
    Overflow { name: String, dims: Vec<u64> },
    #[error("tensor {name} has {elements} elements, not a multiple of the {ty} block size {block}")]
    BlockMultiple {
        name: String,
        elements: u64,
        ty: GgmlType,
        block: usize,
    },
    #[error("tensor {name} data offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned {
        name: String,
        offset: u64,
        alignment: u64,
    },
    #[error("general.alignment is {value}, must be a power of two no larger than {limit}")]
    Alignment { value: u64, limit: u64 },
    #[error("tensor {name} appears twice in the tensor table")]
    Duplicate { name: String },
    #[error("tensor {name} not found in the model")]
    Missing { name: String },
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// Any non-negative integer, widened to u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer that fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }

    /// A float (f32, f64 narrowed) or an integer converted.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            Value::F64(v) => Some(v as f32),
            _ => self.as_i64().map(|v| v as f32),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml `ne` order: `dims[0]` is the innermost (contiguous) dimension.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements (product of `dims`; checked when the file was read).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A tensor's info and its bytes, borrowed from the mapping.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    pub info: &'a TensorInfo,
    pub data: &'a [u8],
}

/// An open GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    map: Mmap,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
}

impl GgufFile {
    /// Maps and parses `path`. Tensor data is not read.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only; we rely on the file not being
        // truncated or modified while open, the same contract every
        // mmap-based model loader has. All reads are bounds-checked against
        // the mapping's length taken once here.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let header = parse(&map)?;
        Ok(GgufFile {
            map,
            version: header.version,
            alignment: header.alignment,
            data_offset: header.data_offset,
            metadata: header.metadata,
            tensors: header.tensors,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Metadata key/values in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`, with its data borrowed from the mapping.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>, GgufError> {
        let info = self
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| GgufError::Missing {
                name: name.to_string(),
            })?;
        // Bounds were checked in `parse`.
        let data = &self.map[info.offset as usize..(info.offset + info.size) as usize];
        Ok(TensorView { info, data })
    }

    pub fn file_size(&self) -> u64 {
        self.map.len() as u64
    }

    /// The data alignment (`general.alignment` or 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
}

/// A parsed header (everything but the tensor data).
#[derive(Debug)]
pub struct Header {
    pub version: u32,
    pub alignment: u64,
    pub data_offset: u64,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64, field: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let remaining = (self.buf.len() - self.pos) as u64;
        if n > remaining {
            return Err(GgufError::Truncated {
                field: field(),
                needed: n,
                offset: self.pos as u64,
                remaining,
            });
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        Ok(self
            .take(N as u64, field)?
            .try_into()
            .expect("length taken"))
    }

    fn u32(&mut self, field: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn string(&mut self, field: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(&|| format!("{} length", field()))?;
        if len > MAX_STRING_LEN {
            return Err(GgufError::TooLarge {
                field: format!("{} length", field()),
                value: len,
                limit: MAX_STRING_LEN,
            });
        }
        let bytes = self.take(len, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::Utf8 { field: field() })
    }

    fn value(
        &mut self,
        ty: u32,
        field: &dyn Fn() -> String,
        depth: u32,
    ) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::U8(u8::from_le_bytes(self.array(field)?)),
            1 => Value::I8(i8::from_le_bytes(self.array(field)?)),
            2 => Value::U16(u16::from_le_bytes(self.array(field)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(field)?)),
            4 => Value::U32(u32::from_le_bytes(self.array(field)?)),
            5 => Value::I32(i32::from_le_bytes(self.array(field)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(field)?)),
            7 => {
                let [b] = self.array(field)?;
                match b {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    _ => {
                        return Err(GgufError::TooLarge {
                            field: format!("{} (bool)", field()),
                            value: b.into(),
                            limit: 1,
                        });
                    }
                }
            }
            8 => Value::String(self.string(field)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::TooLarge {
                        field: format!("{} array nesting", field()),
                        value: (depth + 1).into(),
                        limit: MAX_ARRAY_DEPTH.into(),
                    });
                }
                let elem_ty = self.u32(&|| format!("{} array type", field()))?;
                let count = self.u64(&|| format!("{} array length", field()))?;
                if count > MAX_ARRAY_LEN {
                    return Err(GgufError::TooLarge {
                        field: format!("{} array length", field()),
                        value: count,
                        limit: MAX_ARRAY_LEN,
                    });
                }
                // Every element takes at least one byte: reject counts the
                // rest of the file cannot hold before allocating.
                let remaining = (self.buf.len() - self.pos) as u64;
                let min_elem = match elem_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4 | 5 | 6 => 4,
                    8 | 10 | 11 | 12 => 8,
                    9 => 12,
                    other => {
                        return Err(GgufError::ValueType {
                            field: format!("{} array element", field()),
                            value: other,
                        });
                    }
                };
                if count.saturating_mul(min_elem) > remaining {
                    return Err(GgufError::Truncated {
                        field: format!("{} array of {count} elements", field()),
                        needed: count.saturating_mul(min_elem),
                        offset: self.pos as u64,
                        remaining,
                    });
                }
                let mut items = Vec::with_capacity(count as usize);
                for i in 0..count {
                    items.push(self.value(elem_ty, &|| format!("{}[{i}]", field()), depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(u64::from_le_bytes(self.array(field)?)),
            11 => Value::I64(i64::from_le_bytes(self.array(field)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(field)?)),
            other => {
                return Err(GgufError::ValueType {
                    field: field(),
                    value: other,
                });
            }
        })
    }
}

/// Parses a whole GGUF image (header, metadata, tensor table) and checks
/// every tensor's data range against `buf`.
pub fn parse(buf: &[u8]) -> Result<Header, GgufError> {
    let mut r = Reader { buf, pos: 0 };
    let magic: [u8; 4] = r.array(&|| "magic".into()).map_err(|_| GgufError::Magic {
        found: buf[..buf.len().min(4)].to_vec(),
    })?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::Magic {
            found: magic.to_vec(),
        });
    }
    let version = r.u32(&|| "version".into())?;
    if version != 2 && version != 3 {
        return Err(GgufError::Version { version });
    }
    let n_tensors = r.u64(&|| "tensor count".into())?;
    let n_kv = r.u64(&|| "metadata count".into())?;
    // A key/value takes at least 12 bytes, a tensor info at least 24.
    let remaining = (buf.len() - r.pos) as u64;
    if n_kv > remaining / 12 {
        return Err(GgufError::TooLarge {
            field: "metadata count".into(),
            value: n_kv,
            limit: remaining / 12,
        });
    }
    if n_tensors > remaining / 24 {
        return Err(GgufError::TooLarge {
            field: "tensor count".into(),
            value: n_tensors,
            limit: remaining / 24,
        });
    }

    let mut metadata = Vec::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key = r.string(&|| format!("metadata key {i}"))?;
        let ty = r.u32(&|| format!("metadata {key} type"))?;
        let value = r.value(ty, &|| format!("metadata {key}"), 0)?;
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, v)) => {
            let a = v.as_u64().unwrap_or(0);
            if a == 0 || !a.is_power_of_two() || a > 1 << 20 {
                return Err(GgufError::Alignment {
                    value: a,
                    limit: 1 << 20,
                });
            }
            a
        }
    };

    let mut infos = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name = r.string(&|| format!("tensor {i} name"))?;
        let n_dims = r.u32(&|| format!("tensor {name} dimension count"))?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::Dims {
                name,
                n_dims,
                limit: MAX_DIMS,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(r.u64(&|| format!("tensor {name} dimension {d}"))?);
        }
        let type_id = r.u32(&|| format!("tensor {name} type"))?;
        let ty = GgmlType::from_id(type_id).ok_or_else(|| GgufError::TensorType {
            name: name.clone(),
            id: type_id,
        })?;
        let rel = r.u64(&|| format!("tensor {name} offset"))?;
        infos.push((name, dims, ty, rel));
    }

    let data_offset = (r.pos as u64).next_multiple_of(alignment);
    let file_len = buf.len() as u64;
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(infos.len());
    let mut names = std::collections::HashSet::with_capacity(infos.len());
    for (name, dims, ty, rel) in infos {
        let Some(elements) = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)) else {
            return Err(GgufError::Overflow { name, dims });
        };
        let size = match ty.row_bytes(elements) {
            Some(s) => s,
            None if elements.is_multiple_of(ty.block_size() as u64) => {
                return Err(GgufError::Overflow { name, dims });
            }
            None => {
                return Err(GgufError::BlockMultiple {
                    name,
                    elements,
                    ty,
                    block: ty.block_size(),
                });
            }
        };
        if !rel.is_multiple_of(alignment) {
            return Err(GgufError::Misaligned {
                name,
                offset: rel,
                alignment,
            });
        }
        let offset = data_offset.checked_add(rel).filter(|&o| o <= file_len);
        let Some(offset) = offset else {
            return Err(GgufError::Truncated {
                field: format!("tensor {name}"),
                needed: size,
                offset: data_offset.saturating_add(rel),
                remaining: 0,
            });
        };
        if size > file_len - offset {
            return Err(GgufError::Truncated {
                field: format!("tensor {name}"),
                needed: size,
                offset,
                remaining: file_len - offset,
            });
        }
        if !names.insert(name.clone()) {
            return Err(GgufError::Duplicate { name });
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            size,
        });
    }
    Ok(Header {
        version,
        alignment,
        data_offset,
        metadata,
        tensors,
    })
}

/// Builds GGUF images in memory (tests, fixtures, fuzzing).
pub mod write {
    use super::Value;
    use crate::engine::quant::GgmlType;

    fn value_type(v: &Value) -> u32 {
        match v {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    fn put_value(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::U8(x) => out.push(*x),
            Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::Bool(x) => out.push(*x as u8),
            Value::String(s) => put_str(out, s),
            Value::Array(items) => {
                let elem = items.first().map(value_type).unwrap_or(0);
                out.extend_from_slice(&elem.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for it in items {
                    put_value(out, it);
                }
            }
        }
    }

    /// A GGUF v3 image with `metadata` and `tensors` (name, dims, type,
    /// data). Tensor data is laid out in order, each aligned to
    /// `general.alignment` if present in `metadata`, else 32.
    pub fn gguf(
        metadata: &[(&str, Value)],
        tensors: &[(&str, &[u64], GgmlType, &[u8])],
    ) -> Vec<u8> {
        let alignment = metadata
            .iter()
            .find(|(k, _)| *k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(32) as usize;
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (k, v) in metadata {
            put_str(&mut out, k);
            out.extend_from_slice(&value_type(v).to_le_bytes());
            put_value(&mut out, v);
        }
        let mut rel = 0usize;
        for (name, dims, ty, data) in tensors {
            put_str(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in *dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.id().to_le_bytes());
            out.extend_from_slice(&(rel as u64).to_le_bytes());
            rel = (rel + data.len()).next_multiple_of(alignment);
        }
        out.resize(out.len().next_multiple_of(alignment), 0);
        for (_, _, _, data) in tensors {
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(alignment), 0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::write::gguf;
    use super::*;

    fn small() -> Vec<u8> {
        let w: Vec<u8> = (0..8u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let q = vec![7u8; 40];
        gguf(
            &[
                ("general.architecture", Value::String("llama".into())),
                ("llama.block_count", Value::U32(2)),
                ("x.neg", Value::I32(-3)),
                (
                    "x.nested",
                    Value::Array(vec![
                        Value::Array(vec![Value::U8(1), Value::U8(2)]),
                        Value::Array(vec![Value::U8(3)]),
                    ]),
                ),
                ("x.flag", Value::Bool(true)),
                ("x.f64", Value::F64(0.5)),
            ],
            &[
                ("a", &[4, 2], GgmlType::F32, &w),
                ("b", &[64], GgmlType::Q4_1, &q),
            ],
        )
    }

    #[test]
    fn small_file_parses_metadata_and_tensors() {
        let h = parse(&small()).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.metadata.len(), 6);
        assert_eq!(h.metadata[0].1.as_str(), Some("llama"));
        assert_eq!(h.metadata[1].1.as_u64(), Some(2));
        assert_eq!(h.metadata[2].1.as_u64(), None);
        assert_eq!(h.metadata[2].1.as_i64(), Some(-3));
        assert_eq!(
            h.metadata[3].1.as_array().unwrap()[0]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.tensors[0].size, 32);
        assert_eq!(h.tensors[1].size, 40);
        assert_eq!(h.tensors[1].offset % 32, 0);
    }

    #[test]
    fn open_reads_tensor_data_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.gguf");
        std::fs::write(&path, small()).unwrap();
        let f = GgufFile::open(&path).unwrap();
        let a = f.tensor("a").unwrap();
        assert_eq!(f32::from_le_bytes(a.data[12..16].try_into().unwrap()), 3.0);
        assert_eq!(
            f.tensor("blk.0.attn_q.weight").unwrap_err().to_string(),
            "tensor blk.0.attn_q.weight not found in the model"
        );
        assert_eq!(f.get("x.flag").and_then(Value::as_bool), Some(true));
    }

    #[test]
    fn version_1_is_rejected_with_reason() {
        let mut b = small();
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        let e = parse(&b).unwrap_err().to_string();
        assert!(e.starts_with("gguf version 1 is not supported"), "{e}");
    }

    #[test]
    fn bad_magic_is_named() {
        let e = parse(b"GGML\x03\0\0\0").unwrap_err().to_string();
        assert!(e.contains("not a gguf file"), "{e}");
        assert!(parse(b"GG").is_err());
    }

    #[test]
    fn huge_string_length_names_field_and_limit() {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        b.extend_from_slice(&[0u8; 16]);
        assert_eq!(
            parse(&b).unwrap_err().to_string(),
            format!(
                "metadata key 0 length is {}, limit is {MAX_STRING_LEN}",
                u64::MAX
            )
        );
    }

    #[test]
    fn truncated_string_reports_needed_and_remaining() {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&100u64.to_le_bytes());
        b.extend_from_slice(b"general");
        assert_eq!(
            parse(&b).unwrap_err().to_string(),
            "metadata key 0 needs 100 bytes at offset 32, only 7 remaining in file"
        );
    }

    #[test]
    fn tensor_past_end_of_file_is_named() {
        let mut b = small();
        // Tensor b's 40 bytes start at 352; keep 12 of them.
        b.truncate(352 + 12);
        let e = parse(&b).unwrap_err().to_string();
        assert!(
            e.starts_with("tensor b needs 40 bytes at offset")
                && e.ends_with("only 12 remaining in file"),
            "{e}"
        );
    }

    #[test]
    fn hostile_counts_are_rejected_before_allocating() {
        let mut b = small();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = parse(&b).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("tensor count is {}, limit is", u64::MAX)),
            "{e}"
        );

        let big_array = gguf(&[("k", Value::Array(vec![Value::U32(1)]))], &[]);
        let mut b = big_array.clone();
        // key len(8) + "k"(1) + type(4) + elem type(4) = count at 24+17.
        b[41..49].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let e = parse(&b).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "metadata k array length is {}, limit is {MAX_ARRAY_LEN}",
                1u64 << 40
            )
        );
        b[41..49].copy_from_slice(&(1000u64).to_le_bytes());
        let e = parse(&b).unwrap_err().to_string();
        assert!(
            e.starts_with("metadata k array of 1000 elements needs 4000 bytes"),
            "{e}"
        );
    }

    #[test]
    fn unknown_types_and_bad_shapes_are_named() {
        let d = vec![0u8; 40];
        let b = gguf(&[], &[("t", &[64], GgmlType::Q4_1, &d)]);
        // Patch the type id (after name len 8 + "t" + n_dims 4 + dim 8).
        let ty_at = 24 + 8 + 1 + 4 + 8;
        let mut bad = b.clone();
        bad[ty_at..ty_at + 4].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(
            parse(&bad).unwrap_err().to_string(),
            "tensor t has unknown ggml type id 4"
        );

        let mut bad = b.clone();
        bad[ty_at - 8..ty_at].copy_from_slice(&65u64.to_le_bytes());
        assert_eq!(
            parse(&bad).unwrap_err().to_string(),
            "tensor t has 65 elements, not a multiple of the q4_1 block size 32"
        );

        let e = gguf(
            &[],
            &[("t", &[1 << 32, 1 << 32, 1 << 32], GgmlType::F32, &[])],
        );
        assert!(parse(&e).unwrap_err().to_string().contains("overflows"));

        let mut bad = b.clone();
        bad[ty_at + 4..ty_at + 12].copy_from_slice(&3u64.to_le_bytes());
        assert_eq!(
            parse(&bad).unwrap_err().to_string(),
            "tensor t data offset 3 is not a multiple of the alignment 32"
        );
    }

    #[test]
    fn bad_alignment_is_rejected() {
        let b = gguf(&[("general.alignment", Value::U32(3))], &[]);
        assert_eq!(
            parse(&b).unwrap_err().to_string(),
            "general.alignment is 3, must be a power of two no larger than 1048576"
        );
        let b = gguf(
            &[("general.alignment", Value::U32(64))],
            &[("t", &[2], GgmlType::F32, &[0; 8])],
        );
        let h = parse(&b).unwrap();
        assert_eq!(h.alignment, 64);
        assert_eq!(h.data_offset % 64, 0);
    }

    fn default_model_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("BYLINE_MODEL") {
            return Some(PathBuf::from(p));
        }
        let dir = std::env::var_os("BYLINE_MODEL_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("byline/models"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/byline/models"))
            })?;
        let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        p.exists().then_some(p)
    }

    #[test]
    fn default_model_opens_with_its_tensor_mix() {
        let Some(path) = default_model_path() else {
            eprintln!("default model not found; run tools/fetch_default_model.sh");
            return;
        };
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.version(), 3);
        assert_eq!(
            f.get("general.architecture").and_then(Value::as_str),
            Some("llama")
        );
        assert_eq!(f.tensors().len(), 272);
        let count = |ty| f.tensors().iter().filter(|t| t.ty == ty).count();
        assert_eq!(count(GgmlType::Q4_1), 210);
        assert_eq!(count(GgmlType::F32), 61);
        assert_eq!(count(GgmlType::Q8_0), 1);
        let emb = f.tensor("token_embd.weight").unwrap();
        assert_eq!(emb.info.dims, vec![576, 49152]);
        assert_eq!(emb.data.len() as u64, emb.info.size);
        let tokens = f
            .get("tokenizer.ggml.tokens")
            .and_then(Value::as_array)
            .unwrap();
        assert_eq!(tokens.len(), 49152);
        assert_eq!(f.file_size(), 98_362_432);
    }

    /// Every input the fuzzer kept (`fuzz/corpus/gguf`, grown by
    /// `cargo +nightly fuzz run gguf`) still parses or fails with a
    /// described error, its tensors inside the buffer.
    #[test]
    fn fuzz_corpus_replays_without_panics() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/gguf");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
            let b = std::fs::read(e.expect("corpus entry").path()).expect("corpus file");
            match parse(&b) {
                Ok(h) => {
                    for t in &h.tensors {
                        assert!(t.offset + t.size <= b.len() as u64);
                    }
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
            n += 1;
        }
        assert!(n >= 3, "{n} corpus files");
    }

    /// Seeded random mutations of a valid file never panic: every outcome
    /// is Ok or a described error.
    #[test]
    fn random_mutations_never_panic() {
        let base = small();
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let interesting = [
            0u64,
            1,
            2,
            3,
            8,
            9,
            12,
            31,
            32,
            255,
            u32::MAX as u64,
            u64::MAX,
            1 << 40,
        ];
        let (mut ok, mut err) = (0, 0);
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % b.len();
                match next() % 4 {
                    0 => b[at] = next() as u8,
                    1 => {
                        let v = interesting[(next() as usize) % interesting.len()].to_le_bytes();
                        let end = (at + 8).min(b.len());
                        b[at..end].copy_from_slice(&v[..end - at]);
                    }
                    2 => b.truncate(at),
                    _ => b[at] ^= 1 << (next() % 8),
                }
                if b.is_empty() {
                    break;
                }
            }
            match parse(&b) {
                Ok(h) => {
                    for t in &h.tensors {
                        assert!(t.offset + t.size <= b.len() as u64);
                    }
                    ok += 1;
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    err += 1;
                }
            }
        }
        assert!(ok > 0 && err > 0, "ok {ok} err {err}");
    }
}
