//! The error catalogue: broken Dockerfiles and the exact message each gives,
//! located at `file:line:column`.

mod common;

use buildd_frontend::compile;

/// (case, Dockerfile, --target, expected error)
const CASES: &[(&str, &str, Option<&str>, &str)] = &[
    (
        "unknown instruction",
        "FROM scratch\nCOPY a /\n  BOGUS x\n",
        None,
        "Dockerfile:3:3: unknown instruction: BOGUS",
    ),
    (
        "unknown flag",
        "FROM scratch\nCOPY --form=x a /\n",
        None,
        "Dockerfile:2:6: COPY: unknown flag: --form",
    ),
    (
        "bad chmod",
        "FROM scratch\nCOPY --chown=1:1 --chmod=u+q a /\n",
        None,
        "Dockerfile:2:18: COPY: invalid --chmod value \"u+q\": 'q' is not a permission",
    ),
    (
        "undefined arg in FROM",
        "ARG OTHER=x\nFROM ${BASE}\n",
        None,
        "Dockerfile:2:1: FROM: base name (${BASE}) should not be blank",
    ),
    (
        "copy from a later stage",
        "FROM scratch AS a\nCOPY --from=b x /\nFROM scratch AS b\nCOPY y /\n",
        None,
        "Dockerfile:2:6: COPY: stage \"b\" is defined later in the Dockerfile, a stage can only use stages before it",
    ),
    (
        "cycle",
        "FROM b AS a\nFROM a AS b\n",
        None,
        "Dockerfile:2:1: FROM: circular dependency detected on stage: a",
    ),
    (
        "copy from itself",
        "FROM scratch AS a\nCOPY --from=a x /\n",
        None,
        "Dockerfile:2:6: COPY: circular dependency detected on stage: a",
    ),
    (
        "unknown target",
        "FROM scratch AS a\nCOPY x /\n",
        Some("nope"),
        "Dockerfile: target stage \"nope\" could not be found",
    ),
    (
        "missing stage",
        "FROM scratch AS a\nCOPY x /\nFROM scratch\n\nCOPY --from=nope x /\n",
        None,
        "Dockerfile:5:6: COPY: stage \"nope\" not found",
    ),
    (
        "stage index out of range",
        "FROM scratch\nCOPY --from=3 x /\n",
        None,
        "Dockerfile:2:6: COPY: invalid stage index 3, the Dockerfile has 1 stages",
    ),
    (
        "image without registry client",
        "FROM alpine:3.20\n",
        None,
        "Dockerfile:1:1: FROM: FROM alpine:3.20: pulling images needs the registry client, not available yet",
    ),
    (
        "instruction before FROM",
        "# comment\nCOPY a /\n",
        None,
        "Dockerfile:2:1: COPY: no build stage in current context, add FROM first",
    ),
    (
        "unterminated heredoc",
        "FROM scratch\nRUN cat <<EOF >/x\nhello\n",
        None,
        "Dockerfile:2:9: unterminated heredoc \"EOF\": no line holds only its delimiter",
    ),
    (
        "heredoc destination",
        "FROM scratch\nCOPY a <<EOF\nx\nEOF\n",
        None,
        "Dockerfile:2:1: COPY: COPY cannot accept a heredoc as a destination",
    ),
    (
        "bad mount type",
        "FROM scratch\nRUN --network=none --mount=type=volume,target=/v true\n",
        None,
        "Dockerfile:2:20: RUN: --mount: unsupported mount type \"volume\", expected bind, cache, tmpfs, secret or ssh",
    ),
    (
        "bad mount key",
        "FROM scratch\nRUN --mount=type=cache,target=/c,size=1m true\n",
        None,
        "Dockerfile:2:5: RUN: --mount: unexpected key 'size' for mount type 'cache'",
    ),
    (
        "mount on the root",
        "FROM scratch\nRUN --mount=type=tmpfs,target=/ true\n",
        None,
        "Dockerfile:2:5: RUN: --mount: invalid mount target \"/\"",
    ),
    (
        "bad network",
        "FROM scratch\nRUN --network=bridge true\n",
        None,
        "Dockerfile:2:5: RUN: invalid --network value \"bridge\", expected default, none or host",
    ),
    (
        "bad security",
        "FROM scratch\nRUN --security=privileged true\n",
        None,
        "Dockerfile:2:5: RUN: invalid --security value \"privileged\", expected sandbox or insecure",
    ),
    (
        "mount from a later stage",
        "FROM scratch AS a\nRUN --mount=from=b,target=/b true\nFROM scratch AS b\n",
        None,
        "Dockerfile:2:5: RUN: stage \"b\" is defined later in the Dockerfile, a stage can only use stages before it",
    ),
    (
        "URL in COPY",
        "FROM scratch\nCOPY https://example.com/a.txt /\n",
        None,
        "Dockerfile:2:1: COPY: source can't be a URL for COPY: https://example.com/a.txt",
    ),
    (
        "checksum on a local source",
        "FROM scratch\nADD --checksum=sha256:00 a.txt /\n",
        None,
        "Dockerfile:2:5: ADD: --checksum can only be used with URL or git sources",
    ),
    (
        "bad checksum",
        "FROM scratch\nADD --checksum=sha256:00 https://example.com/a.txt /\n",
        None,
        "Dockerfile:2:5: ADD: invalid --checksum value \"sha256:00\", expected a digest such as sha256:<64 hex digits>",
    ),
    (
        "from on ADD",
        "FROM scratch AS a\nFROM scratch\nADD --from=a x /\n",
        None,
        "Dockerfile:3:5: ADD: unknown flag: --from",
    ),
    (
        "bad stage name",
        "FROM scratch AS 1st\n",
        None,
        "Dockerfile:1:1: FROM: invalid name for build stage: \"1st\", name can't start with a number or contain symbols",
    ),
    (
        "unterminated quote",
        "FROM scratch\nENV A=\"x\nCOPY a /\n",
        None,
        "Dockerfile:2:1: ENV: failed to process \"\\\"x\": unexpected end of statement while looking for matching double-quote",
    ),
    (
        "non-string JSON",
        "FROM scratch\nCMD [\"a\", 1]\n",
        None,
        "Dockerfile:2:1: when using JSON array syntax, arrays must be comprised of strings only",
    ),
    (
        "empty file",
        "# only a comment\n\n",
        None,
        "Dockerfile:2:1: file with no instructions",
    ),
    (
        "copy needs two arguments",
        "FROM scratch\n\tcopy a\n",
        None,
        "Dockerfile:2:2: COPY: requires at least two arguments",
    ),
    (
        "bad port",
        "FROM scratch\nEXPOSE 80/tcp http\n",
        None,
        "Dockerfile:2:1: EXPOSE: invalid port specification: \"http\"",
    ),
];

