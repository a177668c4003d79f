//! The expansion state machine, a port of BuildKit's `shell/lex.go`.

use std::borrow::Cow;
use std::collections::BTreeSet;

use super::pattern::Pattern;
use super::{Env, ShellError};

/// Accumulates fields for [`super::Lexer::process_words`]; disabled, it does
/// nothing, which spares single-word expansions the work.
#[derive(Default)]
struct Words {
    enabled: bool,
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if !self.enabled {
            return;
        }
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        if !self.enabled {
            return;
        }
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        if !self.enabled {
            return;
        }
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        if !self.enabled {
            return;
        }
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

pub(super) struct ShellWord<'a> {
    src: &'a str,
    /// Byte offset of the next character in `src`.
    pos: usize,
    env: &'a dyn Env,
    escape: char,
    /// Whether the caller wants fields ([`super::Lexer::process_words`]).
    pub(super) split: bool,
    pub(super) unmatched: BTreeSet<String>,
}

impl<'a> ShellWord<'a> {
    pub(super) fn new(word: &'a str, env: &'a dyn Env, escape: char) -> Self {
        Self {
            src: word,
            pos: 0,
            env,
            escape,
            split: false,
            unmatched: BTreeSet::new(),
        }
    }

    pub(super) fn run(&mut self, source: &str) -> Result<(String, Vec<String>), ShellError> {
        self.process_stop_on(None).map_err(|reason| ShellError {
            word: source.to_owned(),
            reason,
        })
    }

