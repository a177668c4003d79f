use super::*;

fn pm(patterns: &[&str]) -> PatternMatcher {
    let owned: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
    PatternMatcher::new(&owned).unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
}

#[test]
fn parse_follows_readall() {
    let text = [
        "\u{feff}# comment",
        "",
        "   \t",
        "node_modules\r",
        " # not a comment: only column one counts",
        "/abs/path",
        "./a//b/../c/",
        "!  keep.txt  ",
        "!/abs/keep",
        "/",
        "!",
        "*.go",
    ]
    .join("\n");
    assert_eq!(
        parse(&text),
        [
            "node_modules",
            "# not a comment: only column one counts",
            "abs/path",
            "a/c",
            "!keep.txt",
            "!abs/keep",
            "/",
            "!",
            "*.go",
        ]
    );
}

#[test]
fn lone_exclamation_and_bad_syntax_are_errors() {
    let e = PatternMatcher::new(&["!".to_owned()]).unwrap_err();
    assert_eq!(e, PatternError::LoneExclamation);
    for bad in ["[", "a[", "[^bc", "\\", "[a-b-c]", "[-]", "[x-]"] {
        assert!(
            PatternMatcher::new(&[bad.to_owned()]).is_err(),
            "{bad:?} should be rejected"
        );
    }
}

#[test]
fn empty_patterns_are_skipped_and_exclusions_reported() {
    let m = pm(&["docs", "", "  "]);
    assert!(!m.exclusions());
    assert!(!m.is_empty());
    assert!(pm(&["docs", "  !docs/README.md  "]).exclusions());
    assert!(pm(&[]).is_empty());
}

