//! Build checks: BuildKit's lint rules with its rule names and messages, and
//! the `# check=skip=...;error=true` directive.

use std::collections::BTreeSet;

use super::Ctx;
use super::stages::Stages;
use crate::error::{Error, Warning};
use crate::instructions::Command;
use crate::parser::Ast;

/// What `# check=` asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CheckConfig {
    skip_all: bool,
    skip: BTreeSet<String>,
    error: bool,
}

impl CheckConfig {
    /// Parses `skip=A,B;error=true` (either part optional, `skip=all` skips all).
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let mut cfg = CheckConfig::default();
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, v)) = part.split_once('=') else {
                return Err(format!(
                    "invalid check directive {part:?}, expected key=value"
                ));
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "skip" => {
                    for rule in v.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                        if rule.eq_ignore_ascii_case("all") {
                            cfg.skip_all = true;
                        } else {
                            cfg.skip.insert(rule.to_owned());
                        }
                    }
                }
                "error" => {
                    cfg.error = match v.trim().to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(format!(
                                "invalid check directive error={v:?}, expected true or false"
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "invalid check directive key {other:?}, expected skip or error"
                    ));
                }
            }
        }
        Ok(cfg)
    }

    fn skips(&self, rule: &str) -> bool {
        self.skip_all || self.skip.contains(rule)
    }
}

/// The config of the file's `# check=` directive; a malformed one is an error
/// on its line.
pub(crate) fn config(ast: &Ast, file: &str) -> Result<CheckConfig, Error> {
    let Some(d) = ast.directives.iter().find(|d| d.name == "check") else {
        return Ok(CheckConfig::default());
    };
    CheckConfig::parse(&d.value).map_err(|message| Error {
        file: file.to_owned(),
        line: d.line,
        column: 1,
        instruction: None,
        message,
    })
}

