//! Human-readable and JSON renderings of a [`Definition`], for golden tests and
//! debugging. Both list the vertices in definition order with their digest, op
//! kind, fields (defaults omitted), inputs and metadata; the output depends only
//! on the definition, so it is stable.

use prost::Message;

use crate::Digest;
use crate::llb::{
    ChownOpt, Definition, ExecOp, FileAction, FileOp, Input, Mount, Op, OpMetadata, SourceOp,
    file_action, op,
};

/// Text form: one block per vertex, e.g.
///
/// ```text
/// 1a2b3c4d5e6f file
///   inputs: [0f0e0d0c0b0a:0]
///   ...
/// ```
pub fn to_text(def: &Definition) -> String {
    let mut out = String::new();
    for (digest, op) in vertices(def) {
        let short = short(&digest);
        let tree = match &op {
            Ok(op) => op_tree(op, def.metadata.get(&digest), Style::Text),
            Err(e) => vec![("error", Val::Str(e.clone()))],
        };
        let kind = op.as_ref().map_or("invalid", |o| kind(o));
        out.push_str(&format!("{short} {kind}\n"));
        for (k, v) in &tree {
            if *k != "kind" {
                write_text(&mut out, 1, k, v);
            }
        }
        out.push('\n');
    }
    match &def.result {
        Some(r) => out.push_str(&format!("result: {}:{}\n", short(&r.digest), r.index)),
        None => out.push_str("result: none\n"),
    }
    out
}

/// JSON form: `{"vertices": [{"digest": ..., "kind": ..., ...}], "result": ...}`,
/// pretty-printed with two-space indentation and a final newline.
pub fn to_json(def: &Definition) -> String {
    let vertices = vertices(def)
        .map(|(digest, op)| {
            let mut fields = vec![("digest", Val::Str(digest.clone()))];
            match op {
                Ok(op) => fields.extend(op_tree(&op, def.metadata.get(&digest), Style::Json)),
                Err(e) => fields.push(("error", Val::Str(e))),
            }
            Val::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        })
        .collect();
    let result = def
        .result
        .as_ref()
        .map_or(Val::Null, |r| input(r, Style::Json));
    let root = Val::Obj(vec![
        ("vertices".to_owned(), Val::List(vertices)),
        ("result".to_owned(), result),
    ]);
    let mut out = String::new();
    write_json(&mut out, 0, &root);
    out.push('\n');
    out
}

/// The vertices with their digests, in definition order.
fn vertices(def: &Definition) -> impl Iterator<Item = (String, Result<Op, String>)> + '_ {
    def.def.iter().map(|bytes| {
        let digest = Digest::of(bytes).to_string();
        (
            digest,
            Op::decode(bytes.as_slice()).map_err(|e| format!("undecodable op: {e}")),
        )
    })
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn kind(op: &Op) -> &'static str {
    match &op.op {
        Some(op::Op::Exec(_)) => "exec",
        Some(op::Op::Source(_)) => "source",
        Some(op::Op::File(_)) => "file",
        Some(op::Op::Merge(_)) => "merge",
        Some(op::Op::Diff(_)) => "diff",
        None => "none",
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Text,
    Json,
}

enum Val {
    Null,
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Val>),
    Obj(Vec<(String, Val)>),
}

