//! Typed instructions built from parser [`Node`]s: argument counts and flags are
//! checked here; words are expanded later, when the stage's variables are known.
//! Instructions borrow their words from the nodes rather than copying them.

mod copy;
mod flags;
pub(crate) mod mounts;

pub(crate) use copy::CopyCmd;
pub(crate) use flags::Located;
use flags::{FlagError, FlagSpec, FlagType, Flags, flag};

use crate::parser::{Heredoc, Node, Span};

/// A shell-form command line or an exec-form argument list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandLine<'a> {
    pub args: &'a [String],
    pub shell_form: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FromCmd<'a> {
    pub base: &'a str,
    /// The `AS` name, lower-cased, and how it was written.
    pub name: Option<(String, &'a str)>,
    pub platform: Option<Located<'a>>,
    /// The `AS` keyword as written.
    pub as_keyword: Option<&'a str>,
}

/// RUN: the command, its heredoc files and the `--mount`, `--network` and
/// `--security` flags (expanded and checked at dispatch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunCmd<'a> {
    pub line: CommandLine<'a>,
    pub files: &'a [Heredoc],
    pub mounts: Vec<Located<'a>>,
    pub network: Option<Located<'a>>,
    pub security: Option<Located<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthCmd<'a> {
    /// `NONE`, or `CMD`/`CMD-SHELL` followed by the command.
    pub test: Vec<String>,
    pub interval: Option<Located<'a>>,
    pub timeout: Option<Located<'a>>,
    pub start_period: Option<Located<'a>>,
    pub start_interval: Option<Located<'a>>,
    pub retries: Option<Located<'a>>,
}

