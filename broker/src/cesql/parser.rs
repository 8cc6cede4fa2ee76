//! CESQL parser: tokens → AST, by recursive descent with bounded depth.
//!
//! Grammar (precedence from lowest to highest; every binary level is left-associative):
//!
//! ```text
//! expr    := cmp   (('AND' | 'OR' | 'XOR') cmp)*        -- one level, left to right (see below)
//! cmp     := add   (('=' | '!=' | '<>' | '<' | '<=' | '>' | '>=') add)*
//! add     := mul   (('+' | '-') mul)*
//! mul     := post  (('*' | '/' | '%') post)*
//! post    := unary ('NOT'? 'LIKE' string | 'NOT'? 'IN' '(' expr (',' expr)* ')')*
//! unary   := 'NOT' unary | '-' unary | primary
//! primary := integer | string | 'TRUE' | 'FALSE' | '(' expr ')' | 'EXISTS' ident
//!          | name '(' (expr (',' expr)*)? ')' | ident
//! ```
//!
//! `AND`, `OR` and `XOR` share one precedence level and associate left to right, as the spec text says
//! (§3.6): `FALSE AND TRUE OR TRUE` is `(FALSE AND TRUE) OR TRUE`, i.e. `true`. The ANTLR grammar marks
//! them right-associative; no TCK case depends on it.
//!
//! A chain of operators of one level becomes one [`Node::Chain`] (not a left-deep tree), so a long
//! `a OR b OR c …` costs no nesting depth. Nesting (parentheses, unary operators, function calls, `IN`
//! lists) is limited to [`MAX_DEPTH`](super::MAX_DEPTH) levels, which bounds recursion in both the parser
//! and the evaluator.

use super::lexer::{lex, BinOp, Tok, Token};
use super::like::Pattern;
use super::{ParseError, MAX_DEPTH};

/// A CESQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Bool,
    Int,
    Str,
}

/// A literal value in the AST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lit {
    Bool(bool),
    Int(i32),
    Str(Box<str>),
}

/// The precedence levels of the binary operators, loosest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Logical,
    Comparison,
    Additive,
    Multiplicative,
}

impl BinOp {
    /// Result type of the operator.
    pub(crate) fn result_type(self) -> Ty {
        match self {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => Ty::Int,
            _ => Ty::Bool,
        }
    }

    fn level(self) -> Level {
        match self {
            BinOp::And | BinOp::Or | BinOp::Xor => Level::Logical,
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                Level::Comparison
            }
            BinOp::Add | BinOp::Sub => Level::Additive,
            BinOp::Mul | BinOp::Div | BinOp::Mod => Level::Multiplicative,
        }
    }
}

/// A built-in function, resolved by name and arity at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Length,
    Concat,
    ConcatWs,
    Lower,
    Upper,
    Trim,
    Left,
    Right,
    Substring,
    Abs,
    Int,
    Bool,
    String,
}

impl Func {
    /// Resolves an upper-case name and an arity.
    fn resolve(name: &str, arity: usize) -> Option<Func> {
        Some(match (name, arity) {
            ("LENGTH", 1) => Func::Length,
            ("CONCAT", _) => Func::Concat,
            ("CONCAT_WS", n) if n >= 1 => Func::ConcatWs,
            ("LOWER", 1) => Func::Lower,
            ("UPPER", 1) => Func::Upper,
            ("TRIM", 1) => Func::Trim,
            ("LEFT", 2) => Func::Left,
            ("RIGHT", 2) => Func::Right,
            ("SUBSTRING", 2 | 3) => Func::Substring,
            ("ABS", 1) => Func::Abs,
            ("INT", 1) => Func::Int,
            ("BOOL", 1) => Func::Bool,
            ("STRING", 1) => Func::String,
            _ => return None,
        })
    }

    /// The function's name as written in CESQL.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Func::Length => "LENGTH",
            Func::Concat => "CONCAT",
            Func::ConcatWs => "CONCAT_WS",
            Func::Lower => "LOWER",
            Func::Upper => "UPPER",
            Func::Trim => "TRIM",
            Func::Left => "LEFT",
            Func::Right => "RIGHT",
            Func::Substring => "SUBSTRING",
            Func::Abs => "ABS",
            Func::Int => "INT",
            Func::Bool => "BOOL",
            Func::String => "STRING",
        }
    }

    /// Return type.
    pub(crate) fn result_type(self) -> Ty {
        match self {
            Func::Length | Func::Abs | Func::Int => Ty::Int,
            Func::Bool => Ty::Bool,
            _ => Ty::Str,
        }
    }

    /// Type of argument `i` (`None`: any type, no cast).
    pub(crate) fn arg_type(self, i: usize) -> Option<Ty> {
        match (self, i) {
            (Func::Int | Func::Bool | Func::String, _) => None,
            (Func::Abs, _) => Some(Ty::Int),
            (Func::Left | Func::Right | Func::Substring, 1..) => Some(Ty::Int),
            _ => Some(Ty::Str),
        }
    }
}

