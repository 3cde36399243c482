//! URL query strings (and form bodies) to JSON, the way the `qs` library nests them.
//!
//! - `a=1&b=2` → `{"a": "1", "b": "2"}`; a key without `=` has the value `""`;
//! - repeated keys become arrays: `a=1&a=2` → `{"a": ["1", "2"]}`;
//! - brackets nest: `a[b][c]=1` → `{"a": {"b": {"c": "1"}}}`; `a[]=x&a[]=y` → `{"a": ["x", "y"]}`;
//!   `a[0][b]=1` → `{"a": [{"b": "1"}]}`;
//! - an index above 20 makes an object key (`a[100]=x` → `{"a": {"100": "x"}}`); sparse indices
//!   compact (`a[1]=x&a[5]=y` → `["x", "y"]`);
//! - nesting stops at depth 5: the rest of the key is one literal key;
//! - dots are plain key characters: `a.b=1` → `{"a.b": "1"}`;
//! - keys keep the order they first appear in;
//! - `+` is a space and `%XX` is percent-decoding (UTF-8; invalid sequences are kept as text).

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::{Map, Value};

/// Largest index that still makes an array (qs's `arrayLimit`).
const ARRAY_LIMIT: usize = 20;
/// Deepest bracket nesting (qs's `depth`).
const MAX_DEPTH: usize = 5;

/// Parses a query string (without the leading `?`) into a JSON object.
pub fn parse_query(query: &str) -> Value {
    let mut root = Tree::Map(IndexMap::new());
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key);
        if key.is_empty() {
            continue;
        }
        let leaf = Tree::Leaf(decode(raw_value));
        let tree = key_segments(&key).into_iter().rev().fold(leaf, |inner, segment| segment.wrap(inner));
        root = merge(root, tree);
    }
    root.into_value()
}

/// Parses an operator's example: a full URL, or only its query, with or without the `?`.
pub fn parse_query_example(example: &str) -> Value {
    let example = example.trim();
    let example = example.split_once('#').map_or(example, |(before, _)| before);
    let query = match example.split_once('?') {
        Some((_, query)) => query,
        None if example.contains("://") => "",
        None => example,
    };
    parse_query(query)
}

/// Percent-decodes a query component, `+` meaning space.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(index + 1..index + 3).and_then(|pair| hex_pair(pair[0], pair[1])) {
                Some(byte) => {
                    out.push(byte);
                    index += 2;
                }
                None => out.push(b'%'),
            },
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}

/// One step of a key: `a`, `[b]`, `[]` or `[3]`.
enum Segment {
    Key(String),
    Push,
    Index(usize),
}

impl Segment {
    fn wrap(self, inner: Tree) -> Tree {
        match self {
            Segment::Key(key) => Tree::Map(IndexMap::from([(key, inner)])),
            Segment::Push => Tree::List(vec![inner]),
            Segment::Index(index) => Tree::Indexed(BTreeMap::from([(index, inner)])),
        }
    }
}

/// Splits `a[b][0][]` into segments, as qs does (unbalanced brackets make a literal key).
fn key_segments(key: &str) -> Vec<Segment> {
    let first_bracket = key.find('[').filter(|&open| open > 0 && key[open..].contains(']'));
    let Some(open) = first_bracket else {
        return vec![Segment::Key(key.to_string())];
    };
    let mut segments = vec![Segment::Key(key[..open].to_string())];
    let mut rest = &key[open..];
    while segments.len() <= MAX_DEPTH {
        let Some(inner) = rest.strip_prefix('[') else { break };
        let Some(close) = inner.find(']') else { break };
        let name = &inner[..close];
        segments.push(match name.parse::<usize>() {
            _ if name.is_empty() => Segment::Push,
            Ok(index) if index <= ARRAY_LIMIT && index.to_string() == name => Segment::Index(index),
            _ => Segment::Key(name.to_string()),
        });
        rest = &inner[close + 1..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Key(rest.to_string()));
    }
    segments
}

/// The value being built: `Indexed` keeps explicit indices until the end, then compacts.
enum Tree {
    Leaf(String),
    List(Vec<Tree>),
    Indexed(BTreeMap<usize, Tree>),
    Map(IndexMap<String, Tree>),
}

impl Tree {
    fn into_value(self) -> Value {
        match self {
            Tree::Leaf(text) => Value::String(text),
            Tree::List(items) => Value::Array(items.into_iter().map(Tree::into_value).collect()),
            Tree::Indexed(items) => Value::Array(items.into_values().map(Tree::into_value).collect()),
            Tree::Map(fields) => {
                Value::Object(fields.into_iter().map(|(k, v)| (k, v.into_value())).collect::<Map<_, _>>())
            }
        }
    }

