//! Per-instruction argument parsers (BuildKit's `line_parsers.go`): they decide
//! between exec (JSON) and shell form and split arguments, without expanding them.

use super::split::{is_sep, parse_words};

/// Parsed arguments of one instruction.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub args: Vec<String>,
    pub json: bool,
}

/// How an instruction's arguments are parsed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    MaybeJsonToList,
    NameOrNameVal,
    MaybeJson,
    Env,
    Label,
    WhitespaceDelimited,
    Health,
    String,
    SubCommand,
    Ignore,
}

/// The argument parser of each keyword.
const KINDS: [(&str, Kind); 18] = [
    ("add", Kind::MaybeJsonToList),
    ("copy", Kind::MaybeJsonToList),
    ("volume", Kind::MaybeJsonToList),
    ("arg", Kind::NameOrNameVal),
    ("cmd", Kind::MaybeJson),
    ("entrypoint", Kind::MaybeJson),
    ("run", Kind::MaybeJson),
    ("shell", Kind::MaybeJson),
    ("env", Kind::Env),
    ("label", Kind::Label),
    ("expose", Kind::WhitespaceDelimited),
    ("from", Kind::WhitespaceDelimited),
    ("healthcheck", Kind::Health),
    ("maintainer", Kind::String),
    ("stopsignal", Kind::String),
    ("user", Kind::String),
    ("workdir", Kind::String),
    ("onbuild", Kind::SubCommand),
];

/// The argument parser for a keyword (case-insensitive); unknown ones are ignored
/// here and rejected when instructions are typed.
pub(crate) fn kind_of(keyword: &str) -> Kind {
    KINDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
        .map_or(Kind::Ignore, |&(_, kind)| kind)
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

pub(crate) fn parse(kind: Kind, rest: &str, escape: char) -> Result<Parsed, String> {
    match kind {
        Kind::MaybeJsonToList => match parse_json(rest)? {
            Some(args) => Ok(json(args)),
            None => Ok(plain(whitespace_delimited(rest))),
        },
        Kind::NameOrNameVal => Ok(plain(
            parse_words(rest, escape)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        )),
        Kind::MaybeJson => maybe_json(rest),
        Kind::Env => name_val(rest, "ENV", escape).map(plain),
        Kind::Label => name_val(rest, "LABEL", escape).map(plain),
        Kind::WhitespaceDelimited => Ok(plain(whitespace_delimited(rest))),
        Kind::Health => health(rest),
        Kind::String => Ok(plain(non_empty(rest))),
        Kind::SubCommand | Kind::Ignore => Ok(Parsed::default()),
    }
}

fn plain(args: Vec<String>) -> Parsed {
    Parsed { args, json: false }
}

fn json(args: Vec<String>) -> Parsed {
    Parsed { args, json: true }
}

fn non_empty(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![rest.to_owned()]
    }
}

fn whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_sep)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `Ok(None)` when the text is not a JSON array (shell form); an error only for
/// a valid JSON array holding something other than strings.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(NOT_STRING_ARRAY.to_owned()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn maybe_json(rest: &str) -> Result<Parsed, String> {
    if rest.is_empty() {
        return Ok(Parsed::default());
    }
    Ok(match parse_json(rest)? {
        Some(args) => json(args),
        None => plain(vec![rest.to_owned()]),
    })
}

/// ENV and LABEL: the legacy `KEY value` form or `k=v ...`; yields key, value,
/// separator triples like BuildKit's AST.
fn name_val(rest: &str, keyword: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let mut parts = rest.splitn(2, is_sep);
        let key = parts.next().unwrap_or_default();
        let value = parts.next().map(|v| v.trim_start_matches(is_sep));
        return match value {
            Some(v) => Ok(vec![key.to_owned(), v.to_owned(), String::new()]),
            None => Err(format!("{keyword} must have two arguments")),
        };
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "syntax error - can't find = in {word:?}, must be of the form name=value"
            ));
        };
        out.extend([k.to_owned(), v.to_owned(), "=".to_owned()]);
    }
    Ok(out)
}

/// HEALTHCHECK: a type word (`CMD`, `NONE`) followed by a maybe-JSON command.
fn health(rest: &str) -> Result<Parsed, String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok(Parsed::default());
    }
    let cmd = maybe_json(rest[sep..].trim_start())?;
    let mut args = vec![rest[..sep].to_owned()];
    args.extend(cmd.args);
    Ok(Parsed {
        args,
        json: cmd.json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_or_shell() {
        let p = parse(Kind::MaybeJson, r#"["a", "b"]"#, '\\').unwrap();
        assert!(p.json);
        assert_eq!(p.args, ["a", "b"]);
        let p = parse(Kind::MaybeJson, "['a']", '\\').unwrap();
        assert!(!p.json);
        assert_eq!(p.args, ["['a']"]);
        assert!(parse(Kind::MaybeJson, r#"["a", ["b"]]"#, '\\').is_err());
    }

    #[test]
    fn env_forms() {
        let p = parse(Kind::Env, "A  b c", '\\').unwrap();
        assert_eq!(p.args, ["A", "b c", ""]);
        let p = parse(Kind::Env, r#"A=1 B="x y""#, '\\').unwrap();
        assert_eq!(p.args, ["A", "1", "=", "B", "\"x y\"", "="]);
        assert!(parse(Kind::Env, "PATH", '\\').is_err());
        assert!(parse(Kind::Env, "A=1 B", '\\').is_err());
    }
}
