//! CESQL lexer: source text → tokens with their 0-based character positions.
//!
//! Lexical rules (CESQL v1 grammar, as the reference engine applies them):
//! - whitespace is space, tab, CR and LF; anything else outside a token is an error;
//! - keywords (`AND OR XOR NOT LIKE IN EXISTS TRUE FALSE`) are case-insensitive;
//! - a word is `[A-Za-z0-9_]+`; all-digit words are integer literals; the parser decides whether a word is
//!   an identifier (letters and digits only) or a function name (followed by `(`);
//! - an integer literal is `('+'|'-')? [0-9]+` and the sign is **part of the token** (longest match), so
//!   `-2147483648` is one literal, `--10` is `-` then `-10`, and `5-3` is two literals (a parse error,
//!   exactly like the reference grammar);
//! - strings are `'…'` or `"…"`; a backslash followed by the delimiter yields the delimiter, every other
//!   backslash sequence is kept verbatim (so `'ab\c'` is `ab\c`). Doubled quotes (`''`) are lexed as part
//!   of the string and kept as they are, like the reference engine.

use super::ParseError;
use std::ops::Range;

/// A binary operator: `AND`, `OR`, `XOR`, a comparison or an arithmetic operator (the parser chains them
/// by precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    And,
    Or,
    Xor,
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// A token kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// Integer literal (sign included).
    Int(i32),
    /// String literal, unescaped.
    Str(String),
    /// A word that is not a keyword: identifier or function name (raw text).
    Word,
    /// A binary operator (`-` is unary minus too).
    Op(BinOp),
    Not,
    Like,
    In,
    Exists,
    True,
    False,
    LParen,
    RParen,
    Comma,
    Eof,
}

/// A token with its 0-based character position and byte span in the source.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: usize,
    pub(crate) span: Range<usize>,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0; // byte index
    let mut pos = 0; // char index of `i`
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let start_pos = pos;
        let tok = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                pos += 1;
                continue;
            }
            b'(' => single(&mut i, Tok::LParen),
            b')' => single(&mut i, Tok::RParen),
            b',' => single(&mut i, Tok::Comma),
            b'*' => single(&mut i, Tok::Op(BinOp::Mul)),
            b'/' => single(&mut i, Tok::Op(BinOp::Div)),
            b'%' => single(&mut i, Tok::Op(BinOp::Mod)),
            b'=' => single(&mut i, Tok::Op(BinOp::Eq)),
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Op(BinOp::NotEq)
            }
            b'<' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tok::Op(BinOp::Le)
                }
                Some(b'>') => {
                    i += 2;
                    Tok::Op(BinOp::NotEq)
                }
                _ => single(&mut i, Tok::Op(BinOp::Lt)),
            },
            b'>' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tok::Op(BinOp::Ge)
                }
                _ => single(&mut i, Tok::Op(BinOp::Gt)),
            },
            b'+' | b'-' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                let digits_start = i;
                while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                Tok::Int(int_literal(b == b'-', &src[digits_start..i], start_pos)?)
            }
            b'+' => single(&mut i, Tok::Op(BinOp::Add)),
            b'-' => single(&mut i, Tok::Op(BinOp::Sub)),
            b'\'' | b'"' => {
                let (s, end, chars) = string_literal(src, i, b, start_pos)?;
                i = end;
                // The loop below adds 1 char per byte for ASCII tokens; strings count their own chars.
                pos += chars;
                out.push(Token {
                    tok: Tok::Str(s),
                    pos: start_pos,
                    span: start..i,
                });
                continue;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                while bytes
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1;
                }
                let word = &src[start..i];
                if word.bytes().all(|c| c.is_ascii_digit()) {
                    Tok::Int(int_literal(false, word, start_pos)?)
                } else {
                    keyword(word).unwrap_or(Tok::Word)
                }
            }
            _ => {
                let c = src[i..].chars().next().unwrap_or('\u{fffd}');
                return Err(ParseError {
                    position: start_pos,
                    message: format!("unexpected character {c:?}"),
                });
            }
        };
        // Every token above except strings is ASCII: one char per byte.
        pos += i - start;
        out.push(Token {
            tok,
            pos: start_pos,
            span: start..i,
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        pos,
        span: src.len()..src.len(),
    });
    Ok(out)
}

fn single(i: &mut usize, tok: Tok) -> Tok {
    *i += 1;
    tok
}

