//! hookflow's query parser against the real `qs` (npm, pinned by `tests/qs/package-lock.json`,
//! run by node): a table of the rules qs documents and of the cases that once differed, then
//! thousands of generated queries built from the pieces those rules turn on. Every query must give
//! what `qs.parse(query)` gives with its default options (JSON key order aside). `scripts/test`
//! installs `tests/qs/node_modules`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use hookflow_server::http::ingress::parse_query;
use serde_json::Value;

/// What `qs.parse` makes of each query, from node.
fn qs_parse(queries: &[String]) -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/qs");
    assert!(
        dir.join("node_modules/qs").exists(),
        "the reference qs is not installed: run `npm ci --prefix tests/qs` (scripts/test does)"
    );
    let mut node = Command::new("node")
        .arg("parse.js")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run node ({error}): the reference qs runs on node"));
    let mut input = node.stdin.take().unwrap();
    let lines: String = queries.iter().map(|query| format!("{}\n", Value::String(query.clone()))).collect();
    let writer = std::thread::spawn(move || input.write_all(lines.as_bytes()).unwrap());
    let output = BufReader::new(node.stdout.take().unwrap());
    let parsed: Vec<Value> = output.lines().map(|line| serde_json::from_str(&line.unwrap()).unwrap()).collect();
    writer.join().unwrap();
    assert!(node.wait().unwrap().success());
    assert_eq!(parsed.len(), queries.len(), "node answered every query");
    parsed
}

