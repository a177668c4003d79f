//! Heredocs (`<<EOF` ... `EOF`) in RUN, COPY and ADD, as BuildKit's parser
//! recognises them: the marker words of a logical line, each followed by a body
//! read from the next physical lines up to its terminator.

use super::Node;
use super::split::parse_words;

/// One here-document attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter with quotes removed, e.g. `EOF` for `<<"EOF"`.
    pub name: String,
    /// The body as written, every line with its newline; not chomped.
    pub content: String,
    /// False when the delimiter was quoted: the body is then taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are removed from the body lines and the terminator.
    pub chomp: bool,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    pub fd: u32,
}

impl Heredoc {
    /// The body with `<<-` applied.
    pub fn data(&self) -> String {
        if self.chomp {
            chomp(&self.content)
        } else {
            self.content.clone()
        }
    }
}

/// Removes the tabs at the start of every line.
pub fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// BuildKit's `ParseHeredoc`: whether `word` is a heredoc marker,
/// `^(\d*)<<(-?)([^<]*)$` with a delimiter that is one shell word.
pub fn parse_marker(word: &str) -> Option<Heredoc> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let (name, quoted) = unquote(rest)?;
    Some(Heredoc {
        name,
        content: String::new(),
        expand: !quoted,
        chomp,
        // Out-of-range descriptors are ignored like Go's failed ParseUint.
        fd: word[..digits].parse().unwrap_or(0),
    })
}

/// The delimiter with quotes and escapes removed (variables stay literal), and
/// whether any part of it was quoted; `None` unless it is exactly one word.
fn unquote(rest: &str) -> Option<(String, bool)> {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => out.push(c),
                    }
                }
            }
            '"' => {
                quoted = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$') => out.push(c),
                            c => {
                                out.push('\\');
                                out.push(c);
                            }
                        },
                        c => out.push(c),
                    }
                }
            }
            '\\' => {
                if let Some(c) = chars.next() {
                    out.push(c);
                }
            }
            c if c.is_whitespace() => return None,
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some((out, quoted))
}

/// The heredoc markers of a logical line, in order, with the byte offset of
/// each marker word in `line`.
pub(crate) fn markers(line: &str) -> Vec<(usize, Heredoc)> {
    let mut from = 0;
    let mut out = Vec::new();
    for word in parse_words(line, '\\') {
        let offset = line[from..].find(word).map_or(from, |i| from + i);
        from = offset + word.len();
        if let Some(doc) = parse_marker(word) {
            out.push((offset, doc));
        }
    }
    out
}

/// RUN, COPY and ADD in shell form take heredocs, also behind ONBUILD.
pub(crate) fn can_contain(node: &Node) -> bool {
    let target = node.sub.as_deref().unwrap_or(node);
    !target.json
        && ["run", "copy", "add"]
            .iter()
            .any(|k| target.keyword.eq_ignore_ascii_case(k))
}

/// Whether a body line ends the heredoc.
pub(crate) fn is_terminator(line: &str, doc: &Heredoc) -> bool {
    let line = line.trim_end_matches(['\r', '\n']);
    let line = if doc.chomp {
        line.trim_start_matches('\t')
    } else {
        line
    };
    line == doc.name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_like_buildkit() {
        let d = parse_marker("<<EOF").unwrap();
        assert_eq!(
            (d.name.as_str(), d.expand, d.chomp, d.fd),
            ("EOF", true, false, 0)
        );
        let d = parse_marker("3<<-'E O'").unwrap();
        assert_eq!(
            (d.name.as_str(), d.expand, d.chomp, d.fd),
            ("E O", false, true, 3)
        );
        let d = parse_marker("<<\"EOF\"").unwrap();
        assert_eq!((d.name.as_str(), d.expand), ("EOF", false));
        let d = parse_marker("<<E\\OF").unwrap();
        assert_eq!((d.name.as_str(), d.expand), ("EOF", true));
        assert!(parse_marker("<<").is_none());
        assert!(parse_marker("<<-").is_none());
        assert!(parse_marker("<<<EOF").is_none());
        assert!(parse_marker("a<<EOF").is_none());
        assert!(parse_marker("<<'EOF").is_none());
    }

    #[test]
    fn finds_several_markers_per_line() {
        let m = markers("RUN cat <<A 3<<-\"B\" > /x '<<C'");
        let names: Vec<_> = m.iter().map(|(o, d)| (*o, d.name.as_str())).collect();
        assert_eq!(names, [(8, "A"), (12, "B")]);
    }

    #[test]
    fn chomps_tabs() {
        assert_eq!(chomp("\t\ta\n \tb\n\tc"), "a\n \tb\nc");
    }
}
