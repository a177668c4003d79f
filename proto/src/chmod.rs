//! Symbolic modes for `COPY --chmod` (`u+x,g-r`, `a=rX`), as the
//! Dockerfile frontend of BuildKit takes them: chmod(1)'s grammar without a
//! umask (a clause without `u`/`g`/`o`/`a` applies to all), applied to each
//! copied entry's own mode. `FileActionCopy.mode_str` carries the text.

/// A parsed symbolic mode: clauses applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolicMode {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    /// Bits of the classes the clause names (`u` 0o700, `g` 0o070, `o` 0o007).
    who: u32,
    actions: Vec<(char, Perms)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Perms {
    r: bool,
    w: bool,
    x: bool,
    /// `X`: execute only for directories or entries already executable.
    big_x: bool,
    s: bool,
    t: bool,
}

impl SymbolicMode {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid --chmod value {text:?}: {why}");
        if text.is_empty() {
            return Err(bad("empty"));
        }
        let mut clauses = Vec::new();
        for clause in text.split(',') {
            let mut chars = clause.chars().peekable();
            let mut who = 0;
            while let Some(&c) = chars.peek() {
                who |= match c {
                    'u' => 0o700,
                    'g' => 0o070,
                    'o' => 0o007,
                    'a' => 0o777,
                    _ => break,
                };
                chars.next();
            }
            if who == 0 {
                who = 0o777;
            }
            let mut actions = Vec::new();
            while let Some(op) = chars.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return Err(bad(&format!("{op:?} is not +, - or =")));
                }
                let mut p = Perms::default();
                while let Some(&c) = chars.peek() {
                    match c {
                        'r' => p.r = true,
                        'w' => p.w = true,
                        'x' => p.x = true,
                        'X' => p.big_x = true,
                        's' => p.s = true,
                        't' => p.t = true,
                        '+' | '-' | '=' => break,
                        other => return Err(bad(&format!("{other:?} is not a permission"))),
                    }
                    chars.next();
                }
                actions.push((op, p));
            }
            if actions.is_empty() {
                return Err(bad(&format!("clause {clause:?} has no +, - or =")));
            }
            clauses.push(Clause { who, actions });
        }
        Ok(Self { clauses })
    }

    /// The mode (permission bits and setuid/setgid/sticky) `mode` becomes.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let mut m = mode & 0o7777;
        for c in &self.clauses {
            for (op, p) in &c.actions {
                let exec = p.x || (p.big_x && (is_dir || m & 0o111 != 0));
                let mut bits = 0;
                if p.r {
                    bits |= 0o444;
                }
                if p.w {
                    bits |= 0o222;
                }
                if exec {
                    bits |= 0o111;
                }
                bits &= c.who;
                if p.s {
                    bits |= (if c.who & 0o700 != 0 { 0o4000 } else { 0 })
                        | (if c.who & 0o070 != 0 { 0o2000 } else { 0 });
                }
                if p.t && c.who & 0o007 != 0 {
                    bits |= 0o1000;
                }
                m = match op {
                    '+' => m | bits,
                    '-' => m & !bits,
                    _ => {
                        let special = (if c.who & 0o700 != 0 { 0o4000 } else { 0 })
                            | (if c.who & 0o070 != 0 { 0o2000 } else { 0 })
                            | (if c.who & 0o007 != 0 { 0o1000 } else { 0 });
                        (m & !(c.who | special)) | bits
                    }
                };
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_as_the_reference_buildkit_did() {
        // `buildctl` on a 0644 file: u+x,g-r → 0704; a=rX,u+w → 0644; +x → 0755.
        let m = |s: &str, mode, dir| SymbolicMode::parse(s).unwrap().apply(mode, dir);
        assert_eq!(m("u+x,g-r", 0o644, false), 0o704);
        assert_eq!(m("a=rX,u+w", 0o644, false), 0o644);
        assert_eq!(m("+x", 0o644, false), 0o755);
        assert_eq!(m("a=rX", 0o700, true), 0o555);
        assert_eq!(m("go-rwx", 0o755, false), 0o700);
        assert_eq!(m("u+s,+t", 0o755, false), 0o5755);
        assert_eq!(m("u=rw,g=,o=", 0o777, false), 0o600);
    }

    #[test]
    fn bad_modes_say_why() {
        for s in ["", "u", "z+x", "u+q", "u+x,", "755"] {
            assert!(SymbolicMode::parse(s).is_err(), "{s}");
        }
    }
}
