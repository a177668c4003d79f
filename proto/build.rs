//! Compiles the .proto files with protox, so no system protoc is needed.

fn main() {
    let protos = ["llb.proto", "control.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let llb = protox::compile(["llb.proto"], ["."]).expect("compile llb.proto");
    let mut config = prost_build::Config::new();
    // Deterministic encoding: maps are sorted by key, so a vertex digest never
    // depends on hash-map iteration order.
    config.btree_map(["."]);
    config
        .compile_fds(llb)
        .expect("generate rust from llb.proto");

    // The control API: messages plus tonic's client and server traits. Generated
    // code is generic over the transport, so the client can use a unix socket or
    // TLS without this crate choosing one.
    let control = protox::compile(["control.proto"], ["."]).expect("compile control.proto");
    tonic_prost_build::configure()
        .btree_map(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(control)
        .expect("generate rust from control.proto");
}