/// Runs `queries` through both and lists every difference.
fn check(queries: &[String]) {
    let expected = qs_parse(queries);
    let differences: Vec<String> = queries
        .iter()
        .zip(&expected)
        .filter_map(|(query, expected)| {
            let ours = parse_query(query);
            (&ours != expected).then(|| format!("{query:?}\n    qs:       {expected}\n    hookflow: {ours}"))
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {} queries differ from qs:\n{}",
        differences.len(),
        queries.len(),
        differences.iter().take(25).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_documented_rules_and_known_corners_parse_as_qs_does() {
    let table = [
        // Plain pairs, empty values, repeated keys.
        "",
        "a=b",
        "a=b&c=d",
        "a",
        "a=",
        "=b",
        "&",
        "&&a=1&&",
        "a=1&a=2&a=3",
        "a=1&b=2&a=3",
        // Decoding: plus, percent escapes, bad escapes, bytes that are not UTF-8.
        "a=b+c",
        "a%20b=c%20d",
        "e=%E2%9C%93",
        "p=100%25",
        "bad=%zz",
        "bad=%4",
        "mixed=%41%zz",
        "latin=%FF",
        "k%5B0%5D=v",
        "k%5b0%5d=v",
        "a=%2B",
        "a%2Bb=c",
        "a=%00",
        "a=%F0%9F%98%80",
        "a=%ED%A0%80",
        // Nesting and depth.
        "a[b]=c",
        "a[b][c]=d",
        "a[b][c][d][e][f][g][h]=i",
        "a[b][c][d][e][f]=g",
        "a[b]=c&a[d]=e",
        "a[b][c]=1&a[b][d]=2",
        "a[][b]=1&a[][c]=2",
        "a[][b]=1&a[][b]=2",
        "a[b[c]]=d",
        "a[[b]]=c",
        // Arrays: indices, pushes, the array limit, sparse indices, mixes with keys.
        "a[]=b",
        "a[]=b&a[]=c",
        "a[0]=b&a[1]=c",
        "a[1]=b&a[15]=c",
        "a[20]=x",
        "a[19]=x",
        "a[21]=x",
        "a[100]=x",
        // Indices past 2^53 are JavaScript numbers: the nearest double, an index only when it
        // prints back as the key (found by the fuzz target).
        "[1099999]=&[1099999][104999999509000000000]=",
        "a=&a[104999999509000000000]=x",
        "a[9007199254740993]=x",
        "a[9007199254740992]=x&a[]=y&a[]=z",
        "a[1049999999999999999]=x",
        "a[100000000000000000000]=x&a=y",
        "a[1000000000000000000000]=x",
        "U&x&a[a[|&[1049999999999999999]0&x&|&[1099999]\u{fffd}&[1099999][104999999509000000000]\u{fffd}",
        "a[]=1&a[x]=2",
        "a[0]=x&a[b]=y",
        "a[b]=y&a[0]=x",
        "a[1]=b&a=c",
        "a=b&a[1]=c",
        "a[]=b&a=c",
        "a=b&a[]=c",
        "a[0]=b&a[]=c",
        "a[00]=b",
        "a[-1]=b",
        "a[1a]=b",
        "a[ 1]=b",
        "a[0][0]=1",
        "a[0][]=1&a[0][]=2",
        "a[][0]=1",
        "a[][]=1&a[][]=2",
        "a=1&a=2&a=3&a=4&a=5&a=6&a=7&a=8&a=9&a=10&a=11&a=12&a=13&a=14&a=15&a=16&a=17&a=18&a=19&a=20&a=21&a=22",
        "a[]=1&a[]=2&a[]=3&a[]=4&a[]=5&a[]=6&a[]=7&a[]=8&a[]=9&a[]=10&a[]=11&a[]=12&a[]=13&a[]=14&a[]=15&a[]=16&a[]=17&a[]=18&a[]=19&a[]=20&a[]=21",
        // Conflicts between a value and an object (strictMerge).
        "a[b]=c&a=d",
        "a=d&a[b]=c",
        "a[b]=c&a=d&a=e",
        "a[b]=1&a[b][c]=2",
        "a[b][c]=2&a[b]=1",
        "a[0]=x&a=",
        // Odd brackets and keys.
        "[]=b",
        "[0]=b",
        "[a]=b",
        "a[=b",
        "a]=b",
        "a[b=c",
        "a[b]c=d",
        "a[b]c[d]=e",
        "a][=b",
        "[[]b=c",
        "a[]]=b",
        "a.b=c",
        "a[b.c]=d",
        "a[]=b=c",
        "a=b=c",
        "a[]==b",
        "]=x",
        "[=x",
        // Keys of Object.prototype are dropped.
        "__proto__=x",
        "a[__proto__]=x",
        "toString=x",
        "a[toString]=x",
        "a[constructor][b]=x",
        "hasOwnProperty=1",
        "a[valueOf]=1&b=2",
        "__proto__[a]=b",
        "constructor=1",
        // Integer-like keys come first in JavaScript objects.
        "b=1&0=x",
        "[0]=x&0=y",
        "1=a&0=b&x=c",
        "a[b]=1&a[1]=2&a[0]=3",
    ];
    check(&table.iter().map(ToString::to_string).collect::<Vec<_>>());
}

/// A small deterministic generator (xorshift), so a failure names a query that fails again.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[usize::try_from(self.next() % choices.len() as u64).unwrap()]
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// A query of 1–6 pairs whose keys nest, index, push and collide, and whose text holds the
/// characters qs treats specially.
fn generated_query(random: &mut Generator) -> String {
    let names = ["a", "b", "c", "0", "1", "x", "a.b", "__proto__", "toString", "", "é", "a b"];
    let segments = [
        "[]",
        "[0]",
        "[1]",
        "[2]",
        "[19]",
        "[20]",
        "[21]",
        "[100]",
        "[b]",
        "[c]",
        "[x]",
        "[]",
        "[0]",
        "[",
        "]",
        "[[]]",
        "[a[b]]",
        "[toString]",
        "%5B%5D",
        "%5B0%5D",
        "%5bx%5d",
        "[00]",
        "[-1]",
        ".c",
    ];
    let values = ["", "1", "2", "x", "a+b", "%20", "%zz", "%E2%9C%93", "%FF", "=", "a=b", "[]", "%26", "+"];
    let pairs = 1 + random.below(6);
    let mut parts = Vec::new();
    for _ in 0..pairs {
        let mut key = random.pick(&names).to_string();
        for _ in 0..random.below(4) {
            key.push_str(random.pick(&segments));
        }
        let part = match random.below(10) {
            0 => key,
            _ => format!("{key}={}", random.pick(&values)),
        };
        parts.push(part);
        // Repeat an earlier pair now and then, so keys collide.
        if random.below(4) == 0 {
            let earlier = parts[usize::try_from(random.below(parts.len() as u64)).unwrap()].clone();
            parts.push(earlier);
        }
    }
    let separator = if random.below(20) == 0 { "&&" } else { "&" };
    parts.join(separator)
}

#[test]
fn generated_queries_parse_as_qs_does() {
    let mut random = Generator(0x9e37_79b9_7f4a_7c15);
    let queries: Vec<String> = (0..6000).map(|_| generated_query(&mut random)).collect();
    check(&queries);
}

#[test]
fn only_the_first_thousand_parameters_are_read() {
    let many: Vec<String> = (0..1200).map(|n| format!("k{n}={n}")).collect();
    let query = many.join("&");
    let parsed = parse_query(&query);
    assert_eq!(parsed.as_object().map(serde_json::Map::len), Some(1000));
    check(&[query]);
}
