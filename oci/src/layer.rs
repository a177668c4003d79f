//! Deterministic layer tarballs from overlayfs-style diff directories.
//!
//! The diff dir is walked depth-first with each directory's names in byte order (Go's
//! `filepath.Walk` order, which BuildKit and containerd use), so parents precede children.
//! Whiteouts (char device 0/0) become `.wh.<name>` files and opaque directories get a
//! `.wh..wh..opq` entry right after their own.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use buildd_proto::Digest;

use crate::compress::{Compression, GZIP_LEVEL, HashWriter, zstd_encoder};
use crate::pgzip::GzipWriter;
use crate::tarfmt::{self, EntryHeader, Kind};
use buildd_fsutil::dirfd::lget_xattr;

pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
pub(crate) const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
pub(crate) const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];
/// The only xattr carried into layers: file capabilities are part of what a binary does.
pub(crate) const CAPABILITY_XATTR: &str = "security.capability";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerOptions {
    pub compression: Compression,
    /// Clamps every mtime to at most this (SOURCE_DATE_EPOCH); also the whiteouts' mtime.
    pub source_date_epoch: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// sha256 of the bytes written to the output.
    pub digest: Digest,
    pub size: u64,
    pub media_type: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: file name starts with the reserved whiteout prefix .wh.")]
    ReservedName { path: PathBuf },
    #[error("{path} changed while being archived")]
    Changed { path: PathBuf },
    #[error("writing layer: {0}")]
    Write(#[source] io::Error),
}

/// Whether `diff_dir` holds no changes at all.
pub fn is_empty_diff(diff_dir: &Path) -> io::Result<bool> {
    Ok(fs::read_dir(diff_dir)?.next().transpose()?.is_none())
}

/// Writes the layer for `diff_dir` to `out`, compressed as asked, hashing as it streams.
pub fn write_layer(
    diff_dir: &Path,
    opts: &LayerOptions,
    out: impl Write,
) -> Result<LayerBlob, LayerError> {
    let mut outer = HashWriter::new(out);
    let diff_id = match opts.compression {
        Compression::None => {
            write_tar(diff_dir, opts, &mut outer)?;
            None
        }
        Compression::Gzip => {
            let enc = GzipWriter::new(&mut outer, GZIP_LEVEL);
            let mut inner = HashWriter::new(enc);
            write_tar(diff_dir, opts, &mut inner)?;
            let (enc, diff_id, _) = inner.finish();
            enc.finish().map_err(LayerError::Write)?;
            Some(diff_id)
        }
        Compression::Zstd => {
            let enc = zstd_encoder(&mut outer).map_err(LayerError::Write)?;
            let mut inner = HashWriter::new(enc);
            write_tar(diff_dir, opts, &mut inner)?;
            let (enc, diff_id, _) = inner.finish();
            enc.finish().map_err(LayerError::Write)?;
            Some(diff_id)
        }
    };
    outer.flush().map_err(LayerError::Write)?;
    let (_, digest, size) = outer.finish();
    Ok(LayerBlob {
        diff_id: diff_id.unwrap_or(digest),
        digest,
        size,
        media_type: opts.compression.media_type(),
    })
}

fn write_tar(diff_dir: &Path, opts: &LayerOptions, out: impl Write) -> Result<(), LayerError> {
    let mut walker = Walker {
        out: BufWriter::with_capacity(1 << 16, out),
        epoch: opts.source_date_epoch,
        links: HashMap::new(),
        buf: vec![0; 1 << 16],
    };
    walker.dir(diff_dir, b"")?;
    tarfmt::write_end(&mut walker.out).map_err(LayerError::Write)?;
    walker.out.flush().map_err(LayerError::Write)
}

struct Walker<W: Write> {
    out: BufWriter<W>,
    epoch: Option<i64>,
    /// (dev, ino) of multiply-linked files already written, to the path written.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
    move |source| LayerError::Read {
        path: path.to_owned(),
        source,
    }
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + name.len() + 1);
    if !rel.is_empty() {
        p.extend_from_slice(rel);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl<W: Write> Walker<W> {
    fn dir(&mut self, abs: &Path, rel: &[u8]) -> Result<(), LayerError> {
        let mut names: Vec<OsString> = fs::read_dir(abs)
            .and_then(|rd| rd.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(read_err(abs))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child = abs.join(&name);
            if name.as_bytes().starts_with(WHITEOUT_PREFIX) {
                return Err(LayerError::ReservedName { path: child });
            }
            self.entry(&child, &join(rel, name.as_bytes()))?;
        }
        Ok(())
    }

    fn mtime(&self, md: &Metadata) -> i64 {
        match self.epoch {
            Some(epoch) => md.mtime().min(epoch),
            None => md.mtime(),
        }
    }

    fn header(&mut self, h: &EntryHeader<'_>) -> Result<(), LayerError> {
        tarfmt::write_header(&mut self.out, h).map_err(LayerError::Write)
    }

    /// An empty regular file marking a deletion, with fixed metadata like containerd's.
    fn marker(&mut self, path: &[u8]) -> Result<(), LayerError> {
        let mut h = EntryHeader::new(path, Kind::Regular);
        h.mtime = self.epoch.unwrap_or(0);
        self.header(&h)
    }

    fn entry(&mut self, abs: &Path, rel: &[u8]) -> Result<(), LayerError> {
        let md = fs::symlink_metadata(abs).map_err(read_err(abs))?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let (dir, base) = match rel.iter().rposition(|&b| b == b'/') {
                Some(i) => (&rel[..i], &rel[i + 1..]),
                None => (&b""[..], rel),
            };
            let mut name = WHITEOUT_PREFIX.to_vec();
            name.extend_from_slice(base);
            return self.marker(&join(dir, &name));
        }
        if ft.is_socket() {
            // Sockets cannot be archived and mean nothing outside the process that bound them.
            return Ok(());
        }
        let mut path = rel.to_vec();
        let mut h = EntryHeader::new(&[], Kind::Regular);
        h.mode = md.mode() & 0o7777;
        h.uid = u64::from(md.uid());
        h.gid = u64::from(md.gid());
        h.mtime = self.mtime(&md);

        if ft.is_dir() {
            path.push(b'/');
            h.path = &path;
            h.kind = Kind::Dir;
            self.header(&h)?;
            if is_opaque(abs)? {
                self.marker(&join(rel, WHITEOUT_OPAQUE))?;
            }
            return self.dir(abs, rel);
        }
        if ft.is_symlink() {
            let target = fs::read_link(abs).map_err(read_err(abs))?;
            let target = target.as_os_str().as_bytes();
            h.path = &path;
            h.kind = Kind::Symlink;
            h.link = target;
            return self.header(&h);
        }
        if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            h.kind = if ft.is_fifo() {
                Kind::Fifo
            } else if ft.is_char_device() {
                Kind::Char
            } else {
                Kind::Block
            };
            if !ft.is_fifo() {
                h.dev_major = u64::from(libc::major(md.rdev()));
                h.dev_minor = u64::from(libc::minor(md.rdev()));
            }
        }
        if md.nlink() > 1 {
            if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                let first = first.clone();
                let mut lh = EntryHeader::new(&path, Kind::Hardlink);
                lh.link = &first;
                lh.mode = h.mode;
                lh.uid = h.uid;
                lh.gid = h.gid;
                lh.mtime = h.mtime;
                return self.header(&lh);
            }
            self.links.insert((md.dev(), md.ino()), path.clone());
        }
        h.path = &path;
        if h.kind != Kind::Regular {
            return self.header(&h);
        }
        let caps = lget_xattr(abs, CAPABILITY_XATTR).map_err(read_err(abs))?;
        let xattrs: Vec<(&str, Vec<u8>)> =
            caps.map(|v| (CAPABILITY_XATTR, v)).into_iter().collect();
        h.xattrs = &xattrs;
        h.size = md.len();
        let size = h.size;
        self.header(&h)?;
        self.file_data(abs, size)
    }

    fn file_data(&mut self, abs: &Path, size: u64) -> Result<(), LayerError> {
        let mut f = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(abs)
            .map_err(read_err(abs))?;
        let mut left = size;
        while left > 0 {
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = f.read(&mut self.buf[..want]).map_err(read_err(abs))?;
            if n == 0 {
                return Err(LayerError::Changed { path: abs.into() });
            }
            self.out
                .write_all(&self.buf[..n])
                .map_err(LayerError::Write)?;
            left -= n as u64;
        }
        // A file that grew would be archived truncated: refuse rather than lie.
        if f.read(&mut self.buf[..1]).map_err(read_err(abs))? != 0 {
            return Err(LayerError::Changed { path: abs.into() });
        }
        tarfmt::write_padding(&mut self.out, size).map_err(LayerError::Write)
    }
}

fn is_opaque(dir: &Path) -> Result<bool, LayerError> {
    for name in OPAQUE_XATTRS {
        if lget_xattr(dir, name).map_err(read_err(dir))?.as_deref() == Some(b"y") {
            return Ok(true);
        }
    }
    Ok(false)
}
