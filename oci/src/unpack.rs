//! Layer tarballs extracted into overlayfs-style diff directories.
//!
//! `.wh.<name>` entries become whiteouts (char device 0/0) and `.wh..wh..opq` marks its
//! directory opaque. Every name is resolved one component at a time from a descriptor of the
//! destination with `O_NOFOLLOW`, so no entry, hardlink or symlink can reach outside it: `..`
//! and absolute names are rejected and a symlink met where a directory is needed is an error.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use buildd_proto::Digest;
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::compress::Compression;
use crate::dirfd::{self, DirFd};
use crate::layer::{CAPABILITY_XATTR, OPAQUE_XATTRS, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading layer archive: {0}")]
    Archive(#[source] io::Error),
    #[error("archive entry {path:?} is absolute or leaves the destination")]
    Escapes { path: String },
    #[error("archive entry {path:?}: {parent:?} is a symlink or not a directory")]
    NotADirectory { path: String, parent: String },
    #[error("archive entry {path:?} has unsupported type {kind:?}")]
    Unsupported { path: String, kind: EntryType },
    #[error("archive entry {path:?} would replace non-empty directory")]
    NonEmptyDir { path: String },
    #[error("archive entry {path:?} in {dest}: {source}")]
    Io {
        path: String,
        dest: PathBuf,
        source: io::Error,
    },
}

struct HashReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Extracts a layer into the (empty) diff dir `dest` and returns its diff_id.
pub fn unpack_layer(
    reader: impl Read,
    compression: Compression,
    dest: &Path,
) -> Result<Digest, UnpackError> {
    let decompressed: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(reader).map_err(UnpackError::Archive)?)
        }
    };
    let hashing = HashReader {
        inner: decompressed,
        hasher: Sha256::new(),
    };
    let root = DirFd::open(dest).map_err(|source| UnpackError::Io {
        path: String::new(),
        dest: dest.to_owned(),
        source,
    })?;
    let mut x = Extractor {
        root,
        dest,
        // Unprivileged extraction cannot chown; the files then belong to the caller.
        // SAFETY: geteuid has no preconditions and cannot fail.
        chown: unsafe { libc::geteuid() } == 0,
        dirs: HashMap::new(),
    };
    let mut archive = tar::Archive::new(hashing);
    for entry in archive.entries().map_err(UnpackError::Archive)? {
        x.entry(entry.map_err(UnpackError::Archive)?)?;
    }
    x.finish_dirs()?;
    // The diff_id covers the whole stream, end-of-archive blocks and padding included.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(UnpackError::Archive)?;
    Ok(rest.hasher.into())
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

struct Extractor<'a> {
    root: DirFd,
    dest: &'a Path,
    chown: bool,
    /// Directory metadata, applied once every entry exists: creating children would change
    /// the mtime and a read-only mode would block them. A later entry for the same directory
    /// wins, as in any extraction.
    dirs: HashMap<Vec<CString>, Meta>,
}

/// The entry's components without `.` or empty ones; `None` if absolute or with `..`.
fn components(path: &[u8]) -> Option<Vec<CString>> {
    if path.starts_with(b"/") {
        return None;
    }
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(CString::new(c).ok()?),
        }
    }
    Some(out)
}

fn pax_num(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    // PAX times may be fractional; the whole seconds are kept.
    s.split('.').next()?.parse().ok()
}

