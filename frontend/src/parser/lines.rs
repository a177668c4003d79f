//! Physical lines to logical lines (continuations, comments, directives) and
//! logical lines to [`Node`]s with spans.

use super::directives::DirectiveParser;
use super::heredoc;
use super::line_parsers::{self, Kind};
use super::split::split_command;
use super::{Ast, Flag, Node, Position, Span};
use crate::error::{Error, Warning};

/// Where a piece of a logical line came from.
struct Segment {
    offset: usize,
    line: u32,
    column: u32,
}

/// A logical line and the map from its byte offsets back to the source.
struct Logical {
    text: String,
    segments: Vec<Segment>,
    end: Position,
}

impl Logical {
    fn push(&mut self, piece: &str, line: u32, column: u32) {
        self.segments.push(Segment {
            offset: self.text.len(),
            line,
            column,
        });
        self.text.push_str(piece);
    }

    fn position(&self, offset: usize) -> Position {
        let seg = self
            .segments
            .iter()
            .rev()
            .find(|s| s.offset <= offset)
            .unwrap_or(&self.segments[0]);
        let chars = self.text[seg.offset..offset.min(self.text.len())]
            .chars()
            .count();
        Position {
            line: seg.line,
            column: seg.column + chars as u32,
        }
    }

    /// The span of bytes `start..end` (exclusive) of the logical line.
    fn span(&self, start: usize, end: usize) -> Span {
        let last = self.text[start..end]
            .char_indices()
            .last()
            .map_or(start, |(i, _)| start + i);
        Span {
            start: self.position(start),
            end: self.position(last),
        }
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// BuildKit's continuation regex `([^E])E[ \t]*$|^E[ \t]*$`: a trailing escape
/// character not itself escaped. Returns the line without it and whether the
/// logical line ends here.
pub(super) fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

/// Parses like BuildKit but reports the first problem only.
pub(crate) fn parse(text: &str, file: &str) -> Result<Ast, Error> {
    let (ast, mut errors) = parse_all(text, file);
    if errors.is_empty() {
        Ok(ast)
    } else {
        Err(errors.swap_remove(0))
    }
}

/// Parses the whole file, recovering at instruction boundaries: an instruction
/// that does not parse is reported and left out of the tree, and parsing goes
/// on with the next one. Errors come in file order.
pub(crate) fn parse_all(text: &str, file: &str) -> (Ast, Vec<Error>) {
    let mut errors = Vec::new();
    let err = |line: u32, column: u32, message: String| Error {
        file: file.to_owned(),
        line,
        column,
        instruction: None,
        message,
    };
    let mut directive_parser = DirectiveParser::default();
    let mut directives = Vec::new();
    let mut escape = '\\';
    // A line holds at most one instruction.
    let mut nodes = Vec::with_capacity(text.bytes().filter(|&b| b == b'\n').count() + 1);
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut lines = text.split_inclusive('\n');
    let mut current = 0u32;
    let mut logical = Logical {
        text: String::new(),
        segments: Vec::new(),
        end: Position::default(),
    };

    while let Some(raw) = lines.next() {
        let raw = if current == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        };
        let line = trim_newline(raw);
        let stripped = line.trim_start();
        if let Some(c) = stripped.strip_prefix('#') {
            let c = c.trim();
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c.to_owned());
            }
        }
        // A repeated directive is reported; the line is a comment anyway.
        let directive = directive_parser.parse_line(stripped).unwrap_or_else(|m| {
            errors.push(err(current + 1, 1, m));
            None
        });
        current += 1;
        if let Some(d) = directive {
            comments.pop();
            if d.name == "escape" {
                // An invalid escape token is reported and the default kept.
                match d.value.as_str() {
                    "\\" => escape = '\\',
                    "`" => escape = '`',
                    v => errors.push(err(
                        current,
                        1,
                        format!("invalid escape token {v:?}, must be ` or \\"),
                    )),
                }
            }
            directives.push(d);
        }
        let first = if is_comment(stripped) { "" } else { stripped };
        let column = 1 + line[..line.len() - stripped.len()].chars().count() as u32;
        let start_line = current;
        let (piece, mut end_of_line) = trim_continuation(first, escape);
        if end_of_line && piece.is_empty() {
            continue;
        }
        // Reused from line to line: most lines need no new allocation.
        logical.text.clear();
        logical.segments.clear();
        logical.push(piece, current, column);
        let mut last = Position {
            line: current,
            column: column + piece.chars().count().saturating_sub(1) as u32,
        };
        let mut empty_continuation = false;
        while !end_of_line {
            let Some(raw) = lines.next() else { break };
            let line = trim_newline(raw);
            if let Err(m) = directive_parser.parse_line(line) {
                errors.push(err(current + 1, 1, m));
            }
            current += 1;
            if is_comment(line) {
                continue;
            }
            if line.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (piece, eol) = trim_continuation(line, escape);
            end_of_line = eol;
            logical.push(piece, current, 1);
            last = Position {
                line: current,
                column: line.chars().count() as u32,
            };
        }
        logical.end = last;
        if empty_continuation {
            warnings.push(Warning {
                rule: "NoEmptyContinuation".to_owned(),
                line: start_line,
                message: "Empty continuation line".to_owned(),
            });
        }
        let mut node = match node_from_line(&logical, 0, escape) {
            Ok(node) => node,
            Err(m) => {
                // Only RUN, COPY and ADD take heredocs, and their shell form
                // always parses: skipping the line skips the instruction.
                let p = logical.position(0);
                errors.push(err(start_line, p.column, m));
                comments.clear();
                continue;
            }
        };
        node.span.start.line = start_line;
        node.span.end = logical.end;
        node.comments = std::mem::take(&mut comments);
        if heredoc::can_contain(&node) && logical.text.contains("<<") {
            let markers = heredoc::markers(&logical.text);
            let heredoc_count = markers.len();
            node.heredocs.reserve_exact(heredoc_count);
            for (offset, mut doc) in markers {
                let marker = logical.position(offset);
                let mut terminated = false;
                for raw in lines.by_ref() {
                    current += 1;
                    if heredoc::is_terminator(raw, &doc) {
                        terminated = true;
                        node.span.end = Position {
                            line: current,
                            column: trim_newline(raw).chars().count().max(1) as u32,
                        };
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    // The body ran to the end of the file: nothing is left
                    // to parse.
                    errors.push(err(
                        marker.line,
                        marker.column,
                        format!(
                            "unterminated heredoc {:?}: no line holds only its delimiter",
                            doc.name
                        ),
                    ));
                    break;
                }
                node.heredocs.push(doc);
            }
            if node.heredocs.len() < heredoc_count {
                continue;
            }
        }
        nodes.push(node);
    }
    if nodes.is_empty() && errors.is_empty() {
        errors.push(err(
            current.max(1),
            1,
            "file with no instructions".to_owned(),
        ));
    }
    let ast = Ast {
        directives,
        escape,
        nodes,
        warnings,
    };
    (ast, errors)
}