/// A core attribute resolved at parse time (looked up without comparing names per event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Core {
    Specversion,
    Id,
    Source,
    Type,
    Subject,
    Time,
    Datacontenttype,
    Dataschema,
}

/// An attribute name (lower-cased), with its core attribute when it names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttrName {
    pub(crate) name: Box<str>,
    pub(crate) core: Option<Core>,
}

impl AttrName {
    fn new(name: Box<str>) -> AttrName {
        let core = match &*name {
            "specversion" => Some(Core::Specversion),
            "id" => Some(Core::Id),
            "source" => Some(Core::Source),
            "type" => Some(Core::Type),
            "subject" => Some(Core::Subject),
            "time" => Some(Core::Time),
            "datacontenttype" => Some(Core::Datacontenttype),
            "dataschema" => Some(Core::Dataschema),
            _ => None,
        };
        AttrName { name, core }
    }
}

/// An expression node.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Lit(Lit),
    /// A context attribute reference.
    Attr(AttrName),
    /// `EXISTS name`.
    Exists(AttrName),
    Not(Box<Node>),
    Neg(Box<Node>),
    /// `first op1 x1 op2 x2 …`, evaluated left to right; all operators are of one precedence level.
    Chain {
        first: Box<Node>,
        rest: Vec<(BinOp, Node)>,
    },
    Like {
        operand: Box<Node>,
        pattern: Pattern,
        negated: bool,
    },
    In {
        operand: Box<Node>,
        set: Vec<Node>,
        negated: bool,
    },
    Call {
        func: Func,
        args: Vec<Node>,
    },
    /// A well-formed call that resolves to no function (name upper-cased): a runtime missingFunction.
    UnknownCall {
        name: Box<str>,
        arity: usize,
    },
}

impl Node {
    /// The static result type (the type of the zero value returned with an error). A bare attribute
    /// reference is treated as Boolean, as the TCK expects.
    pub(crate) fn result_type(&self) -> Ty {
        match self {
            Node::Lit(Lit::Bool(_)) => Ty::Bool,
            Node::Lit(Lit::Int(_)) => Ty::Int,
            Node::Lit(Lit::Str(_)) => Ty::Str,
            Node::Neg(_) => Ty::Int,
            Node::Chain { first, rest } => rest
                .last()
                .map_or_else(|| first.result_type(), |(op, _)| op.result_type()),
            Node::Call { func, .. } => func.result_type(),
            Node::Attr(_)
            | Node::Exists(_)
            | Node::Not(_)
            | Node::Like { .. }
            | Node::In { .. }
            | Node::UnknownCall { .. } => Ty::Bool,
        }
    }
}

