//! The encoded bodies of the ops the frontend emits: an `Op`'s `op` field
//! (tags 2 to 6), which together with its inputs (tag 1) and platform (tag
//! 10) makes the vertex's bytes. See [`super::wire`] for why they are written
//! by hand; the tests below hold them to prost's encoding.

use std::collections::BTreeMap;

use buildd_proto::llb::{
    ChownOpt, FileAction, FileActionCopy, Mount, NetMode, SecretEnv, SecurityMode, file_action,
};

use super::wire::Writer;

/// Tags of `Op.op`.
const EXEC: u32 = 2;
const SOURCE: u32 = 3;
const FILE: u32 = 4;
const MERGE: u32 = 5;

/// One entry of a process environment.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EnvVar<'a> {
    /// `K=V` as written.
    Line(&'a str),
    /// Joined as `K=V` when written.
    Pair(&'a str, &'a str),
}

impl EnvVar<'_> {
    /// The variable's name: up to the first `=`.
    pub(crate) fn name(&self) -> &str {
        match *self {
            Self::Line(line) => line.split_once('=').map_or(line, |(k, _)| k),
            Self::Pair(k, _) => k,
        }
    }
}

/// An ExecOp's process, borrowed from the stage rather than copied.
pub(crate) struct Process<'a> {
    pub args: &'a [&'a str],
    pub env: &'a [EnvVar<'a>],
    pub cwd: &'a str,
    pub user: &'a str,
}

/// No patterns or paths, for a source that is not the build context.
pub(crate) const NO_PATHS: &[&str] = &[];

pub(crate) fn source(
    w: &mut Writer,
    identifier: &str,
    attrs: &BTreeMap<String, String>,
    exclude_patterns: &[impl AsRef<str>],
    follow_paths: &[impl AsRef<str>],
) {
    w.message(SOURCE, |w| {
        w.string(1, identifier);
        for (k, v) in attrs {
            w.map_entry(2, k, v);
        }
        for p in exclude_patterns {
            w.repeated_string(4, p.as_ref());
        }
        for p in follow_paths {
            w.repeated_string(5, p.as_ref());
        }
    });
}

pub(crate) fn merge(w: &mut Writer) {
    w.message(MERGE, |_| {});
}

pub(crate) fn exec(
    w: &mut Writer,
    process: &Process,
    mounts: &[Mount],
    network: NetMode,
    security: SecurityMode,
    secret_env: &[SecretEnv],
) {
    w.message(EXEC, |w| {
        w.message(1, |w| {
            for a in process.args {
                w.repeated_string(1, a);
            }
            for e in process.env {
                match *e {
                    EnvVar::Line(line) => w.repeated_string(2, line),
                    EnvVar::Pair(k, v) => w.repeated_string_parts(2, &[k, "=", v]),
                }
            }
            w.string(3, process.cwd);
            w.string(4, process.user);
        });
        for m in mounts {
            w.message(2, |w| mount(w, m));
        }
        w.int32(3, network as i32);
        w.int32(4, security as i32);
        for s in secret_env {
            w.message(5, |w| {
                w.string(1, &s.id);
                w.string(2, &s.name);
                w.bool(3, s.optional);
            });
        }
    });
}

fn mount(w: &mut Writer, m: &Mount) {
    w.int64(1, m.input);
    w.string(2, &m.selector);
    w.string(3, &m.dest);
    w.int64(4, m.output);
    w.bool(5, m.readonly);
    w.int32(6, m.mount_type);
    if let Some(t) = &m.tmpfs_opt {
        w.message(19, |w| w.int64(1, t.size));
    }
    if let Some(c) = &m.cache_opt {
        w.message(20, |w| {
            w.string(1, &c.id);
            w.int32(2, c.sharing);
            w.opt_uint32(3, c.uid);
            w.opt_uint32(4, c.gid);
            w.opt_uint32(5, c.mode);
        });
    }
    // SecretOpt and SshOpt have the same fields.
    for (field, opt) in [
        (
            21,
            m.secret_opt
                .as_ref()
                .map(|s| (&s.id, s.uid, s.gid, s.mode, s.optional)),
        ),
        (
            22,
            m.ssh_opt
                .as_ref()
                .map(|s| (&s.id, s.uid, s.gid, s.mode, s.optional)),
        ),
    ] {
        if let Some((id, uid, gid, mode, optional)) = opt {
            w.message(field, |w| {
                w.string(1, id);
                w.uint32(2, uid);
                w.uint32(3, gid);
                w.uint32(4, mode);
                w.bool(5, optional);
            });
        }
    }
}

