//! `LIKE` patterns, compiled once at parse time and matched without allocation or recursion.
//!
//! `%` matches zero or more characters, `_` exactly one character, everything else is literal and
//! case-sensitive. `\%` and `\_` are a literal `%` / `_`; a backslash followed by anything else is a
//! literal backslash (and the next character is read normally). The escapes apply to the pattern text
//! *after* string-literal unescaping.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Literal text (non-empty).
    Lit(Box<str>),
    /// `_`: exactly one character.
    One,
    /// `%`: any run of characters (never two in a row).
    Many,
}

/// A compiled `LIKE` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    pieces: Vec<Piece>,
}

impl Pattern {
    /// Compiles a pattern (the unescaped string literal).
    pub(crate) fn compile(pattern: &str) -> Pattern {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let flush = |lit: &mut String, pieces: &mut Vec<Piece>| {
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(lit).into_boxed_str()));
            }
        };
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&n @ ('%' | '_')) => {
                        chars.next();
                        lit.push(n);
                    }
                    _ => lit.push('\\'),
                },
                '%' => {
                    flush(&mut lit, &mut pieces);
                    if pieces.last() != Some(&Piece::Many) {
                        pieces.push(Piece::Many);
                    }
                }
                '_' => {
                    flush(&mut lit, &mut pieces);
                    pieces.push(Piece::One);
                }
                c => lit.push(c),
            }
        }
        flush(&mut lit, &mut pieces);
        Pattern { pieces }
    }

    /// Whether `text` matches the whole pattern. Greedy with single-point backtracking on the last `%`:
    /// O(len(text) × len(pattern)) worst case, no recursion, no allocation.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let pieces = &self.pieces;
        let (mut p, mut t) = (0, 0);
        // (piece index after the last `%`, text position that `%` currently extends to)
        let mut star: Option<(usize, usize)> = None;
        loop {
            if let Some(piece) = pieces.get(p) {
                match piece {
                    Piece::Many => {
                        if p + 1 == pieces.len() {
                            return true; // trailing `%` takes the rest
                        }
                        star = Some((p + 1, t));
                        p += 1;
                        continue;
                    }
                    Piece::Lit(s) if text[t..].starts_with(&**s) => {
                        t += s.len();
                        p += 1;
                        continue;
                    }
                    Piece::One => {
                        if let Some(c) = text[t..].chars().next() {
                            t += c.len_utf8();
                            p += 1;
                            continue;
                        }
                    }
                    Piece::Lit(_) => {}
                }
            } else if t == text.len() {
                return true;
            }
            // Mismatch (or text left over): let the last `%` swallow one more character.
            match star {
                Some((sp, st)) => match text[st..].chars().next() {
                    Some(c) => {
                        let nt = st + c.len_utf8();
                        star = Some((sp, nt));
                        p = sp;
                        t = nt;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn like(text: &str, pattern: &str) -> bool {
        Pattern::compile(pattern).matches(text)
    }

    #[test]
    fn wildcards() {
        assert!(like("abc", "abc"));
        assert!(!like("abcd", "abc"));
        assert!(like("abc", "a%b%c"));
        assert!(like("azzzbzzzc", "a%b%c"));
        assert!(!like("ab.cde", ".%.%."));
        assert!(like(".ab.cde.", ".%.%."));
        assert!(like("", "%"));
        assert!(like("", "%%"));
        assert!(!like("", "_"));
        assert!(like("é", "_"));
        assert!(like("aéb", "a_b"));
        assert!(!like("abc", "a_b_c"));
        assert!(like("azbzc", "a_b_c"));
        assert!(like("https://shop/x", "https://shop/%"));
        assert!(like("aaa", "%a"));
        assert!(like("abab", "%ab"));
        assert!(!like("abac", "%ab"));
        assert!(like("mississippi", "m%iss%ppi"));
        assert!(!like("mississippi", "m%iss%ppx"));
    }

    #[test]
    fn escapes() {
        assert!(like("a_b_c", r"a\_b\_c"));
        assert!(!like("azbzc", r"a\_b\_c"));
        assert!(like("a%b%c", r"a\%b\%c"));
        assert!(!like("abc", r"a\%b\%c"));
        assert!(like(r"ab\c", r"ab\c"));
        assert!(like(r"a\%", r"a\\%"), "backslash then escaped percent");
        assert!(like(r"a\", r"a\"));
        assert!(like("abc123123%456_dzf", r"abc%123\%456\_d_f"));
    }

    #[test]
    fn pathological_pattern_is_polynomial() {
        let text = "a".repeat(5_000);
        let pattern = format!("{}b", "%a".repeat(50));
        assert!(!like(&text, &pattern));
    }
}
