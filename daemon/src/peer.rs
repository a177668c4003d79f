//! Who is calling: the identity a session, a build and its status belong to.
//!
//! On the unix socket a caller is its user id (SO_PEERCRED, which the kernel fills
//! in, so it cannot be forged); on TCP it is the client certificate that mutual TLS
//! verified, named by the sha256 of its DER bytes.

use sha2::{Digest, Sha256};
use tonic::Request;
use tonic::transport::server::UdsConnectInfo;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A process on the unix socket, by user id.
    Uid(u32),
    /// A TLS client, by the sha256 of its leaf certificate.
    Certificate(String),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Uid(uid) => write!(f, "uid {uid}"),
            Peer::Certificate(fp) => write!(f, "certificate sha256:{}", &fp[..fp.len().min(12)]),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot identify the caller: no peer credentials and no client certificate")]
pub struct Unidentified;

impl Peer {
    /// The caller of `req`; an error when the transport tells nothing (which the
    /// daemon's own listeners never do).
    pub fn of<T>(req: &Request<T>) -> Result<Peer, Unidentified> {
        if let Some(cred) = req
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|i| i.peer_cred)
        {
            return Ok(Peer::Uid(cred.uid()));
        }
        if let Some(leaf) = req.peer_certs().as_deref().and_then(|c| c.first()) {
            return Ok(Peer::Certificate(hex::encode(Sha256::digest(
                leaf.as_ref(),
            ))));
        }
        Err(Unidentified)
    }
}
