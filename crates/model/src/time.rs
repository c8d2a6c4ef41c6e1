//! Timestamps as identity providers write them.
//!
//! Accepted: RFC 3339 with any number of fractional digits (`2019-10-18T04:45:48.0729893-05:00`),
//! ISO without an offset (taken as UTC), `YYYY-MM-DD HH:MM:SS`, and the US forms Azure and the
//! Log Analytics portal write: `1/9/2007 9:41:00 AM`, `01/09/2007 09:41:00`,
//! `4/28/2021, 2:08:45.221 PM`, optionally followed by an offset (`+01:00`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Parses a timestamp into microseconds since the epoch (UTC).
pub fn parse_time(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty timestamp".into());
    }
    if let Some(micros) = parse_utc(t) {
        return Ok(micros);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(naive.and_utc().timestamp_micros());
        }
    }
    // RFC 3339 with a space, or with an offset but no colon.
    if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Ok(dt.timestamp_micros());
    }
    if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(dt.timestamp_micros());
    }
    parse_us_time(t).ok_or_else(|| format!("unrecognised timestamp {text:?} (expected ISO 8601 / RFC 3339)"))
}

/// The form Graph and Signet write, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, read without chrono's
/// general parser (on every sign-in); anything else (`None`) goes the general way, which reads
/// this form to the same instant.
fn parse_utc(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let shape = b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':';
    if !shape || b[b.len() - 1] != b'Z' {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let micros = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit) => {
            (0..6).fold(0, |n, i| n * 10 + fraction.get(i).map_or(0, |&c| u32::from(c - b'0')))
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?;
    let time = NaiveTime::from_hms_micro_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?, micros)?;
    Some(NaiveDateTime::new(date, time).and_utc().timestamp_micros())
}

/// `M/D/YYYY[,] H:MM[:SS[.fff]] [AM|PM] [+HH:MM|Z]`.
fn parse_us_time(t: &str) -> Option<i64> {
    let (date_part, rest) = t.split_once(' ')?;
    let date_part = date_part.trim_end_matches(',');
    let mut date_fields = date_part.split('/');
    let month: u32 = date_fields.next()?.parse().ok()?;
    let day: u32 = date_fields.next()?.parse().ok()?;
    let year: i32 = date_fields.next()?.parse().ok()?;
    if date_fields.next().is_some() {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year, month, day)?;

    let mut tokens = rest.split_whitespace();
    let clock = tokens.next()?;
    let mut meridiem = None;
    let mut offset_seconds = 0i32;
    for token in tokens {
        match token.to_ascii_uppercase().as_str() {
            "AM" => meridiem = Some(false),
            "PM" => meridiem = Some(true),
            "Z" | "UTC" => {}
            other => offset_seconds = parse_offset(other)?,
        }
    }
    let mut clock_fields = clock.split(':');
    let mut hour: u32 = clock_fields.next()?.parse().ok()?;
    let minute: u32 = clock_fields.next()?.parse().ok()?;
    let (second, micros) = match clock_fields.next() {
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            let digits: String = frac.chars().take(6).collect();
            let micros = if digits.is_empty() { 0 } else { format!("{digits:0<6}").parse::<u32>().ok()? };
            (whole.parse::<u32>().ok()?, micros)
        }
        None => (0, 0),
    };
    match meridiem {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        Some(_) if hour > 12 => return None,
        _ => {}
    }
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    let local = NaiveDateTime::new(date, time).and_utc().timestamp_micros();
    Some(local - i64::from(offset_seconds) * 1_000_000)
}

fn parse_offset(token: &str) -> Option<i32> {
    let sign = match token.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &token[1..];
    let (h, m) = body.split_once(':').unwrap_or_else(|| body.split_at(body.len().min(2)));
    let hours: i32 = h.parse().ok()?;
    let minutes: i32 = if m.is_empty() { 0 } else { m.parse().ok()? };
    Some(sign * (hours * 3600 + minutes * 60))
}

/// Formats microseconds as RFC 3339 UTC with 7 fractional digits when needed (as Graph does),
/// or whole seconds.
pub fn format_time(micros: i64) -> String {
    let dt = Utc.timestamp_micros(micros).single().unwrap_or_default();
    let precision = if micros % 1_000_000 == 0 { chrono::SecondsFormat::Secs } else { chrono::SecondsFormat::Micros };
    dt.to_rfc3339_opts(precision, true)
}

/// Current time in microseconds.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iso(t: &str) -> i64 {
        DateTime::parse_from_rfc3339(t).unwrap().timestamp_micros()
    }

    proptest! {
        /// The short way reads what chrono's RFC 3339 parser reads, to the same instant, or
        /// leaves the text to it.
        #[test]
        fn the_utc_form_reads_as_rfc_3339_does(
            year in 0u32..10000, month in 0u32..14, day in 0u32..33, hour in 0u32..26, minute in 0u32..61,
            second in 0u32..62, fraction in proptest::option::of("[0-9]{0,11}"), zone in prop::sample::select(vec!["Z", "z", "+00:00", ""]),
        ) {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{zone}");
            if let Some(micros) = parse_utc(&text) {
                prop_assert_eq!(Ok(micros), DateTime::parse_from_rfc3339(&text).map(|d| d.timestamp_micros()).map_err(|_| ()), "{}", text);
            }
            if year > 0 && (1..=12).contains(&month) && (1..=28).contains(&day) && hour < 24 && minute < 60 && second < 60
                && zone == "Z" && fraction.len() <= 10 && fraction != "."
            {
                prop_assert!(parse_utc(&text).is_some(), "{}", text);
            }
        }
    }

    #[test]
    fn corner_cases_from_azure_exports() {
        let expect = iso("2007-01-09T09:41:00Z");
        for text in [
            "01/09/2007 09:41:00",
            "1/9/2007 09:41:00",
            "01/09/2007 09:41:00 AM",
            "1/9/2007 9:41:00 AM",
            "1/9/2007 10:41:00 AM +01:00",
            "2007-01-09T09:41:00",
            "2007-01-09T11:41:00+02:00",
            "2007-01-09 09:41:00",
        ] {
            assert_eq!(parse_time(text), Ok(expect), "{text}");
        }
        assert_eq!(parse_time("2007-01-09T09:41:00.22Z").unwrap(), expect + 220_000);
        assert_eq!(parse_time("2007-01-09T09:41:00.6816663Z").unwrap(), expect + 681_666);
        assert_eq!(parse_time("2007-01-09T09:41:00.535404056Z").unwrap(), expect + 535_404);
        assert_eq!(parse_time("2007-01-09T09:41:00.992099+00:00").unwrap(), expect + 992_099);
    }

    #[test]
    fn portal_csv_format() {
        assert_eq!(parse_time("4/28/2021, 2:08:45.221 PM").unwrap(), iso("2021-04-28T14:08:45.221Z"));
        assert_eq!(parse_time("4/28/2021, 12:08:45 AM").unwrap(), iso("2021-04-28T00:08:45Z"));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_time("").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("13/45/2020 10:00").is_err());
        assert!(parse_time("1/1/2020 13:00 PM").is_err());
    }

    #[test]
    fn format_round_trips() {
        let t = iso("2024-03-01T10:00:00.123456Z");
        assert_eq!(parse_time(&format_time(t)), Ok(t));
        assert_eq!(format_time(iso("2024-03-01T10:00:00Z")), "2024-03-01T10:00:00Z");
    }
}
