//! Property tests: the parser and compiler never panic, and a printed AST
//! parses back to the same instructions.

mod common;

use buildd_frontend::{Ast, Node, parse, parse_with_diagnostics};
use proptest::prelude::*;

/// Pieces Dockerfiles are made of, so generated text reaches deep into the
/// parser rather than failing on the first character.
const PIECES: &[&str] = &[
    "FROM",
    "from",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "LABEL",
    "CMD",
    "ENTRYPOINT",
    "ONBUILD",
    "HEALTHCHECK",
    "WORKDIR",
    "EXPOSE",
    "SHELL",
    "USER",
    "VOLUME",
    "MAINTAINER",
    "STOPSIGNAL",
    "scratch",
    "AS",
    "as",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\\",
    "\\\n",
    "`",
    "#",
    "# escape=`\n",
    "# syntax=x\n",
    "# check=skip=all\n",
    "<<",
    "<<-",
    "EOF",
    "'EOF'",
    "\"EOF\"",
    "\tEOF",
    "\"",
    "'",
    "[",
    "]",
    "[\"a\", \"b\"]",
    ",",
    "=",
    "--",
    "--from=",
    "--mount=type=cache,target=/c",
    "--link",
    "--chmod=",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    "#",
    "%",
    "/",
    "//",
    "a",
    "b",
    "x=y",
    "/app",
    ".",
    "*",
    "80/tcp",
    "NONE",
    "CMD ",
    "é",
    "\u{feff}",
];

/// Free mixtures of pieces, and files of well-formed looking lines.
fn dockerfile() -> impl Strategy<Value = String> {
    let soup = prop::collection::vec(prop::sample::select(PIECES), 0..60).prop_map(|p| p.concat());
    prop_oneof![soup, lines()]
}

const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "LABEL",
    "CMD",
    "ENTRYPOINT",
    "WORKDIR",
    "EXPOSE",
    "USER",
    "VOLUME",
    "ONBUILD RUN",
    "HEALTHCHECK CMD",
    "SHELL",
];
const WORDS: &[&str] = &[
    "scratch",
    "AS",
    "stage",
    "a",
    "/b",
    "x=1",
    "\"q w\"",
    "'s'",
    "$V",
    "${V:-d}",
    "${V#*/}",
    "--from=stage",
    "--link",
    "--chown=1:2",
    "--mount=type=bind,target=/m",
    "--network=none",
    "<<EOF",
    "<<-END",
    "<<'RAW'",
    "[\"sh\", \"-c\"]",
    "80/udp",
    "\\\n  ",
    "\\\n# c\n  ",
];

fn lines() -> impl Strategy<Value = String> {
    let line = (
        prop::sample::select(KEYWORDS),
        prop::collection::vec(prop::sample::select(WORDS), 0..6),
    )
        .prop_map(|(kw, words)| {
            let mut line = format!("{kw} {}\n", words.join(" "));
            for w in &words {
                let name = match *w {
                    "<<EOF" => "EOF",
                    "<<-END" => "\tEND",
                    "<<'RAW'" => "RAW",
                    _ => continue,
                };
                line.push_str(&format!("body $V\n{name}\n"));
            }
            line
        });
    prop::collection::vec(line, 1..12)
        .prop_map(|l| format!("FROM scratch AS stage\n{}", l.concat()))
}

/// The tree without positions, which printing does not keep.
fn shape(ast: &Ast) -> Vec<Node> {
    fn strip(n: &Node) -> Node {
        let mut n = n.clone();
        n.span = Default::default();
        for f in &mut n.flags {
            f.span = Default::default();
        }
        n.sub = n.sub.as_deref().map(|s| Box::new(strip(s)));
        n
    }
    ast.nodes.iter().map(strip).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn parse_and_compile_never_panic(text in dockerfile()) {
        let _ = parse(&text);
        let _ = buildd_frontend::compile(&text, &common::opts());
        let _ = buildd_frontend::outline(&text, &common::opts());
    }

    #[test]
    fn diagnostics_agree_with_parse(text in dockerfile()) {
        let (ast, errors) = parse_with_diagnostics(&text);
        match parse(&text) {
            Ok(parsed) => {
                prop_assert!(errors.is_empty());
                prop_assert_eq!(parsed, ast);
            }
            Err(e) => prop_assert_eq!(Some(&e), errors.first()),
        }
        prop_assert!(errors.windows(2).all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)));
        let _ = buildd_frontend::check(&text, &common::opts());
    }

    #[test]
    fn printing_round_trips(text in dockerfile()) {
        let Ok(ast) = parse(&text) else { return Ok(()) };
        let printed = ast.to_string();
        let again = parse(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n--- printed\n{printed}")))?;
        prop_assert_eq!(&again.directives.iter().map(|d| (&d.name, &d.value)).collect::<Vec<_>>(),
            &ast.directives.iter().map(|d| (&d.name, &d.value)).collect::<Vec<_>>());
        prop_assert_eq!(again.escape, ast.escape);
        prop_assert_eq!(shape(&again), shape(&ast), "printed:\n{}", printed);
    }
}

#[test]
fn printing_a_real_file_round_trips() {
    let text = "# syntax=docker/dockerfile:1\n# escape=\\\n\n# the base\nFROM scratch AS build\nRUN a \\\n  # inside\n  b\nCOPY <<EOF <<-'X' /dst/\nhello\nEOF\n\tworld\n\tX\nONBUILD RUN echo hi\n";
    let ast = parse(text).unwrap();
    let printed = ast.to_string();
    assert_eq!(
        printed,
        "# syntax=docker/dockerfile:1\n# escape=\\\n\n# the base\nFROM scratch AS build\nRUN a   b\nCOPY <<EOF <<-'X' /dst/\nhello\nEOF\n\tworld\nX\nONBUILD RUN echo hi\n"
    );
    assert_eq!(shape(&parse(&printed).unwrap()), shape(&ast));
}
