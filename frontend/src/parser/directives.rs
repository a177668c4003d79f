//! Parser directives (`# escape=`, `# syntax=`, `# check=`) at the top of a Dockerfile.

/// One parser directive, as written at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased name: `escape`, `syntax` or `check`.
    pub name: String,
    pub value: String,
    pub line: u32,
}

const VALID: [&str; 3] = ["syntax", "escape", "check"];

/// Recognises directives until the first line that is not one; like BuildKit, a
/// blank line, an ordinary comment or an instruction ends the directive block.
#[derive(Debug, Default)]
pub(crate) struct DirectiveParser {
    line: u32,
    done: bool,
    seen: Vec<String>,
}

impl DirectiveParser {
    /// Feeds one physical line (newline and leading white space removed).
    pub(crate) fn parse_line(&mut self, line: &str) -> Result<Option<Directive>, String> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some((name, value)) = match_directive(line) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        if !VALID.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&name) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        self.seen.push(name.clone());
        Ok(Some(Directive {
            name,
            value: value.to_owned(),
            line: self.line,
        }))
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let value = rest.trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_directive_syntax() {
        assert_eq!(match_directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(match_directive("#escape = `  "), Some(("escape", "`")));
        assert_eq!(
            match_directive("# syntax = docker/dockerfile:1"),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(match_directive("# escape="), None);
        assert_eq!(match_directive("# just a comment"), None);
        assert_eq!(match_directive("FROM x"), None);
    }

    #[test]
    fn stops_at_first_non_directive_and_rejects_repeats() {
        let mut p = DirectiveParser::default();
        assert!(p.parse_line("# syntax=x").unwrap().is_some());
        assert!(p.parse_line("# syntax=y").is_err());
        let mut p = DirectiveParser::default();
        assert!(p.parse_line("").unwrap().is_none());
        assert!(p.parse_line("# escape=`").unwrap().is_none());
    }
}
