//! "Parse example": every path in an example query or JSON body, as the trigger's request
//! configuration lists them (`{"a":1,"b":{"c":2}}` → `a`, `b`, `b.c`). Paths use the template
//! syntax (`b.c`, `items[0]`, `["a.b"]`), so a listed path addresses the same value
//! under `{{$context.body...}}`.

use serde_json::Value;

use super::template::join_key;

/// Every path in `example`, parents before children, in document order.
pub fn example_paths(example: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    collect(example, "", &mut paths);
    paths
}

fn collect(value: &Value, path: &str, paths: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(fields) => fields.iter().map(|(key, child)| (join_key(path, key), child)).collect(),
        Value::Array(items) => {
            items.iter().enumerate().map(|(index, child)| (format!("{path}[{index}]"), child)).collect()
        }
        _ => return,
    };
    for (child_path, child) in children {
        paths.push(child_path.clone());
        collect(child, &child_path, paths);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(example: Value, expected: &[&str]) {
        let paths = example_paths(&example);
        assert_eq!(paths, expected, "{example}");
        for path in paths {
            let steps = super::super::template::parse_value_path(&path).expect("a listed path parses back");
            assert_ne!(super::super::template::select(&example, &steps), Value::Null, "{path}");
        }
    }

    #[test]
    fn paths_of_examples() {
        check(json!({"a": 1, "b": {"c": 2}}), &["a", "b", "b.c"]);
        check(json!({"items": [{"sku": "A"}]}), &["items", "items[0]", "items[0].sku"]);
        check(json!({"query": [{"a": "1"}, "x"]}), &["query", "query[0]", "query[0].a", "query[1]"]);
        check(json!({"a.b": {"c d": 1}}), &["[\"a.b\"]", "[\"a.b\"][\"c d\"]"]);
        check(json!({"q\"\\": {"]": 1}}), &["[\"q\\\"\\\\\"]", "[\"q\\\"\\\\\"][\"]\"]"]);
        check(json!([1, [2]]), &["[0]", "[1]", "[1][0]"]);
        check(json!({"z": 1, "a": 2}), &["z", "a"]);
        check(json!(5), &[]);
    }
}
