//! Templates in node configs (docs/workflows.md): `{{$context.body.order.id}}` and friends.
//!
//! A config is compiled once, when its workflow is loaded, into a [`Template`] tree; resolving it
//! against an execution's [`Scope`] is then a walk with no parsing.
//!
//! Rules:
//! - a string that is exactly one template takes the referenced value with its JSON type;
//! - a template inside a longer string is interpolated as text: strings as they are, `null` as
//!   nothing, anything else as compact JSON;
//! - a missing path resolves to `null`;
//! - a key step applied to an array maps the rest of the path over its elements
//!   (`items.sku` is every item's sku); mapping inside a mapping flattens into one list.

use serde_json::{Map, Value};

/// A compiled config value.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A value without templates.
    Literal(Value),
    /// A string that is exactly one template: resolves to the referenced value.
    Exact(Expr),
    /// A string mixing text and templates: resolves to a string.
    Text(Vec<Piece>),
    /// An array with templates inside.
    Array(Vec<Template>),
    /// An object with templates inside.
    Object(Vec<(String, Template)>),
}

/// A part of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A template rendered as text.
    Expr(Expr),
}

/// A variable reference: a root and a path below it.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// The variable the path starts from.
    pub root: Root,
    /// The steps below the root.
    pub path: Vec<Step>,
}

/// The variables a template may start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `$context`: the trigger data.
    Context,
    /// `$jobsMapByNodeKey`: earlier nodes' outputs.
    Jobs,
    /// `$system`: `now`.
    System,
    /// `$execution`: `id`.
    Execution,
    /// `$scopes`: the current item of each enclosing loop, by the loop node's key.
    Scopes,
    /// `$secrets`: the operator's secrets, by name (masked wherever they are recorded).
    Secrets,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object key (`.a` or `["a.b"]`).
    Key(String),
    /// An array index (`[0]`); on an object, the key `"0"`.
    Index(usize),
}

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// The values templates resolve against, for one node call.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The trigger data.
    pub context: &'a Value,
    /// Outputs of the nodes run so far, by node key.
    pub jobs: &'a Map<String, Value>,
    /// `$system` (`{"now": ...}`).
    pub system: &'a Value,
    /// `$execution` (`{"id": ...}`).
    pub execution: &'a Value,
    /// `$scopes`: `{"<loop key>": {"item", "index", "length"}}` for each enclosing loop.
    pub scopes: &'a Map<String, Value>,
    /// `$secrets`: the operator's secrets by name.
    pub secrets: &'a Map<String, Value>,
}

impl Template {
    /// Compiles a config value; `Err` names the faulty string's JSON path below `path`.
    pub fn compile(value: &Value, path: &str) -> Result<Template, (String, TemplateError)> {
        match value {
            Value::String(text) => compile_string(text).map_err(|error| (path.to_string(), error)),
            Value::Array(items) => {
                let compiled = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| Template::compile(item, &format!("{path}[{index}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if compiled.iter().all(Template::is_literal) {
                    Template::Literal(value.clone())
                } else {
                    Template::Array(compiled)
                })
            }
            Value::Object(fields) => {
                let compiled = fields
                    .iter()
                    .map(|(key, item)| Ok((key.clone(), Template::compile(item, &join_key(path, key))?)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if compiled.iter().all(|(_, t)| t.is_literal()) {
                    Template::Literal(value.clone())
                } else {
                    Template::Object(compiled)
                })
            }
            other => Ok(Template::Literal(other.clone())),
        }
    }

    /// Every variable reference in the template, in order.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut found = Vec::new();
        self.collect_exprs(&mut found);
        found
    }

    fn collect_exprs<'s>(&'s self, found: &mut Vec<&'s Expr>) {
        match self {
            Template::Literal(_) => {}
            Template::Exact(expr) => found.push(expr),
            Template::Text(pieces) => found.extend(pieces.iter().filter_map(|piece| match piece {
                Piece::Expr(expr) => Some(expr),
                Piece::Text(_) => None,
            })),
            Template::Array(items) => items.iter().for_each(|item| item.collect_exprs(found)),
            Template::Object(fields) => fields.iter().for_each(|(_, item)| item.collect_exprs(found)),
        }
    }

    /// Resolves the template against a scope.
    pub fn resolve(&self, scope: &Scope<'_>) -> Value {
        match self {
            Template::Literal(value) => value.clone(),
            Template::Exact(expr) => expr.resolve(scope),
            Template::Text(pieces) => {
                let mut text = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(literal) => text.push_str(literal),
                        Piece::Expr(expr) => match expr.resolve(scope) {
                            Value::Null => {}
                            Value::String(s) => text.push_str(&s),
                            other => text.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(text)
            }
            Template::Array(items) => Value::Array(items.iter().map(|item| item.resolve(scope)).collect()),
            Template::Object(fields) => {
                Value::Object(fields.iter().map(|(key, item)| (key.clone(), item.resolve(scope))).collect())
            }
        }
    }

    fn is_literal(&self) -> bool {
        matches!(self, Template::Literal(_))
    }
}