fn keyword(word: &str) -> Option<Tok> {
    const KEYWORDS: [(&str, Tok); 9] = [
        ("AND", Tok::Op(BinOp::And)),
        ("OR", Tok::Op(BinOp::Or)),
        ("XOR", Tok::Op(BinOp::Xor)),
        ("NOT", Tok::Not),
        ("LIKE", Tok::Like),
        ("IN", Tok::In),
        ("EXISTS", Tok::Exists),
        ("TRUE", Tok::True),
        ("FALSE", Tok::False),
    ];
    KEYWORDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map(|(_, t)| t.clone())
}

/// Decimal digits (already checked) plus sign → i32, or a parse error when out of range.
fn int_literal(negative: bool, digits: &str, position: usize) -> Result<i32, ParseError> {
    let mut v: i64 = 0;
    for d in digits.bytes() {
        v = v * 10 + i64::from(d - b'0');
        if v > 1 << 31 {
            break;
        }
    }
    let v = if negative { -v } else { v };
    i32::try_from(v).map_err(|_| ParseError {
        position,
        message: format!(
            "integer literal {}{digits} is out of the 32-bit range",
            if negative { "-" } else { "" }
        ),
    })
}

/// Lexes a string literal starting at byte `start` (the delimiter `quote`). Returns the unescaped text,
/// the byte index after the closing delimiter and the number of characters consumed.
fn string_literal(
    src: &str,
    start: usize,
    quote: u8,
    position: usize,
) -> Result<(String, usize, usize), ParseError> {
    let quote = char::from(quote);
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    let mut count = 1;
    while let Some((off, c)) = chars.next() {
        count += 1;
        if c == quote {
            if src[start + 1 + off + 1..].starts_with(quote) {
                // SQL-style doubled quote: part of the string, kept verbatim (as the reference does).
                chars.next();
                count += 1;
                out.push(quote);
                out.push(quote);
                continue;
            }
            return Ok((out, start + 1 + off + 1, count));
        }
        if c == '\\' {
            match chars.next() {
                Some((_, n)) => {
                    count += 1;
                    if n != quote {
                        out.push('\\');
                    }
                    out.push(n);
                }
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err(ParseError {
        position,
        message: "unterminated string literal".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        lex(src)
            .expect("lexes")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn signed_integer_literal_is_one_token() {
        assert_eq!(kinds("-10"), vec![Tok::Int(-10), Tok::Eof]);
        assert_eq!(
            kinds("--10"),
            vec![Tok::Op(BinOp::Sub), Tok::Int(-10), Tok::Eof]
        );
        assert_eq!(kinds("5-3"), vec![Tok::Int(5), Tok::Int(-3), Tok::Eof]);
        assert_eq!(
            kinds("4 - 1"),
            vec![Tok::Int(4), Tok::Op(BinOp::Sub), Tok::Int(1), Tok::Eof]
        );
        assert_eq!(kinds("-2147483648"), vec![Tok::Int(i32::MIN), Tok::Eof]);
        assert_eq!(kinds("+7"), vec![Tok::Int(7), Tok::Eof]);
        let err = lex("2147483648").expect_err("out of range");
        assert_eq!(err.position, 0);
        assert!(lex("99999999999999999999999999").is_err());
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            kinds(r#"'a"b\'c'"#),
            vec![Tok::Str("a\"b'c".into()), Tok::Eof]
        );
        assert_eq!(
            kinds(r#""a'b\"c""#),
            vec![Tok::Str("a'b\"c".into()), Tok::Eof]
        );
        assert_eq!(kinds(r"'ab\c'"), vec![Tok::Str(r"ab\c".into()), Tok::Eof]);
        assert_eq!(kinds(r"'a\\'"), vec![Tok::Str(r"a\\".into()), Tok::Eof]);
        assert!(lex(r"'abc\'").is_err());
        assert!(lex("'abc").is_err());
    }

    #[test]
    fn positions_count_characters() {
        let toks = lex("'ééé' = x").expect("lexes");
        assert_eq!(toks[1].pos, 6);
        assert_eq!(toks[2].pos, 8);
        assert_eq!(toks[3].pos, 9);
        let err = lex("'é' é").expect_err("bad char");
        assert_eq!(err.position, 4);
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(
            kinds("tRuE aNd NoT"),
            vec![Tok::True, Tok::Op(BinOp::And), Tok::Not, Tok::Eof]
        );
        assert_eq!(kinds("<> != <= >="), {
            vec![
                Tok::Op(BinOp::NotEq),
                Tok::Op(BinOp::NotEq),
                Tok::Op(BinOp::Le),
                Tok::Op(BinOp::Ge),
                Tok::Eof,
            ]
        });
    }
}
