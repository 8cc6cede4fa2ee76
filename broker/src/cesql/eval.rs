//! CESQL evaluation: fail-fast, borrowing from the AST and the event.
//!
//! Every node evaluates to `Ok(value)` or `Err((value, fault))`. When a child fails, its parent returns
//! the zero value of its *own* result type (`false`, `0`, `""`) with the child's fault; only a failing
//! built-in function returns its own documented value (e.g. `LEFT('abc', -2)` → `'abc'`), which is
//! visible only when that call is the whole expression. Faults keep borrowed detail and are turned into
//! an [`EvalError`] message only by [`Expression::evaluate`](super::Expression::evaluate), so a filter that
//! fails (say, on a missing attribute) does not allocate.

use super::lexer::BinOp;
use super::parser::{AttrName, Core, Func, Lit, Node, Ty};
use super::{ErrorKind, EvalError, Value};
use crate::event::{AttrValue, Event};
use std::borrow::Cow;

/// A runtime value, borrowing from the AST or the event where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val<'a> {
    Bool(bool),
    Int(i32),
    Str(Cow<'a, str>),
}

impl Val<'_> {
    fn zero(ty: Ty) -> Val<'static> {
        match ty {
            Ty::Bool => Val::Bool(false),
            Ty::Int => Val::Int(0),
            Ty::Str => Val::Str(Cow::Borrowed("")),
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Val::Bool(b) => Value::Bool(b),
            Val::Int(i) => Value::Int(i),
            Val::Str(s) => Value::String(s.into_owned()),
        }
    }
}

/// Why an evaluation failed; detail is borrowed, the message is built on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault<'a> {
    MissingAttribute(&'a str),
    DivisionByZero,
    ModuloByZero,
    AbsOverflow,
    Cast { value: Val<'a>, to: Ty },
    MissingFunction { name: &'a str, arity: usize },
    FunctionEvaluation { func: Func, reason: &'static str },
}

impl Fault<'_> {
    pub(crate) fn into_error(self) -> EvalError {
        let (kind, message) = match self {
            Fault::MissingAttribute(name) => (
                ErrorKind::MissingAttribute,
                format!("missing attribute {name:?}"),
            ),
            Fault::DivisionByZero => (ErrorKind::Math, "division by zero".to_owned()),
            Fault::ModuloByZero => (ErrorKind::Math, "modulo by zero".to_owned()),
            Fault::AbsOverflow => (
                ErrorKind::Math,
                "ABS(-2147483648) overflows 32 bits; the result is 2147483647".to_owned(),
            ),
            Fault::Cast { value, to } => {
                let to = match to {
                    Ty::Bool => "Boolean",
                    Ty::Int => "Integer",
                    Ty::Str => "String",
                };
                let from = match value {
                    Val::Str(s) => {
                        let shown = match s.char_indices().nth(64) {
                            Some((cut, _)) => format!("{}…", &s[..cut]),
                            None => s.into_owned(),
                        };
                        format!("string {shown:?}")
                    }
                    Val::Int(i) => format!("integer {i}"),
                    Val::Bool(b) => format!("boolean {b}"),
                };
                (ErrorKind::Cast, format!("cannot cast {from} to {to}"))
            }
            Fault::MissingFunction { name, arity } => (
                ErrorKind::MissingFunction,
                format!("no function {name} taking {arity} argument(s)"),
            ),
            Fault::FunctionEvaluation { func, reason } => (
                ErrorKind::FunctionEvaluation,
                format!("{}: {reason}", func.name()),
            ),
        };
        EvalError { kind, message }
    }
}

/// Result of evaluating a node: on error, the value to return alongside the fault.
pub(crate) type Res<'a> = Result<Val<'a>, (Val<'a>, Fault<'a>)>;

/// Replaces a child's error value by the zero value of `ty`.
fn zeroed<'a>(ty: Ty) -> impl FnOnce((Val<'a>, Fault<'a>)) -> (Val<'a>, Fault<'a>) {
    move |(_, f)| (Val::zero(ty), f)
}

/// A cast failure, reported with the zero value of `ty`.
fn cast_fail<'a>(ty: Ty) -> impl FnOnce(Fault<'a>) -> (Val<'a>, Fault<'a>) {
    move |f| (Val::zero(ty), f)
}

// === casts (spec §3.7) ===