impl Extractor<'_> {
    fn io_err(&self, path: &[u8]) -> impl FnOnce(io::Error) -> UnpackError + '_ {
        let path = String::from_utf8_lossy(path).into_owned();
        move |source| UnpackError::Io {
            path,
            dest: self.dest.to_owned(),
            source,
        }
    }

    /// Opens the directory at `comps` below the root, creating missing ones when `create`.
    fn open_dir(&self, path: &[u8], comps: &[CString], create: bool) -> Result<DirFd, UnpackError> {
        let mut cur = self.root.try_clone().map_err(self.io_err(path))?;
        for (i, c) in comps.iter().enumerate() {
            let next = match cur.open_dir(c) {
                Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {
                    cur.mkdir(c, 0o755).map_err(self.io_err(path))?;
                    cur.open_dir(c)
                }
                r => r,
            };
            cur = next.map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => UnpackError::NotADirectory {
                    path: String::from_utf8_lossy(path).into_owned(),
                    parent: comps[..=i]
                        .iter()
                        .map(|c| c.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/"),
                },
                _ => self.io_err(path)(e),
            })?;
        }
        Ok(cur)
    }

    /// Clears the way for a new entry `name`: any non-directory is removed, as is an empty
    /// directory unless `keep_dir`. Returns whether a directory remains.
    fn clear(
        &self,
        dir: &DirFd,
        name: &CStr,
        path: &[u8],
        keep_dir: bool,
    ) -> Result<bool, UnpackError> {
        let Some(st) = dir.lstat(name).map_err(self.io_err(path))? else {
            return Ok(false);
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if is_dir && keep_dir {
            return Ok(true);
        }
        dir.unlink(name, is_dir)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => UnpackError::NonEmptyDir {
                    path: String::from_utf8_lossy(path).into_owned(),
                },
                _ => self.io_err(path)(e),
            })?;
        Ok(false)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let path = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        let escapes = || UnpackError::Escapes {
            path: String::from_utf8_lossy(&path).into_owned(),
        };
        let mut comps = components(&path).ok_or_else(escapes)?;
        let Some(name) = comps.pop() else {
            // The root itself: its metadata belongs to the layers below.
            return Ok(());
        };
        let h = entry.header();
        let mut meta = Meta {
            mode: h.mode().map_err(UnpackError::Archive)? & 0o7777,
            uid: h.uid().map_err(UnpackError::Archive)? as u32,
            gid: h.gid().map_err(UnpackError::Archive)? as u32,
            mtime: h.mtime().map_err(UnpackError::Archive)? as i64,
        };
        let mut caps = None;
        if let Some(exts) = entry.pax_extensions().map_err(UnpackError::Archive)? {
            for ext in exts {
                let ext = ext.map_err(UnpackError::Archive)?;
                let v = ext.value_bytes();
                match ext.key_bytes() {
                    b"uid" => meta.uid = pax_num(v).map_or(meta.uid, |n| n as u32),
                    b"gid" => meta.gid = pax_num(v).map_or(meta.gid, |n| n as u32),
                    b"mtime" => meta.mtime = pax_num(v).unwrap_or(meta.mtime),
                    k if k.strip_prefix(b"SCHILY.xattr.") == Some(CAPABILITY_XATTR.as_bytes()) => {
                        caps = Some(v.to_vec());
                    }
                    _ => {}
                }
            }
        }
        let parent = self.open_dir(&path, &comps, true)?;
        let owner = self.chown.then_some((meta.uid, meta.gid));
        let bytes = name.as_bytes();

        if bytes == WHITEOUT_OPAQUE {
            return self.set_opaque(&parent, &path);
        }
        if bytes.starts_with(b".wh..wh.") {
            // Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs) means nothing to overlayfs.
            return Ok(());
        }
        if let Some(hidden) = bytes.strip_prefix(WHITEOUT_PREFIX) {
            let hidden = CString::new(hidden).map_err(|_| escapes())?;
            if matches!(hidden.as_bytes(), b"" | b"." | b"..") {
                return Err(escapes());
            }
            self.clear(&parent, &hidden, &path, false)?;
            return parent
                .mknod(&hidden, libc::S_IFCHR, libc::makedev(0, 0))
                .map_err(self.io_err(&path));
        }

        match kind {
            EntryType::Directory => {
                if !self.clear(&parent, &name, &path, true)? {
                    parent.mkdir(&name, 0o755).map_err(self.io_err(&path))?;
                }
                comps.push(name);
                self.dirs.insert(comps, meta);
                Ok(())
            }
            EntryType::Regular | EntryType::Continuous => {
                self.clear(&parent, &name, &path, false)?;
                let mut f = parent.create_file(&name).map_err(self.io_err(&path))?;
                io::copy(&mut entry, &mut f).map_err(UnpackError::Archive)?;
                dirfd::set_meta(&f, owner, meta.mode, dirfd::secs(meta.mtime))
                    .map_err(self.io_err(&path))?;
                if let Some(caps) = caps {
                    dirfd::fset_xattr(&f, CAPABILITY_XATTR, &caps).map_err(self.io_err(&path))?;
                }
                Ok(())
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let target = CString::new(target.into_owned()).map_err(|_| escapes())?;
                self.clear(&parent, &name, &path, false)?;
                parent.symlink(&target, &name).map_err(self.io_err(&path))?;
                if let Some((uid, gid)) = owner {
                    parent.lchown(&name, uid, gid).map_err(self.io_err(&path))?;
                }
                parent
                    .set_ltimes(&name, dirfd::secs(meta.mtime))
                    .map_err(self.io_err(&path))
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let mut tcomps = components(&target).ok_or_else(escapes)?;
                let tname = tcomps.pop().ok_or_else(escapes)?;
                let tdir = self.open_dir(&path, &tcomps, false)?;
                self.clear(&parent, &name, &path, false)?;
                parent
                    .link(&tdir, &tname, &name)
                    .map_err(self.io_err(&path))
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (fmt, dev) = match kind {
                    EntryType::Fifo => (libc::S_IFIFO, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().map_err(UnpackError::Archive)?.unwrap_or(0);
                        let minor = h.device_minor().map_err(UnpackError::Archive)?.unwrap_or(0);
                        let fmt = if kind == EntryType::Char {
                            libc::S_IFCHR
                        } else {
                            libc::S_IFBLK
                        };
                        (fmt, libc::makedev(major, minor))
                    }
                };
                self.clear(&parent, &name, &path, false)?;
                parent
                    .mknod(&name, fmt | 0o600, dev)
                    .map_err(self.io_err(&path))?;
                if let Some((uid, gid)) = owner {
                    parent.lchown(&name, uid, gid).map_err(self.io_err(&path))?;
                }
                parent.chmod(&name, meta.mode).map_err(self.io_err(&path))?;
                parent
                    .set_ltimes(&name, dirfd::secs(meta.mtime))
                    .map_err(self.io_err(&path))
            }
            EntryType::XGlobalHeader => Ok(()),
            kind => Err(UnpackError::Unsupported {
                path: String::from_utf8_lossy(&path).into_owned(),
                kind,
            }),
        }
    }

    /// Marks the directory opaque; rootless overlayfs (`userxattr`) reads the `user.` form.
    fn set_opaque(&self, dir: &DirFd, path: &[u8]) -> Result<(), UnpackError> {
        match dirfd::fset_xattr(dir, OPAQUE_XATTRS[0], b"y") {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                dirfd::fset_xattr(dir, OPAQUE_XATTRS[1], b"y").map_err(self.io_err(path))
            }
            r => r.map_err(self.io_err(path)),
        }
    }

    fn finish_dirs(&self) -> Result<(), UnpackError> {
        // Order does not matter: only adding or removing entries changes a directory's mtime.
        for (comps, meta) in &self.dirs {
            let parts: Vec<&[u8]> = comps.iter().map(|c| c.as_bytes()).collect();
            let joined = &parts.join(&b'/');
            let dir = self.open_dir(joined, comps, false)?;
            let owner = self.chown.then_some((meta.uid, meta.gid));
            dirfd::set_meta(&dir, owner, meta.mode, dirfd::secs(meta.mtime))
                .map_err(self.io_err(joined))?;
        }
        Ok(())
    }
}
