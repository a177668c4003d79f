//! Content-based cache keys.
//!
//! key = sha256(version tag, the op without volatile fields and without input
//! digests, the inputs' cache keys, the content digest the worker computed). Because
//! inputs contribute their *cache keys*, not their vertex digests, two vertices
//! that read equal content share a key even when their definitions differ upstream.

use buildd_proto::Digest;
use buildd_proto::llb::{Op, op};
use prost::Message;
use sha2::{Digest as _, Sha256};

const TAG: &[u8] = b"buildd/cache-key/v1\0";

pub fn cache_key(op: &Op, input_keys: &[Digest], content: Option<Digest>) -> Digest {
    let mut op = op.clone();
    for input in &mut op.inputs {
        input.digest.clear();
    }
    match &mut op.op {
        // Proxy settings change how a RUN reaches the network, not what it builds.
        Some(op::Op::Exec(exec)) => {
            if let Some(meta) = exec.meta.as_mut() {
                meta.proxy_env = None;
            }
        }
        // A local source stands for "whatever the client has"; what a consumer reads
        // of it enters that consumer's key as a content digest. Keeping the transfer
        // filters here would let an unrelated COPY elsewhere bust every key.
        Some(op::Op::Source(src)) if src.identifier.starts_with("local://") => {
            src.include_patterns.clear();
            src.exclude_patterns.clear();
            src.follow_paths.clear();
            src.attrs.retain(|k, _| !k.starts_with("local."));
        }
        _ => {}
    }
    let mut h = Sha256::new();
    h.update(TAG);
    let bytes = op.encode_to_vec();
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(&bytes);
    h.update((input_keys.len() as u64).to_le_bytes());
    for k in input_keys {
        h.update(k.as_bytes());
    }
    match content {
        Some(c) => {
            h.update([1]);
            h.update(c.as_bytes());
        }
        None => h.update([0]),
    }
    h.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use buildd_proto::llb::{Input, ProxyEnv, SourceOp};

    fn local(excludes: &[&str]) -> Op {
        Op {
            op: Some(op::Op::Source(SourceOp {
                identifier: "local://context".into(),
                exclude_patterns: excludes.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn input_digests_do_not_matter_input_keys_do() {
        let mut a = local(&[]);
        a.inputs.push(Input {
            digest: "sha256:aa".into(),
            index: 0,
        });
        let mut b = a.clone();
        b.inputs[0].digest = "sha256:bb".into();
        let k1 = Digest::of(b"1");
        assert_eq!(cache_key(&a, &[k1], None), cache_key(&b, &[k1], None));
        assert_ne!(
            cache_key(&a, &[k1], None),
            cache_key(&a, &[Digest::of(b"2")], None)
        );
    }

    #[test]
    fn local_filters_and_proxies_are_volatile_content_is_not() {
        assert_eq!(
            cache_key(&local(&["a"]), &[], None),
            cache_key(&local(&["b"]), &[], None)
        );
        let c = Some(Digest::of(b"c"));
        assert_ne!(
            cache_key(&local(&[]), &[], c),
            cache_key(&local(&[]), &[], None)
        );

        let exec = |proxy: &str| Op {
            op: Some(op::Op::Exec(buildd_proto::llb::ExecOp {
                meta: Some(buildd_proto::llb::Meta {
                    args: vec!["true".into()],
                    proxy_env: Some(ProxyEnv {
                        http_proxy: proxy.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            cache_key(&exec("a"), &[], None),
            cache_key(&exec("b"), &[], None)
        );
    }
}
