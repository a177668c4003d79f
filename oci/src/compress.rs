//! Layer compression formats and the hashing writer used to digest streams on the fly.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use buildd_proto::Digest;
use sha2::{Digest as _, Sha256};

use crate::spec::{MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD};

/// zstd level: BuildKit's default, a good speed/ratio balance.
pub(crate) const ZSTD_LEVEL: i32 = 3;
/// gzip level: zlib's and Go's default, which BuildKit uses.
pub(crate) const GZIP_LEVEL: u32 = 6;

/// A zstd encoder using every core. Always in multithreaded mode, even with one
/// worker: zstd's output then does not depend on the worker count, so a layer's
/// digest is the same on every machine (single-threaded mode would differ).
pub(crate) fn zstd_encoder<W: Write>(
    out: W,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    enc.multithread(u32::try_from(workers).unwrap_or(1))?;
    Ok(enc)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    /// The OCI layer media type of a tar compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => MEDIA_TYPE_LAYER,
            Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown compression {0:?} (expected uncompressed, gzip or zstd)")]
pub struct UnknownCompression(pub String);

impl FromStr for Compression {
    type Err = UnknownCompression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "uncompressed" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(UnknownCompression(other.to_owned())),
        }
    }
}

/// Passes writes through while hashing and counting them.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.into(), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_maps_media_types() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(c.to_string().parse::<Compression>().unwrap(), c);
        }
        assert_eq!(
            "zstd".parse::<Compression>().unwrap().media_type(),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert_eq!(
            Compression::None.media_type(),
            "application/vnd.oci.image.layer.v1.tar"
        );
        assert!("lz4".parse::<Compression>().is_err());
    }
}
