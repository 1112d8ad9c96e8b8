//! Dates and durations as written in configuration files: `2027-03-31`, `90d`, `12h`, `15m`.

use std::borrow::Cow;
use std::fmt;

use chrono::NaiveDate;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a date, duration, time or expiry as written cannot be read. Each message quotes the text
/// and says how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{0:?} is not a date; write it as YYYY-MM-DD, for example 2027-03-31")]
    DateShape(String),
    /// Shaped as a date but not a day of the calendar (`2027-02-30`).
    #[error("{0:?} is not a real calendar date")]
    NoSuchDate(String),
    #[error("{0:?} is not a duration; write a whole number and a unit (s, m, h, d, w), for example 90d")]
    Duration(String),
    #[error("{0:?} is not a time; write it in RFC 3339 with its offset, for example 2027-03-31T14:00:00Z")]
    Instant(String),
    #[error(
        "{0:?} is not an expiry; write a date (2027-03-31) or a time in RFC 3339 with its offset (2027-03-31T14:00:00Z)"
    )]
    Expiry(String),
}

/// The instant type used throughout keyward (UTC).
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// A calendar date (`YYYY-MM-DD`). An expiry date is inclusive: access ends after that day (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub NaiveDate);

impl Date {
    pub fn parse(s: &str) -> Result<Self, TimeError> {
        let bytes = s.as_bytes();
        let shape_ok = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes.iter().enumerate().all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shape_ok {
            return Err(TimeError::DateShape(s.to_string()));
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map(Date).map_err(|_| TimeError::NoSuchDate(s.to_string()))
    }

    /// The first instant after this date has ended (midnight UTC of the next day).
    pub fn end(&self) -> Timestamp {
        let next = self.0.succ_opt().unwrap_or(self.0);
        next.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
    }

    /// Whether the date has passed at `now` (an expiry on `now`'s own date has not).
    pub fn has_passed(&self, now: Timestamp) -> bool {
        now >= self.end()
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Date::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Date {
    fn schema_name() -> Cow<'static, str> {
        "Date".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date", "description": "A date, YYYY-MM-DD."})
    }
}

/// A length of time written as a whole number and a unit: `90d`, `12h`, `15m`, `30s`, `2w`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    seconds: i64,
    unit: char,
}

impl Duration {
    pub fn parse(s: &str) -> Result<Self, TimeError> {
        let bad = || TimeError::Duration(s.to_string());
        let unit = s.chars().last().ok_or_else(bad)?;
        let digits = &s[..s.len() - unit.len_utf8()];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 9 {
            return Err(bad());
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        let per = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        Ok(Duration { seconds: n * per, unit })
    }

    pub const fn from_hours(hours: i64) -> Self {
        Duration { seconds: hours * 3600, unit: 'h' }
    }

    pub fn from_days(days: i64) -> Self {
        Duration { seconds: days * 86_400, unit: 'd' }
    }

    pub fn seconds(&self) -> i64 {
        self.seconds
    }

    pub fn to_chrono(self) -> chrono::TimeDelta {
        chrono::TimeDelta::seconds(self.seconds)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = match self.unit {
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => 1,
        };
        write!(f, "{}{}", self.seconds / per, self.unit)
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]{1,9}[smhdw]$",
            "description": "A duration: a whole number and a unit (s, m, h, d, w), for example 90d."
        })
    }
}

/// An instant written in RFC 3339 with its offset (`2027-03-31T14:00:00Z`), held in UTC.
/// Written back in UTC to the second.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub Timestamp);

impl Instant {
    pub fn parse(s: &str) -> Result<Self, TimeError> {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Instant(t.to_utc()))
            .map_err(|_| TimeError::Instant(s.to_string()))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Instant::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Instant {
    fn schema_name() -> Cow<'static, str> {
        "Instant".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "A time in RFC 3339 with its offset, for example 2027-03-31T14:00:00Z."
        })
    }
}

/// When an assignment ends: a whole day (`2027-03-31`, inclusive: it ends after that day, UTC)
/// or an exact time (`2027-03-31T14:00:00Z`, for grants of hours).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiry {
    Date(Date),
    At(Instant),
}

impl Expiry {
    pub fn parse(s: &str) -> Result<Self, TimeError> {
        if s.len() == 10 {
            return Date::parse(s).map(Expiry::Date);
        }
        Instant::parse(s).map(Expiry::At).map_err(|_| TimeError::Expiry(s.to_string()))
    }

    /// The first instant at which the assignment no longer holds.
    pub fn end(&self) -> Timestamp {
        match self {
            Expiry::Date(d) => d.end(),
            Expiry::At(t) => t.0,
        }
    }

    /// Whether the assignment has ended at `now`.
    pub fn has_passed(&self, now: Timestamp) -> bool {
        now >= self.end()
    }