/// An ENV or LABEL `key=value` pair, or an ARG name and its default.
pub(crate) type Pair<'a> = (&'a str, &'a str);
pub(crate) type ArgDecl<'a> = (&'a str, Option<&'a str>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    From(FromCmd<'a>),
    Arg(Vec<ArgDecl<'a>>),
    Env(Vec<Pair<'a>>),
    Label(Vec<Pair<'a>>),
    /// COPY and ADD.
    Copy(CopyCmd<'a>),
    Run(RunCmd<'a>),
    Cmd(CommandLine<'a>),
    Entrypoint(CommandLine<'a>),
    Shell(&'a [String]),
    Workdir(&'a str),
    User(&'a str),
    Expose(&'a [String]),
    Volume(&'a [String]),
    StopSignal(&'a str),
    Maintainer(&'a str),
    Healthcheck(HealthCmd<'a>),
    OnBuild(&'a str),
}

/// An instruction with the node it came from.
#[derive(Debug, Clone)]
pub(crate) struct Instruction<'a> {
    pub node: &'a Node,
    pub command: Command<'a>,
}

/// A typing error: the message and where it points.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub message: String,
    pub span: Span,
    /// False when the keyword itself is unknown (no instruction to name).
    pub known: bool,
}

impl From<FlagError> for ParseError {
    fn from(e: FlagError) -> Self {
        ParseError {
            message: e.message,
            span: e.span,
            known: true,
        }
    }
}

const NO_FLAGS: &[FlagSpec] = &[];
const FROM_FLAGS: &[FlagSpec] = &[flag("platform", FlagType::String)];
const RUN_FLAGS: &[FlagSpec] = &[
    flag("mount", FlagType::Strings),
    flag("network", FlagType::String),
    flag("security", FlagType::String),
];
const HEALTH_FLAGS: &[FlagSpec] = &[
    flag("interval", FlagType::String),
    flag("timeout", FlagType::String),
    flag("start-period", FlagType::String),
    flag("start-interval", FlagType::String),
    flag("retries", FlagType::String),
];

/// The keyword lower-cased, for the keywords that are at most 16 bytes long
/// (all the known ones); `buf` holds it.
fn lower_keyword<'b>(keyword: &str, buf: &'b mut [u8; 16]) -> &'b str {
    let Some(buf) = buf.get_mut(..keyword.len()) else {
        return "";
    };
    buf.copy_from_slice(keyword.as_bytes());
    buf.make_ascii_lowercase();
    // Lower-casing ASCII letters keeps the bytes valid UTF-8.
    std::str::from_utf8(buf).unwrap_or_default()
}

pub(crate) fn parse(node: &Node) -> Result<Instruction<'_>, ParseError> {
    let fail = |message: &str| ParseError {
        message: message.to_owned(),
        span: node.span,
        known: true,
    };
    let mut buf = [0u8; 16];
    let keyword = lower_keyword(&node.keyword, &mut buf);
    let specs = match keyword {
        "from" => FROM_FLAGS,
        "copy" => copy::COPY_FLAGS,
        "add" => copy::ADD_FLAGS,
        "run" => RUN_FLAGS,
        "healthcheck" => HEALTH_FLAGS,
        _ => NO_FLAGS,
    };
    let known = matches!(
        keyword,
        "from"
            | "arg"
            | "env"
            | "label"
            | "copy"
            | "add"
            | "run"
            | "cmd"
            | "entrypoint"
            | "shell"
            | "workdir"
            | "user"
            | "expose"
            | "volume"
            | "stopsignal"
            | "maintainer"
            | "healthcheck"
            | "onbuild"
    );
    if !known {
        return Err(ParseError {
            message: format!("unknown instruction: {}", node.keyword),
            span: node.span,
            known: false,
        });
    }
    let flags = Flags::parse(&node.flags, specs)?;
    let args = &node.args;
    let one = |what: &str| -> Result<&str, ParseError> {
        match args.as_slice() {
            [a] => Ok(a.as_str()),
            _ => Err(fail(&format!("requires exactly one argument{what}"))),
        }
    };
    let at_least_one = || -> Result<(), ParseError> {
        if args.is_empty() {
            Err(fail("requires at least one argument"))
        } else {
            Ok(())
        }
    };
    let line = |allow_empty: bool| -> Result<CommandLine, ParseError> {
        if !allow_empty && args.is_empty() {
            return Err(fail("requires at least one argument"));
        }
        Ok(CommandLine {
            args,
            shell_form: !node.json,
        })
    };
    let pairs = || -> Result<Vec<Pair>, ParseError> {
        at_least_one()?;
        let pairs: Vec<_> = args
            .chunks(3)
            .map(|c| (c[0].as_str(), c.get(1).map_or("", String::as_str)))
            .collect();
        if pairs.iter().any(|(k, _)| k.is_empty()) {
            return Err(fail("names can not be blank"));
        }
        Ok(pairs)
    };
    let command = match keyword {
        "from" => Command::From(parse_from(node, &flags).map_err(|m| fail(&m))?),
        "arg" => {
            at_least_one()?;
            let mut out = Vec::with_capacity(args.len());
            for a in args {
                let (k, v) = match a.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (a.as_str(), None),
                };
                if k.is_empty() {
                    return Err(fail("names can not be blank"));
                }
                out.push((k, v));
            }
            Command::Arg(out)
        }
        "env" => Command::Env(pairs()?),
        "label" => Command::Label(pairs()?),
        "copy" | "add" => {
            Command::Copy(copy::parse(node, keyword == "add", &flags).map_err(|m| fail(&m))?)
        }
        "run" => Command::Run(RunCmd {
            line: line(false)?,
            files: &node.heredocs,
            mounts: flags.strings("mount"),
            network: flags.string("network"),
            security: flags.string("security"),
        }),
        "cmd" => Command::Cmd(line(true)?),
        "entrypoint" => Command::Entrypoint(line(true)?),
        "shell" => {
            at_least_one()?;
            if !node.json {
                return Err(fail("requires the arguments to be in JSON form"));
            }
            Command::Shell(args)
        }
        "workdir" => Command::Workdir(one("")?),
        "user" => Command::User(one("")?),
        "expose" => {
            at_least_one()?;
            Command::Expose(args)
        }
        "volume" => {
            at_least_one()?;
            Command::Volume(args)
        }
        "stopsignal" => Command::StopSignal(one("")?),
        "maintainer" => Command::Maintainer(one("")?),
        "healthcheck" => Command::Healthcheck(parse_health(node, &flags).map_err(|m| fail(&m))?),
        "onbuild" => Command::OnBuild(parse_onbuild(node).map_err(|m| fail(&m))?),
        _ => unreachable!("known keywords are listed above"),
    };
    Ok(Instruction { node, command })
}

fn parse_from<'a>(node: &'a Node, flags: &Flags<'a>) -> Result<FromCmd<'a>, String> {
    let args = &node.args;
    let name = match args.as_slice() {
        [_] => None,
        [_, r#as, name] if r#as.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                ));
            }
            Some((lower, name.as_str()))
        }
        _ => return Err("requires either one or three arguments".to_owned()),
    };
    Ok(FromCmd {
        base: &args[0],
        as_keyword: name.as_ref().map(|_| args[1].as_str()),
        name,
        platform: flags.string("platform"),
    })
}

fn parse_health<'a>(node: &'a Node, flags: &Flags<'a>) -> Result<HealthCmd<'a>, String> {
    let Some(kind) = node.args.first() else {
        return Err("requires at least one argument".to_owned());
    };
    let rest = &node.args[1..];
    let test = match kind.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !rest.is_empty() {
                return Err("HEALTHCHECK NONE takes no arguments".to_owned());
            }
            vec!["NONE".to_owned()]
        }
        "CMD" => {
            if rest.is_empty() {
                return Err("missing command after HEALTHCHECK CMD".to_owned());
            }
            let kind = if node.json { "CMD" } else { "CMD-SHELL" };
            std::iter::once(kind.to_owned())
                .chain(rest.iter().cloned())
                .collect()
        }
        other => return Err(format!("unknown type {other:?} in HEALTHCHECK (try CMD)")),
    };
    Ok(HealthCmd {
        test,
        interval: flags.string("interval"),
        timeout: flags.string("timeout"),
        start_period: flags.string("start-period"),
        start_interval: flags.string("start-interval"),
        retries: flags.string("retries"),
    })
}

fn parse_onbuild(node: &Node) -> Result<&str, String> {
    let Some(sub) = &node.sub else {
        return Err("requires at least one argument".to_owned());
    };
    match sub.keyword.to_ascii_uppercase().as_str() {
        "ONBUILD" => Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_owned()),
        k @ ("FROM" | "MAINTAINER") => Err(format!("{k} isn't allowed as an ONBUILD trigger")),
        _ => Ok(&sub.original),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser;

    fn last_node(src: &str) -> Node {
        parser::parse(src).unwrap().nodes.pop().unwrap()
    }

    fn first(src: &str) -> Result<(), String> {
        parse(&last_node(src)).map(|_| ()).map_err(|e| e.message)
    }

    #[test]
    fn types_instructions() {
        let node = last_node("FROM a AS Build");
        assert_eq!(
            parse(&node).unwrap().command,
            Command::From(FromCmd {
                base: "a",
                name: Some(("build".into(), "Build")),
                platform: None,
                as_keyword: Some("AS"),
            })
        );
        let node = last_node("ARG a b=1");
        assert_eq!(
            parse(&node).unwrap().command,
            Command::Arg(vec![("a", None), ("b", Some("1"))])
        );
        let node = last_node("ONBUILD  RUN x");
        assert_eq!(parse(&node).unwrap().command, Command::OnBuild("RUN x"));
    }

    #[test]
    fn rejects_bad_instructions() {
        assert_eq!(
            first("FROM a b").unwrap_err(),
            "requires either one or three arguments"
        );
        assert!(
            first("FROM a AS 1x")
                .unwrap_err()
                .starts_with("invalid name for build stage")
        );
        assert_eq!(
            first("COPY a").unwrap_err(),
            "requires at least two arguments"
        );
        assert_eq!(first("BOGUS a").unwrap_err(), "unknown instruction: BOGUS");
        assert_eq!(
            first("SHELL sh -c").unwrap_err(),
            "requires the arguments to be in JSON form"
        );
        assert_eq!(
            first("RUN --mnt=type=cache x").unwrap_err(),
            "unknown flag: --mnt"
        );
        assert_eq!(
            first("ADD --from=a x /").unwrap_err(),
            "unknown flag: --from"
        );
        assert_eq!(
            first("COPY x <<EOF\nEOF").unwrap_err(),
            "COPY cannot accept a heredoc as a destination"
        );
        assert_eq!(
            first("ONBUILD FROM x").unwrap_err(),
            "FROM isn't allowed as an ONBUILD trigger"
        );
    }
}
