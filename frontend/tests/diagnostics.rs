//! The parser and `check` do not stop at the first problem: every broken
//! instruction gets its own diagnostic, located, and the rest is still parsed.

mod common;

use buildd_frontend::{Error, check, compile, parse, parse_with_diagnostics};

fn located(errors: &[Error]) -> Vec<String> {
    errors.iter().map(Error::to_string).collect()
}

/// Three independent errors: a legacy ENV without a value, a JSON array that
/// is not all strings, and an unterminated heredoc (indented, so the column
/// is not 1).
const THREE: &str = "\
FROM scratch
ENV PATH
COPY a /a
  CMD [\"echo\", [\"nested\"]]
LABEL ok=1
RUN cat  <<EOF
body
";

#[test]
fn three_errors_three_diagnostics() {
    let (ast, errors) = parse_with_diagnostics(THREE);
    assert_eq!(
        located(&errors),
        [
            "Dockerfile:2:1: ENV must have two arguments",
            "Dockerfile:4:3: when using JSON array syntax, arrays must be comprised of strings only",
            "Dockerfile:6:10: unterminated heredoc \"EOF\": no line holds only its delimiter",
        ]
    );
    // The instructions around them are in the tree, with their comments and spans.
    let kept: Vec<_> = ast
        .nodes
        .iter()
        .map(|n| (n.name(), n.span.start.line))
        .collect();
    assert_eq!(
        kept,
        [("FROM".into(), 1), ("COPY".into(), 3), ("LABEL".into(), 5)]
    );
    // `parse` and `compile` report the first.
    assert_eq!(parse(THREE).unwrap_err(), errors[0]);
    assert_eq!(
        compile(THREE, &common::opts()).unwrap_err().to_string(),
        "Dockerfile:2:1: ENV must have two arguments"
    );
}

#[test]
fn directive_errors_are_recovered() {
    let text = "# escape=x\n# escape=`\nFROM scratch\nRUN a \\\n  b\n";
    let (ast, errors) = parse_with_diagnostics(text);
    assert_eq!(
        located(&errors),
        [
            "Dockerfile:1:1: invalid escape token \"x\", must be ` or \\",
            "Dockerfile:2:1: only one escape parser directive can be used",
        ]
    );
    // The default escape is kept, so the continuation still joins.
    assert_eq!(ast.escape, '\\');
    assert_eq!(ast.nodes[1].args, ["a   b"]);
}

#[test]
fn an_empty_file_is_one_diagnostic_and_a_clean_one_none() {
    let (ast, errors) = parse_with_diagnostics("# only a comment\n");
    assert!(ast.nodes.is_empty());
    assert_eq!(
        located(&errors),
        ["Dockerfile:1:1: file with no instructions"]
    );
    let (ast, errors) = parse_with_diagnostics("FROM scratch\nRUN x\n");
    assert!(errors.is_empty());
    assert_eq!(parse("FROM scratch\nRUN x\n").unwrap(), ast);
}

#[test]
fn check_reports_parse_and_typing_errors_in_order() {
    let mut o = common::opts();
    o.dockerfile_name = "app.Dockerfile".into();
    let text = "FROM scratch\nCOPY --form=x a /\nENV A\n  BOGUS x\nSHELL sh -c\nRUN ok\n";
    let d = check(text, &o);
    assert_eq!(
        located(&d.errors),
        [
            "app.Dockerfile:2:6: COPY: unknown flag: --form",
            "app.Dockerfile:3:1: ENV must have two arguments",
            "app.Dockerfile:4:3: unknown instruction: BOGUS",
            "app.Dockerfile:5:1: SHELL: requires the arguments to be in JSON form",
        ]
    );
}

#[test]
fn check_without_broken_instructions_is_compile() {
    let o = common::opts();
    // A graph error: reported once, as compile reports it.
    let text = "FROM scratch AS a\nCOPY --from=b x /\nFROM scratch AS b\n";
    let d = check(text, &o);
    assert_eq!(d.errors, [compile(text, &o).unwrap_err()], "{:?}", d.errors);
    // A clean file: no errors, the build checks as warnings.
    let d = check("FROM scratch AS Build\nCMD x\n", &o);
    assert!(d.errors.is_empty());
    let rules: Vec<_> = d.warnings.iter().map(|w| w.rule.as_str()).collect();
    assert_eq!(rules, ["StageNameCasing", "JSONArgsRecommended"]);
}
