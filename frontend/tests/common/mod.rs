//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod big;

use buildd_frontend::{BuildOptions, Compiled, Platform};

pub fn platform() -> Platform {
    Platform {
        architecture: "amd64".to_owned(),
        os: "linux".to_owned(),
        variant: None,
    }
}

pub fn opts() -> BuildOptions {
    BuildOptions::new(platform())
}

pub fn compile(text: &str) -> Compiled {
    buildd_frontend::compile(text, &opts()).unwrap_or_else(|e| panic!("{e}"))
}

pub fn result_digest(c: &Compiled) -> String {
    c.definition
        .result
        .as_ref()
        .expect("a result")
        .digest
        .clone()
}