/// Drops skipped and repeated warnings, sorts them by line, and with
/// `error=true` turns any that remain into an error.
pub(crate) fn finish(ctx: &mut Ctx, cfg: &CheckConfig) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    let mut warnings: Vec<Warning> = std::mem::take(&mut ctx.warnings)
        .into_iter()
        .filter(|w| !cfg.skips(&w.rule))
        .filter(|w| seen.insert((w.line, w.rule.clone(), w.message.clone())))
        .collect();
    warnings.sort_by_key(|w| w.line);
    if cfg.error
        && let Some(first) = warnings.first()
    {
        let rules: BTreeSet<&str> = warnings.iter().map(|w| w.rule.as_str()).collect();
        return Err(Error {
            file: ctx.file.clone(),
            line: first.line,
            column: 1,
            instruction: None,
            message: format!(
                "lint violation found for rules: {}",
                rules.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    ctx.warnings = warnings;
    Ok(())
}

/// Stage names BuildKit reserves.
const RESERVED_STAGE_NAMES: [&str; 2] = ["context", "scratch"];

/// The checks that need only the typed instructions, run on every stage.
pub(crate) fn static_checks(ctx: &mut Ctx, stages: &Stages<'_>) {
    let mut names = BTreeSet::new();
    for st in &stages.stages {
        let node = st.from.node;
        if let Command::From(f) = &st.from.command {
            if let Some((lower, written)) = &f.name {
                if lower != written {
                    ctx.warn(
                        node,
                        "StageNameCasing",
                        format!("Stage name '{written}' should be lowercase"),
                    );
                }
                if !names.insert(lower.clone()) {
                    ctx.warn(
                        node,
                        "DuplicateStageName",
                        format!("Duplicate stage name {lower:?}, stage names should be unique"),
                    );
                }
                if RESERVED_STAGE_NAMES.contains(&lower.as_str()) {
                    ctx.warn(
                        node,
                        "ReservedStageName",
                        format!(
                            "Stage name should not use the same name as reserved stage {lower:?}"
                        ),
                    );
                }
            }
            if let Some(as_kw) = &f.as_keyword {
                let from = &node.keyword;
                let lower = *from == from.to_ascii_lowercase();
                let upper = *from == from.to_ascii_uppercase();
                let mismatch = (lower && *as_kw != as_kw.to_ascii_lowercase())
                    || (upper && !lower && *as_kw != as_kw.to_ascii_uppercase());
                if mismatch {
                    ctx.warn(
                        node,
                        "FromAsCasing",
                        format!("'{as_kw}' and '{from}' keywords' casing do not match"),
                    );
                }
            }
        }
        let mut singles: Vec<(&str, Vec<&crate::parser::Node>)> = vec![
            ("CMD", Vec::new()),
            ("ENTRYPOINT", Vec::new()),
            ("HEALTHCHECK", Vec::new()),
        ];
        for ins in &st.commands {
            let node = ins.node;
            if let Some((_, seen)) = singles
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(&node.keyword))
            {
                seen.push(node);
            }
            match &ins.command {
                Command::Maintainer(_) => ctx.warn(
                    node,
                    "MaintainerDeprecated",
                    "Maintainer instruction is deprecated in favor of using label".to_owned(),
                ),
                Command::Label(_) if legacy(node) => legacy_warning(ctx, node, &node.name()),
                Command::Env(pairs) => {
                    if legacy(node) {
                        legacy_warning(ctx, node, &node.name());
                    }
                    secrets(ctx, node, "ENV", pairs.iter().map(|(k, _)| *k));
                }
                Command::Arg(args) => secrets(ctx, node, "ARG", args.iter().map(|(k, _)| *k)),
                _ => {}
            }
        }
        for (name, seen) in singles {
            // Every one but the last is ignored.
            for node in seen.iter().rev().skip(1).rev() {
                ctx.warn(
                    node,
                    "MultipleInstructionsDisallowed",
                    format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
                );
            }
        }
    }
}

/// ENV and LABEL in the `KEY value` form: the parser marks the pair with an
/// empty separator.
fn legacy(node: &crate::parser::Node) -> bool {
    node.args
        .chunks(3)
        .any(|c| c.get(2).is_some_and(String::is_empty))
}

fn legacy_warning(ctx: &mut Ctx, node: &crate::parser::Node, name: &str) {
    ctx.warn(
        node,
        "LegacyKeyValueFormat",
        format!(
            "\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"
        ),
    );
}

fn secrets<'a>(
    ctx: &mut Ctx,
    node: &crate::parser::Node,
    kw: &str,
    keys: impl Iterator<Item = &'a str>,
) {
    for key in keys {
        if is_secret_key(key) {
            ctx.warn(
                node,
                "SecretsUsedInArgOrEnv",
                format!("Do not use ARG or ENV instructions for sensitive data ({kw} {key:?})"),
            );
        }
    }
}

/// BuildKit's `isSecretKey`: a `_`-separated part of the name is one of the
/// deny tokens, `(?i)(?:_|^)(?:apikey|...|token)(?:_|$)`, and none is one of
/// the allow tokens, `(?i)(?:_|^)(?:public)(?:_|$)`.
pub(crate) fn is_secret_key(key: &str) -> bool {
    const DENY: [&str; 10] = [
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: [&str; 1] = ["public"];
    let has = |tokens: &[&str]| {
        key.split('_')
            .any(|part| tokens.iter().any(|t| fold_eq(part, t)))
    };
    has(&DENY) && !has(&ALLOW)
}

/// Whether `s` equals the lower-case ASCII `token` under Go's `(?i)` simple
/// case folding, where the Kelvin sign folds to `k` and the long s to `s`.
fn fold_eq(s: &str, token: &str) -> bool {
    let fold = |c: char| match c {
        '\u{212a}' => 'k',
        '\u{17f}' => 's',
        c => c.to_ascii_lowercase(),
    };
    s.chars().map(fold).eq(token.chars())
}

/// The closest of `candidates` to `name` for a "did you mean" hint: equal but
/// for case, or at most two edits away for names longer than two characters.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == name {
            continue;
        }
        let d = if c.eq_ignore_ascii_case(name) {
            0
        } else {
            distance(name, c)
        };
        if (d == 0 || (name.chars().count() > 2 && d <= 2)) && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_directive() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended, StageNameCasing;error=true").unwrap();
        assert!(c.error && c.skips("StageNameCasing") && !c.skips("FromAsCasing"));
        assert!(CheckConfig::parse("skip=all").unwrap().skips("Anything"));
        assert!(CheckConfig::parse("error=maybe").is_err());
        assert!(CheckConfig::parse("nope").is_err());
    }

    #[test]
    fn secret_keys() {
        for k in [
            "API_TOKEN",
            "password",
            "aws_secret_key",
            "GITHUB_AUTH",
            "apikey",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        // Go's case folding, as BuildKit's regexp uses it.
        assert!(is_secret_key("MY_\u{212a}EY"));
        assert!(is_secret_key("\u{17f}ecret"));
        for k in [
            "TOKENS",
            "keyboard",
            "PUBLIC",
            "MONKEY",
            "PUBLIC_KEY",
            "public_api_token",
            "GPG_KEY_Public",
            "api-key",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn suggestions() {
        let c = ["NODE_VERSION", "HOME", "path"];
        assert_eq!(
            suggest("NODE_VERSON", c.iter().copied()),
            Some("NODE_VERSION")
        );
        assert_eq!(suggest("PATH", c.iter().copied()), Some("path"));
        assert_eq!(suggest("XYZ", c.iter().copied()), None);
    }
}
