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
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && chars[i].1.is_whitespace() {
            i += 1;
        }
        if i == chars.len() {
            return Ok((line.len(), flags));
        }
        let start = chars[i].0;
        if !line[start..].starts_with("--") {
            return Ok((start, flags));
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut blank_ok = false;
        while i < chars.len() {
            let c = chars[i].1;
            match quote {
                None if c.is_whitespace() => break,
                None if c == '\'' || c == '"' => {
                    quote = Some(c);
                    blank_ok = true;
                }
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if i + 1 < chars.len() {
                        i += 1;
                        word.push(chars[i].1);
                    } else {
                        quote = None;
                    }
                }
                _ => word.push(c),
            }
            i += 1;
        }
        let end = chars.get(i).map_or(line.len(), |&(o, _)| o);
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

/// BuildKit's `parseWords`: splits on white space, keeping quotes and escapes in
/// the words (they are removed later by word expansion).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match quote {
            None => {
                if c.is_whitespace() {
                    if in_word && (blank_ok || !word.is_empty()) {
                        words.push(std::mem::take(&mut word));
                    }
                    in_word = false;
                    blank_ok = false;
                    continue;
                }
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    // An escape at the very end is dropped; otherwise it is kept
                    // together with the character it escapes, even a quote.
                    let Some(&next) = chars.get(i) else { continue };
                    word.push(c);
                    word.push(next);
                    i += 1;
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    let Some(&next) = chars.get(i) else {
                        quote = None;
                        continue;
                    };
                    word.push(c);
                    word.push(next);
                    i += 1;
                    continue;
                }
                word.push(c);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
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
    }
}