#[test]
fn error_catalogue() {
    let mut failures = Vec::new();
    for (case, text, target, want) in CASES {
        let mut opts = common::opts();
        opts.target = target.map(str::to_owned);
        match compile(text, &opts) {
            Ok(_) => failures.push(format!("{case}: compiled, want {want:?}")),
            Err(e) if e.to_string() == *want => {}
            Err(e) => failures.push(format!("{case}:\n  want {want}\n  got  {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_fields_and_file_name() {
    let mut opts = common::opts();
    opts.dockerfile_name = "build/Dockerfile.prod".to_owned();
    let e = compile("FROM scratch\nCOPY --from=nope x /\n", &opts).unwrap_err();
    assert_eq!(e.file, "build/Dockerfile.prod");
    assert_eq!((e.line, e.column), (2, 6));
    assert_eq!(e.instruction.as_deref(), Some("COPY"));
    assert_eq!(e.message, "stage \"nope\" not found");
}

#[test]
fn undefined_arg_in_from_warns() {
    let c = compile("FROM scratch${SUFFIX}\nCOPY a /\n", &common::opts()).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].rule, "UndefinedArgInFrom");
    assert_eq!(c.warnings[0].line, 1);
    assert_eq!(
        c.warnings[0].message,
        "FROM argument 'SUFFIX' is not declared"
    );
}
