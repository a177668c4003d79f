//! BuildKit's parser test data (see ../shared/conformance/buildkit/SOURCE.md):
//! the AST dump of each Dockerfile must match BuildKit's, negative cases must
//! fail, and line spans must match.

use std::path::PathBuf;

use buildd_frontend::parse;

/// The data, or `None` (said why through `buildd_testkit`) when it is absent.
#[track_caller]
fn data_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/buildkit/parser");
    buildd_testkit::require_dir(
        &dir,
        "conformance",
        "the conformance data is not part of a user's clone",
    )
    .then_some(dir)
}

fn cases(dir: PathBuf) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

#[test]
fn dumps_match_buildkit() {
    let Some(dir) = data_dir() else { return };
    let mut failures = Vec::new();
    let all = cases(dir.join("testfiles"));
    for case in &all {
        let text = std::fs::read_to_string(case.join("Dockerfile")).unwrap();
        let want = std::fs::read_to_string(case.join("result")).unwrap();
        match parse(&text) {
            Ok(ast) if ast.dump() == want => {}
            Ok(ast) => failures.push(format!(
                "{}:\n--- want\n{want}--- got\n{}",
                case.display(),
                ast.dump()
            )),
            Err(e) => failures.push(format!("{}: {e}", case.display())),
        }
    }
    eprintln!(
        "parser conformance: {}/{} pass",
        all.len() - failures.len(),
        all.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_cases_fail() {
    let Some(dir) = data_dir() else { return };
    for case in cases(dir.join("testfiles-negative")) {
        let text = std::fs::read_to_string(case.join("Dockerfile")).unwrap();
        assert!(parse(&text).is_err(), "{} should not parse", case.display());
    }
}

#[test]
fn line_spans() {
    let Some(dir) = data_dir() else { return };
    let text = std::fs::read_to_string(dir.join("testfile-line/Dockerfile")).unwrap();
    let ast = parse(&text).unwrap();
    let lines: Vec<(u32, u32)> = ast
        .nodes
        .iter()
        .map(|n| (n.span.start.line, n.span.end.line))
        .collect();
    assert_eq!(lines, [(5, 5), (11, 12), (17, 31)]);
}
