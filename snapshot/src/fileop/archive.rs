//! ADD's archive extraction: a tar file, plain or compressed, named as a copy source
//! unpacks into the destination directory instead of being copied, as Docker does.
//! Entries are placed as if the destination were the root (chroot-style), so none
//! can land outside it.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Cursor, Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use super::at;
use super::writer::{Attrs, Writer};
use crate::error::{FileOpError, FileOpErrorKind};
use crate::view::show;

const BLOCK: usize = 512;
const MAX_SYMLINKS: usize = 40;

/// Opens `f` as a tar stream if its content is a tar archive, plain or gzip,
/// zstd, bzip2 or xz compressed, as Docker's ADD takes them; None means it is
/// some other file, to copy as it is.
pub(super) fn open(mut f: File) -> Result<Option<Box<dyn Read>>, FileOpErrorKind> {
    let mut head = [0u8; BLOCK];
    let n = read_full(&mut f, &mut head)?;
    let head = &head[..n];
    f.rewind()?;
    let stream: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(f)?)
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(f))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(f))
    } else {
        Box::new(f)
    };
    tar_stream(stream)
}

/// Docker unpacks a (decompressed) file only when it starts with a valid tar
/// header; a compressed file that holds anything else is copied as it is.
fn tar_stream(mut r: Box<dyn Read>) -> Result<Option<Box<dyn Read>>, FileOpErrorKind> {
    let mut block = vec![0u8; BLOCK];
    // A stream that does not decompress is not an archive either.
    let Ok(n) = read_full(&mut r, &mut block) else {
        return Ok(None);
    };
    if n < BLOCK || !valid_header(&block) {
        return Ok(None);
    }
    Ok(Some(Box::new(Cursor::new(block).chain(r))))
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether `b` is a tar header: its checksum field matches its bytes.
fn valid_header(b: &[u8]) -> bool {
    let field = &b[148..156];
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|c| *c == b' ')
        .take_while(|c| (b'0'..=b'7').contains(c))
        .collect();
    let Ok(Ok(stored)) = std::str::from_utf8(&digits).map(|s| u32::from_str_radix(s, 8)) else {
        return false;
    };
    let sum: u32 = b
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*c)
            }
        })
        .sum();
    sum == stored
}

/// The path of an archive entry relative to the destination: leading `/` and `.`
/// dropped, `..` applied; None if it climbs above the destination.
fn clean(name: &[u8]) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(name)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

