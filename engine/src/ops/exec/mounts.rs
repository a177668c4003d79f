//! Everything a run needs on disk before it starts: the root filesystem plan, the
//! user, and the sources of its extra mounts.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use buildd_executor::{MountSpec, RootfsPlan};
use buildd_fsutil::select::Selection;
use buildd_proto::llb::{
    CacheOpt, ExecOp, FileAction, FileActionCopy, FileOp, Mount, MountType, NO_INPUT, file_action,
};
use buildd_snapshot::{CopySource, LayerStore, PendingLayer, Snapshot, apply_file_op};

use super::cache::{cache_dir, instance_exists};
use super::user;
use crate::ops::worker::{Ref, Selections};
use crate::root::Root;
use crate::solver::{OpError, Resolved};

/// The path a mount takes from its input.
pub(super) fn selector(m: &Mount) -> &str {
    if m.selector.is_empty() {
        "/"
    } else {
        &m.selector
    }
}

/// Where a mount source is copied inside its scratch layer.
const COPY_DIR: &str = "mnt";

/// What was set up for a run before its filesystem, by mount index: the cache
/// instance of each cache mount and the host path of each secret file and agent
/// socket. A secret or ssh mount without a path is an optional one left out.
pub(super) struct MountSources<'a> {
    pub(super) cache_instances: &'a BTreeMap<usize, usize>,
    /// Each cache mount's identity, by mount index.
    pub(super) cache_ids: &'a BTreeMap<usize, String>,
    /// Content for cache mounts whose instance is new, by mount index.
    pub(super) cache_seeds: &'a BTreeMap<usize, super::cache::CacheSeed>,
    pub(super) session: &'a BTreeMap<usize, PathBuf>,
}

/// A run ready to start. Dropping it removes the upper layer and the copies.
pub(super) struct Prepared {
    pub(super) rootfs: RootfsPlan,
    /// Receives the changes to the root filesystem; committed when the run succeeds.
    pub(super) upper: PendingLayer,
    /// Numeric `uid:gid`.
    pub(super) user: user::User,
    pub(super) mounts: Vec<MountSpec>,
    /// Private copies of bind mount sources, discarded after the run.
    pub(super) copies: Vec<PendingLayer>,
}

/// Stacks up to this deep are mounted layer by layer.
const DIRECT_LOWERS: usize = 128;

/// The directories a RUN over `base` mounts, bottom first. A deeper stack is
/// mounted as the squashed layer of its bottom part (a multiple of
/// [`DIRECT_LOWERS`] layers, so the steps of a chain share it for that many
/// steps) under the layers above it: never more than an overlay can name, and a
/// step walks only the layers above the squash.
fn lowers(store: &LayerStore, base: &Snapshot) -> Result<Vec<PathBuf>, OpError> {
    if base.len() <= DIRECT_LOWERS {
        return Ok(base.layers().iter().map(|id| store.diff_dir(id)).collect());
    }
    let keep = base.len() % DIRECT_LOWERS;
    let mut above = Vec::with_capacity(keep + 1);
    let mut bottom = base;
    for _ in 0..keep {
        above.push(store.diff_dir(bottom.top().expect("deeper than kept")));
        bottom = bottom.below();
    }
    let squashed =
        buildd_snapshot::squash(store, bottom).map_err(|e| OpError::new(e.to_string()))?;
    above.push(store.diff_dir(&squashed));
    above.reverse();
    Ok(above)
}

impl Prepared {
    pub(super) fn new(
        root: &Root,
        exec: &ExecOp,
        base: &Snapshot,
        inputs: &[Arc<Resolved<Ref>>],
        mut selections: Selections,
        sources: &MountSources<'_>,
    ) -> Result<Self, OpError> {
        let meta_user = exec.meta.as_ref().map_or("", |m| m.user.as_str());
        let user = user::resolve(&root.layers, base, meta_user)?;
        let upper = root
            .layers
            .begin()
            .map_err(|e| OpError::new(e.to_string()))?;
        let mut p = Prepared {
            rootfs: RootfsPlan {
                lowers: lowers(&root.layers, base)?,
                upper: upper.path().to_owned(),
            },
            upper,
            user,
            mounts: Vec::new(),
            copies: Vec::new(),
        };
        for (i, m) in exec.mounts.iter().enumerate().skip(1) {
            let source = match m.mount_type() {
                MountType::Cache => {
                    let instance = sources.cache_instances.get(&i).copied();
                    Source::Cache {
                        instance: instance.expect("every cache mount has an instance"),
                        id: sources.cache_ids[&i].clone(),
                        seed: sources.cache_seeds.get(&i).cloned(),
                    }
                }
                MountType::Secret | MountType::Ssh => match sources.session.get(&i) {
                    Some(path) => Source::Session(path.clone()),
                    None => continue,
                },
                _ => Source::Input(selections.remove(&i)),
            };
            p.add(root, m, inputs, source)?;
        }
        Ok(p)
    }

