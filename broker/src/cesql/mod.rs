//! CloudEvents SQL Expression Language (CESQL) v1: parse once, evaluate many times.
//!
//! [`Expression::parse`] compiles the text (keywords and function names are case-insensitive,
//! identifiers are folded to lower case, `LIKE` patterns are compiled, functions are resolved by name and
//! arity). [`Expression::evaluate`] returns the value and the first error, with the reference engine's
//! fail-fast semantics; [`Expression::matches`] is the filter view: `true` only for Boolean `true` with
//! no error. Evaluation borrows attribute values from the event and allocates only in string-producing
//! functions (`CONCAT`, `LOWER`, …) and casts from Integer to String.
//!
//! The engine passes all 275 cases of the official CESQL v1 TCK (`broker/tests/integration/cesql_tck.rs`),
//! with one documented deviation where the TCK contradicts the spec: `NOT 10` is `false` with no error
//! (spec §3.7: Integer → Boolean is a MUST cast; sdk-go's copy of the TCK agrees).
//!
//! Decisions where the spec leaves room:
//! - `AND`, `OR` and `XOR` share one precedence level and associate **left to right** (spec §3.6 text;
//!   the ANTLR grammar says right-associative): `FALSE AND TRUE OR TRUE` is `true`. `AND`/`OR`
//!   short-circuit; `XOR` does not.
//! - The sign is part of an integer literal (`('+'|'-')? [0-9]+`, longest match, as in the grammar), so
//!   `ABS(-2147483648)` parses, `--10` is 10, and `5-3` / `x -1` are parse errors: write `5 - 3`.
//! - `+ - * /` and unary `-` wrap on i32 overflow (as the Go reference does); `i32::MIN / -1` is
//!   `i32::MIN`; only `ABS(i32::MIN)` reports a math error (its value is `i32::MAX`).
//! - String functions count characters, not bytes; `TRIM` removes Unicode whitespace.
//! - `INT(x)`, `BOOL(x)` and `STRING(x)` exist (used by the TCK) and cast with the §3.7 rules.
//! - Limits: at most [`MAX_LENGTH`] bytes of text and [`MAX_DEPTH`] levels of nesting (parentheses,
//!   unary operators, function calls, `IN` lists); a chain of binary operators of one precedence level
//!   (`a OR b OR c …`) counts as one level. Deeper input is a [`ParseError`], never a stack overflow.

mod eval;
mod lexer;
mod like;
mod parser;

use crate::event::Event;

/// Longest accepted expression text, in bytes.
pub const MAX_LENGTH: usize = 64 * 1024;

/// Deepest accepted nesting (parentheses, unary operators, function calls, `IN` lists).
pub const MAX_DEPTH: usize = 64;

/// A compiled CESQL expression: parse once, evaluate many times.
#[derive(Debug, Clone)]
pub struct Expression {
    source: Box<str>,
    root: parser::Node,
}

/// Parse error with the 0-based character position and what was expected, e.g.
/// "at 7: expected a string literal after LIKE, found 123".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {position}: {message}")]
pub struct ParseError {
    /// 0-based position, in characters, of the offending token in the source.
    pub position: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// A CESQL value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Boolean.
    Bool(bool),
    /// Integer (32-bit signed).
    Int(i32),
    /// String.
    String(String),
}

/// Class of an evaluation error (spec §4.1; the TCK's error names are [`ErrorKind::tck_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Division or modulo by zero; `ABS` overflow.
    Math,
    /// A value cannot be cast to the type an operator or function needs.
    Cast,
    /// The expression references an attribute the event does not have.
    MissingAttribute,
    /// No function with this name takes this many arguments.
    MissingFunction,
    /// A built-in function rejected its arguments (e.g. a negative length).
    FunctionEvaluation,
    /// Any other error (not produced by this engine; part of the spec's error set).
    Generic,
}

impl ErrorKind {
    /// The error class name used by the CESQL TCK (`math`, `cast`, `missingAttribute`, …).
    pub fn tck_name(self) -> &'static str {
        match self {
            ErrorKind::Math => "math",
            ErrorKind::Cast => "cast",
            ErrorKind::MissingAttribute => "missingAttribute",
            ErrorKind::MissingFunction => "missingFunction",
            ErrorKind::FunctionEvaluation => "functionEvaluation",
            ErrorKind::Generic => "generic",
        }
    }
}

/// An evaluation error: its class and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// Error class.
    pub kind: ErrorKind,
    /// Human-readable detail.
    pub message: String,
}

impl Expression {
    /// Parses and compiles `text`. Fails on syntax errors, on text longer than [`MAX_LENGTH`] bytes and
    /// on nesting deeper than [`MAX_DEPTH`]. Unknown functions are not a parse error (they fail at
    /// evaluation with [`ErrorKind::MissingFunction`], as the spec requires).
    pub fn parse(text: &str) -> Result<Expression, ParseError> {
        if text.len() > MAX_LENGTH {
            return Err(ParseError {
                position: 0,
                message: format!(
                    "expression is {} bytes long; the limit is {MAX_LENGTH}",
                    text.len()
                ),
            });
        }
        Ok(Expression {
            source: text.into(),
            root: parser::parse(text)?,
        })
    }

    /// Value plus the first error (fail-fast zero values as the TCK expects).
    pub fn evaluate(&self, event: &Event) -> (Value, Option<EvalError>) {
        eval::evaluate(&self.root, event)
    }

    /// Filter semantics: true only for Bool(true) with no error.
    pub fn matches(&self, event: &Event) -> bool {
        matches!(eval::eval(&self.root, event), Ok(eval::Val::Bool(true)))
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Two expressions are equal when their source texts are (the AST is a function of the text).
impl PartialEq for Expression {
    fn eq(&self, other: &Expression) -> bool {
        self.source == other.source
    }
}

impl Eq for Expression {}

#[cfg(test)]
mod tests;