/// A FileOp of `actions` on input `base` (-1 for scratch).
pub(crate) fn file(w: &mut Writer, base: i64, actions: &[FileAction]) {
    file_op(w, base, actions.iter().filter_map(|a| a.action.as_ref()))
}

/// A FileOp of copies only, without wrapping each in a `FileAction`.
pub(crate) fn file_copies(w: &mut Writer, base: i64, copies: &[FileActionCopy]) {
    file_op(w, base, copies.iter().map(ActionRef::Copy))
}

/// An action, borrowed from either a `FileAction` or a bare copy.
enum ActionRef<'a> {
    Copy(&'a FileActionCopy),
    Other(&'a file_action::Action),
}

impl<'a> From<&'a file_action::Action> for ActionRef<'a> {
    fn from(a: &'a file_action::Action) -> Self {
        match a {
            file_action::Action::Copy(c) => Self::Copy(c),
            other => Self::Other(other),
        }
    }
}

fn file_op<'a, A: Into<ActionRef<'a>>>(
    w: &mut Writer,
    base: i64,
    actions: impl Iterator<Item = A>,
) {
    w.message(FILE, |w| {
        w.int64(1, base);
        for a in actions {
            w.message(2, |w| action(w, a.into()));
        }
    });
}

fn action(w: &mut Writer, a: ActionRef) {
    use file_action::Action;
    match a {
        ActionRef::Copy(c) => w.message(1, |w| copy(w, c)),
        ActionRef::Other(Action::Copy(c)) => w.message(1, |w| copy(w, c)),
        ActionRef::Other(Action::Mkfile(f)) => w.message(2, |w| {
            w.string(1, &f.path);
            w.uint32(2, f.mode);
            w.bytes(3, &f.data);
            owner(w, 4, f.owner.as_ref());
            w.opt_int64(5, f.timestamp);
        }),
        ActionRef::Other(Action::Mkdir(d)) => w.message(3, |w| {
            w.string(1, &d.path);
            w.uint32(2, d.mode);
            w.bool(3, d.make_parents);
            owner(w, 4, d.owner.as_ref());
            w.opt_int64(5, d.timestamp);
        }),
        ActionRef::Other(Action::Rm(r)) => w.message(4, |w| {
            w.string(1, &r.path);
            w.bool(2, r.allow_not_found);
            w.bool(3, r.allow_wildcard);
        }),
        ActionRef::Other(Action::Symlink(s)) => w.message(5, |w| {
            w.string(1, &s.oldpath);
            w.string(2, &s.newpath);
            owner(w, 3, s.owner.as_ref());
            w.opt_int64(4, s.timestamp);
        }),
    }
}

fn copy(w: &mut Writer, c: &FileActionCopy) {
    w.int64(1, c.source_input);
    w.string(2, &c.src);
    w.string(3, &c.dest);
    owner(w, 4, c.owner.as_ref());
    w.opt_uint32(5, c.mode);
    w.bool(6, c.follow_symlink);
    w.bool(7, c.dir_copy_contents);
    w.bool(8, c.create_dest_path);
    w.bool(9, c.allow_wildcard);
    w.bool(10, c.allow_empty_wildcard);
    w.opt_int64(11, c.timestamp);
    for p in &c.include_patterns {
        w.repeated_string(12, p);
    }
    for p in &c.exclude_patterns {
        w.repeated_string(13, p);
    }
    w.bool(14, c.attempt_unpack);
    w.bool(15, c.parents);
    w.bool(16, c.always_replace_existing_dest_paths);
    w.string(17, &c.mode_str);
}

fn owner(w: &mut Writer, field: u32, o: Option<&ChownOpt>) {
    if let Some(o) = o {
        w.message(field, |w| {
            w.opt_uint32(1, o.uid);
            w.opt_uint32(2, o.gid);
            w.string(3, &o.user_name);
            w.string(4, &o.group_name);
        });
    }
}

#[cfg(test)]
mod tests;