impl Expr {
    /// Parses the inside of `{{ }}` (surrounding whitespace allowed).
    pub fn parse(source: &str) -> Result<Expr, TemplateError> {
        let source = source.trim();
        let root_end = source.find(['.', '[']).unwrap_or(source.len());
        let root = match &source[..root_end] {
            "$context" => Root::Context,
            "$jobsMapByNodeKey" => Root::Jobs,
            "$system" => Root::System,
            "$execution" => Root::Execution,
            "$scopes" => Root::Scopes,
            "$secrets" => Root::Secrets,
            "" => return Err(TemplateError("empty template".into())),
            other => {
                return Err(TemplateError(format!(
                    "unknown variable {other:?}; expected $context, $jobsMapByNodeKey, $scopes, $secrets, $system or $execution"
                )));
            }
        };
        let path =
            parse_path(&source[root_end..]).map_err(|why| TemplateError(format!("in {{{{{source}}}}}: {why}")))?;
        Ok(Expr { root, path })
    }

    /// Resolves the reference; a missing path is `null`.
    pub fn resolve(&self, scope: &Scope<'_>) -> Value {
        match self.start(scope) {
            Start::Value(start) => walk(start, &self.path).into_value(),
            Start::Map(map) => by_key(map, &self.path),
        }
    }

    /// The referenced value as JSON text; `None` where the path reaches nothing (which
    /// [`Expr::resolve`] gives as `null`). Nothing is cloned but the items of a mapping.
    pub fn find_text(&self, scope: &Scope<'_>) -> Option<String> {
        match self.start(scope) {
            Start::Value(start) => reach(start, &self.path).map(|found| found.to_text()),
            Start::Map(map) => find_by_key(map, &self.path),
        }
    }

    fn start<'s>(&self, scope: &Scope<'s>) -> Start<'s> {
        match self.root {
            Root::Context => Start::Value(scope.context),
            Root::System => Start::Value(scope.system),
            Root::Execution => Start::Value(scope.execution),
            Root::Jobs => Start::Map(scope.jobs),
            Root::Scopes => Start::Map(scope.scopes),
            Root::Secrets => Start::Map(scope.secrets),
        }
    }
}

/// Where a reference's path starts: a value, or a map whose entry its first step names (node
/// outputs, loop scopes, secrets — resolved without cloning the whole map).
enum Start<'s> {
    Value(&'s Value),
    Map(&'s Map<String, Value>),
}

/// [`Expr::find_text`] for a path whose first step names an entry of `map`.
fn find_by_key(map: &Map<String, Value>, path: &[Step]) -> Option<String> {
    let Some((first, rest)) = path.split_first() else {
        return serde_json::to_string(map).ok();
    };
    reach(map.get(&step_key(first))?, rest).map(|found| found.to_text())
}

/// A path step as an object key.
fn step_key(step: &Step) -> String {
    match step {
        Step::Key(key) => key.clone(),
        Step::Index(index) => index.to_string(),
    }
}

/// [`Expr::resolve`] for a path whose first step names an entry of `map`.
fn by_key(map: &Map<String, Value>, path: &[Step]) -> Value {
    let Some((first, rest)) = path.split_first() else {
        return Value::Object(map.clone());
    };
    match map.get(&step_key(first)) {
        Some(value) => walk(value, rest).into_value(),
        None => Value::Null,
    }
}

/// Parses a path below a value (`order.id`, `items[0]`, `["a.b"]`), as the parse-example
/// feature writes them.
pub fn parse_value_path(path: &str) -> Result<Vec<Step>, TemplateError> {
    let path = path.trim();
    let rooted = if path.starts_with('[') { path.to_string() } else { format!(".{path}") };
    parse_path(&rooted).map_err(|why| TemplateError(format!("in path {path:?}: {why}")))
}

/// The value at `path` below `value` (`null` when missing), with the template resolver's rules.
pub fn select(value: &Value, path: &[Step]) -> Value {
    walk(value, path).into_value()
}

/// The result of walking a path: one value, or the values of a mapping over an array.
enum Walked<'v> {
    One(&'v Value),
    Many(Vec<Value>),
}

impl Walked<'_> {
    fn into_value(self) -> Value {
        match self {
            Walked::One(value) => value.clone(),
            Walked::Many(values) => Value::Array(values),
        }
    }

    fn to_text(&self) -> String {
        match self {
            Walked::One(value) => value.to_string(),
            Walked::Many(values) => serde_json::to_string(values).unwrap_or_default(),
        }
    }
}

