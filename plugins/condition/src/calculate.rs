//! NocoBase's "basic" calculation engine: groups of calculator items over JSON operands.
//!
//! Comparison rules, in full:
//! - **Equality** (`equal`, `notEqual`, and the membership tests `includes` on arrays, `in`,
//!   `notIn`) is loose in NocoBase's way: a number and a string that holds a number compare as
//!   numbers (`"42"` equals `42`, `" 4.0 "` equals `4`); `null` equals only `null`; values of any
//!   other pair of types are equal only when they are the same JSON value (arrays and objects
//!   compare deeply, booleans equal only booleans).
//! - **Ordering** (`gt`, `gte`, `lt`, `lte`) compares two numbers, or a number and a numeric
//!   string, numerically; two strings lexically (by Unicode code point). Any other pair cannot be
//!   ordered and the item is `false`.
//! - **Text** (`startsWith`, `endsWith`, and `includes` on strings) works on strings; numbers and
//!   booleans are taken as their JSON text. `includes` on an array is true when an element equals
//!   the right operand.
//! - `empty` is true for `null`, `""`, `[]` and `{}`; it and `notEmpty` read the left operand only.
//! - `in` is true when the right operand is an array holding an element equal to the left one.
//! - An item whose operands cannot be compared is `false`, for the negated calculators too
//!   (`notIncludes` of a number in an object is `false`, not `true`).
//! - An `and` group is true when every item is (an empty one is true); an `or` group when some
//!   item is (an empty one is false). A missing calculation is true.

use serde_json::Value;

/// A fault in the calculation config; the node fails with this message.
#[derive(Debug, PartialEq)]
pub struct ConfigError(pub String);

/// Evaluates a NocoBase `calculation` object (`{"group": {...}}`); `None` is true.
pub fn evaluate(calculation: Option<&Value>) -> Result<bool, ConfigError> {
    match calculation {
        None | Some(Value::Null) => Ok(true),
        Some(item) => evaluate_item(item, Place::Calculation),
    }
}

/// Where an item sits in the config (`calculation.group.calculations[0]`), written out only
/// when an error names it.
#[derive(Clone, Copy)]
enum Place<'a> {
    Calculation,
    Group(&'a Place<'a>),
    Item(&'a Place<'a>, usize),
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Calculation => f.write_str("calculation"),
            Place::Group(parent) => write!(f, "{parent}.group"),
            Place::Item(parent, index) => write!(f, "{parent}.calculations[{index}]"),
        }
    }
}

fn evaluate_item(item: &Value, place: Place<'_>) -> Result<bool, ConfigError> {
    let Some(object) = item.as_object() else {
        return Err(ConfigError(format!("{place}: expected an object")));
    };
    if let Some(group) = object.get("group") {
        return evaluate_group(group, Place::Group(&place));
    }
    let calculator = match object.get("calculator") {
        Some(Value::String(name)) => name.as_str(),
        Some(_) => return Err(ConfigError(format!("{place}.calculator: expected a string"))),
        None => {
            return Err(ConfigError(format!("{place}: expected a \"calculator\" item or a \"group\"")));
        }
    };
    let operands = match object.get("operands") {
        Some(Value::Array(operands)) => operands.as_slice(),
        None => &[],
        Some(_) => return Err(ConfigError(format!("{place}.operands: expected an array"))),
    };
    let left = operands.first().unwrap_or(&Value::Null);
    let right = operands.get(1).unwrap_or(&Value::Null);
    calculate(calculator, left, right)
        .map_err(|name| ConfigError(format!("{place}.calculator: unknown calculator \"{name}\"")))
}

fn evaluate_group(group: &Value, place: Place<'_>) -> Result<bool, ConfigError> {
    let Some(group) = group.as_object() else {
        return Err(ConfigError(format!("{place}: expected an object")));
    };
    let any = match group.get("type") {
        None => false,
        Some(Value::String(kind)) if kind == "and" => false,
        Some(Value::String(kind)) if kind == "or" => true,
        Some(other) => {
            return Err(ConfigError(format!("{place}.type: expected \"and\" or \"or\", got {other}")));
        }
    };
    let items = match group.get("calculations") {
        None => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => return Err(ConfigError(format!("{place}.calculations: expected an array"))),
    };
    // Every item is evaluated, so a config fault is reported even behind a decided result.
    let mut result = !any;
    for (index, item) in items.iter().enumerate() {
        let value = evaluate_item(item, Place::Item(&place, index))?;
        result = if any { result || value } else { result && value };
    }
    Ok(result)
}