/// Parses a whole expression.
pub(crate) fn parse(src: &str) -> Result<Node, ParseError> {
    let tokens = lex(src)?;
    let mut p = Parser {
        src,
        tokens,
        at: 0,
        depth: 0,
    };
    let node = p.expr()?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        return Err(p.unexpected(t, "an operator or the end of the expression"));
    }
    Ok(node)
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `at` never moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.tokens[(self.at + ahead).min(self.tokens.len() - 1)].tok
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.at += 1;
        }
        t
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if &self.peek().tok == tok {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), ParseError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.unexpected(self.peek(), what))
        }
    }

    fn text(&self, t: &Token) -> &str {
        &self.src[t.span.clone()]
    }

    /// "expected {what}, found {token}".
    fn unexpected(&self, t: &Token, what: &str) -> ParseError {
        let found = match &t.tok {
            Tok::Eof => "end of input".to_owned(),
            _ => {
                let text = self.text(t);
                match text.char_indices().nth(40) {
                    Some((cut, _)) => format!("{}…", &text[..cut]),
                    None => text.to_owned(),
                }
            }
        };
        let hint = match t.tok {
            Tok::Int(_) if matches!(self.text(t).as_bytes().first(), Some(b'+' | b'-')) => {
                " (a sign touching a digit is part of the number: write `a - 1`, not `a -1`)"
            }
            _ => "",
        };
        ParseError {
            position: t.pos,
            message: format!("expected {what}, found {found}{hint}"),
        }
    }

    /// Enters one nesting level.
    fn enter(&mut self, t: &Token) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                position: t.pos,
                message: format!("expression is nested deeper than {MAX_DEPTH} levels"),
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Parses one level of left-associative binary operators into a chain.
    fn chain(
        &mut self,
        level: Level,
        next: fn(&mut Self) -> Result<Node, ParseError>,
    ) -> Result<Node, ParseError> {
        let first = next(self)?;
        let mut rest = Vec::new();
        while let Tok::Op(op) = self.peek().tok {
            if op.level() != level {
                break;
            }
            self.at += 1;
            rest.push((op, next(self)?));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Node::Chain {
                first: Box::new(first),
                rest,
            }
        })
    }

    fn expr(&mut self) -> Result<Node, ParseError> {
        self.chain(Level::Logical, Self::comparison)
    }

    fn comparison(&mut self) -> Result<Node, ParseError> {
        self.chain(Level::Comparison, Self::additive)
    }

    fn additive(&mut self) -> Result<Node, ParseError> {
        self.chain(Level::Additive, Self::multiplicative)
    }

    fn multiplicative(&mut self) -> Result<Node, ParseError> {
        self.chain(Level::Multiplicative, Self::postfix)
    }

    /// `LIKE` / `IN` (optionally negated) after a unary operand.
    fn postfix(&mut self) -> Result<Node, ParseError> {
        let mut node = self.unary()?;
        loop {
            let negated = self.peek().tok == Tok::Not;
            let op = self.peek_at(usize::from(negated)).clone();
            match op {
                Tok::Like => {
                    self.at += 1 + usize::from(negated);
                    let t = self.bump();
                    let Tok::Str(s) = &t.tok else {
                        return Err(self.unexpected(&t, "a string literal after LIKE"));
                    };
                    node = Node::Like {
                        operand: Box::new(node),
                        pattern: Pattern::compile(s),
                        negated,
                    };
                }
                Tok::In => {
                    self.at += 1 + usize::from(negated);
                    let t = self.peek().clone();
                    self.expect(&Tok::LParen, "'(' after IN")?;
                    self.enter(&t)?;
                    let mut set = vec![self.expr()?];
                    while self.eat(&Tok::Comma) {
                        set.push(self.expr()?);
                    }
                    self.expect(&Tok::RParen, "',' or ')' in the IN list")?;
                    self.leave();
                    node = Node::In {
                        operand: Box::new(node),
                        set,
                        negated,
                    };
                }
                _ if negated => {
                    let t = self.tokens[self.at + 1].clone();
                    return Err(self.unexpected(&t, "LIKE or IN after NOT"));
                }
                _ => return Ok(node),
            }
        }
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        let t = self.peek().clone();
        let wrap: fn(Box<Node>) -> Node = match t.tok {
            Tok::Not => Node::Not,
            Tok::Op(BinOp::Sub) => Node::Neg,
            _ => return self.primary(),
        };
        self.at += 1;
        self.enter(&t)?;
        let operand = self.unary()?;
        self.leave();
        Ok(wrap(Box::new(operand)))
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        let t = self.bump();
        Ok(match &t.tok {
            Tok::Int(i) => Node::Lit(Lit::Int(*i)),
            Tok::Str(s) => Node::Lit(Lit::Str(s.as_str().into())),
            Tok::True => Node::Lit(Lit::Bool(true)),
            Tok::False => Node::Lit(Lit::Bool(false)),
            Tok::LParen => {
                self.enter(&t)?;
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "')'")?;
                self.leave();
                inner
            }
            Tok::Exists => {
                let name = self.bump();
                if name.tok != Tok::Word {
                    return Err(self.unexpected(&name, "an attribute name after EXISTS"));
                }
                Node::Exists(AttrName::new(self.identifier(&name)?))
            }
            Tok::Word if self.peek().tok == Tok::LParen => {
                self.at += 1;
                self.enter(&t)?;
                let mut args = Vec::new();
                if !self.eat(&Tok::RParen) {
                    args.push(self.expr()?);
                    while self.eat(&Tok::Comma) {
                        args.push(self.expr()?);
                    }
                    self.expect(&Tok::RParen, "',' or ')' in the argument list")?;
                }
                self.leave();
                let name = self.text(&t).to_ascii_uppercase();
                match Func::resolve(&name, args.len()) {
                    Some(func) => Node::Call { func, args },
                    None => Node::UnknownCall {
                        name: name.into(),
                        arity: args.len(),
                    },
                }
            }
            Tok::Word => Node::Attr(AttrName::new(self.identifier(&t)?)),
            _ => return Err(self.unexpected(&t, "an expression")),
        })
    }

    /// An attribute name: letters and digits, folded to lower case.
    fn identifier(&self, t: &Token) -> Result<Box<str>, ParseError> {
        let text = self.text(t);
        if text.contains('_') {
            return Err(ParseError {
                position: t.pos,
                message: format!(
                    "attribute name {text} may contain only letters and digits (or is it a function? then add '(')"
                ),
            });
        }
        Ok(text.to_ascii_lowercase().into())
    }
}
