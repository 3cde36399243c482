//! What one execution may hold: JSON nesting, jobs, recorded bytes and node time,
//! and how a large job value is recorded (truncated, with a preview).

use std::time::Duration;

use serde_json::{Value, json};

use super::model::Options;

/// The deepest JSON nesting accepted from a caller or a node: 64 containers.
pub const MAX_NESTING: usize = 64;

/// A job's input or output larger than this many bytes (as JSON) is recorded truncated.
pub const MAX_RECORDED_VALUE: usize = 256 * 1024;

/// How many bytes of a truncated value its record keeps as a preview.
pub const PREVIEW_BYTES: usize = 1024;

/// Whether JSON text nests deeper than `max` containers. Scans the bytes once without
/// recursion (strings and their escapes are skipped), so it is safe on hostile input.
pub fn nests_deeper_than(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// How deeply a JSON value nests (a scalar is 0, `[]` is 1), without recursion.
pub fn nesting_of(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

/// The limits one execution runs under: the server's flags, overridden per workflow by
/// `options.maxJobs`, `options.maxRecordBytes` and `options.maxRunTimeMs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionLimits {
    /// Most jobs one execution records (`--max-jobs`).
    pub max_jobs: usize,
    /// Most bytes of recorded JSON (job inputs and outputs) one execution holds (`--max-record`).
    pub max_record: usize,
    /// Most node time of one async execution, delays not counted (`--max-run-time`).
    pub max_run_time: Duration,
    /// Where each limit came from, for the message that names it.
    names: [&'static str; 3],
}

impl Default for ExecutionLimits {
    fn default() -> Self {
        ExecutionLimits::new(10_000, 16 << 20, Duration::from_secs(3600))
    }
}

impl ExecutionLimits {
    /// The server-wide limits (the flags).
    pub fn new(max_jobs: usize, max_record: usize, max_run_time: Duration) -> ExecutionLimits {
        ExecutionLimits { max_jobs, max_record, max_run_time, names: ["--max-jobs", "--max-record", "--max-run-time"] }
    }

    /// These limits with a workflow's own overrides applied.
    pub fn for_workflow(self, options: &Options) -> ExecutionLimits {
        let mut limits = self;
        if let Some(jobs) = options.max_jobs {
            limits.max_jobs = usize::try_from(jobs).unwrap_or(usize::MAX);
            limits.names[0] = "options.maxJobs";
        }
        if let Some(bytes) = options.max_record_bytes {
            limits.max_record = usize::try_from(bytes).unwrap_or(usize::MAX);
            limits.names[1] = "options.maxRecordBytes";
        }
        if let Some(millis) = options.max_run_time_ms {
            limits.max_run_time = Duration::from_millis(millis);
            limits.names[2] = "options.maxRunTimeMs";
        }
        limits
    }

    /// `execution exceeded --max-jobs (10000)`.
    pub(crate) fn jobs_exceeded(&self) -> String {
        format!("execution exceeded {} ({})", self.names[0], self.max_jobs)
    }

    /// `execution exceeded --max-record (16MiB)`.
    pub(crate) fn record_exceeded(&self) -> String {
        format!("execution exceeded {} ({})", self.names[1], byte_size(self.max_record))
    }

    /// `execution exceeded --max-run-time (1h)`.
    pub(crate) fn run_time_exceeded(&self) -> String {
        format!("execution exceeded {} ({})", self.names[2], humantime::format_duration(self.max_run_time))
    }
}

/// `16MiB`, `64KiB` or `1000B`, as the flags are written.
fn byte_size(bytes: usize) -> String {
    match bytes {
        0 => "0B".into(),
        b if b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
    }
}

/// A job value as it is recorded, and how many bytes that record takes: the value itself when
/// its JSON is at most [`MAX_RECORDED_VALUE`] bytes, else
/// `{"truncated": true, "bytes": <size>, "preview": "<first 1 KiB>"}`.
pub fn recorded(value: Value) -> (Value, usize) {
    let size = json_size(&value);
    if size <= MAX_RECORDED_VALUE {
        return (value, size);
    }
    let text = value.to_string();
    let mut end = PREVIEW_BYTES.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let summary = json!({ "truncated": true, "bytes": text.len(), "preview": &text[..end] });
    let size = summary.to_string().len();
    (summary, size)
}

/// The length of `value`'s compact JSON, counted without building the text.
pub fn json_size(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` into a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}{{}}{}", "[".repeat(levels - 1), "]".repeat(levels - 1))
    }

    #[test]
    fn counts_containers_outside_strings() {
        assert!(!nests_deeper_than(nested(64).as_bytes(), 64));
        assert!(nests_deeper_than(nested(65).as_bytes(), 64));
        assert!(!nests_deeper_than(br#"{"a": "[[[[[[[[[[", "b": "\"[[[["}"#, 2));
        assert!(!nests_deeper_than(b"", 0));
        assert!(nests_deeper_than(b"[[", 1), "unbalanced text still counts its openings");
    }

    #[test]
    fn measures_nesting_of_values() {
        let value: Value = serde_json::from_str(&nested(64)).unwrap();
        assert_eq!(nesting_of(&value), 64);
        assert_eq!(nesting_of(&json!(1)), 0);
        assert_eq!(nesting_of(&json!({"a": [1, {"b": []}]})), 4);
    }

    #[test]
    fn truncates_large_values_with_a_preview() {
        let small = json!({"a": "b"});
        assert_eq!(recorded(small.clone()), (small, 9));
        let large = json!("é".repeat(MAX_RECORDED_VALUE));
        let (summary, size) = recorded(large);
        assert_eq!(summary["truncated"], true);
        assert_eq!(summary["bytes"], 2 * MAX_RECORDED_VALUE + 2);
        let preview = summary["preview"].as_str().unwrap();
        assert!(preview.len() <= PREVIEW_BYTES && preview.starts_with("\"é"));
        assert_eq!(size, summary.to_string().len());
    }

    #[test]
    fn workflow_options_override_the_flags() {
        let options: Options = serde_json::from_value(json!({"maxJobs": 5, "maxRunTimeMs": 100})).unwrap();
        let limits = ExecutionLimits::default().for_workflow(&options);
        assert_eq!(limits.max_jobs, 5);
        assert_eq!(limits.max_record, 16 << 20);
        assert_eq!(limits.max_run_time, Duration::from_millis(100));
        assert_eq!(limits.jobs_exceeded(), "execution exceeded options.maxJobs (5)");
        assert_eq!(limits.record_exceeded(), "execution exceeded --max-record (16MiB)");
        assert_eq!(limits.run_time_exceeded(), "execution exceeded options.maxRunTimeMs (100ms)");
        assert_eq!(ExecutionLimits::default().jobs_exceeded(), "execution exceeded --max-jobs (10000)");
        assert_eq!(ExecutionLimits::default().run_time_exceeded(), "execution exceeded --max-run-time (1h)");
    }
}
