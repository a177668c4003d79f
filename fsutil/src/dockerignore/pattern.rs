//! One compiled .dockerignore pattern, matching what moby/patternmatcher does: a
//! pattern is classified as an exact, prefix (`dir/**`), suffix (`**/name`) or
//! general match, and a general one behaves like the regular expression Docker
//! builds from it (`*` = `[^/]*`, `?` = `[^/]`, `**/` = `(.*/)?`, trailing `**` =
//! `.*`, classes copied verbatim). The regex is simulated with a small dynamic
//! program instead of pulling in a regex engine.

/// One element of a general pattern.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: any run of non-`/` characters.
    Star,
    /// `?`: one non-`/` character.
    One,
    /// `[...]`: unlike filepath.Match, Docker's regex class may match `/`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` followed by more pattern: empty, or anything ending in `/`.
    DirStar,
    /// `**` at the end: anything.
    Rest,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    Prefix(String),
    Suffix(String),
    General(Vec<Tok>),
}

#[derive(Debug, Clone)]
pub(super) struct Pattern {
    /// The cleaned pattern without its `!`.
    pub(super) text: String,
    pub(super) exclusion: bool,
    kind: Kind,
}

impl Pattern {
    /// Compiles `text`, which the caller has already validated with
    /// `glob::matches` (as Docker does with filepath.Match).
    pub(super) fn compile(text: String, exclusion: bool) -> Self {
        let chars: Vec<char> = text.chars().collect();
        let mut toks = Vec::new();
        // Docker's detection: exact until a meta character appears; a leading `**`
        // makes it a suffix match and a trailing one on an exact prefix a prefix
        // match, unless later metas force the general form.
        #[derive(PartialEq)]
        enum Detected {
            Exact,
            Prefix,
            Suffix,
            General,
        }
        let mut detected = Detected::Exact;
        let mut i = 0;
        let mut first = true;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i == chars.len() {
                        if detected == Detected::Exact {
                            detected = Detected::Prefix;
                        } else {
                            toks.push(Tok::Rest);
                            detected = Detected::General;
                        }
                    } else {
                        toks.push(Tok::DirStar);
                        detected = Detected::General;
                    }
                    if first {
                        detected = Detected::Suffix;
                    }
                }
                '*' => {
                    toks.push(Tok::Star);
                    detected = Detected::General;
                }
                '?' => {
                    toks.push(Tok::One);
                    detected = Detected::General;
                }
                '\\' if i < chars.len() => {
                    // Go's regexp would read `\d` as a digit class; we keep
                    // filepath.Match's reading (an escaped literal), which is what
                    // every .dockerignore author means.
                    toks.push(Tok::Lit(chars[i]));
                    i += 1;
                    detected = Detected::General;
                }
                '[' => {
                    let (tok, end) = parse_class(&chars, i);
                    toks.push(tok);
                    i = end;
                    detected = Detected::General;
                }
                ']' => {
                    toks.push(Tok::Lit(']'));
                    detected = Detected::General;
                }
                c => toks.push(Tok::Lit(c)),
            }
            first = false;
        }
        let kind = match detected {
            Detected::Exact => Kind::Exact,
            Detected::Prefix => Kind::Prefix(text[..text.len() - 2].to_owned()),
            Detected::Suffix => Kind::Suffix(text[2..].to_owned()),
            Detected::General => Kind::General(toks),
        };
        Pattern {
            text,
            exclusion,
            kind,
        }
    }

    /// Whether the pattern matches exactly `path` (no parent logic).
    pub(super) fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                // `**/foo` also matches `foo` itself.
                path.ends_with(s.as_str()) || s.strip_prefix('/') == Some(path)
            }
            Kind::General(toks) => {
                let chars: Vec<char> = path.chars().collect();
                matches_tokens(toks, &chars)
            }
        }
    }
}

