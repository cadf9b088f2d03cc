//! Just enough time handling for the engine's RFC 3339 timestamps, without a date crate:
//! parsed once where they enter ([`crate::model::Timestamp`]), and said for people; and
//! the durations people type.

use std::time::Duration;

/// Parses `2026-11-25T13:51:37.889192638Z` (or with a `+hh:mm` offset) into seconds since
/// the Unix epoch. Fractions are dropped. `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// How many days the month has (February by the Gregorian leap rule).
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// This host's clock, in seconds since the Unix epoch; `None` when it cannot be read.
pub fn now() -> Option<i64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
}

/// Seconds since the Unix epoch as RFC 3339 in UTC (`2026-11-25T13:51:37Z`), the form the
/// engines write; `None` outside years 0-9999.
pub fn format_rfc3339(unix: i64) -> Option<String> {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    (0..=9999).contains(&year).then(|| {
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    })
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (the inverse of
/// `days_from_civil`, by the same method).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `42s`, `3 min`, `5 h`, `2 days`: rounded down, for sentences.
pub fn human(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7_199 => format!("{} min", s / 60),
        7_200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// Why a duration flag or setting was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    /// No number where one belongs.
    NotADuration(String),
    /// A unit other than ms, s, m, h, d.
    UnknownUnit {
        /// The unit as typed.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// Zero (where it means nothing), negative, or more than a year.
    OutOfRange(String),
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::NotADuration(text) => {
                write!(f, "'{text}' is not a duration (e.g. 5s, 500ms, 2m)")
            }
            DurationError::UnknownUnit { unit, text } => {
                write!(
                    f,
                    "unknown unit '{unit}' in '{text}' (use ms, s, m, h or d)"
                )
            }
            DurationError::OutOfRange(text) => {
                write!(f, "'{text}' is out of range (more than 0, at most 365d)")
            }
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses `5s`, `500ms`, `2m`, `1.5s`, `2h`, `7d`, or a bare number of seconds: more than
/// zero, at most a year.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::NotADuration(text.to_owned()))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => {
            return Err(DurationError::UnknownUnit {
                unit: other.to_owned(),
                text: text.to_owned(),
            })
        }
    };
    let seconds = value * scale;
    if !(seconds > 0.0 && seconds <= 365.0 * 86_400.0) {
        return Err(DurationError::OutOfRange(text.to_owned()));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// [`parse_duration`], and `0` / `0s` for "none" where none makes sense (no minimum age,
/// no grace).
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, DurationError> {
    if matches!(text.trim(), "0" | "0s") {
        Ok(Duration::ZERO)
    } else {
        parse_duration(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_what_it_parses() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2026-11-25T13:51:37Z",
            "2000-02-29T23:59:59Z",
            "1969-12-31T23:59:59Z",
            "2100-03-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let unix = parse_rfc3339(text).unwrap();
            assert_eq!(format_rfc3339(unix).as_deref(), Some(text));
        }
        assert_eq!(
            format_rfc3339(1_795_614_697).as_deref(),
            Some("2026-11-25T13:51:37Z")
        );
        assert_eq!(format_rfc3339(i64::MAX / 2), None);
        assert_eq!(format_rfc3339(-62_167_219_201), None, "before year 0");
    }

    #[test]
    fn parses_engine_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-25T13:51:37.889192638Z"),
            Some(1_795_614_697)
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T14:51:37+01:00"),
            Some(1_795_614_697)
        );
        assert_eq!(parse_rfc3339("2000-02-29T12:00:00Z"), Some(951_825_600));
        for bad in [
            "",
            "0001-01-01",
            "2026-13-01T00:00:00Z",
            "2026-11-25T13:51:37",
            "2026-11-25T13:51:37.Z",
            "x026-11-25T13:51:37Z",
            "2026-02-31T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration_or_zero("0s"), Ok(Duration::ZERO));
        assert!(matches!(
            parse_duration("5x"),
            Err(DurationError::UnknownUnit { unit, .. }) if unit == "x"
        ));
        assert!(matches!(
            parse_duration("0"),
            Err(DurationError::OutOfRange(_))
        ));
        for bad in ["", "0", "0s", "-1s", "abc", "5x", "1.2.3s", "400d", "nan"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(5), "5s");
        assert_eq!(human(200), "3 min");
        assert_eq!(human(4 * 3600), "4 h");
        assert_eq!(human(3 * 86_400), "3 days");
        assert_eq!(human(-3), "0s");
    }
}
