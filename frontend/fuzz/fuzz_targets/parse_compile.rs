//! Parses and compiles arbitrary text: neither may panic, and a parsed file
//! printed back must parse to the same instructions.

#![no_main]

use buildd_frontend::{BuildOptions, Platform, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ast) = parse(text) {
        let printed = ast.to_string();
        let again = parse(&printed).expect("a printed AST parses");
        assert_eq!(again.dump(), ast.dump(), "printed:\n{printed}");
    }
    let opts = BuildOptions::new(Platform {
        architecture: "amd64".to_owned(),
        os: "linux".to_owned(),
        variant: None,
    });
    let _ = buildd_frontend::compile(text, &opts);
    let _ = buildd_frontend::outline(text, &opts);
});