#[inline]
fn to_bool(v: Val<'_>) -> Result<bool, Fault<'_>> {
    match v {
        Val::Bool(b) => Ok(b),
        Val::Int(i) => Ok(i != 0),
        Val::Str(s) => {
            if s.eq_ignore_ascii_case("true") {
                Ok(true)
            } else if s.eq_ignore_ascii_case("false") {
                Ok(false)
            } else {
                Err(Fault::Cast {
                    value: Val::Str(s),
                    to: Ty::Bool,
                })
            }
        }
    }
}

#[inline]
fn to_int(v: Val<'_>) -> Result<i32, Fault<'_>> {
    match v {
        Val::Bool(b) => Ok(i32::from(b)),
        Val::Int(i) => Ok(i),
        // `str::parse::<i32>` is base 10 with an optional `+`/`-`, no whitespace, range-checked.
        Val::Str(s) => s.parse::<i32>().map_err(|_| Fault::Cast {
            value: Val::Str(s),
            to: Ty::Int,
        }),
    }
}

#[inline]
fn to_str(v: Val<'_>) -> Cow<'_, str> {
    match v {
        Val::Bool(true) => Cow::Borrowed("true"),
        Val::Bool(false) => Cow::Borrowed("false"),
        Val::Int(i) => Cow::Owned(i.to_string()),
        Val::Str(s) => s,
    }
}

#[inline]
fn cast(v: Val<'_>, ty: Ty) -> Result<Val<'_>, Fault<'_>> {
    Ok(match ty {
        Ty::Bool => Val::Bool(to_bool(v)?),
        Ty::Int => Val::Int(to_int(v)?),
        Ty::Str => Val::Str(to_str(v)),
    })
}

#[inline]
fn type_of(v: &Val<'_>) -> Ty {
    match v {
        Val::Bool(_) => Ty::Bool,
        Val::Int(_) => Ty::Int,
        Val::Str(_) => Ty::Str,
    }
}

// === evaluation ===

/// Evaluates `node` on `event`.
pub(crate) fn eval<'a>(node: &'a Node, event: &'a Event) -> Res<'a> {
    match node {
        Node::Lit(Lit::Bool(b)) => Ok(Val::Bool(*b)),
        Node::Lit(Lit::Int(i)) => Ok(Val::Int(*i)),
        Node::Lit(Lit::Str(s)) => Ok(Val::Str(Cow::Borrowed(s))),
        Node::Attr(attr) => match lookup(attr, event) {
            Some(AttrValue::Str(s)) => Ok(Val::Str(Cow::Borrowed(s))),
            Some(AttrValue::Bool(b)) => Ok(Val::Bool(b)),
            Some(AttrValue::Int(i)) => Ok(Val::Int(i)),
            None => Err((Val::Bool(false), Fault::MissingAttribute(&attr.name))),
        },
        Node::Exists(attr) => Ok(Val::Bool(lookup(attr, event).is_some())),
        Node::Not(inner) => {
            let v = eval(inner, event).map_err(zeroed(Ty::Bool))?;
            Ok(Val::Bool(!to_bool(v).map_err(cast_fail(Ty::Bool))?))
        }
        Node::Neg(inner) => {
            let v = eval(inner, event).map_err(zeroed(Ty::Int))?;
            Ok(Val::Int(
                to_int(v).map_err(cast_fail(Ty::Int))?.wrapping_neg(),
            ))
        }
        Node::Chain { first, rest } => eval_chain(node.result_type(), first, rest, event),
        Node::Like {
            operand,
            pattern,
            negated,
        } => {
            let v = eval(operand, event).map_err(zeroed(Ty::Bool))?;
            Ok(Val::Bool(pattern.matches(&to_str(v)) != *negated))
        }
        Node::In {
            operand,
            set,
            negated,
        } => {
            let v = eval(operand, event).map_err(zeroed(Ty::Bool))?;
            let ty = type_of(&v);
            let mut found = false;
            for element in set {
                let e = eval(element, event).map_err(zeroed(Ty::Bool))?;
                if cast(e, ty).map_err(cast_fail(Ty::Bool))? == v {
                    found = true;
                    break;
                }
            }
            Ok(Val::Bool(found != *negated))
        }
        Node::Call { func, args } => call(*func, args, event),
        Node::UnknownCall { name, arity } => Err((
            Val::Bool(false),
            Fault::MissingFunction {
                name,
                arity: *arity,
            },
        )),
    }
}

/// Looks an attribute up: core attributes by field, anything else through [`Event::attribute`]
/// (extensions, and the 0.3 `schemaurl` alias).
#[inline]
fn lookup<'e>(attr: &AttrName, event: &'e Event) -> Option<AttrValue<'e>> {
    let opt = |v: &'e Option<String>| v.as_deref().map(AttrValue::Str);
    match attr.core {
        Some(Core::Specversion) => Some(AttrValue::Str(event.specversion.as_str())),
        Some(Core::Id) => Some(AttrValue::Str(&event.id)),
        Some(Core::Source) => Some(AttrValue::Str(&event.source)),
        Some(Core::Type) => Some(AttrValue::Str(&event.ty)),
        Some(Core::Subject) => opt(&event.subject),
        Some(Core::Time) => opt(&event.time),
        Some(Core::Datacontenttype) => opt(&event.datacontenttype),
        Some(Core::Dataschema) => opt(&event.dataschema),
        None => event.attribute(&attr.name),
    }
}

/// A left-to-right chain of one precedence level. `ty` is the chain's result type (its last operator's).
fn eval_chain<'a>(ty: Ty, first: &'a Node, rest: &'a [(BinOp, Node)], event: &'a Event) -> Res<'a> {
    let mut acc = eval(first, event).map_err(zeroed(ty))?;
    for (op, rhs) in rest {
        let op = *op;
        acc = match op {
            BinOp::And | BinOp::Or => {
                let l = to_bool(acc).map_err(cast_fail(ty))?;
                // Short-circuit (mandatory): FALSE AND x, TRUE OR x never evaluate x.
                if l == (op == BinOp::Or) {
                    Val::Bool(l)
                } else {
                    let r = eval(rhs, event).map_err(zeroed(ty))?;
                    Val::Bool(to_bool(r).map_err(cast_fail(ty))?)
                }
            }
            _ => {
                // Both operands are evaluated before either is cast, so `'x' + missing` reports the
                // missing attribute, and `missing / 0` is not a math error.
                let r = eval(rhs, event).map_err(zeroed(ty))?;
                binary(op, acc, r).map_err(|f| (Val::zero(ty), f))?
            }
        };
    }
    Ok(acc)
}