/// moby/patternmatcher's TestMatches table, checked through MatchesOrParentMatches
/// (`true` = exact or via a parent, `false` = no match).
#[test]
fn moby_single_pattern_table() {
    let cases = [
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**/", "file/", true),
        ("**", "/", true),
        ("**/", "/", true),
        ("**", "dir/file", true),
        ("**/", "dir/file", true),
        ("**", "dir/file/", true),
        ("**/", "dir/file/", true),
        ("**/**", "dir/file", true),
        ("**/**", "dir/file/", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/file/", true),
        ("dir/**", "dir/dir2/file", true),
        ("dir/**", "dir/dir2/file/", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/*", "dir/dir2/file/", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file/", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def", true),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        ("a\\\\", "a\\", true),
        ("a\\*b", "a*b", true),
        ("a\\*b", "axb", false),
    ];
    for (pattern, path, want) in cases {
        assert_eq!(
            pm(&[pattern]).matches(path),
            want,
            "pattern {pattern:?} path {path:?}"
        );
    }
}

/// Go's filepath.Match cases as moby runs them through its matcher: note how a
/// parent directory match (`a*` on `ab/c`) counts.
#[test]
fn moby_filepath_match_table() {
    let cases = [
        ("abc", "abc", true),
        ("*", "abc", true),
        ("*c", "abc", true),
        ("a*", "a", true),
        ("a*", "ab/c", true),
        ("a*/b", "abc/b", true),
        ("a*/b", "a/c/b", false),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
        ("a*b?c*x", "abxbbxdbxebxczzx", true),
        ("a*b?c*x", "abxbbxdbxebxczzy", false),
        ("ab[^c]", "abc", false),
        ("ab[^e-g]", "abc", true),
        ("a?b", "a☺b", true),
        ("a[^a]b", "a☺b", true),
        ("a???b", "a☺b", false),
        ("[a-ζ]*", "α", true),
        ("*[a-ζ]", "A", false),
        ("a?b", "a/b", false),
        ("a*b", "a/b", false),
        ("[\\]a]", "]", true),
        ("[x\\-]", "-", true),
        ("[\\-x]", "a", false),
        ("*x", "xxx", true),
    ];
    for (pattern, path, want) in cases {
        assert_eq!(
            pm(&[pattern]).matches(path),
            want,
            "pattern {pattern:?} path {path:?}"
        );
    }
}

#[test]
fn later_patterns_override_earlier_ones() {
    // moby's multi-pattern cases.
    assert!(!pm(&["**", "!util/docker/web"]).matches("util/docker/web/foo"));
    assert!(pm(&["**", "!util/docker/web", "util/docker/web/foo"]).matches("util/docker/web/foo"));
    assert!(!pm(&["**", "!dist/*.whl"]).matches("dist/x-1.0-py3-none-any.whl"));
    // An exception before the pattern it would except does nothing.
    assert!(pm(&["!fileutils.go", "*.go"]).matches("fileutils.go"));
    assert!(!pm(&["*.go", "!fileutils.go"]).matches("fileutils.go"));
    // Re-excluding after an exception.
    let m = pm(&["*.md", "!README*.md", "README-secret.md"]);
    assert!(m.matches("CHANGES.md"));
    assert!(!m.matches("README.md"));
    assert!(m.matches("README-secret.md"));
}

#[test]
fn a_directory_pattern_covers_everything_below() {
    for p in ["docs", "docs/", "/docs", "docs/."] {
        let m = PatternMatcher::new(&parse(p)).unwrap();
        assert!(m.matches("docs"), "{p:?}");
        assert!(m.matches("docs/README.md"), "{p:?}");
        assert!(m.matches("docs/a/b/c"), "{p:?}");
        assert!(!m.matches("docsx"), "{p:?}");
        assert!(
            !m.matches("x/docs"),
            "{p:?}: patterns are anchored at the root"
        );
    }
    // A file inside an excluded directory can be excepted.
    let m = pm(&["docs", "!docs/README.md"]);
    assert!(!m.matches("docs/README.md"));
    assert!(m.matches("docs/other.md"));
    assert!(pm(&["docs/*", "!docs/README.md"]).matches("docs/x"));
}

#[test]
fn single_star_stays_in_its_directory() {
    let m = pm(&["*.go"]);
    assert!(m.matches("main.go"));
    assert!(!m.matches("cmd/main.go"));
    let m = pm(&["*/*.go"]);
    assert!(m.matches("cmd/main.go"));
    assert!(!m.matches("main.go"));
    assert!(!m.matches("a/b/main.go"));
}

#[test]
fn double_star_at_start_middle_and_end() {
    let start = pm(&["**/*.go"]);
    assert!(start.matches("main.go"));
    assert!(start.matches("a/b/c/main.go"));
    assert!(!start.matches("a/main.gox"));

    let middle = pm(&["a/**/z"]);
    assert!(middle.matches("a/z"), "** matches zero directories");
    assert!(middle.matches("a/b/z"));
    assert!(
        middle.matches("a/b/c/z/file"),
        "and a parent match covers children"
    );
    assert!(!middle.matches("b/a/z"));
    assert!(!middle.matches("a/bz"));

    let end = pm(&["a/**"]);
    assert!(!end.matches("a"));
    assert!(end.matches("a/b"));
    assert!(end.matches("a/b/c"));

    let all = pm(&["**"]);
    assert!(all.matches("anything/at/all"));
    assert!(!all.matches(""), "the root itself is never excluded");
    assert!(!all.matches("."));
}

#[test]
fn unicode_and_special_characters() {
    let m = pm(&["dir with space/*.txt", "ünï/**", "new\nline"]);
    assert!(m.matches("dir with space/a b.txt"));
    assert!(m.matches("ünï/x/y"));
    assert!(m.matches("new\nline"));
    assert!(!m.matches("dir with space/sub/a.txt"));
}

#[test]
fn can_skip_dir_without_exceptions() {
    let m = pm(&["node_modules", "**/target"]);
    assert!(m.can_skip_dir("node_modules"));
    assert!(m.can_skip_dir("a/b/target"));
    assert!(!m.can_skip_dir("src"), "an unmatched dir is never skipped");
}

#[test]
fn can_skip_dir_with_literal_exceptions() {
    let m = pm(&["vendor", "!vendor/keep/this.txt", "build", "!build/**"]);
    assert!(!m.can_skip_dir("vendor"), "an exception lies below");
    assert!(!m.can_skip_dir("vendor/keep"));
    assert!(m.can_skip_dir("vendor/other"));
    // `build/**` is a literal once its trailing glob is trimmed; `build` itself
    // matched but the exception reaches below it.
    assert!(!m.can_skip_dir("build"));
    assert!(!m.matches("build/x"));
}

#[test]
fn can_skip_dir_never_with_wildcard_exceptions() {
    let m = pm(&["vendor", "!**/keep.txt"]);
    assert!(m.matches("vendor"));
    assert!(!m.can_skip_dir("vendor"));
    assert!(!m.matches("vendor/a/keep.txt"));
    assert!(m.matches("vendor/a/other.txt"));
}

#[test]
fn may_include_below_for_include_lists() {
    let m = pm(&["src/lib", "docs/*"]);
    assert!(m.may_include_below("src"));
    assert!(!m.may_include_below("tests"));
    assert!(m.may_include_below("docs"), "docs/* trims to docs");
    assert!(
        !m.may_include_below("src/lib/x"),
        "only strictly below a named path"
    );
    assert!(pm(&["**/*.rs"]).may_include_below("anything"));
}
