//! URL query strings (and form bodies) to JSON exactly as the npm `qs` package's `qs.parse(query)`
//! (qs 6.17, its default options) parses them — the library NocoBase users' queries went through.
//! `tests/qs/` runs the real `qs` beside this on a table of its rules and thousands of generated
//! queries (`crates/server/tests/qs.rs`), and a fuzz target compares the two.
//!
//! This is a port of qs's `parse.js` and of the parts of `utils.js` it uses, over a model of the
//! JavaScript values they build ([`Js`]): sparse arrays (compacted at the end), objects whose
//! integer-like keys come first, and the two marks qs keeps on the side — an object made from an
//! array that went past `arrayLimit` ("overflow"), and an array or object made by a conflicting
//! merge ("conflict"). In short:
//!
//! - `a=1&b=2` → `{"a": "1", "b": "2"}`; a key without `=` has the value `""`; repeated keys
//!   combine into arrays; at most [`PARAMETER_LIMIT`] pairs are read;
//! - brackets nest to [`DEPTH`] levels (the rest is one literal key); `a[]=x` appends;
//!   an index below [`ARRAY_LIMIT`] makes an array (sparse indices compact), a larger one an
//!   object key; an array past the limit becomes an object;
//! - keys that name `Object.prototype`'s properties (`__proto__`, `toString`, …) are dropped;
//! - `+` is a space; percent-decoding is `decodeURIComponent`'s (a string with a bad escape or
//!   bytes that are not UTF-8 is kept as it was); `%5B` and `%5D` in keys are brackets.

use indexmap::IndexMap;
use serde_json::{Map, Value};

/// Largest array index + 1, and most elements an array keeps (qs's `arrayLimit`).
pub const ARRAY_LIMIT: usize = 20;
/// Deepest bracket nesting (qs's `depth`).
pub const DEPTH: usize = 5;
/// Most `key=value` pairs read (qs's `parameterLimit`).
pub const PARAMETER_LIMIT: usize = 1000;

/// The own property names of JavaScript's `Object.prototype`: qs drops a key that names one.
const PROTOTYPE_KEYS: [&str; 12] = [
    "constructor",
    "__defineGetter__",
    "__defineSetter__",
    "hasOwnProperty",
    "__lookupGetter__",
    "__lookupSetter__",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toString",
    "valueOf",
    "__proto__",
    "toLocaleString",
];

