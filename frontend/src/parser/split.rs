//! Splitting a logical line into keyword, `--flags` and arguments, and BuildKit's
//! quote-preserving word splitter.

/// BuildKit's `[\t\v\f\r ]` white space class used between keyword and arguments.
pub(crate) fn is_sep(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// A `--flag` word with its byte range in the logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFlag {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// A line split into its parts; offsets are bytes into the line.
#[derive(Debug)]
pub(crate) struct Split<'a> {
    pub keyword: &'a str,
    pub keyword_start: usize,
    pub flags: Vec<RawFlag>,
    pub args: &'a str,
    pub args_start: usize,
}

/// BuildKit's `splitCommand`: the keyword, the leading `--flags`, the rest trimmed.
pub(crate) fn split_command(line: &str) -> Result<Split<'_>, String> {
    let keyword_start = line.len() - line.trim_start().len();
    let trimmed = line.trim();
    let kw_len = trimmed.find(is_sep).unwrap_or(trimmed.len());
    let keyword = &trimmed[..kw_len];
    let after = &trimmed[kw_len..];
    let rest_start =
        keyword_start + kw_len + (after.len() - after.trim_start_matches(is_sep).len());
    let rest = after.trim_start_matches(is_sep);
    let (args_rel, flags) = extract_builder_flags(rest, rest_start)?;
    let args_raw = &rest[args_rel..];
    let lead = args_raw.len() - args_raw.trim_start().len();
    Ok(Split {
        keyword,
        keyword_start,
        flags,
        args: args_raw.trim(),
        args_start: rest_start + args_rel + lead,
    })
}

/// BuildKit's `extractBuilderFlags`: consumes leading words starting with `--`
/// (quotes and backslashes inside them are processed), stopping at the first
/// other word or after a lone `--`. Returns the offset where arguments start.
fn extract_builder_flags(line: &str, base: usize) -> Result<(usize, Vec<RawFlag>), String> {
    let mut flags = Vec::new();
    let mut pos = 0;
    loop {
        let start = line.len() - line[pos..].trim_start().len();
        if start == line.len() {
            return Ok((line.len(), flags));
        }
        if !line[start..].starts_with("--") {
            return Ok((start, flags));
        }
        let raw_end = line[start..]
            .find(char::is_whitespace)
            .map_or(line.len(), |e| start + e);
        let raw = &line[start..raw_end];
        // Most flags have no quote or backslash: the word is the text itself.
        let (word, blank_ok, end) = if raw.contains(['\'', '"', '\\']) {
            unquote_flag(line, start)
        } else {
            (raw.to_owned(), false, raw_end)
        };
        pos = end;
        if word == "--" {
            return Ok((end, flags));
        }
        if blank_ok || !word.is_empty() {
            flags.push(RawFlag {
                text: word,
                start: base + start,
                end: base + end,
            });
        }
    }
}

/// The flag word at `start` with quotes removed and backslash escapes
/// applied; also whether it was quoted (so may be blank) and where it ends.
fn unquote_flag(line: &str, start: usize) -> (String, bool, usize) {
    let mut chars = line[start..].char_indices().peekable();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    while let Some(&(_, c)) = chars.peek() {
        match quote {
            None if c.is_whitespace() => break,
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                blank_ok = true;
            }
            Some(q) if c == q => quote = None,
            _ if c == '\\' => {
                chars.next();
                match chars.peek() {
                    Some(&(_, escaped)) => word.push(escaped),
                    None => quote = None,
                }
            }
            _ => word.push(c),
        }
        chars.next();
    }
    let end = chars.peek().map_or(line.len(), |&(o, _)| start + o);
    (word, blank_ok, end)
}

/// BuildKit's `parseWords`: splits on white space, keeping quotes and escapes in
/// the words (they are removed later by word expansion).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<&str> {
    // Quotes and escapes stay in the words, so each word is a slice of the
    // text (an escape at the very end is dropped, which shortens it).
    let mut words = Vec::new();
    // The current word's start and the end of its kept text.
    let mut word: Option<(usize, usize)> = None;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if let Some((start, end)) = word.take()
                && (blank_ok || end > start)
            {
                words.push(&rest[start..end]);
            }
            blank_ok = false;
            continue;
        }
        let (_, end) = word.get_or_insert((i, i));
        match quote {
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                blank_ok = true;
            }
            Some(q) if c == q => quote = None,
            _ => {}
        }
        // Unquoted or in double quotes, the escape character keeps the next
        // character with it, even a quote; at the very end it is dropped.
        let escapes = c == escape && quote != Some('\'');
        if escapes {
            match chars.next() {
                Some((j, next)) => *end = j + next.len_utf8(),
                None => quote = None,
            }
            continue;
        }
        *end = i + c.len_utf8();
    }
    if let Some((start, end)) = word
        && (blank_ok || end > start)
    {
        words.push(&rest[start..end]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_keyword_flags_and_args() {
        let s = split_command("  COPY --from=a --chown=\"1 2\" x /y ").unwrap();
        assert_eq!(s.keyword, "COPY");
        assert_eq!(s.keyword_start, 2);
        let texts: Vec<_> = s.flags.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(texts, ["--from=a", "--chown=1 2"]);
        assert_eq!(s.flags[0].start, 7);
        assert_eq!((s.flags[1].start, s.flags[1].end), (16, 29));
        assert_eq!(s.args, "x /y");
        assert_eq!(
            &"  COPY --from=a --chown=\"1 2\" x /y "[s.args_start..],
            "x /y "
        );
    }

    #[test]
    fn double_dash_ends_flags() {
        let s = split_command("COPY --a=1 -- --b x").unwrap();
        assert_eq!(s.flags.len(), 1);
        assert_eq!(s.args, "--b x");
        let s = split_command("CMD").unwrap();
        assert_eq!((s.keyword, s.args), ("CMD", ""));
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            parse_words(r#"a="b c" d\ e 'f\'"#, '\\'),
            ["a=\"b c\"", "d\\ e", "'f\\'"]
        );
        assert_eq!(parse_words("x=\"\"", '\\'), ["x=\"\""]);
        assert_eq!(parse_words("a\\", '\\'), ["a"]);
        assert_eq!(parse_words("\\", '\\'), Vec::<&str>::new());
        assert_eq!(parse_words("\"a\\", '\\'), ["\"a"]);
        assert_eq!(parse_words("'' b", '\\'), ["''", "b"]);
    }
}