type Fields = Vec<(&'static str, Val)>;

fn obj(fields: Fields) -> Val {
    Val::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn strs(items: &[String]) -> Val {
    Val::List(items.iter().cloned().map(Val::Str).collect())
}

/// Adds `v` unless it is the proto3 default (empty string/list, false, 0).
fn opt(fields: &mut Fields, key: &'static str, v: Val) {
    let default = match &v {
        Val::Null => true,
        Val::Str(s) => s.is_empty(),
        Val::Int(i) => *i == 0,
        Val::Bool(b) => !b,
        Val::List(l) => l.is_empty(),
        Val::Obj(o) => o.is_empty(),
    };
    if !default {
        fields.push((key, v));
    }
}

fn input(i: &Input, style: Style) -> Val {
    match style {
        Style::Text => Val::Str(format!("{}:{}", short(&i.digest), i.index)),
        Style::Json => obj(vec![
            ("digest", Val::Str(i.digest.clone())),
            ("index", Val::Int(i.index)),
        ]),
    }
}

fn op_tree(op: &Op, meta: Option<&OpMetadata>, style: Style) -> Fields {
    let mut f: Fields = vec![("kind", Val::Str(kind(op).to_owned()))];
    opt(
        &mut f,
        "inputs",
        Val::List(op.inputs.iter().map(|i| input(i, style)).collect()),
    );
    if let Some(p) = &op.platform {
        let mut s = format!("{}/{}", p.os, p.architecture);
        if !p.variant.is_empty() {
            s = format!("{s}/{}", p.variant);
        }
        f.push(("platform", Val::Str(s)));
    }
    match &op.op {
        Some(op::Op::Source(s)) => source(&mut f, s),
        Some(op::Op::Exec(e)) => exec(&mut f, e),
        Some(op::Op::File(file)) => file_op(&mut f, file),
        Some(op::Op::Diff(d)) => {
            f.push(("lower", Val::Int(d.lower)));
            f.push(("upper", Val::Int(d.upper)));
        }
        Some(op::Op::Merge(_)) | None => {}
    }
    if let Some(m) = meta {
        let desc = m
            .description
            .iter()
            .map(|(k, v)| (k.clone(), Val::Str(v.clone())))
            .collect();
        opt(&mut f, "description", Val::Obj(desc));
        opt(&mut f, "ignore_cache", Val::Bool(m.ignore_cache));
        let locations = m
            .locations
            .iter()
            .flat_map(|l| {
                l.ranges.iter().map(move |r| {
                    let pos = |p: &Option<crate::llb::Position>| {
                        p.as_ref()
                            .map_or("?".to_owned(), |p| format!("{}:{}", p.line, p.character))
                    };
                    Val::Str(format!(
                        "{}@{}-{}",
                        l.source_index,
                        pos(&r.start),
                        pos(&r.end)
                    ))
                })
            })
            .collect();
        opt(&mut f, "locations", Val::List(locations));
    }
    f
}

fn source(f: &mut Fields, s: &SourceOp) {
    f.push(("identifier", Val::Str(s.identifier.clone())));
    let attrs = s
        .attrs
        .iter()
        .map(|(k, v)| (k.clone(), Val::Str(v.clone())))
        .collect();
    opt(f, "attrs", Val::Obj(attrs));
    opt(f, "include_patterns", strs(&s.include_patterns));
    opt(f, "exclude_patterns", strs(&s.exclude_patterns));
    opt(f, "follow_paths", strs(&s.follow_paths));
}

fn exec(f: &mut Fields, e: &ExecOp) {
    if let Some(m) = &e.meta {
        let mut mf = Fields::new();
        opt(&mut mf, "args", strs(&m.args));
        opt(&mut mf, "env", strs(&m.env));
        opt(&mut mf, "cwd", Val::Str(m.cwd.clone()));
        opt(&mut mf, "user", Val::Str(m.user.clone()));
        opt(&mut mf, "hostname", Val::Str(m.hostname.clone()));
        let hosts = m
            .extra_hosts
            .iter()
            .map(|h| Val::Str(format!("{}={}", h.host, h.ip)))
            .collect();
        opt(&mut mf, "extra_hosts", Val::List(hosts));
        if m.proxy_env.is_some() {
            mf.push(("proxy_env", Val::Str("set".to_owned())));
        }
        f.push(("meta", obj(mf)));
    }
    f.push(("mounts", Val::List(e.mounts.iter().map(mount).collect())));
    opt(
        f,
        "network",
        Val::Str(e.network().as_str_name().to_owned()).filter_default(e.network == 0),
    );
    opt(
        f,
        "security",
        Val::Str(e.security().as_str_name().to_owned()).filter_default(e.security == 0),
    );
    let secrets = e
        .secret_env
        .iter()
        .map(|s| {
            Val::Str(format!(
                "{}={}{}",
                s.name,
                s.id,
                if s.optional { " (optional)" } else { "" }
            ))
        })
        .collect();
    opt(f, "secret_env", Val::List(secrets));
}

impl Val {
    /// Drops the value (so [`opt`] omits it) when `is_default`.
    fn filter_default(self, is_default: bool) -> Val {
        if is_default { Val::Null } else { self }
    }
}

fn mount(m: &Mount) -> Val {
    let mut f: Fields = vec![("input", Val::Int(m.input))];
    opt(&mut f, "selector", Val::Str(m.selector.clone()));
    f.push(("dest", Val::Str(m.dest.clone())));
    f.push(("output", Val::Int(m.output)));
    opt(&mut f, "readonly", Val::Bool(m.readonly));
    opt(
        &mut f,
        "type",
        Val::Str(m.mount_type().as_str_name().to_owned()).filter_default(m.mount_type == 0),
    );
    if let Some(t) = &m.tmpfs_opt {
        f.push(("tmpfs_size", Val::Int(t.size)));
    }
    if let Some(c) = &m.cache_opt {
        f.push((
            "cache",
            Val::Str(format!("id={} sharing={}", c.id, c.sharing().as_str_name())),
        ));
    }
    if let Some(s) = &m.secret_opt {
        f.push((
            "secret",
            Val::Str(format!(
                "id={} uid={} gid={} mode={:o} optional={}",
                s.id, s.uid, s.gid, s.mode, s.optional
            )),
        ));
    }
    if let Some(s) = &m.ssh_opt {
        f.push((
            "ssh",
            Val::Str(format!(
                "id={} uid={} gid={} mode={:o} optional={}",
                s.id, s.uid, s.gid, s.mode, s.optional
            )),
        ));
    }
    obj(f)
}

fn file_op(f: &mut Fields, file: &FileOp) {
    f.push(("base", Val::Int(file.base)));
    f.push((
        "actions",
        Val::List(file.actions.iter().map(action).collect()),
    ));
}

fn owner(f: &mut Fields, o: &Option<ChownOpt>) {
    let Some(o) = o else { return };
    let part = |id: Option<u32>, name: &str| id.map_or(name.to_owned(), |i| i.to_string());
    f.push((
        "owner",
        Val::Str(format!(
            "{}:{}",
            part(o.uid, &o.user_name),
            part(o.gid, &o.group_name)
        )),
    ));
}

fn mode(f: &mut Fields, key: &'static str, m: Option<u32>) {
    if let Some(m) = m {
        f.push((key, Val::Str(format!("{m:04o}"))));
    }
}

fn action(a: &FileAction) -> Val {
    let mut f = Fields::new();
    match &a.action {
        Some(file_action::Action::Copy(c)) => {
            f.push(("action", Val::Str("copy".to_owned())));
            f.push(("source_input", Val::Int(c.source_input)));
            f.push(("src", Val::Str(c.src.clone())));
            f.push(("dest", Val::Str(c.dest.clone())));
            owner(&mut f, &c.owner);
            mode(&mut f, "mode", c.mode);
            if !c.mode_str.is_empty() {
                f.push(("mode_str", Val::Str(c.mode_str.clone())));
            }
            let flags: Vec<Val> = [
                ("follow_symlink", c.follow_symlink),
                ("dir_copy_contents", c.dir_copy_contents),
                ("create_dest_path", c.create_dest_path),
                ("allow_wildcard", c.allow_wildcard),
                ("allow_empty_wildcard", c.allow_empty_wildcard),
                ("attempt_unpack", c.attempt_unpack),
                ("parents", c.parents),
                (
                    "always_replace_existing_dest_paths",
                    c.always_replace_existing_dest_paths,
                ),
            ]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| Val::Str(name.to_owned()))
            .collect();
            opt(&mut f, "flags", Val::List(flags));
            if let Some(t) = c.timestamp {
                f.push(("timestamp", Val::Int(t)));
            }
            opt(&mut f, "include_patterns", strs(&c.include_patterns));
            opt(&mut f, "exclude_patterns", strs(&c.exclude_patterns));
        }
        Some(file_action::Action::Mkfile(m)) => {
            f.push(("action", Val::Str("mkfile".to_owned())));
            f.push(("path", Val::Str(m.path.clone())));
            mode(&mut f, "mode", Some(m.mode));
            f.push((
                "data",
                Val::Str(String::from_utf8_lossy(&m.data).into_owned()),
            ));
            owner(&mut f, &m.owner);
            if let Some(t) = m.timestamp {
                f.push(("timestamp", Val::Int(t)));
            }
        }
        Some(file_action::Action::Mkdir(m)) => {
            f.push(("action", Val::Str("mkdir".to_owned())));
            f.push(("path", Val::Str(m.path.clone())));
            mode(&mut f, "mode", Some(m.mode));
            opt(&mut f, "make_parents", Val::Bool(m.make_parents));
            owner(&mut f, &m.owner);
            if let Some(t) = m.timestamp {
                f.push(("timestamp", Val::Int(t)));
            }
        }
        Some(file_action::Action::Rm(r)) => {
            f.push(("action", Val::Str("rm".to_owned())));
            f.push(("path", Val::Str(r.path.clone())));
            opt(&mut f, "allow_not_found", Val::Bool(r.allow_not_found));
            opt(&mut f, "allow_wildcard", Val::Bool(r.allow_wildcard));
        }
        Some(file_action::Action::Symlink(s)) => {
            f.push(("action", Val::Str("symlink".to_owned())));
            f.push(("oldpath", Val::Str(s.oldpath.clone())));
            f.push(("newpath", Val::Str(s.newpath.clone())));
            owner(&mut f, &s.owner);
            if let Some(t) = s.timestamp {
                f.push(("timestamp", Val::Int(t)));
            }
        }
        None => f.push(("action", Val::Str("none".to_owned()))),
    }
    obj(f)
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scalar(v: &Val) -> Option<String> {
    match v {
        Val::Null => Some("null".to_owned()),
        Val::Str(s) => Some(quote(s)),
        Val::Int(i) => Some(i.to_string()),
        Val::Bool(b) => Some(b.to_string()),
        Val::List(_) | Val::Obj(_) => None,
    }
}

fn write_text(out: &mut String, depth: usize, key: &str, v: &Val) {
    let pad = "  ".repeat(depth);
    match v {
        Val::List(items) if items.iter().all(|i| scalar(i).is_some()) => {
            let items: Vec<String> = items.iter().filter_map(scalar).collect();
            out.push_str(&format!("{pad}{key}: [{}]\n", items.join(", ")));
        }
        Val::List(items) => {
            for (i, item) in items.iter().enumerate() {
                write_text(out, depth, &format!("{key}[{i}]"), item);
            }
        }
        Val::Obj(fields) => {
            out.push_str(&format!("{pad}{key}:\n"));
            for (k, v) in fields {
                write_text(out, depth + 1, k, v);
            }
        }
        scalar_val => {
            let s = scalar(scalar_val).unwrap_or_default();
            out.push_str(&format!("{pad}{key}: {s}\n"));
        }
    }
}

fn write_json(out: &mut String, depth: usize, v: &Val) {
    let pad = "  ".repeat(depth + 1);
    let close = "  ".repeat(depth);
    match v {
        Val::List(items) if items.is_empty() => out.push_str("[]"),
        Val::Obj(fields) if fields.is_empty() => out.push_str("{}"),
        Val::List(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad);
                write_json(out, depth + 1, item);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&close);
            out.push(']');
        }
        Val::Obj(fields) => {
            out.push_str("{\n");
            for (i, (k, item)) in fields.iter().enumerate() {
                out.push_str(&format!("{pad}{}: ", quote(k)));
                write_json(out, depth + 1, item);
                out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
            }
            out.push_str(&close);
            out.push('}');
        }
        s => out.push_str(&scalar(s).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::{FileActionMkDir, Input};

    fn sample() -> Definition {
        let src = Op {
            op: Some(op::Op::Source(SourceOp {
                identifier: "local://context".into(),
                follow_paths: vec!["a \"b\"".into()],
                ..Default::default()
            })),
            ..Default::default()
        };
        let src_digest = src.digest().to_string();
        let file = Op {
            inputs: vec![Input {
                digest: src_digest.clone(),
                index: 0,
            }],
            op: Some(op::Op::File(FileOp {
                base: 0,
                actions: vec![FileAction {
                    action: Some(file_action::Action::Mkdir(FileActionMkDir {
                        path: "/app".into(),
                        mode: 0o755,
                        make_parents: true,
                        ..Default::default()
                    })),
                }],
            })),
            ..Default::default()
        };
        let file_digest = file.digest().to_string();
        let mut metadata = std::collections::BTreeMap::new();
        let mut m = OpMetadata::default();
        m.description
            .insert("llb.customname".into(), "WORKDIR /app".into());
        metadata.insert(file_digest.clone(), m);
        Definition {
            def: vec![src.encode_to_vec(), file.encode_to_vec()],
            metadata,
            result: Some(Input {
                digest: file_digest,
                index: 0,
            }),
            sources: vec![],
        }
    }

    #[test]
    fn text_lists_vertices_in_order() {
        let def = sample();
        let text = to_text(&def);
        let src_short = short(&Digest::of(&def.def[0]).to_string()).to_owned();
        let file_short = short(&Digest::of(&def.def[1]).to_string()).to_owned();
        let expected = format!(
            "{src_short} source\n  identifier: \"local://context\"\n  follow_paths: [\"a \\\"b\\\"\"]\n\n\
             {file_short} file\n  inputs: [\"{src_short}:0\"]\n  base: 0\n  actions[0]:\n    action: \"mkdir\"\n    path: \"/app\"\n    mode: \"0755\"\n    make_parents: true\n  description:\n    llb.customname: \"WORKDIR /app\"\n\n\
             result: {file_short}:0\n"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn json_is_well_formed_and_stable() {
        let def = sample();
        let json = to_json(&def);
        assert_eq!(json, to_json(&def));
        assert!(json.starts_with("{\n  \"vertices\": [\n    {\n      \"digest\": \"sha256:"));
        assert!(json.contains("\"follow_paths\": [\n        \"a \\\"b\\\"\"\n      ]"));
        assert!(json.contains("\n  \"result\": {\n    \"digest\": \"sha256:"));
        assert!(json.ends_with("\n  }\n}\n"));
        let opens = json.matches(['{', '[']).count();
        let closes = json.matches(['}', ']']).count();
        assert_eq!(opens, closes);
    }
}
