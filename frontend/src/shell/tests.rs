use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn expands_variables_and_quotes() {
    let e = env(&[("A", "x y"), ("E", "")]);
    let lx = Lexer::new('\\');
    let w = |s: &str| lx.process_word(s, &e).unwrap();
    assert_eq!(w("$A-${A}"), "x y-x y");
    assert_eq!(w("${E:-d}${E-d}${U-u}"), "du");
    assert_eq!(w("${A:+p}${E:+p}${E+q}"), "pq");
    assert_eq!(w(r#"'$A' "$A" \$A"#), "$A x y $A");
    assert_eq!(lx.process_words("$A 'b c'", &e).unwrap(), ["x", "y", "b c"]);
    assert!(lx.process_word("\"open", &e).is_err());
    let t = lx.process_word_tracked("$U ${V:-x} $A", &e).unwrap();
    assert_eq!(t.unmatched.into_iter().collect::<Vec<_>>(), ["U"]);
    assert_eq!(
        Lexer::new('`').process_word("a`$A\\b", &e).unwrap(),
        "a$A\\b"
    );
}

/// Pattern modifiers, with the results bash gives.
#[test]
fn pattern_modifiers_match_bash() {
    let e = env(&[
        ("F", "/usr/local/lib/app.tar.gz"),
        ("V", "a*b1c2"),
        ("P", "/usr"),
    ]);
    let lx = Lexer::new('\\');
    let cases = [
        ("${F#*/}", "usr/local/lib/app.tar.gz"),
        ("${F##*/}", "app.tar.gz"),
        ("${F%/*}", "/usr/local/lib"),
        ("${F%%/*}", ""),
        ("${F%.*}", "/usr/local/lib/app.tar"),
        ("${F%%.*}", "/usr/local/lib/app"),
        ("${F#/usr/}", "local/lib/app.tar.gz"),
        ("${F#nomatch}", "/usr/local/lib/app.tar.gz"),
        ("${F/o/0}", "/usr/l0cal/lib/app.tar.gz"),
        ("${F//o/0}", "/usr/l0cal/lib/app.tar.gz"),
        ("${F//[a-c]/X}", "/usr/loXXl/liX/Xpp.tXr.gz"),
        ("${F/*lib/L}", "L/app.tar.gz"),
        ("${U#*}", ""),
        ("${F/lib}", "/usr/local//app.tar.gz"),
        ("${F//\\//:}", ":usr:local:lib:app.tar.gz"),
        ("${F#\"/usr\"}", "/local/lib/app.tar.gz"),
        ("${F%'.tar.gz'}", "/usr/local/lib/app"),
        ("${V//\\*/star}", "astarb1c2"),
        ("${V##*[0-9]}", ""),
        ("${F#$P}", "/local/lib/app.tar.gz"),
        ("${F/local/$P}", "/usr//usr/lib/app.tar.gz"),
    ];
    for (word, want) in cases {
        assert_eq!(lx.process_word(word, &e).unwrap(), want, "{word}");
    }
    assert_eq!(
        lx.process_word_tracked("${U%%x}", &e)
            .unwrap()
            .unmatched
            .len(),
        1
    );
    for bad in ["${F#", "${F/a", "${F/a/b", "${F%%x"] {
        assert_eq!(
            lx.process_word(bad, &e).unwrap_err().reason,
            "syntax error: missing '}'",
            "{bad}"
        );
    }
}

/// The data, or `None` (said why through `buildd_testkit`) when it is absent.
#[track_caller]
fn conformance_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/buildkit/shell");
    buildd_testkit::require_dir(
        &dir,
        "conformance",
        "the conformance data is not part of a user's clone",
    )
    .then_some(dir)
}

/// BuildKit's envVarTest, every Linux line.
#[test]
fn buildkit_env_var_cases() {
    let Some(dir) = conformance_dir() else { return };
    let text = std::fs::read_to_string(dir.join("envVarTest")).unwrap();
    let e = env(&[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]);
    let lx = Lexer::new('\\');
    let (mut pass, mut failures) = (0, Vec::new());
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.splitn(3, '|').map(str::trim).collect();
        if parts.len() != 3 || !(parts[0].contains('A') || parts[0].contains('U')) {
            continue;
        }
        let got = lx.process_word(parts[1], &e);
        let ok = match (&got, parts[2]) {
            (Err(_), "error") => true,
            (Ok(v), want) => v == want,
            _ => false,
        };
        if ok {
            pass += 1;
        } else {
            failures.push(format!("{line} => {got:?}"));
        }
    }
    eprintln!("envVarTest: {pass} pass");
    assert!(pass > 100, "too few envVarTest lines were read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn buildkit_words_cases() {
    let Some(dir) = conformance_dir() else { return };
    let text = std::fs::read_to_string(dir.join("wordsTest")).unwrap();
    let mut e = BTreeMap::new();
    let lx = Lexer::new('\\');
    let mut failures = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(kv) = line.strip_prefix("ENV ") {
            let (k, v) = kv.split_once('=').unwrap();
            e.insert(k.to_owned(), v.to_owned());
            continue;
        }
        // As BuildKit's test reads it: input trimmed, expectation left-trimmed.
        let (input, want) = line.split_once('|').unwrap();
        let (input, want) = (input.trim(), want.trim_start());
        let got = lx.process_words(input, &e);
        let ok = match (&got, want) {
            (Err(_), "error") => true,
            (Ok(words), want) => words.join(",") == want,
            _ => false,
        };
        if !ok {
            failures.push(format!("{line} => {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Words with nothing to expand take a shortcut; it must agree with the
/// state machine, whatever the escape character.
#[test]
fn literal_words_are_unchanged() {
    let e = env(&[("A", "x")]);
    for escape in ['\\', '`'] {
        let lx = Lexer::new(escape);
        for word in ["plain/path", "", "ünïcödé wörds", "a\\b", "a`b", "${A}"] {
            let fast = lx.process_word_tracked(word, &e).unwrap();
            let slow = lex::ShellWord::new(word, &e, escape).run(word).unwrap().0;
            assert_eq!(fast.value, slow, "{word:?} with escape {escape:?}");
        }
        assert_eq!(lx.process_heredoc("no vars\n", &e).unwrap(), "no vars\n");
    }
}
