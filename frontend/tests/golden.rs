//! Golden tests: each `tests/golden/<name>/Dockerfile` compiles to the LLB dump in
//! `llb.txt` and the image config in `image.json`. An optional `options` file
//! holds `target=NAME`, `build-arg=K=V` and `dockerignore=PATTERN` lines.
//! `UPDATE_GOLDEN=1 cargo test -p buildd-frontend` rewrites the expectations.

mod common;

use std::path::Path;

use buildd_frontend::BuildOptions;
use buildd_proto::dump;

fn options(dir: &Path) -> BuildOptions {
    let mut opts = common::opts();
    let Ok(text) = std::fs::read_to_string(dir.join("options")) else {
        return opts;
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line.split_once('=').expect("key=value");
        match key {
            "target" => opts.target = Some(value.to_owned()),
            "build-arg" => {
                let (k, v) = value.split_once('=').expect("build-arg=K=V");
                opts.build_args.insert(k.to_owned(), v.to_owned());
            }
            "dockerignore" => opts.dockerignore.push(value.to_owned()),
            other => panic!("unknown option {other:?} in {}", dir.display()),
        }
    }
    opts
}

fn check(path: &Path, got: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    if want != got {
        failures.push(format!(
            "{} differs:\n--- want\n{want}\n--- got\n{got}",
            path.display()
        ));
    }
}

#[test]
fn golden() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 5, "expected at least 5 golden cases");
    let mut failures = Vec::new();
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let compiled = buildd_frontend::compile(&text, &options(&dir))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut llb = dump::to_text(&compiled.definition);
        if !compiled.warnings.is_empty() {
            llb.push_str("\nwarnings:\n");
            for w in &compiled.warnings {
                llb.push_str(&format!("  {w}\n"));
            }
        }
        check(&dir.join("llb.txt"), &llb, &mut failures);
        let image = serde_json::to_string_pretty(&compiled.image).unwrap() + "\n";
        check(&dir.join("image.json"), &image, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
