//! Chat templates: `tokenizer.chat_template` rendered with minijinja the way
//! Hugging Face's `apply_chat_template` renders it with jinja2.
//!
//! What makes the output byte-identical to jinja2 (checked against
//! `tools/ref_chat_template.py` outputs in `tests/data/chat/`):
//! * `trim_blocks` and `lstrip_blocks` on, trailing newline dropped;
//! * Python string methods (`.strip()`, `.startswith()`, `.items()`, ...)
//!   through minijinja-contrib's pycompat callback;
//! * a `tojson` like HF's (`json.dumps(ensure_ascii=False)`: `", "` and
//!   `": "` separators, no HTML escaping, keys in insertion order);
//! * `raise_exception(msg)` and `strftime_now(fmt)` globals;
//! * `{% break %}` / `{% continue %}` (loop controls).
//!
//! Context variables: `messages`, `tools` (when given), `add_generation_prompt`,
//! `bos_token`, `eos_token`.

use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{Environment, Error, ErrorKind};

use super::gguf::{GgufFile, Value as GgufValue};

/// Errors from compiling or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The template source does not compile.
    #[error("chat template does not compile: {0}")]
    Compile(String),
    /// The template called `raise_exception`.
    #[error("chat template raised: {0}")]
    Raised(String),
    /// Rendering failed for another reason.
    #[error("chat template failed to render: {0}")]
    Render(String),
    /// The model has no `tokenizer.chat_template`.
    #[error("model has no tokenizer.chat_template")]
    Missing,
}

/// One chat message with plain text content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`. `bos_token` and `eos_token` are the texts of the
    /// model's BOS and EOS tokens (empty if it has none).
    pub fn new(
        source: &str,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<ChatTemplate, ChatError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| ChatError::Compile(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", py_tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| ChatError::Compile(describe(&e)))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The template a GGUF file carries in `tokenizer.chat_template`, with
    /// the texts of its BOS and EOS tokens (`tokenizer.ggml.bos_token_id`,
    /// `tokenizer.ggml.eos_token_id` into `tokenizer.ggml.tokens`; empty when
    /// the model has none).
    pub fn from_gguf(file: &GgufFile) -> Result<ChatTemplate, ChatError> {
        let source = file
            .get("tokenizer.chat_template")
            .and_then(GgufValue::as_str)
            .ok_or(ChatError::Missing)?;
        let tokens = file
            .get("tokenizer.ggml.tokens")
            .and_then(GgufValue::as_array)
            .unwrap_or(&[]);
        let text_of = |key: &str| -> String {
            file.get(key)
                .and_then(GgufValue::as_u64)
                .and_then(|id| tokens.get(usize::try_from(id).ok()?))
                .and_then(GgufValue::as_str)
                .unwrap_or("")
                .to_string()
        };
        ChatTemplate::new(
            source,
            text_of("tokenizer.ggml.bos_token_id"),
            text_of("tokenizer.ggml.eos_token_id"),
        )
    }

    /// The BOS token text given to the template.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The EOS token text given to the template.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Renders plain-text messages.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        let v = serde_json::to_value(messages).map_err(|e| ChatError::Render(e.to_string()))?;
        self.render_json(&v, None, add_generation_prompt)
    }

    /// Renders messages given as JSON (content parts, `tool_calls`, ...),
    /// with optional tool definitions.
    pub fn render_json(
        &self,
        messages: &serde_json::Value,
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ChatError::Render(describe(&e)))?;
        let ctx = minijinja::context! {
            messages => Value::from(Serde(messages)),
            tools => tools.map(|t| Value::from(Serde(t))).unwrap_or(Value::from(())),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        tmpl.render(ctx).map_err(|e| {
            if e.kind() == ErrorKind::InvalidOperation
                && let Some(msg) = e.detail().and_then(|d| d.strip_prefix(RAISED))
            {
                return ChatError::Raised(msg.to_string());
            }
            ChatError::Render(describe(&e))
        })
    }
}

const RAISED: &str = "raise_exception: ";

fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn raise_exception(msg: String) -> Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("{RAISED}{msg}"),
    ))
}

/// `strftime_now(fmt)`: the current UTC time formatted with the common
/// C `strftime` directives.
fn strftime_now(fmt: String) -> Result<Value, Error> {
    let now = time::OffsetDateTime::now_utc();
    Ok(Value::from(strftime(now, &fmt)))
}

