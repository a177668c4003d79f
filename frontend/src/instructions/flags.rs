//! `--name[=value]` flags of an instruction (BuildKit's `BFlags`).

use crate::parser::{Flag, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    String,
    Strings,
}

/// A flag this frontend knows: `supported: false` means BuildKit has it but it
/// is not implemented yet, which is reported as such rather than as unknown.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagSpec {
    pub name: &'static str,
    pub kind: FlagType,
    pub supported: bool,
}

pub(crate) const fn flag(name: &'static str, kind: FlagType) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        supported: true,
    }
}

pub(crate) const fn unsupported(name: &'static str, kind: FlagType) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        supported: false,
    }
}

/// A flag error with the span of the flag at fault.
#[derive(Debug)]
pub(crate) struct FlagError {
    pub message: String,
    pub span: Span,
}

/// Parsed flag values.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: Vec<(&'static str, String, Span)>,
}

impl Flags {
    pub(crate) fn parse(flags: &[Flag], specs: &[FlagSpec]) -> Result<Self, FlagError> {
        let mut out = Flags::default();
        for f in flags {
            let err = |message: String| FlagError {
                message,
                span: f.span,
            };
            let Some(body) = f.text.strip_prefix("--") else {
                return Err(err(format!("flag {:?} should start with --", f.text)));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                return Err(err(format!("unknown flag: --{name}")));
            };
            if !spec.supported {
                return Err(err(format!("flag --{name} is not supported yet")));
            }
            if spec.kind != FlagType::Strings && out.get(name).is_some() {
                return Err(err(format!("duplicate flag specified: --{name}")));
            }
            let value = match (spec.kind, value) {
                (FlagType::Bool, Some("")) => {
                    return Err(err(format!("missing a value on flag: --{name}")));
                }
                (FlagType::Bool, None) => "true".to_owned(),
                (FlagType::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".to_owned(),
                    "false" => "false".to_owned(),
                    _ => {
                        return Err(err(format!(
                            "expecting boolean value for flag --{name}, not: {v}"
                        )));
                    }
                },
                (_, None) => return Err(err(format!("missing a value on flag: --{name}"))),
                (_, Some(v)) => v.to_owned(),
            };
            out.values.push((spec.name, value, f.span));
        }
        Ok(out)
    }

    /// The value of a string flag and the span of the flag.
    pub(crate) fn get(&self, name: &str) -> Option<(&str, Span)> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, s)| (v.as_str(), *s))
    }

    pub(crate) fn string(&self, name: &str) -> Option<Located> {
        self.get(name).map(|(v, span)| Located {
            value: v.to_owned(),
            span,
        })
    }
}

/// A flag value with the span of its flag, for errors found when it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub value: String,
    pub span: Span,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(texts: &[&str]) -> Vec<Flag> {
        texts
            .iter()
            .map(|t| Flag {
                text: (*t).to_owned(),
                span: Span::default(),
            })
            .collect()
    }

    const SPECS: &[FlagSpec] = &[
        flag("from", FlagType::String),
        flag("link", FlagType::Bool),
        unsupported("parents", FlagType::Bool),
    ];

    #[test]
    fn parses_and_rejects() {
        let f = Flags::parse(&flags(&["--from=a", "--link"]), SPECS).unwrap();
        assert_eq!(f.get("from").unwrap().0, "a");
        assert_eq!(f.get("link").unwrap().0, "true");
        let e = |t: &[&str]| Flags::parse(&flags(t), SPECS).unwrap_err().message;
        assert_eq!(e(&["--nope=1"]), "unknown flag: --nope");
        assert_eq!(e(&["--from"]), "missing a value on flag: --from");
        assert_eq!(
            e(&["--from=a", "--from=b"]),
            "duplicate flag specified: --from"
        );
        assert_eq!(
            e(&["--link=maybe"]),
            "expecting boolean value for flag --link, not: maybe"
        );
        assert_eq!(e(&["--parents"]), "flag --parents is not supported yet");
    }
}
