//! Arbitrary UTF-8 as CESQL text: parsing and evaluating on a fixed event must never panic or hang
//! (deep nesting is a parse error, integer overflow wraps, LIKE matching is polynomial), and `matches`
//! must agree with `evaluate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_broker::cesql::{Expression, Value};
use switchyard_broker::event::{Event, ExtValue};

fuzz_target!(|text: &str| {
    let Ok(expr) = Expression::parse(text) else {
        return;
    };
    assert_eq!(expr.source(), text);
    let mut event = Event::new("id-1", "https://shop/orders", "com.example.order");
    event.subject = Some("sub ject".into());
    event.time = Some("2024-05-01T12:34:56+02:00".into());
    event.set_extension("myext", ExtValue::String("b".into()));
    event.set_extension("n", ExtValue::Int(i32::MIN));
    event.set_extension("flag", ExtValue::Bool(true));
    event.set_extension("num", ExtValue::String("-42".into()));
    let (value, error) = expr.evaluate(&event);
    let pass = value == Value::Bool(true) && error.is_none();
    assert_eq!(expr.matches(&event), pass);
    // Parsing is deterministic.
    let again = Expression::parse(text).expect("parses twice");
    assert_eq!(again.evaluate(&event), (value, error));
});
