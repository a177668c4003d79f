//! Compiles the .proto files with protox, so no system protoc is needed.

fn main() {
    let protos = ["llb.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["."]).expect("compile protos");
    let mut config = prost_build::Config::new();
    // Deterministic encoding: maps are sorted by key, so a vertex digest never
    // depends on hash-map iteration order.
    config.btree_map(["."]);
    config.compile_fds(fds).expect("generate rust from protos");
}
