//! Build checks: each rule fires with BuildKit's name and message on the right
//! line, and `# check=` skips rules or turns them into an error.

mod common;

use buildd_frontend::{Warning, compile};

fn warnings(text: &str) -> Vec<(String, u32, String)> {
    let c = compile(text, &common::opts()).unwrap_or_else(|e| panic!("{e}"));
    c.warnings
        .into_iter()
        .map(
            |Warning {
                 rule,
                 line,
                 message,
             }| (rule, line, message),
        )
        .collect()
}

fn one(text: &str, rule: &str, line: u32, message: &str) {
    let got = warnings(text);
    let want = (rule.to_owned(), line, message.to_owned());
    assert!(got.contains(&want), "want {want:?}\ngot {got:?}");
}

#[test]
fn every_rule() {
    one(
        "FROM scratch AS Build\n",
        "StageNameCasing",
        1,
        "Stage name 'Build' should be lowercase",
    );
    one(
        "FROM scratch as build\n",
        "FromAsCasing",
        1,
        "'as' and 'FROM' keywords' casing do not match",
    );
    one(
        "from scratch AS build\n",
        "FromAsCasing",
        1,
        "'AS' and 'from' keywords' casing do not match",
    );
    one(
        "FROM scratch AS a\nFROM scratch AS a\n",
        "DuplicateStageName",
        2,
        "Duplicate stage name \"a\", stage names should be unique",
    );
    one(
        "FROM scratch AS scratch\n",
        "ReservedStageName",
        1,
        "Stage name should not use the same name as reserved stage \"scratch\"",
    );
    one(
        "FROM scratch\nCMD echo hi\n",
        "JSONArgsRecommended",
        2,
        "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
    );
    one(
        "FROM scratch\nMAINTAINER me\n",
        "MaintainerDeprecated",
        2,
        "Maintainer instruction is deprecated in favor of using label",
    );
    one(
        "FROM scratch${TAG}\n",
        "UndefinedArgInFrom",
        1,
        "FROM argument 'TAG' is not declared",
    );
    one(
        "ARG VERSION=1\nFROM scratch${VERSON}\n",
        "UndefinedArgInFrom",
        2,
        "FROM argument 'VERSON' is not declared (did you mean VERSION?)",
    );
    one(
        "FROM scratch\nWORKDIR app\n",
        "WorkdirRelativePath",
        2,
        "Relative workdir \"app\" can have unexpected results if the base image changes",
    );
    one(
        "FROM scratch\nARG NODE_VERSION=1\nCOPY a-$NODE_VERSON /\n",
        "UndefinedVar",
        3,
        "Usage of undefined variable '$NODE_VERSON' (did you mean $NODE_VERSION?)",
    );
    one(
        "FROM scratch\nCMD [\"a\"]\nCMD [\"b\"]\n",
        "MultipleInstructionsDisallowed",
        2,
        "Multiple CMD instructions should not be used in the same stage because only the last one will be used",
    );
    one(
        "FROM scratch\nLABEL a b\n",
        "LegacyKeyValueFormat",
        2,
        "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format",
    );
    one(
        "FROM scratch\nARG GITHUB_TOKEN\n",
        "SecretsUsedInArgOrEnv",
        2,
        "Do not use ARG or ENV instructions for sensitive data (ARG \"GITHUB_TOKEN\")",
    );
    one(
        "FROM scratch\nEXPOSE 80/TCP\n",
        "ExposeProtoCasing",
        2,
        "Defined protocol '80/TCP' in EXPOSE instruction should be lowercase",
    );
    one(
        "FROM scratch\nEXPOSE 127.0.0.1:80:80\n",
        "ExposeInvalidFormat",
        2,
        "EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'",
    );
    one(
        "FROM scratch\nRUN a \\\n\n  b\n",
        "NoEmptyContinuation",
        2,
        "Empty continuation line",
    );
}

#[test]
fn quiet_on_good_practice() {
    let text = "# syntax=docker/dockerfile:1\nARG BASE=scratch\nFROM ${BASE} AS build\nARG TARGETARCH\nWORKDIR /src\nWORKDIR sub\nENV A=1\nENV B=\"$A\"\nCOPY ${TARGETARCH:-x}.bin /\nEXPOSE 80 53/udp\nCMD [\"run\"]\nHEALTHCHECK CMD [\"true\"]\nFROM build\nWORKDIR rel\nCMD [\"other\"]\n";
    assert_eq!(warnings(text), []);
}

#[test]
fn duplicate_names_resolve_to_the_latest_earlier_stage() {
    let text = "FROM scratch AS a\nCOPY one /\nFROM scratch AS a\nCOPY two /\nFROM scratch\nCOPY --from=a / /\n";
    let c = compile(text, &common::opts()).unwrap();
    let dump = buildd_proto::dump::to_text(&c.definition);
    assert!(dump.contains("\"/two\""), "{dump}");
    assert!(!dump.contains("\"/one\""), "{dump}");
}

#[test]
fn check_directive_skips_and_errors() {
    let text = "# check=skip=JSONArgsRecommended,StageNameCasing\nFROM scratch AS Build\nCMD x\nMAINTAINER me\n";
    let rules: Vec<String> = warnings(text).into_iter().map(|w| w.0).collect();
    assert_eq!(rules, ["MaintainerDeprecated"]);
    assert_eq!(warnings("# check=skip=all\nFROM scratch AS B\nCMD x\n"), []);

    let e = compile(
        "# check=error=true\nFROM scratch AS B\nCMD x\n",
        &common::opts(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile:2:1: lint violation found for rules: JSONArgsRecommended, StageNameCasing"
    );
    assert!(
        compile(
            "# check=error=true\nFROM scratch\nCMD [\"x\"]\n",
            &common::opts()
        )
        .is_ok()
    );
    let e = compile("# check=error=yes\nFROM scratch\n", &common::opts()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile:1:1: invalid check directive error=\"yes\", expected true or false"
    );
}

#[test]
fn json_args_recommended_not_with_a_custom_shell() {
    let fired = |text: &str| {
        warnings(text)
            .iter()
            .filter(|(rule, _, _)| rule == "JSONArgsRecommended")
            .map(|(_, line, _)| *line)
            .collect::<Vec<_>>()
    };
    // Before the SHELL the default shell applies; after it, no warning.
    assert_eq!(
        fired("FROM scratch\nENTRYPOINT run\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\n"),
        [2]
    );
    // A SHELL of the base stage is inherited.
    assert_eq!(
        fired("FROM scratch AS base\nSHELL [\"pwsh\", \"-c\"]\nFROM base\nCMD echo hi\n"),
        Vec::<u32>::new()
    );
}

#[test]
fn secrets_follow_buildkit_tokens() {
    let rules = |text: &str| -> Vec<u32> {
        warnings(text)
            .iter()
            .filter(|(rule, _, _)| rule == "SecretsUsedInArgOrEnv")
            .map(|(_, line, _)| *line)
            .collect()
    };
    // Deny tokens as whole `_`-separated parts, one warning per key; `public`
    // allows.
    let text = "FROM scratch\nARG AWS_SECRET_ACCESS_KEY\nARG PUBLIC_KEY\nENV SSH_AUTH_SOCK=/s DB_PASSWD=x\nARG KEYS TOKENIZER\nENV credential=1\n";
    assert_eq!(rules(text), [2, 4, 4, 6]);
}
