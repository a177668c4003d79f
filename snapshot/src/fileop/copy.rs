//! The copy action, with Docker's rules for where a source lands.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use buildd_fsutil::dirfd::fget_xattr;
use buildd_proto::llb::FileActionCopy;

use super::source::{self, Kind, Listing, SrcEntry, SrcItem};
use super::writer::{Attrs, CAPABILITY_XATTR, Writer};
use super::{CopySource, archive, at, owner};
use crate::error::{FileOpError, FileOpErrorKind};
use crate::store::LayerStore;
use crate::view::show;

/// Per-action state shared by every item of one copy.
struct Ctx<'c> {
    a: &'c FileActionCopy,
    listing: &'c Listing,
    owner: Option<(u32, u32)>,
    keep_owner: bool,
    now: i64,
    /// First destination of each multiply-linked source file, by (dev, ino), so the
    /// copy keeps hard links as hard links.
    links: HashMap<(u64, u64), PathBuf>,
    /// Directories the copy created and the mtimes they end with, applied after all
    /// their children are in.
    dir_times: Vec<(PathBuf, i64)>,
    /// Directories the current item's copy created: nothing is below them but
    /// what the item puts there, each path once.
    fresh: HashSet<PathBuf>,
    /// `--chmod` as a symbolic mode, applied to each entry's own mode.
    symbolic: Option<buildd_proto::chmod::SymbolicMode>,
}