/// Applies one calculator; `Err` carries an unknown calculator's name.
pub fn calculate<'a>(calculator: &'a str, left: &Value, right: &Value) -> Result<bool, &'a str> {
    let comparable = match calculator {
        "equal" | "==" => Some(loose_equal(left, right)),
        "notEqual" | "!=" => Some(!loose_equal(left, right)),
        "gt" | ">" => order(left, right).map(|o| o.is_gt()),
        "gte" | ">=" => order(left, right).map(|o| o.is_ge()),
        "lt" | "<" => order(left, right).map(|o| o.is_lt()),
        "lte" | "<=" => order(left, right).map(|o| o.is_le()),
        "includes" => includes(left, right),
        "notIncludes" => includes(left, right).map(|b| !b),
        "startsWith" => text_pair(left, right).map(|(l, r)| l.starts_with(&r)),
        "notStartsWith" => text_pair(left, right).map(|(l, r)| !l.starts_with(&r)),
        "endsWith" => text_pair(left, right).map(|(l, r)| l.ends_with(&r)),
        "notEndsWith" => text_pair(left, right).map(|(l, r)| !l.ends_with(&r)),
        "empty" => Some(is_empty(left)),
        "notEmpty" => Some(!is_empty(left)),
        "in" => member(left, right),
        "notIn" => member(left, right).map(|b| !b),
        unknown => return Err(unknown),
    };
    Ok(comparable.unwrap_or(false))
}

/// NocoBase's loose equality (see the module comment).
fn loose_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_)) => {
            match (as_number(left), as_number(right)) {
                (Some(l), Some(r)) => l == r,
                _ => false,
            }
        }
        (Value::Number(_), Value::Number(_)) => as_number(left) == as_number(right),
        _ => left == right,
    }
}

fn order(left: &Value, right: &Value) -> Option<std::cmp::Ordering> {
    match (left, right) {
        (Value::String(l), Value::String(r)) => Some(l.cmp(r)),
        (Value::Number(_), Value::Number(_) | Value::String(_)) | (Value::String(_), Value::Number(_)) => {
            as_number(left)?.partial_cmp(&as_number(right)?)
        }
        _ => None,
    }
}

fn includes(left: &Value, right: &Value) -> Option<bool> {
    match left {
        Value::Array(items) => Some(items.iter().any(|item| loose_equal(item, right))),
        _ => text_pair(left, right).map(|(l, r)| l.contains(&r)),
    }
}

fn member(left: &Value, right: &Value) -> Option<bool> {
    match right {
        Value::Array(items) => Some(items.iter().any(|item| loose_equal(left, item))),
        _ => None,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A number, or a string holding one (surrounding whitespace allowed).
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn text_pair(left: &Value, right: &Value) -> Option<(String, String)> {
    Some((as_text(left)?, as_text(right)?))
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_config_fault_names_where_it_is() {
        let nested = json!({"group": {"type": "or", "calculations": [
            {"calculator": "equal", "operands": [1, 1]},
            {"group": {"calculations": [{"calculator": "equal"}, {"calculator": "near", "operands": [1, 2]}]}}
        ]}});
        assert_eq!(
            evaluate(Some(&nested)),
            Err(ConfigError(
                "calculation.group.calculations[1].group.calculations[1].calculator: unknown calculator \"near\""
                    .into()
            ))
        );
        let group = json!({"group": {"type": "xor"}});
        assert_eq!(
            evaluate(Some(&group)),
            Err(ConfigError("calculation.group.type: expected \"and\" or \"or\", got \"xor\"".into()))
        );
        assert_eq!(evaluate(Some(&json!([]))), Err(ConfigError("calculation: expected an object".into())));
        assert_eq!(
            evaluate(Some(&json!({"group": {"calculations": [{"calculator": "gt", "operands": [2, 1]}]}}))),
            Ok(true)
        );
    }
}