fn strftime(t: time::OffsetDateTime, fmt: &str) -> String {
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = chars.next();
        // glibc's "%-d": no padding.
        let unpadded = spec == Some('-');
        if unpadded {
            spec = chars.next();
        }
        let num = |n: i64, width: usize| {
            if unpadded {
                n.to_string()
            } else {
                format!("{n:0width$}")
            }
        };
        let day = DAYS[t.weekday().number_days_from_monday() as usize];
        let month = MONTHS[u8::from(t.month()) as usize - 1];
        let hour12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        match spec {
            Some('Y') => out.push_str(&t.year().to_string()),
            Some('y') => out.push_str(&num((t.year() % 100) as i64, 2)),
            Some('m') => out.push_str(&num(u8::from(t.month()) as i64, 2)),
            Some('d') => out.push_str(&num(t.day() as i64, 2)),
            Some('e') => out.push_str(&format!("{:>2}", t.day())),
            Some('H') => out.push_str(&num(t.hour() as i64, 2)),
            Some('I') => out.push_str(&num(hour12 as i64, 2)),
            Some('M') => out.push_str(&num(t.minute() as i64, 2)),
            Some('S') => out.push_str(&num(t.second() as i64, 2)),
            Some('j') => out.push_str(&num(t.ordinal() as i64, 3)),
            Some('p') => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            Some('A') => out.push_str(day),
            Some('a') => out.push_str(&day[..3]),
            Some('B') => out.push_str(month),
            Some('b') | Some('h') => out.push_str(&month[..3]),
            Some('F') => out.push_str(&format!(
                "{}-{:02}-{:02}",
                t.year(),
                u8::from(t.month()),
                t.day()
            )),
            Some('T') => out.push_str(&format!(
                "{:02}:{:02}:{:02}",
                t.hour(),
                t.minute(),
                t.second()
            )),
            Some('Z') => out.push_str("UTC"),
            Some('z') => out.push_str("+0000"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if unpadded {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// HF's `tojson`: `json.dumps(value, ensure_ascii=False, indent=indent)`.
fn py_tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => Some(usize::try_from(v)?),
    };
    let json = serde_json::to_value(value).map_err(|e| {
        Error::new(ErrorKind::InvalidOperation, "cannot serialize to JSON").with_source(e)
    })?;
    let mut out = String::new();
    let opts = PyJson {
        indent,
        sort_keys: sort_keys.unwrap_or(false),
        ensure_ascii: ensure_ascii.unwrap_or(false),
    };
    opts.write(&json, 0, &mut out);
    // Marked safe so an auto-escaping environment leaves it alone.
    Ok(Value::from_safe_string(out))
}

/// Python `json.dumps` formatting.
struct PyJson {
    indent: Option<usize>,
    sort_keys: bool,
    ensure_ascii: bool,
}

impl PyJson {
    fn newline(&self, level: usize, out: &mut String) {
        if let Some(n) = self.indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * level));
        }
    }

    fn item_sep(&self) -> &'static str {
        if self.indent.is_some() { "," } else { ", " }
    }

    fn write(&self, v: &serde_json::Value, level: usize, out: &mut String) {
        use serde_json::Value as J;
        match v {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Number(n) => {
                if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                    out.push_str(&py_float(f));
                } else {
                    out.push_str(&n.to_string());
                }
            }
            J::String(s) => self.string(s, out),
            J::Array(a) => {
                if a.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_sep());
                    }
                    self.newline(level + 1, out);
                    self.write(x, level + 1, out);
                }
                self.newline(level, out);
                out.push(']');
            }
            J::Object(m) => {
                if m.is_empty() {
                    out.push_str("{}");
                    return;
                }
                let mut entries: Vec<(&String, &serde_json::Value)> = m.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (k, x)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(self.item_sep());
                    }
                    self.newline(level + 1, out);
                    self.string(k, out);
                    out.push_str(": ");
                    self.write(x, level + 1, out);
                }
                self.newline(level, out);
                out.push('}');
            }
        }
    }

    fn string(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if self.ensure_ascii && (c as u32) > 0x7e => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form below
/// 1e-4 and from 1e16, exponent written with a sign and at least two digits.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    format!("{f:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(0.1), "0.1");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(1.5e-7), "1.5e-07");
        assert_eq!(py_float(123456.789), "123456.789");
    }

    #[test]
    fn tojson_matches_python_spacing_and_keeps_order() {
        let t = ChatTemplate::new("{{ x | tojson }}|{{ x | tojson(indent=2) }}", "", "").unwrap();
        let v = serde_json::json!([{"q": "<a&b>", "limit": 3, "e": []}]);
        let out = t.render_json(&v, None, false);
        // Render `messages` through tojson by a template that names it.
        assert!(out.is_ok());
        let t = ChatTemplate::new("{{ messages | tojson }}", "", "").unwrap();
        assert_eq!(
            t.render_json(&v, None, false).unwrap(),
            r#"[{"q": "<a&b>", "limit": 3, "e": []}]"#
        );
        let t = ChatTemplate::new("{{ messages | tojson(indent=2) }}", "", "").unwrap();
        assert_eq!(
            t.render_json(&v, None, false).unwrap(),
            "[\n  {\n    \"q\": \"<a&b>\",\n    \"limit\": 3,\n    \"e\": []\n  }\n]"
        );
    }

    #[test]
    fn raise_exception_is_a_typed_error() {
        let t = ChatTemplate::new("{{ raise_exception('bad role: ' ~ 'x') }}", "", "").unwrap();
        match t.render(&[], false) {
            Err(ChatError::Raised(m)) => assert_eq!(m, "bad role: x"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn strftime_directives() {
        let t = time::macros::datetime!(2026-03-05 07:08:09 UTC);
        assert_eq!(strftime(t, "%Y-%m-%d %H:%M:%S"), "2026-03-05 07:08:09");
        assert_eq!(strftime(t, "%d %B %Y"), "05 March 2026");
        assert_eq!(
            strftime(t, "%-d %b %y, %A %I%p %%"),
            "5 Mar 26, Thursday 07AM %"
        );
    }

    #[test]
    fn bad_template_does_not_compile() {
        assert!(matches!(
            ChatTemplate::new("{% for %}", "", ""),
            Err(ChatError::Compile(_))
        ));
    }
}