/// A non-logical binary operator, or XOR, on evaluated operands.
#[inline]
fn binary<'a>(op: BinOp, l: Val<'a>, r: Val<'a>) -> Result<Val<'a>, Fault<'a>> {
    Ok(match op {
        BinOp::Xor | BinOp::And | BinOp::Or => {
            let (l, r) = (to_bool(l)?, to_bool(r)?);
            Val::Bool(match op {
                BinOp::And => l && r,
                BinOp::Or => l || r,
                _ => l != r,
            })
        }
        // Ambiguous operators: the left operand is cast to the right operand's type.
        BinOp::Eq | BinOp::NotEq => {
            let l = cast(l, type_of(&r))?;
            Val::Bool((l == r) == (op == BinOp::Eq))
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let (l, r) = (to_int(l)?, to_int(r)?);
            Val::Bool(match op {
                BinOp::Lt => l < r,
                BinOp::Le => l <= r,
                BinOp::Gt => l > r,
                _ => l >= r,
            })
        }
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
            let (l, r) = (to_int(l)?, to_int(r)?);
            // i32 arithmetic wraps like the reference engine; never a Rust overflow panic.
            Val::Int(match op {
                BinOp::Add => l.wrapping_add(r),
                BinOp::Sub => l.wrapping_sub(r),
                BinOp::Mul => l.wrapping_mul(r),
                BinOp::Div if r == 0 => return Err(Fault::DivisionByZero),
                BinOp::Div => l.wrapping_div(r),
                _ if r == 0 => return Err(Fault::ModuloByZero),
                _ => l.wrapping_rem(r),
            })
        }
    })
}

/// Evaluates and casts argument `i` of `func`.
fn arg<'a>(func: Func, args: &'a [Node], i: usize, event: &'a Event) -> Res<'a> {
    let ty = func.result_type();
    let node = args.get(i).ok_or((
        Val::zero(ty),
        Fault::FunctionEvaluation {
            func,
            reason: "missing argument",
        },
    ))?;
    let v = eval(node, event).map_err(zeroed(ty))?;
    match func.arg_type(i) {
        Some(want) => cast(v, want).map_err(cast_fail(ty)),
        None => Ok(v),
    }
}

fn arg_str<'a>(
    func: Func,
    args: &'a [Node],
    i: usize,
    event: &'a Event,
) -> Result<Cow<'a, str>, (Val<'a>, Fault<'a>)> {
    arg(func, args, i, event).map(to_str)
}

fn arg_int<'a>(
    func: Func,
    args: &'a [Node],
    i: usize,
    event: &'a Event,
) -> Result<i32, (Val<'a>, Fault<'a>)> {
    match arg(func, args, i, event)? {
        Val::Int(n) => Ok(n),
        other => to_int(other).map_err(cast_fail(func.result_type())),
    }
}

fn fn_fail<'a>(value: Val<'a>, func: Func, reason: &'static str) -> Res<'a> {
    Err((value, Fault::FunctionEvaluation { func, reason }))
}