    /// A heredoc body: variables expand, quotes are literal, and the escape
    /// character only escapes `$`, itself and a newline, as in a shell.
    pub(super) fn run_heredoc(&mut self, source: &str) -> Result<String, ShellError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == '$' {
                out.push_str(&self.process_dollar().map_err(|reason| ShellError {
                    word: source.to_owned(),
                    reason,
                })?);
                continue;
            }
            self.next();
            if c == self.escape {
                match self.peek() {
                    Some('\n') => {
                        self.next();
                        continue;
                    }
                    Some(n) if n == '$' || n == self.escape => {
                        self.next();
                        out.push(n);
                        continue;
                    }
                    _ => {}
                }
            }
            out.push(c);
        }
        Ok(out)
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if let Some(c) = c {
            self.pos += c.len_utf8();
        }
        c
    }

    /// Processes until `stop` (consumed) or the end of input.
    fn process_stop_on(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::with_capacity(self.src.len() - self.pos);
        // Only the outermost level splits into fields, and only when asked.
        let mut words = Words {
            enabled: self.split && stop.is_none(),
            ..Words::default()
        };
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let s = self.process_dollar()?;
                    words.add_string(&s);
                    result.push_str(&s);
                }
                '\'' => {
                    let s = self.process_single_quote()?;
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '"' => {
                    let s = self.process_double_quote()?;
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                _ if c == self.escape => {
                    self.next();
                    // The escape character quotes the next one; at the end it vanishes.
                    let Some(escaped) = self.next() else { break };
                    words.add_raw_char(escaped);
                    result.push(escaped);
                }
                _ => {
                    // A run of ordinary characters is copied as a whole.
                    let rest = &self.src[self.pos..];
                    let len = rest
                        .find(|ch| {
                            matches!(ch, '$' | '\'' | '"') || ch == self.escape || Some(ch) == stop
                        })
                        .unwrap_or(rest.len());
                    let run = &rest[..len];
                    self.pos += len;
                    words.add_string(run);
                    result.push_str(run);
                }
            }
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of statement while looking for matching {s}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    /// `'...'`: everything literal, no escapes.
    fn process_single_quote(&mut self) -> Result<String, String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_owned(),
                    );
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// `"..."`: variables expand; the escape character only escapes `"`, `$`
    /// and itself, other escapes stay literal.
    fn process_double_quote(&mut self) -> Result<String, String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_owned(),
                    );
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.process_dollar()?),
                Some(c) => {
                    self.next();
                    if c == self.escape {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.next();
                                out.push(n);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn lookup(&mut self, name: &str, tracked: bool) -> Option<&'a str> {
        let v = self.env.get(name);
        if v.is_none() && tracked {
            self.unmatched.insert(name.to_owned());
        }
        v
    }

    /// A `$` expansion; a plain variable's value is borrowed from the env.
    fn process_dollar(&mut self) -> Result<Cow<'a, str>, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok(Cow::Borrowed("$"));
            }
            return Ok(Cow::Borrowed(self.lookup(name, true).unwrap_or_default()));
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_owned()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_owned()),
            _ => {}
        }
        let name = self.process_name();
        let Some(mut c) = self.next() else {
            return Err("syntax error: missing '}'".to_owned());
        };
        let mut modifier = c.to_string();
        match c {
            '}' => return Ok(Cow::Borrowed(self.lookup(name, true).unwrap_or_default())),
            ':' | '+' | '-' | '?' => {}
            '#' | '%' => {
                let longest = self.peek() == Some(c);
                if longest {
                    self.next();
                }
                let (pattern, _) = self.process_pattern(&['}'])?;
                let value = self.lookup(name, true).unwrap_or_default();
                let pattern = Pattern::new(&pattern);
                return Ok(Cow::Owned(if c == '#' {
                    pattern.trim_prefix(value, longest)
                } else {
                    pattern.trim_suffix(value, longest)
                }));
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let (pattern, stop) = self.process_pattern(&['/', '}'])?;
                let with = if stop == '/' {
                    self.process_stop_on(Some('}'))
                        .map_err(|e| {
                            if self.peek().is_none() {
                                "syntax error: missing '}'".to_owned()
                            } else {
                                e
                            }
                        })?
                        .0
                } else {
                    String::new()
                };
                let value = self.lookup(name, true).unwrap_or_default();
                if pattern.is_empty() {
                    return Ok(Cow::Borrowed(value));
                }
                return Ok(Cow::Owned(
                    Pattern::new(&pattern).replace(value, &with, all),
                ));
            }
            _ => return Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
        let null_is_unset = c == ':';
        if null_is_unset {
            c = self.next().ok_or("syntax error: missing '}'")?;
            modifier.push(c);
        }
        if !matches!(c, '+' | '-' | '?') {
            return Err(format!("unsupported modifier ({modifier}) in substitution"));
        }
        let word = match self.process_stop_on(Some('}')) {
            Ok((w, _)) => w,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '}'".to_owned()),
            Err(e) => return Err(e),
        };
        let value = self.lookup(name, c == '?');
        let unset = value.is_none() || (null_is_unset && value == Some(""));
        match c {
            '-' => Ok(if unset {
                Cow::Owned(word)
            } else {
                Cow::Borrowed(value.unwrap_or_default())
            }),
            '+' => Ok(Cow::Owned(if unset { String::new() } else { word })),
            _ => {
                if unset {
                    let default = if value.is_none() {
                        "is not allowed to be unset"
                    } else {
                        "is not allowed to be empty"
                    };
                    let message = if word.is_empty() { default } else { &word };
                    return Err(format!("{name}: {message}"));
                }
                Ok(Cow::Borrowed(value.unwrap_or_default()))
            }
        }
    }

    /// A pattern up to one of `stops` (consumed and returned): variables
    /// expand, while escaped and quoted characters come out backslash-escaped
    /// so that they match literally.
    fn process_pattern(&mut self, stops: &[char]) -> Result<(String, char), String> {
        let mut out = String::new();
        let literal = |out: &mut String, s: &str| {
            for c in s.chars() {
                out.push('\\');
                out.push(c);
            }
        };
        while let Some(c) = self.peek() {
            if stops.contains(&c) {
                self.next();
                return Ok((out, c));
            }
            match c {
                '$' => out.push_str(&self.process_dollar()?),
                '\'' => {
                    let s = self.process_single_quote()?;
                    literal(&mut out, &s);
                }
                '"' => {
                    let s = self.process_double_quote()?;
                    literal(&mut out, &s);
                }
                _ => {
                    self.next();
                    if c == self.escape {
                        let Some(n) = self.next() else { break };
                        literal(&mut out, &n.to_string());
                    } else {
                        out.push(c);
                    }
                }
            }
        }
        Err("syntax error: missing '}'".to_owned())
    }

    /// A variable name: alphanumerics and `_`, or all leading digits, or one
    /// special parameter character.
    fn process_name(&mut self) -> &'a str {
        let src = self.src;
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while self.peek().is_some_and(|d| d.is_ascii_digit()) {
                    self.next();
                }
            }
            Some('@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') => {
                self.next();
            }
            _ => {
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.next();
                }
            }
        }
        &src[start..self.pos]
    }
}