    fn into_list(self) -> Vec<Tree> {
        match self {
            Tree::List(items) => items,
            Tree::Indexed(items) => items.into_values().collect(),
            other => vec![other],
        }
    }
}

/// Merges a newly parsed pair into what was built so far, as qs's `merge` does.
fn merge(existing: Tree, new: Tree) -> Tree {
    match (existing, new) {
        (Tree::Map(mut fields), Tree::Map(new_fields)) => {
            for (key, value) in new_fields {
                merge_field(&mut fields, key, value);
            }
            Tree::Map(fields)
        }
        (Tree::Indexed(mut items), Tree::Indexed(new_items)) => {
            for (index, value) in new_items {
                let merged = match items.remove(&index) {
                    Some(old) => merge(old, value),
                    None => value,
                };
                items.insert(index, merged);
            }
            Tree::Indexed(items)
        }
        (Tree::Map(mut fields), Tree::Indexed(items)) => {
            for (index, value) in items {
                merge_field(&mut fields, index.to_string(), value);
            }
            Tree::Map(fields)
        }
        (Tree::Indexed(items), Tree::Map(new_fields)) => {
            let fields = items.into_iter().map(|(index, value)| (index.to_string(), value)).collect();
            merge(Tree::Map(fields), Tree::Map(new_fields))
        }
        (existing, new) => {
            let mut items = existing.into_list();
            items.extend(new.into_list());
            Tree::List(items)
        }
    }
}

/// Merges `value` into the field `key`, keeping the fields' first-seen order.
fn merge_field(fields: &mut IndexMap<String, Tree>, key: String, value: Tree) {
    match fields.get_mut(&key) {
        Some(slot) => {
            let old = std::mem::replace(slot, Tree::List(Vec::new()));
            *slot = merge(old, value);
        }
        None => {
            fields.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(query: &str, expected: Value) {
        assert_eq!(parse_query(query), expected, "{query}");
    }

    #[test]
    fn flat_and_repeated_keys() {
        check("", json!({}));
        check("a=1&b=2", json!({"a": "1", "b": "2"}));
        check("a=1&a=2&a=3", json!({"a": ["1", "2", "3"]}));
        check("flag&x=", json!({"flag": "", "x": ""}));
        check("a.b=1", json!({"a.b": "1"}));
        check("&&a=1&", json!({"a": "1"}));
    }

    #[test]
    fn decoding() {
        check("q=hello+world&e=%E2%9C%93&p=100%25", json!({"q": "hello world", "e": "✓", "p": "100%"}));
        check("bad=%zz%4", json!({"bad": "%zz%4"}));
        check("k%5B0%5D=v", json!({"k": ["v"]}));
    }

    #[test]
    fn examples_may_be_urls_or_queries() {
        let expected = json!({"query": [{"a": "1"}, "x"]});
        assert_eq!(
            parse_query_example("http://localhost:13000/api/webhook:trigger/k?query[0][a]=1&query[1]=x"),
            expected
        );
        assert_eq!(parse_query_example("?query[0][a]=1&query[1]=x"), expected);
        assert_eq!(parse_query_example("query[0][a]=1&query[1]=x#top"), expected);
        assert_eq!(parse_query_example("https://example.com/path"), json!({}));
    }

    #[test]
    fn brackets_nest() {
        check("a[0][b]=1", json!({"a": [{"b": "1"}]}));
        check("a[]=x&a[]=y", json!({"a": ["x", "y"]}));
        check("a[b][c]=1&a[b][d]=2", json!({"a": {"b": {"c": "1", "d": "2"}}}));
        check("query[0][a]=1&query[1]=x", json!({"query": [{"a": "1"}, "x"]}));
        check("a[1]=x&a[5]=y", json!({"a": ["x", "y"]}));
        check("a[100]=x", json!({"a": {"100": "x"}}));
        check("a[0]=x&a[b]=y", json!({"a": {"0": "x", "b": "y"}}));
        check("a[b=1", json!({"a[b": "1"}));
        check("a=1&a[b]=2", json!({"a": ["1", {"b": "2"}]}));
        check("a[b][c][d][e][f][g][h]=1", json!({"a": {"b": {"c": {"d": {"e": {"f": {"[g][h]": "1"}}}}}}}));
    }
}