/// Calls a built-in (arity already checked at parse time).
fn call<'a>(func: Func, args: &'a [Node], event: &'a Event) -> Res<'a> {
    match func {
        Func::Length => {
            let s = arg_str(func, args, 0, event)?;
            Ok(Val::Int(
                i32::try_from(s.chars().count()).unwrap_or(i32::MAX),
            ))
        }
        Func::Concat | Func::ConcatWs => {
            let (sep, from) = match func {
                Func::ConcatWs => (arg_str(func, args, 0, event)?, 1),
                _ => (Cow::Borrowed(""), 0),
            };
            if args.len() == from + 1 {
                return Ok(Val::Str(arg_str(func, args, from, event)?));
            }
            let mut out = String::new();
            for i in from..args.len() {
                if i > from {
                    out.push_str(&sep);
                }
                out.push_str(&arg_str(func, args, i, event)?);
            }
            Ok(Val::Str(Cow::Owned(out)))
        }
        Func::Lower => Ok(Val::Str(Cow::Owned(
            arg_str(func, args, 0, event)?.to_lowercase(),
        ))),
        Func::Upper => Ok(Val::Str(Cow::Owned(
            arg_str(func, args, 0, event)?.to_uppercase(),
        ))),
        Func::Trim => Ok(Val::Str(match arg_str(func, args, 0, event)? {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
            Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
        })),
        Func::Left | Func::Right => {
            let s = arg_str(func, args, 0, event)?;
            let n = arg_int(func, args, 1, event)?;
            let Ok(n) = usize::try_from(n) else {
                return fn_fail(Val::Str(s), func, "the length must not be negative");
            };
            let len = s.chars().count();
            if n >= len {
                return Ok(Val::Str(s));
            }
            let cut = if func == Func::Left { n } else { len - n };
            let at = byte_index(&s, cut);
            Ok(Val::Str(match (func, s) {
                (Func::Left, Cow::Borrowed(b)) => Cow::Borrowed(&b[..at]),
                (_, Cow::Borrowed(b)) => Cow::Borrowed(&b[at..]),
                (Func::Left, Cow::Owned(o)) => Cow::Owned(o[..at].to_owned()),
                (_, Cow::Owned(o)) => Cow::Owned(o[at..].to_owned()),
            }))
        }
        Func::Substring => {
            let s = arg_str(func, args, 0, event)?;
            let pos = arg_int(func, args, 1, event)?;
            let take = match args.len() {
                3 => match usize::try_from(arg_int(func, args, 2, event)?) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        return fn_fail(Val::zero(Ty::Str), func, "the length must not be negative")
                    }
                },
                _ => None,
            };
            if pos == 0 {
                return Ok(Val::zero(Ty::Str));
            }
            let len = s.chars().count();
            let abs = usize::try_from(pos.unsigned_abs()).unwrap_or(usize::MAX);
            if abs > len {
                return fn_fail(
                    Val::zero(Ty::Str),
                    func,
                    "the position is beyond the end of the string",
                );
            }
            // 1-based from the start, or counted from the end when negative.
            let start = if pos > 0 { abs - 1 } else { len - abs };
            let end = take.map_or(len, |n| len.min(start.saturating_add(n)));
            let (a, b) = (byte_index(&s, start), byte_index(&s, end));
            Ok(Val::Str(match s {
                Cow::Borrowed(x) => Cow::Borrowed(&x[a..b]),
                Cow::Owned(x) => Cow::Owned(x[a..b].to_owned()),
            }))
        }
        Func::Abs => {
            let n = arg_int(func, args, 0, event)?;
            match n.checked_abs() {
                Some(a) => Ok(Val::Int(a)),
                None => Err((Val::Int(i32::MAX), Fault::AbsOverflow)),
            }
        }
        Func::Int => {
            let v = arg(func, args, 0, event)?;
            Ok(Val::Int(to_int(v).map_err(cast_fail(Ty::Int))?))
        }
        Func::Bool => {
            let v = arg(func, args, 0, event)?;
            Ok(Val::Bool(to_bool(v).map_err(cast_fail(Ty::Bool))?))
        }
        Func::String => Ok(Val::Str(to_str(arg(func, args, 0, event)?))),
    }
}

/// Byte index of the `n`-th character of `s` (or `s.len()`).
fn byte_index(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

/// Evaluates a whole expression into the public shape.
pub(crate) fn evaluate(root: &Node, event: &Event) -> (Value, Option<EvalError>) {
    match eval(root, event) {
        Ok(v) => (v.into_value(), None),
        Err((v, f)) => (v.into_value(), Some(f.into_error())),
    }
}