    /// The day the assignment last holds (UTC), for day-based reports.
    pub fn last_day(&self) -> Date {
        match self {
            Expiry::Date(d) => *d,
            Expiry::At(t) => {
                // An end at midnight means the day before was the last.
                let last = t.0 - chrono::TimeDelta::seconds(1);
                Date(last.date_naive())
            }
        }
    }
}

impl From<Date> for Expiry {
    fn from(d: Date) -> Self {
        Expiry::Date(d)
    }
}

/// Expiries order by when they end; a date and the midnight that ends it are equal.
impl Ord for Expiry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.end().cmp(&other.end())
    }
}

impl PartialOrd for Expiry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::Date(d) => fmt::Display::fmt(d, f),
            Expiry::At(t) => fmt::Display::fmt(t, f),
        }
    }
}

impl fmt::Debug for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Expiry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Expiry::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Expiry {
    fn schema_name() -> Cow<'static, str> {
        "Expiry".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "anyOf": [{"format": "date"}, {"format": "date-time"}],
            "description": "When the assignment ends: a date, YYYY-MM-DD (it holds through that day, UTC), or a time in RFC 3339 with its offset, for example 2027-03-31T14:00:00Z."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(Date::parse("2027-03-31").is_ok());
        assert_eq!(Date::parse("2027-02-30"), Err(TimeError::NoSuchDate("2027-02-30".into())));
        assert!(Date::parse("2027-3-1").is_err());
        assert!(Date::parse("31/03/2027").is_err());
        let d = Date::parse("2027-03-31").unwrap();
        let day = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert!(!d.has_passed(day("2027-03-31T23:59:59Z")));
        assert!(d.has_passed(day("2027-04-01T00:00:00Z")));
    }

    #[test]
    fn expiries_are_dates_or_exact_times() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let day = Expiry::parse("2027-03-31").unwrap();
        assert_eq!(day, Expiry::Date(Date::parse("2027-03-31").unwrap()));
        assert!(!day.has_passed(at("2027-03-31T23:59:59Z")));
        assert!(day.has_passed(at("2027-04-01T00:00:00Z")));
        let exact = Expiry::parse("2027-03-31T14:00:00+02:00").unwrap();
        assert_eq!(exact.to_string(), "2027-03-31T12:00:00Z");
        assert!(!exact.has_passed(at("2027-03-31T11:59:59Z")));
        assert!(exact.has_passed(at("2027-03-31T12:00:00Z")));
        assert_eq!(exact.last_day().to_string(), "2027-03-31");
        assert_eq!(Expiry::parse("2027-04-01T00:00:00Z").unwrap().last_day().to_string(), "2027-03-31");
        // A date and the midnight that ends it end together.
        assert_eq!(day.cmp(&Expiry::parse("2027-04-01T00:00:00Z").unwrap()), std::cmp::Ordering::Equal);
        assert!(exact < day);
        for bad in ["2027-03-31T14:00:00", "2027-3-31", "tomorrow", "2027-02-30", "2027-03-31 14:00"] {
            assert!(Expiry::parse(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&exact).unwrap();
        assert_eq!(json, "\"2027-03-31T12:00:00Z\"");
    }

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("90d").unwrap().seconds(), 90 * 86_400);
        assert_eq!(Duration::parse("12h").unwrap().to_string(), "12h");
        for bad in ["", "d", "90", "-1d", "1.5d", "90x", "9999999999d"] {
            assert_eq!(Duration::parse(bad), Err(TimeError::Duration(bad.into())), "{bad}");
        }
    }

    #[test]
    fn errors_quote_the_text_and_say_how_to_write_it() {
        let says = |r: Result<(), TimeError>| r.unwrap_err().to_string();
        assert_eq!(
            says(Date::parse("31/03/2027").map(drop)),
            r#""31/03/2027" is not a date; write it as YYYY-MM-DD, for example 2027-03-31"#
        );
        assert_eq!(says(Date::parse("2027-02-30").map(drop)), r#""2027-02-30" is not a real calendar date"#);
        assert_eq!(
            says(Duration::parse("90x").map(drop)),
            r#""90x" is not a duration; write a whole number and a unit (s, m, h, d, w), for example 90d"#
        );
        assert_eq!(
            says(Instant::parse("noon").map(drop)),
            r#""noon" is not a time; write it in RFC 3339 with its offset, for example 2027-03-31T14:00:00Z"#
        );
        assert_eq!(
            says(Expiry::parse("2027-03-31 14:00").map(drop)),
            r#""2027-03-31 14:00" is not an expiry; write a date (2027-03-31) or a time in RFC 3339 with its offset (2027-03-31T14:00:00Z)"#
        );
        // Ten characters are read as a date, and told as one.
        assert_eq!(Expiry::parse("2027-3-310"), Err(TimeError::DateShape("2027-3-310".into())));
    }
}
