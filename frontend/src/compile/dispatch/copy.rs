//! COPY and ADD: sources from the context, a stage, an image, a URL, a git
//! repository or a heredoc, copied into the stage (or, with `--link`, into an
//! independent layer merged onto it).

use std::borrow::Cow;

use buildd_proto::llb::{self, FileAction, FileActionCopy, FileActionMkFile, file_action};

use super::{Dispatcher, lines};
use crate::compile::encode;
use crate::compile::graph::Output;
use crate::compile::image::{self, resolve_path};
use crate::compile::remote::{self, Remote};
use crate::compile::stages::{Source, SourceRef};
use crate::error::Error;
use crate::instructions::CopyCmd;
use crate::parser::Node;

/// The inputs of the FileOp being built, deduplicated.
#[derive(Default)]
struct Inputs(Vec<Output>);

impl Inputs {
    fn index(&mut self, out: Output) -> i64 {
        let i = self.0.iter().position(|o| *o == out).unwrap_or_else(|| {
            self.0.push(out);
            self.0.len() - 1
        });
        i as i64
    }
}

impl Dispatcher<'_, '_, '_> {
    pub(super) fn copy(
        &mut self,
        node: &Node,
        c: &CopyCmd,
        from: Option<&SourceRef>,
    ) -> Result<(), Error> {
        let keyword = if c.add { "ADD" } else { "COPY" };
        let sources = c
            .sources
            .iter()
            .map(|s| self.expand(node, s))
            .collect::<Result<Vec<_>, _>>()?;
        let dest_raw = self.expand(node, c.dest)?;
        let owner = match &c.chown {
            Some(l) => {
                let v = self.expand(node, l.value)?;
                Some(image::parse_chown(&v).map_err(|m| self.ctx.error_at(node, l.span, m))?)
            }
            None => None,
        };
        let mode = match &c.chmod {
            Some(l) => {
                let v = self.expand(node, l.value)?;
                Some(image::parse_chmod(&v).map_err(|m| self.ctx.error_at(node, l.span, m))?)
            }
            None => None,
        };
        let excludes = c
            .exclude
            .iter()
            .map(|l| self.expand(node, l.value).map(Cow::into_owned))
            .collect::<Result<Vec<_>, _>>()?;
        let checksum = match &c.checksum {
            Some(l) => Some((self.expand(node, l.value)?, l.span)),
            None => None,
        };

        let mut dest = resolve_path(self.workdir(), &dest_raw);
        let count = sources.len() + c.contents.len();
        let dir_dest =
            dest_raw.is_empty() || dest_raw == "." || dest_raw.ends_with('/') || count > 1;
        if dir_dest && !dest.ends_with('/') {
            dest.push('/');
        }
        // Without --link the copy applies to the stage; with it, to scratch.
        let base = if c.link { None } else { self.state };
        let mut inputs = Inputs::default();
        let base_index = base.map_or(llb::NO_INPUT, |b| inputs.index(b));
        // What every action of the instruction shares; see `share`.
        let (mode, mode_str) = match mode {
            Some(image::Chmod::Octal(m)) => (Some(m), String::new()),
            Some(image::Chmod::Symbolic(s)) => (None, s),
            None => (None, String::new()),
        };
        let template = FileActionCopy {
            dest,
            owner,
            mode,
            mode_str,
            create_dest_path: true,
            exclude_patterns: excludes,
            ..Default::default()
        };

        let mut actions = Vec::with_capacity(count);
        let mut remote_seen = false;
        for src in &sources {
            let remote =
                remote::classify(src).filter(|r| c.add || matches!(r, Remote::Http { .. }));
            let Some(remote) = remote else {
                let source_input = self.local_input(node, src, from, &mut inputs)?;
                if c.parents {
                    // As BuildKit's frontend: the directory above the `/./`
                    // pivot (the root without one) is copied with the rest of
                    // the path as an include pattern, so the matched paths keep
                    // their parents and `**` spans directories.
                    let (root, pattern) = parents_source(src);
                    actions.push(FileActionCopy {
                        source_input,
                        src: root,
                        follow_symlink: true,
                        dir_copy_contents: true,
                        allow_wildcard: false,
                        allow_empty_wildcard: true,
                        include_patterns: vec![pattern],
                        attempt_unpack: false,
                        ..Default::default()
                    });
                    continue;
                }
                actions.push(FileActionCopy {
                    source_input,
                    src: source_path(src),
                    follow_symlink: true,
                    dir_copy_contents: true,
                    allow_wildcard: true,
                    // As the reference BuildKit: a pattern that matches nothing
                    // copies nothing (tests/parity/cases/glob-doublestar).
                    allow_empty_wildcard: true,
                    attempt_unpack: c.add && c.unpack != Some(false),
                    parents: c.parents,
                    ..Default::default()
                });
                continue;
            };
            if !c.add {
                return Err(self
                    .ctx
                    .error(node, format!("source can't be a URL for COPY: {src}")));
            }
            remote_seen = true;
            if let Some((v, span)) = &checksum {
                remote
                    .check_checksum(v)
                    .map_err(|m| self.ctx.error_at(node, *span, m))?;
            }
            let (identifier, attrs) =
                remote.source(checksum.as_ref().map(|(v, _)| &**v), c.keep_git_dir);
            let mut op = self.graph.op_writer(&[]);
            encode::source(
                &mut op,
                &identifier,
                &attrs,
                encode::NO_PATHS,
                encode::NO_PATHS,
            );
            let out = self.graph.add(
                op,
                Vec::new(),
                format!("[internal] add {src}"),
                Some(lines(node)),
            );
            let source_input = inputs.index(out);
            actions.push(match remote {
                Remote::Http { filename, .. } => FileActionCopy {
                    source_input,
                    src: format!("/{filename}"),
                    attempt_unpack: c.unpack == Some(true),
                    ..Default::default()
                },
                Remote::Git(_) => FileActionCopy {
                    source_input,
                    src: "/".to_owned(),
                    dir_copy_contents: true,
                    ..Default::default()
                },
            });
        }
        if let (Some((_, span)), false) = (&checksum, remote_seen) {
            return Err(self.ctx.error_at(
                node,
                *span,
                "--checksum can only be used with URL or git sources".to_owned(),
            ));
        }
        for content in &c.contents {
            let data = if content.expand {
                self.ctx
                    .lexer
                    .process_heredoc(&content.data, &self.expand_env())
                    .map_err(|e| self.ctx.error(node, e.to_string()))?
            } else {
                content.data.clone()
            };
            let path = resolve_path("/", content.path);
            let out = self.inline_file(node, &path, 0o644, data);
            actions.push(FileActionCopy {
                source_input: inputs.index(out),
                src: path,
                ..Default::default()
            });
        }

        share(&mut actions, template);
        let mut op = self.graph.op_writer(&inputs.0);
        encode::file_copies(&mut op, base_index, &actions);
        let name = self.progress(node);
        self.state = Some(match (c.link, self.state) {
            (true, Some(below)) => {
                let layer = self
                    .graph
                    .add(op, inputs.0, name.clone(), Some(lines(node)));
                let inputs = vec![below, layer];
                let mut merge = self.graph.op_writer(&inputs);
                encode::merge(&mut merge);
                self.graph.add(merge, inputs, name, Some(lines(node)))
            }
            _ => self.graph.add(op, inputs.0, name, Some(lines(node))),
        });
        self.history(false, || {
            let mut history = keyword.to_owned();
            for s in &sources {
                history.push(' ');
                history.push_str(s);
            }
            for content in &c.contents {
                history.push_str(" <<");
                history.push_str(content.path);
            }
            history.push(' ');
            history.push_str(&dest_raw);
            history.push_str(" # buildkit");
            history
        });
        Ok(())
    }

    /// The input a local source is read from: the `--from` stage or image, or
    /// the build context (whose transferred paths it extends).
    fn local_input(
        &mut self,
        node: &Node,
        src: &str,
        from: Option<&SourceRef>,
        inputs: &mut Inputs,
    ) -> Result<i64, Error> {
        let Some(r) = from else {
            self.context.paths.insert(resolve_path("/", src));
            let ctx_out = self.context.get(self.graph);
            return Ok(inputs.index(ctx_out));
        };
        let state = self.source_state(node, r)?.ok_or_else(|| {
            let Source::Stage(j) = r.source else {
                unreachable!("images always have a vertex")
            };
            let name = crate::compile::stages::display_name(self.stages, j);
            self.ctx.error_at(
                node,
                r.span,
                format!("stage {name:?} has an empty filesystem, there is nothing to copy"),
            )
        })?;
        Ok(inputs.index(state))
    }

    /// A scratch filesystem holding one file at `path` (absolute, clean), as
    /// BuildKit prepares heredocs.
    pub(super) fn inline_file(
        &mut self,
        node: &Node,
        path: &str,
        mode: u32,
        data: String,
    ) -> Output {
        let mkfile = FileAction {
            action: Some(file_action::Action::Mkfile(FileActionMkFile {
                path: path.to_owned(),
                mode,
                data: data.into_bytes(),
                owner: None,
                timestamp: None,
            })),
        };
        let mut op = self.graph.op_writer(&[]);
        encode::file(&mut op, llb::NO_INPUT, std::slice::from_ref(&mkfile));
        let name = "[internal] preparing inline document".to_owned();
        self.graph.add(op, Vec::new(), name, Some(lines(node)))
    }
}

