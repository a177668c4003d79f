//! Remote build contexts (`buildd build URL`, as `docker build URL`): the LLB
//! whose result is the context's filesystem, which the engine fetches before it
//! reads the Dockerfile from it.

use buildd_proto::llb::{Definition, FileActionCopy, SourceInfo};

use super::encode;
use super::graph::Graph;
use super::remote::{self, Remote};
use crate::Platform;

/// The context at `url`: a git repository (`git://`, `ssh://`, `git@host:path`,
/// an http(s) URL ending in `.git`, each with `#ref:subdir`), or an http(s) URL
/// whose body is unpacked when it is an archive and is otherwise a file at the
/// root; and whether it is git. `None` when `url` is neither.
pub fn remote_context(url: &str, platform: &Platform) -> Option<(Definition, bool)> {
    let remote = remote::classify(url)?;
    let mut graph = Graph::new(2, &super::image::proto_platform(platform));
    let (identifier, attrs) = remote.source(None, false);
    let mut op = graph.op_writer(&[]);
    encode::source(
        &mut op,
        &identifier,
        &attrs,
        encode::NO_PATHS,
        encode::NO_PATHS,
    );
    let fetched = graph.add(
        op,
        Vec::new(),
        format!("[internal] load remote build context {url}"),
        None,
    );
    let git = matches!(remote, Remote::Git(_));
    let result = match remote {
        Remote::Git(_) => fetched,
        Remote::Http { filename, .. } => {
            let mut op = graph.op_writer(&[fetched]);
            encode::file_copies(
                &mut op,
                -1,
                &[FileActionCopy {
                    source_input: 0,
                    src: format!("/{filename}"),
                    dest: "/".to_owned(),
                    attempt_unpack: true,
                    create_dest_path: true,
                    ..Default::default()
                }],
            );
            graph.add(
                op,
                vec![fetched],
                format!("[internal] unpack remote build context {url}"),
                None,
            )
        }
    };
    let definition = graph.marshal(
        Some(result),
        SourceInfo {
            filename: url.to_owned(),
            data: Vec::new(),
            language: String::new(),
        },
    );
    Some((definition, git))
}