pub(super) fn copy(
    w: &mut Writer<'_>,
    store: &LayerStore,
    a: &FileActionCopy,
    index: usize,
    sources: &[CopySource<'_>],
) -> Result<(), FileOpError> {
    let src_err = at("copy", &a.src);
    let dest_err = at("copy", &a.dest);
    if a.parents {
        return Err(src_err(FileOpErrorKind::Unsupported(
            "copying with parents",
        )));
    }
    let source = usize::try_from(a.source_input)
        .ok()
        .and_then(|i| sources.get(i))
        .ok_or_else(|| src_err(FileOpErrorKind::BadInput(a.source_input)))?;
    let owner = owner::resolve(&w.view, a.owner.as_ref()).map_err(&dest_err)?;
    let mut listing = source::list(store, source, a, index).map_err(&src_err)?;
    // A wildcard that matched several sources copies into a directory even if some
    // of them are archives extracted separately.
    let many = listing.items.len() > 1;
    let archives = if a.attempt_unpack {
        take_archives(&mut listing).map_err(&src_err)?
    } else {
        Vec::new()
    };
    if !listing.items.is_empty() {
        copy_listing(w, a, &listing, owner, many)?;
    }
    if archives.is_empty() {
        return Ok(());
    }
    let now = a.timestamp.unwrap_or(0);
    let dest = archive_dest(w, a, owner, now)?;
    for mut stream in archives {
        archive::extract(w, &mut stream, &dest, owner, now, &a.src)?;
    }
    Ok(())
}

/// Copies the (non-archive) items of `listing` to the destination of `a`.
fn copy_listing(
    w: &mut Writer<'_>,
    a: &FileActionCopy,
    listing: &Listing,
    owner: Option<(u32, u32)>,
    many: bool,
) -> Result<(), FileOpError> {
    let dest_err = at("copy", &a.dest);
    let now = a.timestamp.unwrap_or(0);
    let symbolic = match a.mode_str.as_str() {
        "" => None,
        s => Some(
            buildd_proto::chmod::SymbolicMode::parse(s)
                .map_err(|m| dest_err(FileOpErrorKind::BadMode(m)))?,
        ),
    };
    let mut cx = Ctx {
        a,
        listing,
        owner,
        keep_owner: listing.keep_owner,
        now,
        links: HashMap::new(),
        dir_times: Vec::new(),
        fresh: HashSet::new(),
        symbolic,
    };
    let (uid, gid) = owner.unwrap_or((0, 0));
    // Directories the copy has to make on the way to its destination, as the
    // reference BuildKit makes them: owned as --chown says, with the --chmod
    // mode when given (even one without x bits), else 0755.
    let implicit = Attrs {
        uid,
        gid,
        mode: a.mode.map_or(0o755, |m| m & 0o7777),
        mtime_ns: now,
    };

    let dest = Path::new(&a.dest);
    let r = if a.create_dest_path {
        w.resolve_creating(dest, true, implicit, now)
    } else {
        w.view
            .resolve(dest, true)
            .map_err(FileOpErrorKind::from_view)
    }
    .map_err(&dest_err)?;
    let into_dir = a.dest.ends_with('/') || a.dest.ends_with("/.") || many;

    match r.node {
        Some(n) if n.is_dir() => {
            for item in &listing.items {
                copy_into(w, &mut cx, item, &n.rel)?;
            }
        }
        Some(_) if into_dir => return Err(dest_err(FileOpErrorKind::NotADirectory)),
        Some(n) => {
            let item = &listing.items[0];
            if item.is_dir() && !a.always_replace_existing_dest_paths {
                return Err(dest_err(FileOpErrorKind::NotADirectory));
            }
            copy_entries(w, &mut cx, item, &n.rel, false)?;
        }
        None => {
            let parent = r.parent.expect("only the root has no parent");
            w.ensure_dir(&parent.rel).map_err(&dest_err)?;
            let item = &listing.items[0];
            if into_dir {
                // The destination is a directory the copy creates, not a copied one.
                w.create_dir(&r.rel, implicit, now).map_err(&dest_err)?;
                for item in &listing.items {
                    copy_into(w, &mut cx, item, &r.rel)?;
                }
            } else if item.is_dir() && (a.dir_copy_contents || item.name.is_none()) {
                // The source directory's contents land in a new directory that is
                // made like the ones on the way to it, not like the source
                // directory (tests/parity/cases/copy-dir-modes), but takes the
                // source directory's mtime, as the reference BuildKit's does.
                let mtime_ns = entry_attrs(&cx, &item.entries[0]).mtime_ns;
                w.create_dir(&r.rel, implicit, now).map_err(&dest_err)?;
                cx.dir_times.push((r.rel.clone(), mtime_ns));
                copy_entries(w, &mut cx, item, &r.rel, true)?;
            } else {
                copy_entries(w, &mut cx, item, &r.rel, false)?;
            }
        }
    }
    for (rel, t) in cx.dir_times {
        w.set_dir_time(&rel, t);
    }
    Ok(())
}

/// Copies `item` into the existing directory `dir`: a directory's contents merge
/// into it when the action says so (or for a source root), anything else lands
/// under its own name.
fn copy_into(
    w: &mut Writer<'_>,
    cx: &mut Ctx<'_>,
    item: &SrcItem,
    dir: &Path,
) -> Result<(), FileOpError> {
    match &item.name {
        Some(name) if !(item.is_dir() && cx.a.dir_copy_contents) => {
            copy_entries(w, cx, item, &dir.join(name), false)
        }
        _ => copy_entries(w, cx, item, dir, true),
    }
}

/// Writes the entries of `item` at `base` (skipping the item itself with
/// `contents_only`); the view already holds `base` or its parent directory.
fn copy_entries(
    w: &mut Writer<'_>,
    cx: &mut Ctx<'_>,
    item: &SrcItem,
    base: &Path,
    contents_only: bool,
) -> Result<(), FileOpError> {
    let a = cx.a;
    let shown = show(base).display().to_string();
    let holder = if contents_only {
        base
    } else {
        base.parent().unwrap_or(Path::new(""))
    };
    w.ensure_dir(holder).map_err(at("copy", &shown))?;
    cx.fresh.clear();
    for e in &item.entries {
        if contents_only && e.rel.as_os_str().is_empty() {
            continue;
        }
        // `join("")` would add a trailing slash.
        let dest = if e.rel.as_os_str().is_empty() {
            base.to_owned()
        } else {
            base.join(&e.rel)
        };
        let shown = show(&dest).display().to_string();
        let err = at("copy", &shown);
        let attrs = entry_attrs(cx, e);
        let existing = if dest.parent().is_some_and(|p| cx.fresh.contains(p)) {
            w.known_absent(&dest);
            None
        } else {
            w.view.lookup_rel(&dest).map_err(|k| err(k.into()))?
        };
        let existing_dir = existing.as_ref().map(|n| n.is_dir());
        let replace = a.always_replace_existing_dest_paths;
        match &e.kind {
            Kind::Dir => match existing_dir {
                // Merge into what is there, keeping its metadata, as Docker does.
                Some(true) => drop(w.ensure_dir(&dest).map_err(&err)?),
                Some(false) if !replace => return Err(err(FileOpErrorKind::NotADirectory)),
                _ => {
                    w.create_dir(&dest, attrs, cx.now).map_err(&err)?;
                    cx.fresh.insert(dest.clone());
                    cx.dir_times.push((dest, attrs.mtime_ns));
                }
            },
            _ if existing_dir == Some(true) && !replace => {
                return Err(err(FileOpErrorKind::IsADirectory));
            }
            Kind::File => {
                let key = (e.dev, e.ino);
                if let Some(first) = cx.links.get(&key).filter(|_| e.nlink > 1) {
                    w.create_hardlink(&dest, first, cx.now).map_err(&err)?;
                    continue;
                }
                let src_err = at("copy", &a.src);
                let mut f = cx.listing.open(e).map_err(&src_err)?;
                // File capabilities are part of what an image's binaries can do.
                let linked = w.share
                    && cx.listing.immutable
                    && shareable(&f, &attrs).map_err(|k| src_err(k.into()))?
                    && w.link_file(&dest, &f, cx.now).map_err(&err)?;
                if !linked {
                    let caps = fget_xattr(&f, CAPABILITY_XATTR).map_err(|k| src_err(k.into()))?;
                    w.create_file(&dest, &mut f, attrs, caps.as_deref(), cx.now)
                        .map_err(&err)?;
                }
                if e.nlink > 1 {
                    cx.links.insert(key, dest);
                }
            }
            Kind::Symlink(target) => w
                .create_symlink(&dest, target, attrs, cx.now)
                .map_err(&err)?,
            Kind::Special { file_type, rdev } => w
                .create_special(&dest, *file_type, *rdev, attrs, cx.now)
                .map_err(&err)?,
        }
    }
    Ok(())
}

/// Whether the immutable file `f` already is what a copy with `attrs` would make:
/// same owner, permission bits and mtime, and no xattrs beyond the capabilities a
/// copy keeps. Then a hard link is that copy.
fn shareable(f: &std::fs::File, attrs: &Attrs) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok(m.uid() == attrs.uid
        && m.gid() == attrs.gid
        && m.mode() & 0o7777 == attrs.mode & 0o7777
        && crate::sys::mtime_ns(&m) == attrs.mtime_ns
        && !crate::sys::has_other_xattrs(f)?)
}

