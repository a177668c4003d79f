//! A build context read from standard input (`buildd build -`, `bctl build -`),
//! as `docker build -` takes it: a tar archive, plain or gzip-compressed, is the
//! context; anything else is the Dockerfile itself, with an empty context.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// What standard input held.
#[derive(Debug, PartialEq, Eq)]
pub enum StdinContext {
    /// An archive, unpacked into the destination.
    Archive,
    /// A Dockerfile's text; the destination stays empty.
    Dockerfile(Vec<u8>),
}

/// Where a context read from standard input landed, under the caller's
/// scratch directory.
#[derive(Debug)]
pub struct StdinDirs {
    /// The context: the unpacked archive, or an empty directory.
    pub context: PathBuf,
    /// The Dockerfile: `-f` inside an archive (`None` without `-f`: the
    /// context's own), or the one standard input held, alone in a directory.
    pub dockerfile: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StdinError {
    #[error("creating {path}: {message}")]
    Create { path: PathBuf, message: io::Error },
    #[error("reading the context from standard input: {0}")]
    Read(io::Error),
    #[error("-f names a file in a context, but standard input held a Dockerfile")]
    FileWithDockerfile,
    #[error("writing {path}: {message}")]
    Write { path: PathBuf, message: io::Error },
}

/// Reads the context on `input` into `scratch` (an empty directory the caller
/// removes), with `file` the `-f` the build was given, as both `buildd build -`
/// and `bctl build -` take it.
pub fn read_into(
    input: impl Read,
    scratch: &Path,
    file: Option<&Path>,
) -> Result<StdinDirs, StdinError> {
    let create = |path: PathBuf| {
        std::fs::create_dir(&path)
            .map(|()| path.clone())
            .map_err(|message| StdinError::Create { path, message })
    };
    let context = create(scratch.join("context"))?;
    let dockerfile = match unpack(input, &context).map_err(StdinError::Read)? {
        // As `docker build -f F - < ctx.tar`: F is inside the archive.
        StdinContext::Archive => file.map(|f| context.join(f)),
        StdinContext::Dockerfile(_) if file.is_some() => {
            return Err(StdinError::FileWithDockerfile);
        }
        StdinContext::Dockerfile(text) => {
            let path = create(scratch.join("dockerfile"))?.join("Dockerfile");
            std::fs::write(&path, text).map_err(|message| StdinError::Write {
                path: path.clone(),
                message,
            })?;
            Some(path)
        }
    };
    Ok(StdinDirs {
        context,
        dockerfile,
    })
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads `input` into `dest` (an empty directory). Entries never land outside
/// `dest`: paths with `..`, absolute paths and links through symlinks are
/// refused by the unpacker.
pub fn unpack(mut input: impl Read, dest: &Path) -> io::Result<StdinContext> {
    let mut head = Vec::with_capacity(512);
    input.by_ref().take(512).read_to_end(&mut head)?;
    let whole = io::Cursor::new(head.clone()).chain(input);
    if head.starts_with(&GZIP_MAGIC) {
        unpack_tar(flate2::read::GzDecoder::new(whole), dest)?;
        return Ok(StdinContext::Archive);
    }
    if head.len() == 512 && &head[257..262] == b"ustar" {
        unpack_tar(whole, dest)?;
        return Ok(StdinContext::Archive);
    }
    let mut text = Vec::new();
    whole.take(MAX_DOCKERFILE + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_DOCKERFILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "standard input is neither a tar archive nor a Dockerfile (over 8 MiB of text)",
        ));
    }
    Ok(StdinContext::Dockerfile(text))
}

/// A Dockerfile larger than this is not one.
const MAX_DOCKERFILE: u64 = 8 << 20;

fn unpack_tar(input: impl Read, dest: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive
        .unpack(dest)
        .map_err(|e| io::Error::new(e.kind(), format!("unpacking the context archive: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn archives_unpack_and_text_is_the_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        let tar = archive(&[("Dockerfile", b"FROM scratch\n"), ("a/b.txt", b"b")]);
        assert_eq!(unpack(&tar[..], dir.path()).unwrap(), StdinContext::Archive);
        assert_eq!(std::fs::read(dir.path().join("a/b.txt")).unwrap(), b"b");

        let gz = tempfile::tempdir().unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &tar).unwrap();
        let bytes = enc.finish().unwrap();
        assert_eq!(
            unpack(&bytes[..], gz.path()).unwrap(),
            StdinContext::Archive
        );
        assert!(gz.path().join("Dockerfile").is_file());

        let empty = tempfile::tempdir().unwrap();
        let text = b"FROM scratch\nCOPY . /\n";
        assert_eq!(
            unpack(&text[..], empty.path()).unwrap(),
            StdinContext::Dockerfile(text.to_vec())
        );
        assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    }

    #[test]
    fn read_into_places_the_context_and_its_dockerfile() {
        let tar = archive(&[
            ("Dockerfile", b"FROM scratch\n"),
            ("sub/D2", b"FROM scratch\n"),
        ]);
        let s = tempfile::tempdir().unwrap();
        let d = read_into(&tar[..], s.path(), Some(Path::new("sub/D2"))).unwrap();
        assert_eq!(d.context, s.path().join("context"));
        assert_eq!(d.dockerfile, Some(s.path().join("context/sub/D2")));

        let s = tempfile::tempdir().unwrap();
        let d = read_into(&b"FROM scratch\n"[..], s.path(), None).unwrap();
        assert_eq!(std::fs::read_dir(&d.context).unwrap().count(), 0);
        assert_eq!(
            std::fs::read(d.dockerfile.unwrap()).unwrap(),
            b"FROM scratch\n"
        );

        let s = tempfile::tempdir().unwrap();
        let e = read_into(&b"FROM scratch\n"[..], s.path(), Some(Path::new("x"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "-f names a file in a context, but standard input held a Dockerfile"
        );
    }

    #[test]
    fn entries_cannot_leave_the_destination() {
        let outer = tempfile::tempdir().unwrap();
        let dest = outer.path().join("ctx");
        std::fs::create_dir(&dest).unwrap();
        // A symlink to the outside, then a file through it.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "out", outer.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "out/escaped", &b"x"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        assert!(unpack(&tar[..], &dest).is_err());
        assert!(!outer.path().join("escaped").exists());
    }
}
