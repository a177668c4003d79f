//! Caps on what the client reads into memory from a registry. Layers are streamed
//! to a sink and bounded by their descriptor's size; everything else is read whole,
//! so a broken or hostile registry (or token server, or mirror) could otherwise
//! make the daemon allocate without end. A body over its cap is refused before it
//! is read when its Content-Length says so, and otherwise as soon as the bytes
//! that arrived pass the cap.

/// Largest manifest or index read: containerd's limit. Real ones are a few KiB; an
/// index of every platform with attestations stays far below.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Largest image config read into memory. Configs grow with history entries,
/// labels and env (a few hundred bytes each); 8 MiB is twice the manifest cap and
/// thousands of times what a real image needs (a 127-layer image's config is some
/// tens of KiB), while a config is parsed whole and so must stay small.
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// Largest token server response: Docker Hub's are about 2 KiB and JWTs with many
/// scopes some KiB more.
pub const MAX_TOKEN_BYTES: u64 = 1 << 20;

/// Largest error response read for its message (the rest is not read).
pub const MAX_ERROR_BYTES: u64 = 1 << 20;

/// One cap: its name in error messages and its size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cap {
    pub name: &'static str,
    pub limit: u64,
}

pub(crate) const MANIFEST: Cap = Cap {
    name: "manifest",
    limit: MAX_MANIFEST_BYTES,
};
pub(crate) const CONFIG: Cap = Cap {
    name: "image config",
    limit: MAX_CONFIG_BYTES,
};
pub(crate) const TOKEN: Cap = Cap {
    name: "token response",
    limit: MAX_TOKEN_BYTES,
};
pub(crate) const ERROR_BODY: Cap = Cap {
    name: "error response",
    limit: MAX_ERROR_BYTES,
};
