//! Wall-clock instants with millisecond precision, written as RFC 3339 in JSON.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch; JSON form `2026-11-29T15:38:41.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    /// The instant `duration` after this one (the last representable one past it).
    pub fn plus(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)))
    }

    /// Reads an RFC 3339 instant in UTC (`2026-11-29T18:00:00Z`, `2026-11-29T18:00:00.250Z`).
    pub fn parse(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        // A `+hh:mm`/`-hh:mm` offset (RFC 3339 allows any) is applied here: humantime takes `Z` only.
        let (utc, offset_seconds) = match text.len().checked_sub(6).and_then(|at| text.get(at..).map(|tail| (at, tail)))
        {
            Some((at, tail)) if tail.starts_with(['+', '-']) && tail.as_bytes()[3] == b':' => {
                let hours: i64 = tail.get(1..3)?.parse().ok()?;
                let minutes: i64 = tail.get(4..6)?.parse().ok()?;
                let sign = if tail.starts_with('-') { -1 } else { 1 };
                (format!("{}Z", &text[..at]), sign * (hours * 3600 + minutes * 60))
            }
            _ => (text.to_string(), 0),
        };
        // Instants before 1970 (which humantime cannot hold) come before every execution.
        if utc.get(..4).and_then(|year| year.parse::<u32>().ok()).is_some_and(|year| year < 1970) {
            return Some(Timestamp(0));
        }
        let time = humantime::parse_rfc3339_weak(&utc).ok()?;
        let millis = i64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
        let millis = millis.saturating_sub(offset_seconds.saturating_mul(1000));
        Some(Timestamp(u64::try_from(millis).unwrap_or(0)))
    }

    fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.system_time()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 instant")))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
            .examples(["2026-11-29T15:38:41.123Z"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let t = Timestamp(1_764_430_721_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-11-29T15:38:41.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }
}
