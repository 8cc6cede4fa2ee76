//! Engine unit tests: the traps of cloudevents-rules.md Part B that the TCK does not cover.

use super::*;
use crate::event::{Event, ExtValue};

fn event() -> Event {
    let mut e = Event::new("id-1", "https://shop/orders", "com.example.order");
    e.set_extension("myext", ExtValue::String("b".into()));
    e.set_extension("n", ExtValue::Int(7));
    e.set_extension("s", ExtValue::String("10".into()));
    e
}

fn eval(text: &str) -> (Value, Option<ErrorKind>) {
    let expr = Expression::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let (v, err) = expr.evaluate(&event());
    (v, err.map(|e| e.kind))
}

fn ok(text: &str) -> Value {
    match eval(text) {
        (v, None) => v,
        (v, Some(k)) => panic!("{text}: unexpected {k:?} (value {v:?})"),
    }
}

fn parse_err(text: &str) -> ParseError {
    match Expression::parse(text) {
        Ok(e) => panic!("{text}: parsed as {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn integer_overflow_never_panics() {
    assert_eq!(ok("-2147483648 / -1"), Value::Int(i32::MIN));
    assert_eq!(ok("-2147483648 % -1"), Value::Int(0));
    assert_eq!(ok("- -2147483648"), Value::Int(i32::MIN));
    assert_eq!(ok("2147483647 + 1"), Value::Int(i32::MIN));
    assert_eq!(ok("-2147483648 - 1"), Value::Int(i32::MAX));
    assert_eq!(ok("65536 * 65536"), Value::Int(0));
    assert_eq!(
        eval("ABS(-2147483648)"),
        (Value::Int(i32::MAX), Some(ErrorKind::Math))
    );
    assert_eq!(
        eval("ABS(-2147483648) + 1"),
        (Value::Int(0), Some(ErrorKind::Math)),
        "a parent of a failing function returns its own zero value"
    );
    assert_eq!(
        eval("INT('2147483648')"),
        (Value::Int(0), Some(ErrorKind::Cast))
    );
    assert_eq!(ok("INT('+12')"), Value::Int(12));
    assert_eq!(eval("5 % 0"), (Value::Int(0), Some(ErrorKind::Math)));
    assert_eq!(ok("-7 % 3"), Value::Int(-1), "sign of the dividend");
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    for text in [
        format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{}TRUE", "NOT ".repeat(10_000)),
        format!("{}1", "- ".repeat(10_000)),
        format!("{}1{}", "ABS(".repeat(10_000), ")".repeat(10_000)),
        format!("{}{}", "1 IN (".repeat(10_000), "1"),
    ] {
        let err = parse_err(&text);
        assert!(err.message.contains("nested deeper"), "{err}");
    }
    // 64 levels are fine; 65 are not.
    let ok64 = format!("{}1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(ok(&ok64), Value::Int(1));
    let bad = format!(
        "{}1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(parse_err(&bad).position, MAX_DEPTH);
}

#[test]
fn long_operator_chains_do_not_nest() {
    let ors = vec!["myext = 'a'"; 2_000].join(" OR ") + " OR myext = 'b'";
    assert_eq!(ok(&ors), Value::Bool(true));
    let sum = vec!["1"; 10_000].join(" + ");
    assert_eq!(ok(&sum), Value::Int(10_000));
}

#[test]
fn length_cap() {
    let long = format!("'{}'", "a".repeat(MAX_LENGTH));
    assert!(parse_err(&long).message.contains("limit"));
}

#[test]
fn parse_error_positions_and_messages() {
    let e = parse_err("x LIKE 123");
    assert_eq!(
        e.to_string(),
        "at 7: expected a string literal after LIKE, found 123"
    );
    let e = parse_err("ABC(");
    assert_eq!(e.position, 4);
    assert!(e.message.contains("end of input"), "{e}");
    let e = parse_err("x IN ()");
    assert_eq!(e.position, 6);
    let e = parse_err("5-3");
    assert_eq!(e.position, 1);
    assert!(e.message.contains("sign"), "{e}");
    assert!(parse_err("4 -1").message.contains("found -1"));
    let e = parse_err("'é' = é");
    assert_eq!(e.position, 6, "positions count characters");
    assert_eq!(parse_err("my_ext = 1").position, 0);
    assert_eq!(parse_err("EXISTS 'a'").position, 7);
    assert_eq!(parse_err("a NOT b").position, 6);
    assert_eq!(parse_err("(TRUE").position, 5);
    assert_eq!(parse_err("'abc").position, 0);
    assert_eq!(parse_err("TRUE TRUE").position, 5);
    assert_eq!(parse_err("1 ! 2").position, 2);
    assert_eq!(parse_err("").position, 0);
}

#[test]
fn lexical_rules() {
    assert_eq!(ok("4 - 1"), Value::Int(3));
    assert_eq!(ok("--10"), Value::Int(10));
    assert_eq!(ok("- 10"), Value::Int(-10));
    assert_eq!(ok("+10"), Value::Int(10));
    assert_eq!(
        ok("MyExt"),
        Value::String("b".into()),
        "identifiers fold to lower case"
    );
    assert_eq!(
        ok("length ('ab')"),
        Value::Int(2),
        "function names are case-insensitive"
    );
    assert_eq!(ok("concat_ws('-', 'a', 'b')"), Value::String("a-b".into()));
    assert_eq!(
        ok("'it''s'"),
        Value::String("it''s".into()),
        "doubled quotes kept, like the reference"
    );
}

#[test]
fn logic_is_left_to_right_and_short_circuits() {
    assert_eq!(ok("FALSE AND TRUE OR TRUE"), Value::Bool(true));
    assert_eq!(ok("TRUE OR FALSE AND FALSE"), Value::Bool(false));
    assert_eq!(ok("FALSE AND missing OR TRUE"), Value::Bool(true));
    assert_eq!(
        eval("TRUE OR missing AND 1/0"),
        (Value::Bool(false), Some(ErrorKind::Math)),
        "((T OR _) AND x) evaluates x"
    );
    assert_eq!(
        eval("TRUE OR missing AND FALSE"),
        (Value::Bool(false), None)
    );
    assert_eq!(
        eval("TRUE XOR missing"),
        (Value::Bool(false), Some(ErrorKind::MissingAttribute))
    );
    assert_eq!(
        eval("'x' AND TRUE"),
        (Value::Bool(false), Some(ErrorKind::Cast))
    );
}

#[test]
fn error_precedence_and_zero_values() {
    assert_eq!(
        eval("'x' + missing"),
        (Value::Int(0), Some(ErrorKind::MissingAttribute))
    );
    assert_eq!(
        eval("1/0 + missing"),
        (Value::Int(0), Some(ErrorKind::Math))
    );
    assert_eq!(
        eval("LENGTH(missing)"),
        (Value::Int(0), Some(ErrorKind::MissingAttribute))
    );
    assert_eq!(
        eval("UPPER(missing)"),
        (
            Value::String(String::new()),
            Some(ErrorKind::MissingAttribute)
        )
    );
    assert_eq!(
        eval("LEFT('abc', -1) = 'abc'"),
        (Value::Bool(false), Some(ErrorKind::FunctionEvaluation))
    );
    assert_eq!(
        eval("NOSUCH(missing)"),
        (Value::Bool(false), Some(ErrorKind::MissingFunction))
    );
    assert_eq!(
        eval("LENGTH('a', 'b')"),
        (Value::Bool(false), Some(ErrorKind::MissingFunction))
    );
    assert_eq!(
        eval("1 IN ('x', 1)"),
        (Value::Bool(false), Some(ErrorKind::Cast))
    );
    assert_eq!(
        eval("1 IN (1, 'x')"),
        (Value::Bool(true), None),
        "stops at the first match"
    );
    assert_eq!(
        eval("missing NOT IN (1)"),
        (Value::Bool(false), Some(ErrorKind::MissingAttribute))
    );
    assert_eq!(
        eval("NOT 10"),
        (Value::Bool(false), None),
        "spec §3.7 (TCK deviation)"
    );
    assert_eq!(
        eval("'abc' = 1"),
        (Value::Bool(false), Some(ErrorKind::Cast))
    );
}

#[test]
fn casting_and_attributes() {
    assert_eq!(
        ok("n = '7'"),
        Value::Bool(true),
        "left (Int 7) cast to String"
    );
    assert_eq!(ok("TRUE = 'true'"), Value::Bool(true));
    assert_eq!(ok("'7' = n"), Value::Bool(true));
    assert_eq!(
        ok("s > n"),
        Value::Bool(true),
        "comparisons are on integers"
    );
    assert_eq!(ok("n LIKE '_'"), Value::Bool(true));
    assert_eq!(ok("n IN ('7')"), Value::Bool(true));
    assert_eq!(ok("STRING(n)"), Value::String("7".into()));
    assert_eq!(ok("EXISTS MYEXT AND NOT EXISTS subject"), Value::Bool(true));
}

#[test]
fn string_functions_use_characters() {
    assert_eq!(ok("LENGTH('héllo')"), Value::Int(5));
    assert_eq!(ok("LEFT('héllo', 2)"), Value::String("hé".into()));
    assert_eq!(ok("RIGHT('héllo', 4)"), Value::String("éllo".into()));
    assert_eq!(ok("SUBSTRING('héllo', 2, 2)"), Value::String("él".into()));
    assert_eq!(ok("SUBSTRING('héllo', -4)"), Value::String("éllo".into()));
    assert_eq!(ok("SUBSTRING('abc', 3)"), Value::String("c".into()));
    assert_eq!(ok("SUBSTRING('abc', -3)"), Value::String("abc".into()));
    assert_eq!(ok("SUBSTRING('abc', 2, 100)"), Value::String("bc".into()));
    assert_eq!(
        eval("SUBSTRING('abc', 1, -1)"),
        (
            Value::String(String::new()),
            Some(ErrorKind::FunctionEvaluation)
        )
    );
    assert_eq!(
        eval("SUBSTRING('abc', -2147483648)"),
        (
            Value::String(String::new()),
            Some(ErrorKind::FunctionEvaluation)
        )
    );
    assert_eq!(ok("TRIM('\u{2003} a \t')"), Value::String("a".into()));
    assert_eq!(ok("UPPER('straße')"), Value::String("STRASSE".into()));
    assert_eq!(ok("CONCAT(1, TRUE, 'x')"), Value::String("1truex".into()));
}

#[test]
fn matches_is_strict() {
    let e = event();
    let m = |t: &str| Expression::parse(t).expect("parses").matches(&e);
    assert!(m(
        "type = 'com.example.order' AND source LIKE 'https://shop/%'"
    ));
    assert!(m("myext IN ('a','b','c') AND NOT EXISTS subject"));
    assert!(!m("myext"), "a String result does not pass");
    assert!(!m("1"));
    assert!(!m("missing = 'x' OR TRUE"), "an error does not pass");
    assert!(m("TRUE OR missing = 'x'"));
    assert!(!m("NOT 10"));
}

#[test]
fn source_and_equality() {
    let a = Expression::parse("a = 1").expect("parses");
    assert_eq!(a.source(), "a = 1");
    assert_eq!(a, Expression::parse("a = 1").expect("parses"));
    assert_ne!(a, Expression::parse("a = 2").expect("parses"));
}
