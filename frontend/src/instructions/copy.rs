//! COPY and ADD arguments and flags.

use super::Located;
use super::flags::{FlagSpec, FlagType, Flags, flag};
use crate::parser::{Node, parse_heredoc_marker};

pub(super) const COPY_FLAGS: &[FlagSpec] = &[
    flag("from", FlagType::String),
    flag("chown", FlagType::String),
    flag("chmod", FlagType::String),
    flag("link", FlagType::Bool),
    flag("parents", FlagType::Bool),
    flag("exclude", FlagType::Strings),
];

pub(super) const ADD_FLAGS: &[FlagSpec] = &[
    flag("chown", FlagType::String),
    flag("chmod", FlagType::String),
    flag("link", FlagType::Bool),
    flag("exclude", FlagType::Strings),
    flag("checksum", FlagType::String),
    flag("keep-git-dir", FlagType::Bool),
    flag("unpack", FlagType::Bool),
];

/// A source given inline as a heredoc: a file named `path` holding `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceContent<'a> {
    pub path: &'a str,
    /// Chomped already; expanded at dispatch when `expand`.
    pub data: String,
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyCmd<'a> {
    /// ADD rather than COPY.
    pub add: bool,
    /// Paths, wildcards, and for ADD URLs, unexpanded.
    pub sources: Vec<&'a str>,
    pub contents: Vec<SourceContent<'a>>,
    pub dest: &'a str,
    pub from: Option<Located<'a>>,
    pub chown: Option<Located<'a>>,
    pub chmod: Option<Located<'a>>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<Located<'a>>,
    pub checksum: Option<Located<'a>>,
    pub keep_git_dir: bool,
    /// `--unpack`: `None` keeps ADD's default (local archives are unpacked).
    pub unpack: Option<bool>,
}

pub(super) fn parse<'a>(
    node: &'a Node,
    add: bool,
    flags: &Flags<'a>,
) -> Result<CopyCmd<'a>, String> {
    let keyword = if add { "ADD" } else { "COPY" };
    let Some((dest, sources)) = node.args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err("requires at least two arguments".to_owned());
    };
    if !node.json && parse_heredoc_marker(dest).is_some() {
        return Err(format!(
            "{keyword} cannot accept a heredoc as a destination"
        ));
    }
    let mut paths = Vec::with_capacity(sources.len());
    let mut contents = Vec::new();
    let mut docs = node.heredocs.iter();
    for src in sources {
        let marker = (!node.json).then(|| parse_heredoc_marker(src)).flatten();
        match marker.and_then(|_| docs.next()) {
            Some(doc) => contents.push(SourceContent {
                path: &doc.name,
                data: doc.data(),
                expand: doc.expand,
            }),
            None => paths.push(src.as_str()),
        }
    }
    Ok(CopyCmd {
        add,
        sources: paths,
        contents,
        dest,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        exclude: flags.strings("exclude"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
        unpack: flags.bool("unpack"),
    })
}
