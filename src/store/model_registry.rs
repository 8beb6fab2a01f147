//! The model registry: GGUF files a user registered by name with
//! `byline model add`, kept in one small JSON file in the user's data
//! directory (`$BYLINE_DATA_DIR`, else `$XDG_DATA_HOME/byline`, else
//! `~/.local/share/byline`), `models.json`.
//!
//! Why a file of its own and not the corpus: a model belongs to the user and
//! the machine (its path), not to one corpus; `byline generate` and
//! `model list` use it without any corpus, and read-only commands must never
//! write to a corpus. The file is rewritten whole through a temporary file
//! and a rename, so a crash leaves the old or the new registry, never half.
//!
//! In: a GGUF path and a name. Out: entries with the file's sha256, its
//! architecture, whether Byline runs it, and its chat template's presence
//! and sha256 (read from the GGUF metadata). Never: printing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::arch::general;
use crate::engine::chat::{ChatError, ChatTemplate};
use crate::engine::gguf::{GgufFile, Value};
use crate::engine::model::Hparams;

/// What can go wrong registering or reading the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path} is not a usable GGUF file: {detail}")]
    BadModel { path: String, detail: String },
    #[error(
        "the name {0:?} is not usable: a model name is 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
    )]
    BadName(String),
    #[error(
        "the name {name:?} is already registered for {path}; choose another with --name, or remove that entry first"
    )]
    NameTaken { name: String, path: String },
    #[error("reading the model registry {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("writing the model registry {path}: {detail}")]
    Write { path: String, detail: String },
}

/// One registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    /// Absolute path of the GGUF file.
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// `general.architecture`.
    pub architecture: String,
    /// `general.name`, when the file has one.
    pub model_name: Option<String>,
    /// Byline's engine can run it (its architecture and shapes are known).
    pub supported: bool,
    /// Why not, when it cannot.
    pub unsupported_reason: Option<String>,
    /// The file carries a chat template that compiles.
    pub chat_template: bool,
    /// sha256 of `tokenizer.chat_template`, when present.
    pub chat_template_sha256: Option<String>,
    /// Unix seconds.
    pub added_at: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegistryFile {
    models: Vec<ModelEntry>,
}

/// The registry file's directory.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BYLINE_DATA_DIR") {
        return PathBuf::from(d);
    }
    std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from(".local/share"))
        .join("byline")
}

/// The registry file.
pub fn registry_path() -> PathBuf {
    data_dir().join("models.json")
}

/// Whether `name` is a usable model name.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with(['.', '-'])
}

fn read_registry(path: &Path) -> Result<RegistryFile, RegistryError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RegistryError::Read {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryFile::default()),
        Err(e) => Err(RegistryError::Read {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
    }
}

fn write_registry(path: &Path, reg: &RegistryFile) -> Result<(), RegistryError> {
    let err = |e: std::io::Error| RegistryError::Write {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
    let json = serde_json::to_vec_pretty(reg).map_err(|e| RegistryError::Write {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    std::fs::write(&tmp, json).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Every registered model, in the order added.
pub fn list() -> Result<Vec<ModelEntry>, RegistryError> {
    Ok(read_registry(&registry_path())?.models)
}

/// The registered model called `name`.
pub fn lookup(name: &str) -> Result<Option<ModelEntry>, RegistryError> {
    Ok(list()?.into_iter().find(|m| m.name == name))
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex::encode(h.finalize()))
}

/// Reads what the registry records about a GGUF file (everything but its
/// name and time); a file that does not parse as GGUF, or has no
/// architecture, is a [`RegistryError::BadModel`].
pub fn inspect(path: &Path) -> Result<ModelEntry, RegistryError> {
    let bad = |detail: String| RegistryError::BadModel {
        path: path.display().to_string(),
        detail,
    };
    let abs = std::fs::canonicalize(path).map_err(|e| bad(e.to_string()))?;
    let file = GgufFile::open(&abs).map_err(|e| bad(e.to_string()))?;
    let s = |k: &str| file.get(k).and_then(Value::as_str).map(str::to_string);
    let architecture = s(general::ARCHITECTURE)
        .ok_or_else(|| bad("the metadata has no general.architecture".into()))?;
    let (supported, unsupported_reason) = match Hparams::read(&file) {
        Ok(_) => (true, None),
        Err(e) => (false, Some(e.to_string())),
    };
    let template_src = s(general::CHAT_TEMPLATE);
    let chat_template = match ChatTemplate::from_gguf(&file) {
        Ok(_) => true,
        Err(ChatError::Missing) => false,
        Err(_) => false,
    };
    let sha256 = sha256_file(&abs).map_err(|e| bad(e.to_string()))?;
    Ok(ModelEntry {
        name: String::new(),
        path: abs.display().to_string(),
        sha256,
        size: file.file_size(),
        architecture,
        model_name: s(general::NAME),
        supported,
        unsupported_reason,
        chat_template,
        chat_template_sha256: template_src.map(|t| hex::encode(Sha256::digest(t.as_bytes()))),
        added_at: 0,
    })
}

/// A default name for a model: its `general.name`, else the file stem,
/// reduced to the characters a name may hold.
pub fn default_name(entry: &ModelEntry) -> String {
    let stem = Path::new(&entry.path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string();
    let raw = entry.model_name.clone().unwrap_or(stem);
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_start_matches(['.', '-']).to_string();
    name.truncate(64);
    if name.is_empty() {
        "model".into()
    } else {
        name
    }
}

/// Registers the GGUF at `path` as `name` (default [`default_name`]);
/// registering the same file under its name again updates the entry.
pub fn add(path: &Path, name: Option<&str>, now: i64) -> Result<ModelEntry, RegistryError> {
    let mut entry = inspect(path)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => default_name(&entry),
    };
    if !valid_name(&name) {
        return Err(RegistryError::BadName(name));
    }
    entry.name = name;
    entry.added_at = now;
    let reg_path = registry_path();
    let mut reg = read_registry(&reg_path)?;
    if let Some(old) = reg.models.iter().find(|m| m.name == entry.name)
        && old.path != entry.path
    {
        return Err(RegistryError::NameTaken {
            name: entry.name.clone(),
            path: old.path.clone(),
        });
    }
    reg.models.retain(|m| m.name != entry.name);
    reg.models.push(entry.clone());
    write_registry(&reg_path, &reg)?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_plain_and_not_paths() {
        assert!(valid_name("smollm2-135m"));
        assert!(valid_name("Qwen2.5_0.5B"));
        for bad in ["", ".hidden", "-x", "a/b", "../x", "a b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