/// Unpacks the tar stream `r` into `dest`, an existing directory of the view.
/// Entries keep their modes, owners (unless `owner` overrides them) and mtimes.
pub(super) fn extract(
    w: &mut Writer<'_>,
    r: &mut dyn Read,
    dest: &Path,
    owner: Option<(u32, u32)>,
    now: i64,
    src: &str,
) -> Result<(), FileOpError> {
    let src_err = at("copy", src);
    let mut ar = tar::Archive::new(r);
    // Directories keep the archive's mtimes, set once all their entries are in.
    let mut dir_times = Vec::new();
    let implicit = Attrs {
        uid: owner.map_or(0, |o| o.0),
        gid: owner.map_or(0, |o| o.1),
        mode: 0o755,
        mtime_ns: now,
    };
    for entry in ar.entries().map_err(|e| src_err(e.into()))? {
        let mut entry = entry.map_err(|e| src_err(e.into()))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let err = at("copy", &name);
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let rel = clean(&raw).ok_or_else(|| err(FileOpErrorKind::ArchiveEscape))?;
        let Some(file_name) = rel.file_name().map(OsStr::to_owned) else {
            // The destination itself: left as it is, whatever the entry's type,
            // as the reference BuildKit leaves it (tests/parity/cases/
            // add-archive-conflicts: a "." file entry is skipped).
            continue;
        };
        let attrs = header_attrs(entry.header(), owner).map_err(&err)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let holder = enter(w, dest, parent, Some((implicit, now))).map_err(&err)?;
        let target = holder.join(&file_name);
        let existing = w.view.lookup_rel(&target).map_err(|e| err(e.into()))?;
        let r = match kind {
            EntryType::Directory => {
                dir_times.push((target.clone(), attrs.mtime_ns));
                match existing {
                    // Merge, taking the archive's metadata, as Docker's unpack does.
                    Some(n) if n.is_dir() => w.set_dir_meta(&target, attrs),
                    _ => w.create_dir(&target, attrs, now),
                }
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                w.create_file(&target, &mut entry, attrs, None, now)
            }
            EntryType::Symlink => match entry.link_name_bytes() {
                Some(t) => {
                    let t = PathBuf::from(OsStr::from_bytes(&t));
                    w.create_symlink(&target, &t, attrs, now)
                }
                None => Err(FileOpErrorKind::NotFound),
            },
            EntryType::Link => {
                let t = entry.link_name_bytes().unwrap_or_default();
                link_target(w, dest, &t).and_then(|t| w.create_hardlink(&target, &t, now))
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => special(entry.header())
                .and_then(|(ft, rdev)| w.create_special(&target, ft, rdev, attrs, now)),
            other => Err(FileOpErrorKind::ArchiveEntryType(format!("{other:?}"))),
        };
        r.map_err(err)?;
    }
    for (rel, t) in dir_times {
        w.set_dir_time(&rel, t);
    }
    Ok(())
}

fn header_attrs(h: &tar::Header, owner: Option<(u32, u32)>) -> Result<Attrs, FileOpErrorKind> {
    let id = |v: u64| u32::try_from(v).map_err(|_| FileOpErrorKind::ArchiveHeader("uid or gid"));
    let (uid, gid) = match owner {
        Some(o) => o,
        None => (id(h.uid()?)?, id(h.gid()?)?),
    };
    let secs = i64::try_from(h.mtime()?).map_err(|_| FileOpErrorKind::ArchiveHeader("mtime"))?;
    Ok(Attrs {
        uid,
        gid,
        mode: h.mode()? & 0o7777,
        mtime_ns: secs.saturating_mul(1_000_000_000),
    })
}

/// The `S_IF*` type and device number of a device or fifo entry.
fn special(h: &tar::Header) -> Result<(u32, u64), FileOpErrorKind> {
    let ft = match h.entry_type() {
        EntryType::Char => libc::S_IFCHR,
        EntryType::Block => libc::S_IFBLK,
        _ => libc::S_IFIFO,
    };
    let major = h.device_major()?.unwrap_or(0);
    let minor = h.device_minor()?.unwrap_or(0);
    Ok((ft, libc::makedev(major, minor)))
}

/// The view path of the file a hard link entry names: an entry this op already
/// wrote below the destination.
fn link_target(w: &mut Writer<'_>, dest: &Path, name: &[u8]) -> Result<PathBuf, FileOpErrorKind> {
    let rel = clean(name).ok_or(FileOpErrorKind::ArchiveEscape)?;
    let file_name = rel.file_name().ok_or(FileOpErrorKind::IsADirectory)?;
    let holder = enter(w, dest, rel.parent().unwrap_or(Path::new("")), None)?;
    let shown = || String::from_utf8_lossy(name).into_owned();
    match w.view.lookup_rel(&holder.join(file_name))? {
        // Only what the diff holds can be linked to: a lower layer's file is not
        // in this layer to share an inode with.
        Some(n) if n.in_top() && !n.is_dir() => Ok(n.rel),
        _ => Err(FileOpErrorKind::ArchiveLink(shown())),
    }
}

/// Resolves directory `rel` below `dest` with `dest` standing for the root: symlinks
/// are followed, but absolute targets and `..` stop at `dest`. With `create`, missing
/// directories are made with those attributes; without, they are an error.
fn enter(
    w: &mut Writer<'_>,
    dest: &Path,
    rel: &Path,
    create: Option<(Attrs, i64)>,
) -> Result<PathBuf, FileOpErrorKind> {
    let mut stack = vec![dest.to_owned()];
    let mut pending: VecDeque<OsString> = components(rel).collect();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        let here = stack.last().expect("stack holds the destination").clone();
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let parent = w.view.lookup_rel(&here)?.ok_or(FileOpErrorKind::NotFound)?;
        let child_rel = here.join(&name);
        match w.view.child(&parent, &name)? {
            None => {
                let Some((attrs, now)) = create else {
                    return Err(FileOpErrorKind::ParentNotFound(show_rel(&child_rel)));
                };
                w.ensure_dir(&here)?;
                w.create_dir(&child_rel, attrs, now)?;
                stack.push(child_rel);
            }
            Some(n) if n.meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(FileOpErrorKind::SymlinkLoop);
                }
                let target = fs::read_link(w.view.host_path(&n))?;
                if target.has_root() {
                    stack.truncate(1);
                }
                for (i, c) in components(&target).enumerate() {
                    pending.insert(i, c);
                }
            }
            Some(n) if n.is_dir() => stack.push(n.rel),
            Some(n) => return Err(FileOpErrorKind::ParentNotADirectory(show_rel(&n.rel))),
        }
    }
    let dir = stack.pop().expect("stack holds the destination");
    w.ensure_dir(&dir)?;
    Ok(dir)
}

fn show_rel(rel: &Path) -> String {
    show(rel).display().to_string()
}

/// The names and `..` of a path; `.` and the root carry no step.
fn components(p: &Path) -> impl Iterator<Item = OsString> + '_ {
    p.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_owned()),
        Component::ParentDir => Some(OsString::from("..")),
        _ => None,
    })
}