/// Walks a path; a step that reaches nothing gives `null`.
fn walk<'v>(value: &'v Value, path: &[Step]) -> Walked<'v> {
    static NULL: Value = Value::Null;
    reach(value, path).unwrap_or(Walked::One(&NULL))
}

/// Walks a path; `None` when a step reaches nothing. Inside a mapping over an array, an item the
/// rest of the path does not reach is `null`.
fn reach<'v>(value: &'v Value, path: &[Step]) -> Option<Walked<'v>> {
    let Some((step, rest)) = path.split_first() else {
        return Some(Walked::One(value));
    };
    match (value, step) {
        (Value::Object(fields), Step::Key(key)) => reach(fields.get(key)?, rest),
        (Value::Object(fields), Step::Index(index)) => reach(fields.get(&index.to_string())?, rest),
        (Value::Array(items), Step::Index(index)) => reach(items.get(*index)?, rest),
        (Value::Array(items), Step::Key(_)) => {
            let mut mapped = Vec::with_capacity(items.len());
            for item in items {
                match walk(item, path) {
                    Walked::One(value) => mapped.push(value.clone()),
                    Walked::Many(values) => mapped.extend(values),
                }
            }
            Some(Walked::Many(mapped))
        }
        _ => None,
    }
}

fn compile_string(text: &str) -> Result<Template, TemplateError> {
    if !text.contains("{{") {
        return Ok(Template::Literal(Value::String(text.to_string())));
    }
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| TemplateError(format!("unterminated template in {text:?}: missing }}}}")))?;
        pieces.push(Piece::Expr(Expr::parse(&after[..close])?));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(match pieces.as_slice() {
        [Piece::Expr(expr)] => Template::Exact(expr.clone()),
        _ => Template::Text(pieces),
    })
}

/// Parses `.a.b[0]["c.d"]` (everything after the root).
fn parse_path(mut rest: &str) -> Result<Vec<Step>, String> {
    let mut path = Vec::new();
    while let Some(first) = rest.chars().next() {
        match first {
            '.' => {
                let name_end = rest[1..].find(['.', '[']).map_or(rest.len(), |i| i + 1);
                let name = &rest[1..name_end];
                if name.is_empty() {
                    return Err("empty key after '.'".into());
                }
                if name.contains(|c: char| c.is_whitespace() || c == ']' || c == '"' || c == '\'') {
                    return Err(format!("invalid key {name:?}"));
                }
                path.push(Step::Key(name.to_string()));
                rest = &rest[name_end..];
            }
            '[' => {
                let inner = &rest[1..];
                let quoted = inner.trim_start();
                if let Some(quote) = quoted.chars().next().filter(|c| *c == '"' || *c == '\'') {
                    let (key, after) = read_quoted(&quoted[1..], quote)?;
                    path.push(Step::Key(key));
                    rest = after.trim_start().strip_prefix(']').ok_or("expected ']' after a quoted key")?;
                } else {
                    let close = inner.find(']').ok_or("missing ']'")?;
                    let index = inner[..close].trim();
                    let index = index
                        .parse::<usize>()
                        .map_err(|_| format!("expected an index or a quoted key in [{index}]"))?;
                    path.push(Step::Index(index));
                    rest = &inner[close + 1..];
                }
            }
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok(path)
}

/// Appends an object key to a JSON path: `a.b`, or `a["b.c"]` when the key needs quoting.
pub fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[\"{}\"]", key.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

/// Reads a quoted key up to its closing `quote`; a backslash takes the next character as it is.
/// Returns the key and what follows the closing quote.
fn read_quoted(text: &str, quote: char) -> Result<(String, &str), String> {
    let mut key = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' => key.push(chars.next().ok_or("unterminated quoted key")?.1),
            c if c == quote => return Ok((key, &text[index + c.len_utf8()..])),
            c => key.push(c),
        }
    }
    Err("unterminated quoted key".into())
}

#[cfg(test)]
mod tests;
