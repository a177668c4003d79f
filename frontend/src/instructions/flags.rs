//! `--name[=value]` flags of an instruction (BuildKit's `BFlags`).

use crate::parser::{Flag, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    String,
    Strings,
}

/// A flag an instruction accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagSpec {
    pub name: &'static str,
    pub kind: FlagType,
}

pub(crate) const fn flag(name: &'static str, kind: FlagType) -> FlagSpec {
    FlagSpec { name, kind }
}

/// A flag error with the span of the flag at fault.
#[derive(Debug)]
pub(crate) struct FlagError {
    pub message: String,
    pub span: Span,
}

/// Parsed flag values, borrowed from the flags' text.
#[derive(Debug, Default)]
pub(crate) struct Flags<'a> {
    values: Vec<(&'static str, &'a str, Span)>,
}

impl<'a> Flags<'a> {
    pub(crate) fn parse(flags: &'a [Flag], specs: &[FlagSpec]) -> Result<Self, FlagError> {
        let mut out = Flags {
            values: Vec::with_capacity(flags.len()),
        };
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
            if spec.kind != FlagType::Strings && out.get(name).is_some() {
                return Err(err(format!("duplicate flag specified: --{name}")));
            }
            let value = match (spec.kind, value) {
                (FlagType::Bool, Some("")) => {
                    return Err(err(format!("missing a value on flag: --{name}")));
                }
                (FlagType::Bool, None) => "true",
                (FlagType::Bool, Some(v)) if v.eq_ignore_ascii_case("true") => "true",
                (FlagType::Bool, Some(v)) if v.eq_ignore_ascii_case("false") => "false",
                (FlagType::Bool, Some(v)) => {
                    return Err(err(format!(
                        "expecting boolean value for flag --{name}, not: {v}"
                    )));
                }
                (_, None) => return Err(err(format!("missing a value on flag: --{name}"))),
                (_, Some(v)) => v,
            };
            out.values.push((spec.name, value, f.span));
        }
        Ok(out)
    }

    /// The value of a string flag and the span of the flag.
    pub(crate) fn get(&self, name: &str) -> Option<(&'a str, Span)> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, s)| (*v, *s))
    }

    /// Every value of a repeatable flag, in order.
    pub(crate) fn strings(&self, name: &str) -> Vec<Located<'a>> {
        self.values
            .iter()
            .filter(|(n, _, _)| *n == name)
            .map(|(_, value, span)| Located { value, span: *span })
            .collect()
    }

    /// A boolean flag: `None` when absent.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).map(|(v, _)| v == "true")
    }

    pub(crate) fn string(&self, name: &str) -> Option<Located<'a>> {
        self.get(name).map(|(value, span)| Located { value, span })
    }
}

/// A flag value with the span of its flag, for errors found when it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Located<'a> {
    pub value: &'a str,
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
        flag("exclude", FlagType::Strings),
    ];

    #[test]
    fn parses_and_rejects() {
        let given = flags(&["--from=a", "--link"]);
        let f = Flags::parse(&given, SPECS).unwrap();
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
        let given = flags(&["--exclude=a", "--exclude=b", "--link=false"]);
        let f = Flags::parse(&given, SPECS).unwrap();
        let ex: Vec<_> = f.strings("exclude").into_iter().map(|l| l.value).collect();
        assert_eq!(ex, ["a", "b"]);
        assert_eq!(f.bool("link"), Some(false));
        assert_eq!(f.bool("from"), None);
    }
}