/// Parses a query string (without the leading `?`) into a JSON object, as `qs.parse` does.
pub fn parse_query(query: &str) -> Value {
    if query.is_empty() {
        return Value::Object(Map::new());
    }
    let values = parse_values(query);
    let mut object = Js::object();
    for key in values.keys() {
        let Some(value) = values.get(&key) else { continue };
        if let Some(parsed) = parse_key(&key, value.clone()) {
            object = merge(object, parsed);
        }
    }
    object.compact();
    object.into_json()
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

/// `+` as space, then `decodeURIComponent`; the text with only `+` replaced when that throws (a
/// `%` without two hex digits, or escapes that are not UTF-8).
pub fn decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    if !spaced.contains('%') {
        return spaced;
    }
    let bytes = spaced.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            match bytes.get(index + 1..index + 3).and_then(|pair| hex_pair(pair[0], pair[1])) {
                Some(byte) => {
                    out.push(byte);
                    index += 3;
                    continue;
                }
                None => return spaced,
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8(out).unwrap_or(spaced)
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    u8::try_from(digit(high)? * 16 + digit(low)?).ok()
}

/// qs's `parseValues`: the pairs, their keys and values decoded, repeated keys combined.
fn parse_values(query: &str) -> JsObject {
    let clean = replace_ignoring_case(&replace_ignoring_case(query, "%5B", "["), "%5D", "]");
    let mut values = JsObject::default();
    for part in clean.split('&').take(PARAMETER_LIMIT) {
        // `[]=` belongs to the key: split at `]=` when there is one.
        let position = match part.find("]=") {
            Some(bracket) => Some(bracket + 1),
            None => part.find('='),
        };
        let (key, value) = match position {
            Some(position) => (decode(&part[..position]), decode(&part[position + 1..])),
            None => (decode(part), String::new()),
        };
        values.update(key, Js::Str(value), combine);
    }
    values
}

/// `text` with every `pattern` (ASCII, any case) replaced.
fn replace_ignoring_case(text: &str, pattern: &str, replacement: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (index, _) in lower.match_indices(&pattern) {
        out.push_str(&text[last..index]);
        out.push_str(replacement);
        last = index + pattern.len();
    }
    out.push_str(&text[last..]);
    out
}

/// qs's `parseKeys`: a key split into segments and its value nested under them; `None` for an
/// empty key or one that names a prototype property.
fn parse_key(key: &str, value: Js) -> Option<Js> {
    if key.is_empty() {
        return None;
    }
    let segments = split_key(key)?;
    Some(parse_object(&segments, value))
}

/// qs's `splitKeyIntoSegments`: `a[b][c]` → `a`, `[b]`, `[c]`, balanced brackets kept together,
/// an unterminated group one literal segment, what lies past [`DEPTH`] one last segment.
fn split_key(key: &str) -> Option<Vec<String>> {
    let mut segments = Vec::new();
    let first = key.find('[');
    let parent = first.map_or(key, |first| &key[..first]);
    if !parent.is_empty() {
        if PROTOTYPE_KEYS.contains(&parent) {
            return None;
        }
        segments.push(parent.to_string());
    }
    let bytes = key.as_bytes();
    let mut open = first;
    let mut collected = 0;
    while let Some(start) = open.filter(|_| collected < DEPTH) {
        let mut level = 1;
        let mut close = None;
        for (offset, byte) in bytes[start + 1..].iter().enumerate() {
            match byte {
                b'[' => level += 1,
                b']' => {
                    level -= 1;
                    if level == 0 {
                        close = Some(start + 1 + offset);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            segments.push(format!("[{}]", &key[start..]));
            return Some(segments);
        };
        let content = &key[start + 1..close];
        if PROTOTYPE_KEYS.contains(&content) {
            return None;
        }
        segments.push(key[start..=close].to_string());
        collected += 1;
        open = key[close + 1..].find('[').map(|next| close + 1 + next);
    }
    if let Some(start) = open {
        segments.push(format!("[{}]", &key[start..]));
    }
    Some(segments)
}

/// qs's `parseObject`: the value wrapped in each segment, innermost first.
fn parse_object(segments: &[String], value: Js) -> Js {
    let mut leaf = value;
    for root in segments.iter().rev() {
        leaf = if root == "[]" {
            if matches!(&leaf, Js::Obj(object) if object.overflow.is_some()) {
                leaf
            } else {
                combine(Js::array(), leaf)
            }
        } else {
            let clean = root.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')).unwrap_or(root);
            match array_index(root, clean) {
                Some(index) if index < ARRAY_LIMIT as f64 => {
                    let mut items = vec![None; index as usize];
                    items.push(Some(leaf));
                    Js::Arr(JsArray { items, conflict: None })
                }
                Some(index) => {
                    let mut object = JsObject::default();
                    object.insert(clean.to_string(), leaf);
                    object.overflow = Some(index);
                    Js::Obj(object)
                }
                None => {
                    let mut object = JsObject::default();
                    if clean != "__proto__" {
                        object.insert(clean.to_string(), leaf);
                    }
                    Js::Obj(object)
                }
            }
        };
    }
    leaf
}

/// The index a bracketed segment names: `clean` is a canonical non-negative integer (as
/// `String(parseInt(clean, 10)) === clean` holds in JavaScript) and `root` had brackets.
fn array_index(root: &str, clean: &str) -> Option<f64> {
    if root == clean {
        return None;
    }
    numeric_key(clean)
}

/// A key that `String(parseInt(key, 10)) === key` holds for, non-negative: its number (a
/// JavaScript number: past 2^53 it is the nearest double, which prints back as the key only when
/// the key's digits are that double's shortest digits padded with zeros).
fn numeric_key(key: &str) -> Option<f64> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    let number: f64 = key.parse().ok()?;
    (js_number(number) == key).then_some(number)
}

/// `String(n)` of a non-negative integral JavaScript number: its digits below 10^21, else
/// exponent notation (`1e+21`).
fn js_number(number: f64) -> String {
    if number < 1e21 {
        return format!("{number}");
    }
    format!("{number:e}").replacen('e', "e+", 1)
}

/// qs's `utils.combine`: `[].concat(a, b)`, an array past [`ARRAY_LIMIT`] becoming an overflow
/// object; an overflow object takes `b`'s values at its next indices.
fn combine(a: Js, b: Js) -> Js {
    if let Js::Obj(mut object) = a {
        if let Some(mut max) = object.overflow {
            for value in b.into_spread() {
                max += 1.0;
                // A hole becomes a property holding `undefined`, which JSON leaves out.
                if let Some(value) = value {
                    object.insert(js_number(max), value);
                }
            }
            object.overflow = Some(max);
            return Js::Obj(object);
        }
        return combine_arrays(vec![Some(Js::Obj(object))], b);
    }
    combine_arrays(a.into_spread(), b)
}

fn combine_arrays(mut items: Vec<Option<Js>>, b: Js) -> Js {
    items.extend(b.into_spread());
    if items.len() > ARRAY_LIMIT {
        let last = (items.len() - 1) as f64;
        let mut object = array_to_object(items);
        object.overflow = Some(last);
        return Js::Obj(object);
    }
    Js::Arr(JsArray { items, conflict: None })
}

/// qs's `utils.arrayToObject`: the present elements under their indices.
fn array_to_object(items: Vec<Option<Js>>) -> JsObject {
    let mut object = JsObject::default();
    for (index, item) in items.into_iter().enumerate() {
        if let Some(item) = item {
            object.insert(index.to_string(), item);
        }
    }
    object
}

/// qs's `utils.merge` with its default options (`strictMerge` on, `arrayLimit` 20).
fn merge(target: Js, source: Js) -> Js {
    match source {
        // An empty string is falsy: nothing to merge.
        Js::Str(text) if text.is_empty() => target,
        Js::Str(text) => merge_primitive(target, text),
        source => merge_container(target, source),
    }
}

fn merge_primitive(target: Js, source: String) -> Js {
    match target {
        Js::Arr(mut array) => {
            let next = array.items.len() as f64;
            if array.count() >= ARRAY_LIMIT {
                array.items.push(Some(Js::Str(source)));
                let mut object = array_to_object(array.items);
                object.overflow = Some(next);
                return Js::Obj(object);
            }
            array.items.push(Some(Js::Str(source)));
            Js::Arr(array)
        }
        Js::Obj(mut object) => {
            if let Some(max) = object.overflow {
                object.insert(js_number(max + 1.0), Js::Str(source));
                object.overflow = Some(max + 1.0);
                Js::Obj(object)
            } else if let Some(conflict) = object.conflict {
                object.insert(js_number(conflict + 1.0), Js::Str(source));
                object.conflict = Some(conflict + 1.0);
                Js::Obj(object)
            } else {
                conflict_pair(Js::Obj(object), Js::Str(source))
            }
        }
        target @ Js::Str(_) => plain_pair(target, Js::Str(source)),
    }
}

/// `[first, second]` marked as a conflict (`strictMerge`).
fn conflict_pair(first: Js, second: Js) -> Js {
    Js::Arr(JsArray { items: vec![Some(first), Some(second)], conflict: Some(1.0) })
}

/// `[first, second]` (two never pass the array limit).
fn plain_pair(first: Js, second: Js) -> Js {
    Js::Arr(JsArray { items: vec![Some(first), Some(second)], conflict: None })
}

fn merge_container(target: Js, source: Js) -> Js {
    let target = match target {
        Js::Str(text) => return merge_into_primitive(text, source),
        target => target,
    };
    match (target, source) {
        (Js::Arr(mut target), Js::Arr(source)) => {
            for (index, item) in source.items.into_iter().enumerate() {
                let Some(item) = item else { continue };
                match target.items.get_mut(index) {
                    Some(Some(existing)) => {
                        if existing.is_container() && item.is_container() {
                            let old = std::mem::replace(existing, Js::Str(String::new()));
                            *existing = merge(old, item);
                        } else {
                            target.items.push(Some(item));
                        }
                    }
                    Some(slot @ None) => *slot = Some(item),
                    None => {
                        target.items.resize(index, None);
                        target.items.push(Some(item));
                    }
                }
            }
            if target.count() > ARRAY_LIMIT {
                let last = (target.items.len() - 1) as f64;
                let mut object = array_to_object(target.items);
                object.overflow = Some(last);
                return Js::Obj(object);
            }
            Js::Arr(target)
        }
        (target, source) => {
            let mut accumulator = match target {
                Js::Arr(array) => {
                    let conflict = array.conflict.map(|_| array.items.len().saturating_sub(1) as f64);
                    let mut object = array_to_object(array.items);
                    object.conflict = conflict;
                    object
                }
                Js::Obj(object) => object,
                Js::Str(_) => JsObject::default(),
            };
            let (entries, source_overflow) = match source {
                Js::Arr(array) => (array.into_entries(), None),
                Js::Obj(object) => {
                    let overflow = object.overflow;
                    (object.into_entries(), overflow)
                }
                Js::Str(_) => (Vec::new(), None),
            };
            for (key, value) in entries {
                accumulator.update(key.clone(), value, merge);
                if let Some(source_max) = source_overflow
                    && accumulator.overflow.is_none()
                {
                    accumulator.overflow = Some(accumulator.max_numeric_key(source_max));
                }
                let numeric = numeric_key(&key);
                if let (Some(max), Some(number)) = (accumulator.overflow, numeric)
                    && number > max
                {
                    accumulator.overflow = Some(number);
                }
                if let (Some(conflict), Some(number)) = (accumulator.conflict, numeric)
                    && number > conflict
                {
                    accumulator.conflict = Some(number);
                }
            }
            Js::Obj(accumulator)
        }
    }
}

/// `merge(primitive, container)`: `[target].concat(source)`, or for an overflow object a new one
/// with `target` at 0 and the source's values one index up.
fn merge_into_primitive(target: String, source: Js) -> Js {
    if let Js::Obj(object) = &source
        && let Some(max) = object.overflow
    {
        let mut result = JsObject::default();
        result.insert("0".into(), Js::Str(target));
        let Js::Obj(object) = source else { unreachable!("matched above") };
        for (key, value) in object.into_entries() {
            // Overflow objects' keys are indices (qs shifts them with parseInt).
            let shifted = numeric_key(&key).map_or(key, |index| js_number(index + 1.0));
            result.insert(shifted, value);
        }
        result.overflow = Some(max + 1.0);
        return Js::Obj(result);
    }
    combine(Js::Str(target), source)
}

/// A JavaScript value as qs builds it.
#[derive(Debug, Clone)]
enum Js {
    Str(String),
    Arr(JsArray),
    Obj(JsObject),
}

/// A sparse array; `conflict` is qs's side mark of a `strictMerge` conflict (its last index).
#[derive(Debug, Clone, Default)]
struct JsArray {
    items: Vec<Option<Js>>,
    conflict: Option<f64>,
}

impl JsArray {
    /// Elements that are present (holes not counted).
    fn count(&self) -> usize {
        self.items.iter().filter(|item| item.is_some()).count()
    }

    fn into_entries(self) -> Vec<(String, Js)> {
        self.items.into_iter().enumerate().filter_map(|(index, item)| Some((index.to_string(), item?))).collect()
    }
}

/// An object; its keys come out in JavaScript's order (integer-like keys ascending, then the
/// others as inserted). `overflow` and `conflict` are qs's side marks (their highest index).
#[derive(Debug, Clone, Default)]
struct JsObject {
    entries: IndexMap<String, Js>,
    /// Side marks hold JavaScript numbers: past 2^53 adding one may not change them.
    overflow: Option<f64>,
    conflict: Option<f64>,
}

impl JsObject {
    fn insert(&mut self, key: String, value: Js) {
        self.entries.insert(key, value);
    }

    /// Sets `key` to `value`, or to `join(old, value)` when it is set already; the key keeps its
    /// place either way (as a JavaScript assignment does).
    fn update(&mut self, key: String, value: Js, join: fn(Js, Js) -> Js) {
        match self.entries.get_mut(&key) {
            Some(slot) => {
                let old = std::mem::replace(slot, Js::Str(String::new()));
                *slot = join(old, value);
            }
            None => {
                self.entries.insert(key, value);
            }
        }
    }

    fn get(&self, key: &str) -> Option<&Js> {
        self.entries.get(key)
    }

    /// The keys in JavaScript's own-property order.
    fn keys(&self) -> Vec<String> {
        let mut indices: Vec<(u64, &String)> =
            self.entries.keys().filter_map(|key| Some((integer_key(key)?, key))).collect();
        indices.sort_unstable();
        let mut keys: Vec<String> = indices.into_iter().map(|(_, key)| key.clone()).collect();
        keys.extend(self.entries.keys().filter(|key| integer_key(key).is_none()).cloned());
        keys
    }

    fn into_entries(mut self) -> Vec<(String, Js)> {
        self.keys().into_iter().filter_map(|key| Some((key.clone(), self.entries.shift_remove(&key)?))).collect()
    }

    /// The largest non-negative integer key, at least `floor` (qs's `maxNumericIndex`).
    fn max_numeric_key(&self, floor: f64) -> f64 {
        self.entries.keys().filter_map(|key| numeric_key(key)).fold(floor, f64::max)
    }
}

/// A key JavaScript orders as an array index (a canonical integer below 2^32 − 1).
fn integer_key(key: &str) -> Option<u64> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u64>().ok().filter(|index| *index < u64::from(u32::MAX))
}

impl Js {
    fn object() -> Js {
        Js::Obj(JsObject::default())
    }

    fn array() -> Js {
        Js::Arr(JsArray::default())
    }

    fn is_container(&self) -> bool {
        !matches!(self, Js::Str(_))
    }

    /// What `[].concat(value)` adds: an array's elements (holes kept), else the value itself.
    fn into_spread(self) -> Vec<Option<Js>> {
        match self {
            Js::Arr(array) => array.items,
            other => vec![Some(other)],
        }
    }

    /// qs's `utils.compact`: every array's holes removed.
    fn compact(&mut self) {
        match self {
            Js::Str(_) => {}
            Js::Arr(array) => {
                array.items.retain(Option::is_some);
                array.items.iter_mut().flatten().for_each(Js::compact);
            }
            Js::Obj(object) => object.entries.values_mut().for_each(Js::compact),
        }
    }

    fn into_json(self) -> Value {
        match self {
            Js::Str(text) => Value::String(text),
            Js::Arr(array) => {
                Value::Array(array.items.into_iter().map(|item| item.map_or(Value::Null, Js::into_json)).collect())
            }
            Js::Obj(object) => {
                Value::Object(object.into_entries().into_iter().map(|(key, value)| (key, value.into_json())).collect())
            }
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
        check("bad=%zz%41", json!({"bad": "%zz%41"}));
        check("k%5B0%5D=v", json!({"k": ["v"]}));
        check("latin=%FF", json!({"latin": "%FF"}));
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
    fn brackets_nest_as_qs_does() {
        check("a[0][b]=1", json!({"a": [{"b": "1"}]}));
        check("a[]=x&a[]=y", json!({"a": ["x", "y"]}));
        check("a[b][c]=1&a[b][d]=2", json!({"a": {"b": {"c": "1", "d": "2"}}}));
        check("a[1]=x&a[5]=y", json!({"a": ["x", "y"]}));
        check("a[20]=x", json!({"a": {"20": "x"}}));
        check("a[19]=x", json!({"a": ["x"]}));
        check("a[]=1&a[x]=2", json!({"a": {"0": "1", "x": "2"}}));
        check("a[][b]=1&a[][c]=2", json!({"a": [{"b": "1", "c": "2"}]}));
        check("[]=b", json!({"0": "b"}));
        check("a[=b", json!({"a": {"[": "b"}}));
        check("a[b][c][d][e][f][g][h]=1", json!({"a": {"b": {"c": {"d": {"e": {"f": {"[g][h]": "1"}}}}}}}));
        check("a[toString]=1&__proto__=2&b=3", json!({"b": "3"}));
    }
}