/// The owner, mode and mtime the copy of `e` gets.
fn entry_attrs(cx: &Ctx<'_>, e: &SrcEntry) -> Attrs {
    let (uid, gid) = cx.owner.unwrap_or(if cx.keep_owner {
        (e.uid, e.gid)
    } else {
        (0, 0)
    });
    Attrs {
        uid,
        gid,
        mode: match (cx.a.mode, &cx.symbolic) {
            (Some(m), _) => m & 0o7777,
            (None, Some(sym)) if !matches!(e.kind, Kind::Symlink(_)) => {
                sym.apply(e.mode, e.kind == Kind::Dir)
            }
            (None, _) => e.mode,
        },
        mtime_ns: cx.a.timestamp.unwrap_or(e.mtime_ns),
    }
}

/// Removes from `listing` the regular files that are tar archives, which ADD
/// extracts rather than copies, and returns them opened as tar streams.
fn take_archives(listing: &mut Listing) -> Result<Vec<Box<dyn Read>>, FileOpErrorKind> {
    let mut archives = Vec::new();
    let mut rest = Vec::new();
    for item in std::mem::take(&mut listing.items) {
        let e = &item.entries[0];
        let stream = if e.kind == Kind::File {
            archive::open(listing.open(e)?)?
        } else {
            None
        };
        match stream {
            Some(s) => archives.push(s),
            None => rest.push(item),
        }
    }
    listing.items = rest;
    Ok(archives)
}

/// The directory archives extract into: the destination, made if missing. Unlike
/// a copied file's, an archive's destination is always a directory.
fn archive_dest(
    w: &mut Writer<'_>,
    a: &FileActionCopy,
    owner: Option<(u32, u32)>,
    now: i64,
) -> Result<PathBuf, FileOpError> {
    let dest_err = at("copy", &a.dest);
    let (uid, gid) = owner.unwrap_or((0, 0));
    let implicit = Attrs {
        uid,
        gid,
        mode: 0o755,
        mtime_ns: now,
    };
    let r = w
        .resolve_creating(Path::new(&a.dest), true, implicit, now)
        .map_err(&dest_err)?;
    match r.node {
        Some(n) if n.is_dir() => Ok(n.rel),
        Some(_) => Err(dest_err(FileOpErrorKind::NotADirectory)),
        None => {
            let parent = r.parent.expect("only the root has no parent");
            w.ensure_dir(&parent.rel).map_err(&dest_err)?;
            w.create_dir(&r.rel, implicit, now).map_err(&dest_err)?;
            Ok(r.rel)
        }
    }
}