    fn add(
        &mut self,
        root: &Root,
        m: &Mount,
        inputs: &[Arc<Resolved<Ref>>],
        source: Source,
    ) -> Result<(), OpError> {
        let dest = m.dest.clone();
        let spec = match (m.mount_type(), source) {
            (MountType::Bind, Source::Input(selection)) => {
                let src = if m.input == NO_INPUT {
                    let empty = root
                        .layers
                        .begin()
                        .map_err(|e| OpError::new(e.to_string()))?;
                    let path = empty.path().to_owned();
                    self.copies.push(empty);
                    path
                } else {
                    let what = format!("RUN mount {dest}");
                    let src = input(inputs, m.input, &what)?;
                    if let Ref::Snapshot(snap) = src {
                        // A stage or image is mounted as its layers, never
                        // copied, as BuildKit mounts a snapshot; a writable mount
                        // writes to an upper dir discarded with the run.
                        let upper = if m.readonly {
                            None
                        } else {
                            let upper = root
                                .layers
                                .begin()
                                .map_err(|e| OpError::new(format!("{what}: {e}")))?;
                            let path = upper.path().to_owned();
                            self.copies.push(upper);
                            Some(path)
                        };
                        self.mounts.push(MountSpec::Layers {
                            lowers: lowers(&root.layers, snap)?,
                            upper,
                            subpath: selector(m).to_owned(),
                            dest,
                            readonly: m.readonly,
                        });
                        return Ok(());
                    }
                    let (copy, path) = copy_of(root, src, m, selection)?;
                    self.copies.push(copy);
                    path
                };
                // The source is a private copy, so a writable mount's changes are
                // discarded with it, as BuildKit does for mounts without an output.
                MountSpec::Bind {
                    src,
                    dest,
                    readonly: m.readonly,
                }
            }
            (MountType::Cache, Source::Cache { instance, id, seed }) => {
                let default = CacheOpt::default();
                let opt = m.cache_opt.as_ref().unwrap_or(&default);
                // A new cache `from=` a stage starts as what the mount selects
                // there, copied once; later runs find the instance made.
                let from = if m.input != NO_INPUT && !instance_exists(&root.path, &id, instance) {
                    let what = format!("RUN mount {dest}");
                    Some(copy_of(root, input(inputs, m.input, &what)?, m, None)?)
                } else {
                    None
                };
                let src = cache_dir(
                    &root.path,
                    &id,
                    instance,
                    opt,
                    seed.as_ref(),
                    from.as_ref().map(|(_, path)| path.as_path()),
                )?;
                MountSpec::Bind {
                    src,
                    dest,
                    readonly: m.readonly,
                }
            }
            // The secret's file on its tmpfs, never writable by the process.
            (MountType::Secret, Source::Session(src)) => MountSpec::Bind {
                src,
                dest,
                readonly: true,
            },
            // Connecting to a socket takes write permission on it.
            (MountType::Ssh, Source::Session(src)) => MountSpec::Bind {
                src,
                dest,
                readonly: false,
            },
            (MountType::Tmpfs, _) => MountSpec::Tmpfs {
                dest,
                size: m
                    .tmpfs_opt
                    .as_ref()
                    .and_then(|t| u64::try_from(t.size).ok())
                    .filter(|&s| s > 0),
            },
            (kind, _) => unreachable!("mount type {kind:?} was given the wrong source"),
        };
        self.mounts.push(spec);
        Ok(())
    }
}

/// Where one mount's content comes from.
enum Source {
    /// An input of the op (or an empty directory), with the context selection its
    /// cache key hashed.
    Input(Option<Selection>),
    /// Instance `instance` of the mount's cache `id`, and what to fill it with
    /// if it is new.
    Cache {
        instance: usize,
        id: String,
        seed: Option<super::cache::CacheSeed>,
    },
    /// A secret file or agent socket set up for the run.
    Session(PathBuf),
}

/// Input `index` of the op, checked.
pub(super) fn input<'a>(
    inputs: &'a [Arc<Resolved<Ref>>],
    index: i64,
    what: &str,
) -> Result<&'a Ref, OpError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| inputs.get(i))
        .map(|r| &r.output)
        .ok_or_else(|| OpError::new(format!("{what}: input {index} does not exist")))
}

/// A private copy of what mount `m` selects from `src`, made with the FileOp copy
/// so that symlinks resolve inside the source and `.dockerignore` applies to the
/// context. A local directory's `selection` is the one its cache key hashed; the
/// copy takes exactly those files and fails if one changed since. Returns the
/// scratch layer holding the copy and the path to bind.
fn copy_of(
    root: &Root,
    src: &Ref,
    m: &Mount,
    selection: Option<Selection>,
) -> Result<(PendingLayer, PathBuf), OpError> {
    let file = FileOp {
        base: NO_INPUT,
        actions: vec![FileAction {
            action: Some(file_action::Action::Copy(FileActionCopy {
                source_input: 0,
                src: selector(m).to_owned(),
                dest: format!("/{COPY_DIR}"),
                follow_symlink: true,
                dir_copy_contents: true,
                create_dest_path: true,
                ..Default::default()
            })),
        }],
    };
    // The copy is action 0 of its FileOp.
    let selections: Selections = selection.map(|s| (0, s)).into_iter().collect();
    let source = match src {
        Ref::Snapshot(_) | Ref::Remote(_) => {
            CopySource::Snapshot(src.snapshot("RUN mount source")?)
        }
        Ref::Local(dir) => CopySource::Dir {
            root: &dir.root,
            excludes: dir.excludes.as_ref(),
            selections: &selections,
            immutable: dir.immutable,
        },
    };
    let layer = apply_file_op(&root.layers, &Snapshot::scratch(), &file, &[source])
        .map_err(|e| OpError::new(format!("RUN mount {}: {e}", m.dest)))?;
    let path = layer.path().join(COPY_DIR);
    if !path.exists() {
        // The source was empty: nothing was copied, not even the directory.
        fs::create_dir(&path).map_err(|e| OpError::new(format!("{}: {e}", path.display())))?;
    }
    Ok((layer, path))
}
