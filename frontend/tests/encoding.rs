//! The frontend writes vertex bytes itself rather than through prost; a vertex
//! is named by the digest of those bytes, so they must be prost's encoding
//! exactly. Every vertex of many Dockerfiles (the golden ones, the big one, and
//! ones using every mount type, network and security mode, remote sources and
//! file action) must decode and re-encode to the same bytes, and the
//! Definition must hold together.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use buildd_frontend::{BuildOptions, Compiled};
use buildd_proto::Digest;
use buildd_proto::llb::{Op, op};
use prost::Message;

const FEATURES: &str = r#"# syntax=docker/dockerfile:1
FROM scratch AS tools
COPY --chown=app:staff --chmod=0755 bin/ /usr/local/bin/
COPY --parents src/./pkg/a.go /out/
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/tool-1.0.tar.gz /opt/
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.13.0 /src/buildkit
ADD https://example.com/archive.tar.gz /unpacked/

FROM tools
ARG VERSION=1.0 EMPTY=
ENV LONG=0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789
USER 1000:1000
WORKDIR /app
RUN --mount=type=cache,target=/root/.cache,id=c,sharing=locked,uid=0,gid=0,mode=0700 \
    --mount=type=tmpfs,target=/tmp,size=1048576 \
    --mount=type=secret,id=token,env=TOKEN,required=true \
    --mount=type=secret,id=npmrc,target=/root/.npmrc \
    --mount=type=ssh \
    --mount=type=bind,from=tools,source=/usr/local/bin,target=/tools,rw \
    --mount=type=bind,source=go.mod,target=/go.mod \
    --network=none --security=insecure \
    make VERSION=$VERSION
RUN --network=host ["/bin/echo", "", "exec form"]
RUN <<EOF
#!/bin/sh
echo script
EOF
RUN cat <<A <<B
first
A
second
B
COPY <<EOF /etc/config
value=$VERSION
EOF
COPY --link --exclude=*.md docs/ /docs/
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN echo $LONG
"#;

fn dockerfiles() -> Vec<(String, String, BuildOptions)> {
    let mut out = vec![
        ("features".to_owned(), FEATURES.to_owned(), common::opts()),
        ("big".to_owned(), common::big::dockerfile(), common::opts()),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let mut opts = common::opts();
        // The golden options that change which vertices exist.
        let options = std::fs::read_to_string(dir.join("options")).unwrap_or_default();
        for line in options.lines() {
            if let Some(target) = line.strip_prefix("target=") {
                opts.target = Some(target.to_owned());
            } else if let Some((k, v)) = line
                .strip_prefix("build-arg=")
                .and_then(|kv| kv.split_once('='))
            {
                opts.build_args.insert(k.to_owned(), v.to_owned());
            } else if let Some(p) = line.strip_prefix("dockerignore=") {
                opts.dockerignore.push(p.to_owned());
            }
        }
        out.push((dir.display().to_string(), text, opts));
    }
    out
}

/// Every vertex re-encodes to its own bytes, and inputs come first.
fn check(name: &str, c: &Compiled, kinds: &mut BTreeSet<&'static str>) {
    let def = &c.definition;
    let mut seen = BTreeSet::new();
    for bytes in &def.def {
        let op = Op::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            &op.encode_to_vec(),
            bytes,
            "{name}: a vertex is not prost's encoding of {op:?}"
        );
        for input in &op.inputs {
            assert!(
                seen.contains(&input.digest),
                "{name}: input {} is not an earlier vertex",
                input.digest
            );
        }
        kinds.insert(match op.op.expect("an op") {
            op::Op::Exec(_) => "exec",
            op::Op::Source(_) => "source",
            op::Op::File(_) => "file",
            op::Op::Merge(_) => "merge",
            op::Op::Diff(_) => "diff",
        });
        let digest = Digest::of(bytes).to_string();
        assert!(
            def.metadata.contains_key(&digest),
            "{name}: no metadata for {digest}"
        );
        seen.insert(digest);
    }
    assert_eq!(def.metadata.len(), def.def.len(), "{name}");
    let result = def.result.as_ref().expect("a result");
    assert!(seen.contains(&result.digest), "{name}: result not in def");
    let reencoded = buildd_proto::llb::Definition::decode(def.encode_to_vec().as_slice()).unwrap();
    assert_eq!(&reencoded, def, "{name}");
}

#[test]
fn vertices_are_prosts_encoding() {
    let mut kinds = BTreeSet::new();
    for (name, text, opts) in dockerfiles() {
        let c = buildd_frontend::compile(&text, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&name, &c, &mut kinds);
    }
    assert_eq!(
        kinds,
        BTreeSet::from(["exec", "file", "merge", "source"]),
        "every op the frontend emits is covered"
    );
}

#[test]
fn compile_parsed_is_compile() {
    let text = common::big::dockerfile();
    let opts = common::opts();
    let ast = buildd_frontend::parse(&text).unwrap();
    let parsed = buildd_frontend::compile_parsed(&text, &ast, &opts).unwrap();
    assert_eq!(parsed, buildd_frontend::compile(&text, &opts).unwrap());
}
