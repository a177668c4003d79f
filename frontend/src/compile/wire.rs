//! A minimal protobuf writer for the LLB ops the frontend emits.
//!
//! Ops are written straight from the data they describe rather than built as
//! prost structs and encoded: that saves a dozen allocations per vertex and
//! prost's repeated length computations for nested messages. The output is
//! prost's encoding byte for byte (a vertex's digest is taken of these bytes):
//! fields in tag order, proto3 defaults omitted except in repeated fields and
//! `optional` ones, map entries with default keys and values left out.

const VARINT: u32 = 0;
const LEN: u32 = 2;

/// How many bytes `v` takes as a varint.
pub(crate) fn varint_len(v: u64) -> usize {
    // Seven bits a byte; zero still takes one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// `v` as a varint, for a length known only after its message is written:
/// the bytes, of which the first `.1` are used.
fn varint_bytes(mut v: u64) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let mut n = 0;
    while v >= 0x80 {
        out[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    (out, n + 1)
}

/// A protobuf message being written.
#[derive(Default)]
pub(crate) struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn varint(&mut self, mut v: u64) {
        // Not through `varint_bytes`: most varints here are one byte.
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u32) {
        self.varint(u64::from(field << 3 | wire_type));
    }

    /// An `int64` field; negative values take ten bytes, as in protobuf.
    pub(crate) fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v as u64);
        }
    }

    /// An `int32` or enum field: sign-extended, as protobuf does.
    pub(crate) fn int32(&mut self, field: u32, v: i32) {
        self.int64(field, i64::from(v));
    }

    pub(crate) fn uint32(&mut self, field: u32, v: u32) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(u64::from(v));
        }
    }

    pub(crate) fn bool(&mut self, field: u32, v: bool) {
        if v {
            self.key(field, VARINT);
            self.buf.push(1);
        }
    }

    /// A proto3 `optional uint32`: present even when zero.
    pub(crate) fn opt_uint32(&mut self, field: u32, v: Option<u32>) {
        if let Some(v) = v {
            self.key(field, VARINT);
            self.varint(u64::from(v));
        }
    }

    /// A proto3 `optional int64`: present even when zero.
    pub(crate) fn opt_int64(&mut self, field: u32, v: Option<i64>) {
        if let Some(v) = v {
            self.key(field, VARINT);
            self.varint(v as u64);
        }
    }

    /// A singular `string` or `bytes` field, omitted when empty.
    pub(crate) fn bytes(&mut self, field: u32, v: &[u8]) {
        if !v.is_empty() {
            self.repeated_bytes(field, v);
        }
    }

    pub(crate) fn string(&mut self, field: u32, v: &str) {
        self.bytes(field, v.as_bytes());
    }

    /// One element of a repeated `string` or `bytes` field: written even
    /// when empty.
    pub(crate) fn repeated_bytes(&mut self, field: u32, v: &[u8]) {
        self.key(field, LEN);
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// One element of a repeated `string` field made of `parts` joined, so
    /// that `K=V` need not be formatted first.
    pub(crate) fn repeated_string_parts(&mut self, field: u32, parts: &[&str]) {
        self.key(field, LEN);
        self.varint(parts.iter().map(|p| p.len()).sum::<usize>() as u64);
        for p in parts {
            self.buf.extend_from_slice(p.as_bytes());
        }
    }

    pub(crate) fn repeated_string(&mut self, field: u32, v: &str) {
        self.repeated_bytes(field, v.as_bytes());
    }

    /// A nested message (also a oneof member or a repeated element): always
    /// written, even when `body` writes nothing.
    pub(crate) fn message(&mut self, field: u32, body: impl FnOnce(&mut Self)) {
        self.key(field, LEN);
        // Most nested messages are shorter than 128 bytes: one length byte is
        // reserved and the body moved only when it needs more.
        let at = self.buf.len();
        self.buf.push(0);
        body(self);
        let len = self.buf.len() - at - 1;
        if len < 0x80 {
            self.buf[at] = len as u8;
            return;
        }
        let (prefix, n) = varint_bytes(len as u64);
        self.buf.splice(at..=at, prefix[..n].iter().copied());
    }

    /// One entry of a `map<string, string>` field.
    pub(crate) fn map_entry(&mut self, field: u32, key: &str, value: &str) {
        self.message(field, |w| {
            w.string(1, key);
            w.string(2, value);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Writer;
    use buildd_proto::llb::{FileOp, Input, Mount, SourceOp};
    use prost::Message;

    #[test]
    fn varint_lengths_match_prost() {
        for shift in 0..64 {
            for v in [(1u64 << shift) - 1, 1 << shift, (1 << shift) + 1] {
                let want = prost::encoding::encoded_len_varint(v);
                assert_eq!(super::varint_len(v), want, "{v}");
            }
        }
        assert_eq!(super::varint_len(u64::MAX), 10);
        assert_eq!(super::varint_len(-1i64 as u64), 10);
    }

    #[test]
    fn scalars_match_prost() {
        for (input, index) in [("", 0), ("sha256:ab", 1), ("x", -1), ("y", i64::MAX)] {
            let mut w = Writer::default();
            w.string(1, input);
            w.int64(2, index);
            let want = Input {
                digest: input.to_owned(),
                index,
            }
            .encode_to_vec();
            assert_eq!(w.into_bytes(), want, "{input:?} {index}");
        }
    }

    #[test]
    fn long_nested_messages_match_prost() {
        // Bodies on both sides of the one-byte length boundaries.
        for len in [0, 1, 120, 127, 128, 300, 16_383, 16_384, 70_000] {
            let dest = "d".repeat(len);
            let mut w = Writer::default();
            w.int64(1, -1);
            w.message(2, |w| {
                w.string(3, &dest);
                w.int64(4, -1);
                w.bool(5, true);
            });
            let want = FileOp {
                base: -1,
                actions: Vec::new(),
            }
            .encode_to_vec();
            let mut want_all = want;
            let mount = Mount {
                dest: dest.clone(),
                output: -1,
                readonly: true,
                ..Default::default()
            };
            want_all.push(2 << 3 | 2);
            prost::encoding::encode_varint(mount.encoded_len() as u64, &mut want_all);
            mount.encode_raw(&mut want_all);
            assert_eq!(w.into_bytes(), want_all, "body of {len} bytes");
        }
    }

    #[test]
    fn map_entries_leave_out_defaults_as_prost_does() {
        let attrs = [("", "v"), ("k", ""), ("k2", "v2")];
        let mut w = Writer::default();
        for (k, v) in attrs {
            w.map_entry(2, k, v);
        }
        let want = SourceOp {
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(w.into_bytes(), want);
    }
}