/// Gives each action the fields all of them share; the last one takes the
/// template itself, so a single-source COPY copies nothing.
fn share(actions: &mut [FileActionCopy], template: FileActionCopy) {
    let Some((last, rest)) = actions.split_last_mut() else {
        return;
    };
    for a in rest {
        set_shared(a, template.clone());
    }
    set_shared(last, template);
}

fn set_shared(a: &mut FileActionCopy, t: FileActionCopy) {
    a.dest = t.dest;
    a.owner = t.owner;
    a.mode = t.mode;
    a.mode_str = t.mode_str;
    a.create_dest_path = t.create_dest_path;
    a.exclude_patterns = t.exclude_patterns;
}

/// `COPY --parents SRC`: the directory copied (above the `/./` pivot, else the
/// root) and the include pattern below it that selects what is kept.
fn parents_source(src: &str) -> (String, String) {
    match src.split_once("/./") {
        Some((above, below)) => (
            resolve_path("/", above),
            crate::compile::image::clean_path(below)
                .trim_start_matches('/')
                .to_owned(),
        ),
        None => (
            "/".to_owned(),
            crate::compile::image::clean_path(src)
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_owned(),
        ),
    }
}

/// The source path in its input.
fn source_path(src: &str) -> String {
    resolve_path("/", src)
}

#[cfg(test)]
mod tests {
    use super::parents_source;

    #[test]
    fn parents_split_at_the_pivot_or_keep_the_whole_path() {
        let p = |s| {
            let (a, b) = parents_source(s);
            (a, b)
        };
        assert_eq!(p("src/./pkg/a"), ("/src".into(), "pkg/a".into()));
        assert_eq!(p("a/../src//./x/"), ("/src".into(), "x".into()));
        assert_eq!(
            p("./src/./app/lib/l.py"),
            ("/src".into(), "app/lib/l.py".into())
        );
        assert_eq!(p("src/**/*.py"), ("/".into(), "src/**/*.py".into()));
        assert_eq!(p("./x"), ("/".into(), "x".into()));
    }
}
