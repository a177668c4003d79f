//! A minimal, deterministic tar header encoder.
//!
//! Headers are USTAR; anything USTAR cannot hold (long or non-ASCII names, large ids, sizes or
//! times, xattrs) goes into a PAX extended header placed right before the entry, with records
//! sorted by key. This mirrors what Go's `archive/tar` (and so BuildKit and containerd) writes,
//! and the same input always encodes to the same bytes.

use std::collections::BTreeMap;
use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;

const NAME_LEN: usize = 100;
/// Largest value of an 8-byte octal field (7 digits and a NUL).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (11 digits and a NUL).
const MAX_OCTAL_12: u64 = 0o77777777777;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    Hardlink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::Regular => b'0',
            Kind::Hardlink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// One entry's header. `path` is written as given (directories end with `/`).
#[derive(Debug, Clone)]
pub(crate) struct EntryHeader<'a> {
    pub path: &'a [u8],
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub link: &'a [u8],
    pub dev_major: u64,
    pub dev_minor: u64,
    /// Extended attributes, written as `SCHILY.xattr.<name>` records.
    pub xattrs: &'a [(&'a str, Vec<u8>)],
}

impl<'a> EntryHeader<'a> {
    /// A header with zeroed metadata for `path`.
    pub fn new(path: &'a [u8], kind: Kind) -> Self {
        Self {
            path,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link: b"",
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
        }
    }
}

/// Writes the header blocks (a PAX header first if needed); the caller writes `size` bytes of
/// data and then [`write_padding`].
pub(crate) fn write_header(w: &mut impl Write, h: &EntryHeader<'_>) -> io::Result<()> {
    let pax = pax_records(h);
    if !pax.is_empty() {
        let data = encode_pax(&pax);
        let name = pax_header_name(h.path);
        let mut xh = EntryHeader::new(&name, h.kind);
        xh.size = data.len() as u64;
        w.write_all(&ustar_block(&xh, b'x'))?;
        w.write_all(&data)?;
        write_padding(w, data.len() as u64)?;
    }
    w.write_all(&ustar_block(h, h.kind.flag()))
}

/// Pads entry data of `size` bytes to a whole block.
pub(crate) fn write_padding(w: &mut impl Write, size: u64) -> io::Result<()> {
    let rem = (size % BLOCK as u64) as usize;
    if rem != 0 {
        w.write_all(&[0u8; BLOCK][rem..])?;
    }
    Ok(())
}

/// The end-of-archive marker: two zero blocks.
pub(crate) fn write_end(w: &mut impl Write) -> io::Result<()> {
    w.write_all(&[0u8; 2 * BLOCK])
}

fn fits_ustar_string(s: &[u8], len: usize) -> bool {
    s.len() <= len && s.is_ascii() && !s.contains(&0)
}

fn pax_records(h: &EntryHeader<'_>) -> BTreeMap<String, Vec<u8>> {
    let mut r = BTreeMap::new();
    if !fits_ustar_string(h.path, NAME_LEN) {
        r.insert("path".to_owned(), h.path.to_vec());
    }
    if !fits_ustar_string(h.link, NAME_LEN) {
        r.insert("linkpath".to_owned(), h.link.to_vec());
    }
    if h.uid > MAX_OCTAL_8 {
        r.insert("uid".to_owned(), h.uid.to_string().into_bytes());
    }
    if h.gid > MAX_OCTAL_8 {
        r.insert("gid".to_owned(), h.gid.to_string().into_bytes());
    }
    if h.size > MAX_OCTAL_12 {
        r.insert("size".to_owned(), h.size.to_string().into_bytes());
    }
    if !(0..=MAX_OCTAL_12 as i64).contains(&h.mtime) {
        r.insert("mtime".to_owned(), h.mtime.to_string().into_bytes());
    }
    for (name, value) in h.xattrs {
        r.insert(format!("SCHILY.xattr.{name}"), value.clone());
    }
    r
}

/// Encodes records as `<len> <key>=<value>\n`, where `len` counts the whole record.
fn encode_pax(records: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while body + len.to_string().len() != len {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// `dir/PaxHeaders.0/base` like Go, so the name is stable and says what it describes.
fn pax_header_name(path: &[u8]) -> Vec<u8> {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut name: Vec<u8> = dir.to_vec();
    name.extend_from_slice(b"PaxHeaders.0/");
    name.extend_from_slice(base);
    for b in &mut name {
        if !b.is_ascii() || *b == 0 {
            *b = b'_';
        }
    }
    name.truncate(NAME_LEN);
    name
}

fn ustar_block(h: &EntryHeader<'_>, flag: u8) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_str(&mut b[0..100], h.path);
    put_octal(&mut b[100..108], u64::from(h.mode & 0o7777));
    put_octal(
        &mut b[108..116],
        if h.uid > MAX_OCTAL_8 { 0 } else { h.uid },
    );
    put_octal(
        &mut b[116..124],
        if h.gid > MAX_OCTAL_8 { 0 } else { h.gid },
    );
    put_octal(
        &mut b[124..136],
        if h.size > MAX_OCTAL_12 { 0 } else { h.size },
    );
    let mtime = u64::try_from(h.mtime)
        .ok()
        .filter(|&t| t <= MAX_OCTAL_12)
        .unwrap_or(0);
    put_octal(&mut b[136..148], mtime);
    b[156] = flag;
    put_str(&mut b[157..257], h.link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // uname and gname stay empty: ids are numeric.
    put_octal(&mut b[329..337], h.dev_major.min(MAX_OCTAL_8));
    put_octal(&mut b[337..345], h.dev_minor.min(MAX_OCTAL_8));
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    put_octal(&mut b[148..155], u64::from(sum));
    b
}

/// Copies as much of `s` as fits; the full value is in a PAX record when it does not.
fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

/// Zero-padded octal digits filling all but the last byte, which stays NUL.
fn put_octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut r = BTreeMap::new();
        r.insert("path".to_owned(), vec![b'a'; 3]);
        assert_eq!(encode_pax(&r), b"12 path=aaa\n");
        // 9 + 90 = 99 plus "100" is 102, which needs three digits too.
        r.insert("path".to_owned(), vec![b'a'; 92]);
        let enc = encode_pax(&r);
        assert!(enc.starts_with(b"102 path="));
        assert_eq!(enc.len(), 102);
    }

    #[test]
    fn pax_header_name_names_the_entry() {
        assert_eq!(pax_header_name(b"a/b/c"), b"a/b/PaxHeaders.0/c");
        assert_eq!(pax_header_name(b"dir/"), b"PaxHeaders.0/dir");
    }

    #[test]
    fn checksum_validates_with_tar_crate() {
        let mut h = EntryHeader::new(b"etc/passwd", Kind::Regular);
        h.mode = 0o4755;
        h.size = 3;
        h.mtime = 1_700_000_000;
        let block = ustar_block(&h, h.kind.flag());
        let parsed = tar::Header::from_byte_slice(&block);
        assert_eq!(parsed.cksum().unwrap(), {
            let mut b = block;
            b[148..156].fill(b' ');
            b.iter().map(|&x| u32::from(x)).sum::<u32>()
        });
        assert_eq!(parsed.mode().unwrap(), 0o4755);
        assert_eq!(parsed.mtime().unwrap(), 1_700_000_000);
        assert_eq!(&*parsed.path_bytes(), b"etc/passwd");
    }
}
