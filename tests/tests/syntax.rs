//! `# syntax=`: the Dockerfile frontend by any of its names builds silently; any
//! other image is an external frontend buildd cannot run, so the build warns,
//! naming the directive's line, and goes on with the built-in frontend.

use buildd_tests::Workspace;

#[test]
fn an_external_frontend_is_a_warning_and_the_build_goes_on() {
    let ws = Workspace::new();
    ws.file("a.txt", "a\n", 0o644);
    let out = ws.path("out");
    let local = format!("type=local,dest={}", out.display());

    ws.dockerfile("# syntax=docker/dockerfile:1.7\nFROM scratch\nCOPY a.txt /\n");
    let run = ws.build(&["-o", &local]).success();
    assert!(
        !run.stderr.contains("UnsupportedFrontend"),
        "{}",
        run.stderr
    );

    ws.dockerfile("# syntax=ghcr.io/acme/frontend:2\nFROM scratch\nCOPY a.txt /b.txt\n");
    let run = ws.build(&["-o", &local]).success();
    assert!(
        run.stderr.contains(
            "WARNING: UnsupportedFrontend: line 1: # syntax=ghcr.io/acme/frontend:2: buildd does not run external frontends"
        ),
        "{}",
        run.stderr
    );
    assert!(out.join("b.txt").is_file());
}