/// Builds the node for the logical line's text from byte `from` on.
fn node_from_line(logical: &Logical, from: usize, escape: char) -> Result<Node, String> {
    let line = &logical.text[from..];
    let split = split_command(line)?;
    let kind = line_parsers::kind_of(split.keyword);
    let parsed = line_parsers::parse(kind, split.args, escape)?;
    let sub = match kind {
        Kind::SubCommand if !split.args.is_empty() => Some(Box::new(node_from_line(
            logical,
            from + split.args_start,
            escape,
        )?)),
        _ => None,
    };
    let flags = split
        .flags
        .into_iter()
        .map(|f| Flag {
            span: logical.span(from + f.start, from + f.end),
            text: f.text,
        })
        .collect();
    let start = from + split.keyword_start;
    Ok(Node {
        keyword: split.keyword.to_owned(),
        flags,
        args: parsed.args,
        json: parsed.json,
        sub,
        // Only what the continuation rule ignores (spaces, tabs, a CR) is trimmed
        // from the end: other whitespace after a final escape character (a vertical
        // tab, say) means the line does not continue, and printing must keep it.
        original: line
            .trim_start()
            .trim_end_matches([' ', '\t', '\r'])
            .to_owned(),
        span: logical.span(start, logical.text.len()),
        comments: Vec::new(),
        heredocs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_regex() {
        assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
        assert_eq!(trim_continuation("a\\  \t", '\\'), ("a", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a\\\\", '\\'), ("a\\\\", true));
        assert_eq!(trim_continuation("a`", '`'), ("a", false));
        assert_eq!(trim_continuation("a\\", '`'), ("a\\", true));
    }

    #[test]
    fn spans_cover_continuations_and_flags() {
        let ast = parse(
            "FROM scratch\n\n  COPY --from=a \\\n  x \\\n# c\n\n  /y\n",
            "Dockerfile",
        )
        .unwrap();
        let copy = &ast.nodes[1];
        assert_eq!(copy.span.start, Position { line: 3, column: 3 });
        assert_eq!(copy.span.end, Position { line: 7, column: 4 });
        assert_eq!(copy.flags[0].span.start, Position { line: 3, column: 8 });
        assert_eq!(
            copy.flags[0].span.end,
            Position {
                line: 3,
                column: 15
            }
        );
        assert_eq!(copy.args, ["x", "/y"]);
        assert_eq!(ast.warnings.len(), 1);
    }

    #[test]
    fn heredoc_bodies() {
        let text = "FROM scratch\nRUN cat <<A <<-'B' \\\n  > /x\nhello $X\nA\n\tbye\n\tB\nCOPY <<C /c\n# not a comment\nC\n";
        let ast = parse(text, "Dockerfile").unwrap();
        assert_eq!(ast.nodes.len(), 3);
        let run = &ast.nodes[1];
        assert_eq!(run.args, ["cat <<A <<-'B'   > /x"]);
        let docs: Vec<_> = run
            .heredocs
            .iter()
            .map(|d| (d.name.as_str(), d.content.as_str(), d.expand, d.chomp))
            .collect();
        assert_eq!(
            docs,
            [
                ("A", "hello $X\n", true, false),
                ("B", "\tbye\n", false, true)
            ]
        );
        assert_eq!(run.heredocs[1].data(), "bye\n");
        assert_eq!((run.span.start.line, run.span.end.line), (2, 7));
        assert_eq!(ast.nodes[2].heredocs[0].content, "# not a comment\n");
        // Exec form and other instructions take no heredocs.
        let ast = parse("FROM scratch\nRUN [\"<<EOF\"]\nENV A=<<EOF\n", "Dockerfile").unwrap();
        assert!(ast.nodes.iter().all(|n| n.heredocs.is_empty()));
    }

    #[test]
    fn unterminated_heredoc_points_at_its_marker() {
        let e = parse("FROM scratch\nRUN cat <<EOF\nhi\nEO\n", "Dockerfile").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Dockerfile:2:9: unterminated heredoc \"EOF\": no line holds only its delimiter"
        );
        assert!(parse("FROM scratch\nRUN echo '<<'\n", "Dockerfile").is_ok());
    }
}
