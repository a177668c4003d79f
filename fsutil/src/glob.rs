//! Shell-style patterns with Go's `filepath.Match` semantics, which Docker uses for
//! COPY sources and (per path segment) for .dockerignore.
//!
//! `*` matches any run of non-`/` characters, `?` one non-`/` character, `[...]` a
//! class (`[^...]` negated, `a-z` ranges; as in Go, `[!...]` is not a negation), and `\`
//! escapes the next character.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("syntax error in pattern {0:?}")]
    BadPattern(String),
}

/// Whether `s` contains any character that `matches` treats specially.
pub fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Whether the whole of `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> Result<bool, GlobError> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let bad = || GlobError::BadPattern(pattern.to_owned());
    // Validate the whole pattern first so a bad pattern fails whatever the name is.
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(bad());
                }
                i += 2;
            }
            '[' => i = class_end(&p, i).ok_or_else(bad)?,
            _ => i += 1,
        }
    }
    Ok(match_from(&p, 0, &n, 0))
}

// Backtracking over the last `*` keeps this linear in practice.
fn match_from(p: &[char], mut pi: usize, n: &[char], mut ni: usize) -> bool {
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() && n[ni] != '/' => {
                    let end = class_end(p, pi).expect("validated");
                    if class_matches(&p[pi + 1..end - 1], n[ni]) {
                        pi = end;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if ni < n.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if c != '?' && c != '[' && c != '\\' && ni < n.len() && c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return true;
        }
        // Mismatch: let the last `*` swallow one more character, never a `/`.
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
}

/// Index just past the `]` closing the class that starts at `p[start] == '['`, or
/// None when the class is malformed (Go's rules: no empty class, no bare `-` or `]`
/// where a character is expected).
fn class_end(p: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if i < p.len() && p[i] == '^' {
        i += 1;
    }
    let mut nrange = 0;
    // One escaped-or-plain character, rejecting the ones Go rejects.
    let esc = |i: &mut usize| -> Option<()> {
        match p.get(*i)? {
            '-' | ']' => None,
            '\\' => {
                p.get(*i + 1)?;
                *i += 2;
                Some(())
            }
            _ => {
                *i += 1;
                Some(())
            }
        }
    };
    loop {
        if p.get(i) == Some(&']') && nrange > 0 {
            return Some(i + 1);
        }
        esc(&mut i)?;
        if p.get(i) == Some(&'-') {
            i += 1;
            esc(&mut i)?;
        }
        nrange += 1;
    }
}

fn class_matches(class: &[char], c: char) -> bool {
    let (negated, class) = match class.first() {
        Some('^') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut i = 0;
    let mut hit = false;
    let unescape = |i: &mut usize| {
        if class[*i] == '\\' {
            *i += 1;
        }
        let ch = class[*i];
        *i += 1;
        ch
    };
    while i < class.len() {
        let lo = unescape(&mut i);
        let hi = if i + 1 < class.len() && class[i] == '-' {
            i += 1;
            unescape(&mut i)
        } else {
            lo
        };
        if lo <= c && c <= hi {
            hit = true;
        }
    }
    hit != negated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match_table() {
        // A selection of Go's own filepath.Match cases.
        let cases = [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
            // Go has no `[!...]` negation: `!` is an ordinary class member.
            ("[!a]", "!", true),
            ("[!a]", "a", true),
            ("[!a]", "b", false),
            ("[!]", "!", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(matches(p, n), Ok(want), "pattern {p:?} name {n:?}");
        }
    }

    #[test]
    fn bad_patterns_are_errors() {
        for p in [
            "[]a]", "[-]", "[x-]", "[", "[^", "[^bc", "a[", "\\", "[a-b-c]", "[]",
        ] {
            // Go reports some of these only when reached; we report them always.
            let r = matches(p, "a");
            assert!(r.is_err(), "{p:?} gave {r:?}");
        }
    }
}