/// Parses the class whose `[` is just before `chars[start]`; returns the token and
/// the index just past its `]`. The syntax was validated beforehand.
fn parse_class(chars: &[char], start: usize) -> (Tok, usize) {
    let mut i = start;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let one = |i: &mut usize| {
        if chars[*i] == '\\' {
            *i += 1;
        }
        let c = chars[*i];
        *i += 1;
        c
    };
    loop {
        if chars[i] == ']' && !ranges.is_empty() {
            return (Tok::Class { negated, ranges }, i + 1);
        }
        let lo = one(&mut i);
        let hi = if chars[i] == '-' {
            i += 1;
            one(&mut i)
        } else {
            lo
        };
        ranges.push((lo, hi));
    }
}

/// Whether `toks` match all of `s`, by dynamic programming from the end: `next[j]`
/// tells whether the tokens after the current one match `s[j..]`. Linear in the
/// pattern times the path, so no pattern can make matching blow up.
fn matches_tokens(toks: &[Tok], s: &[char]) -> bool {
    let n = s.len();
    let mut next = vec![false; n + 1];
    next[n] = true;
    let mut cur = vec![false; n + 1];
    for tok in toks.iter().rev() {
        match tok {
            Tok::Lit(_) | Tok::One | Tok::Class { .. } => {
                cur[n] = false;
                for j in 0..n {
                    cur[j] = next[j + 1] && single_matches(tok, s[j]);
                }
            }
            Tok::Star => {
                cur[n] = next[n];
                for j in (0..n).rev() {
                    cur[j] = next[j] || (s[j] != '/' && cur[j + 1]);
                }
            }
            // Go's `.` does not match a newline, and Docker's `.*` inherits that.
            Tok::Rest => {
                cur[n] = next[n];
                for j in (0..n).rev() {
                    cur[j] = next[j] || (s[j] != '\n' && cur[j + 1]);
                }
            }
            Tok::DirStar => {
                // `(.*/)?`: either nothing, or a newline-free run ending in `/`.
                let mut ends_in_slash = false;
                cur[n] = next[n];
                for j in (0..n).rev() {
                    if s[j] == '\n' {
                        ends_in_slash = false;
                    } else if s[j] == '/' && next[j + 1] {
                        ends_in_slash = true;
                    }
                    cur[j] = next[j] || ends_in_slash;
                }
            }
        }
        std::mem::swap(&mut next, &mut cur);
    }
    next[0]
}

fn single_matches(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Lit(l) => *l == c,
        Tok::One => c != '/',
        Tok::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
        _ => unreachable!("only single-character tokens"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_name(p: &str) -> &'static str {
        match Pattern::compile(p.to_owned(), false).kind {
            Kind::Exact => "exact",
            Kind::Prefix(_) => "prefix",
            Kind::Suffix(_) => "suffix",
            Kind::General(_) => "general",
        }
    }

    #[test]
    fn classifies_like_docker() {
        for (p, want) in [
            ("abc.def", "exact"),
            ("*", "general"),
            ("**", "suffix"),
            ("**/**", "general"),
            ("dir/**", "prefix"),
            ("**/dir", "suffix"),
            ("**file", "suffix"),
            ("**/dir2/*", "general"),
            ("a[b-d]e", "general"),
            ("a\\*b", "general"),
        ] {
            assert_eq!(kind_name(p), want, "{p:?}");
        }
    }

    #[test]
    fn newline_is_not_crossed_by_double_star() {
        let p = Pattern::compile("**/*.txt".to_owned(), false);
        assert!(p.matches("a/b.txt"));
        assert!(!p.matches("a\nb/c.txt"));
        // `*` is `[^/]*`, which does match a newline.
        assert!(p.matches("a\nb.txt"));
    }

    #[test]
    fn negated_class_may_match_a_slash() {
        let p = Pattern::compile("a[^x]b".to_owned(), false);
        assert!(p.matches("a/b"));
        assert!(!p.matches("axb"));
    }
}
