//! Dates and times in query filters (`created_from`, `finished_to`, …), as Cachito reads them
//! (Python's `datetime.fromisoformat`): a date, `2026-01-31`, or a date and a time,
//! `2026-01-31T12:30[:45[.123456]]`, with `T` or a space between them and an optional UTC offset
//! (`Z`, `+02:00`, `+0200`, `+02`). Epoch seconds, which Cachito's spec advertises but its
//! validator refuses, are refused too.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};

/// A filter bound as given: a whole day, or an instant (naive UTC, like the stored timestamps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryDate {
    Day(NaiveDate),
    Instant(NaiveDateTime),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid date format")]
pub struct InvalidDate;

impl QueryDate {
    pub fn parse(text: &str) -> Result<Self, InvalidDate> {
        let bytes = text.as_bytes();
        let day = parse_day(bytes.get(..10).ok_or(InvalidDate)?)?;
        let Some((&separator, rest)) = bytes[10..].split_first() else {
            return Ok(Self::Day(day));
        };
        if separator != b'T' && separator != b' ' {
            return Err(InvalidDate);
        }
        let (time, offset_seconds) = parse_time_and_offset(rest)?;
        let instant = day
            .and_time(time)
            .checked_sub_signed(TimeDelta::seconds(offset_seconds))
            .ok_or(InvalidDate)?;
        Ok(Self::Instant(instant))
    }

    /// The earliest instant it covers: a day's midnight.
    pub fn start(self) -> NaiveDateTime {
        match self {
            Self::Day(day) => day.and_time(NaiveTime::MIN),
            Self::Instant(instant) => instant,
        }
    }

    /// The latest instant it covers: a day's last microsecond (timestamps are stored to the
    /// microsecond), so a bare date as an upper bound includes that whole day.
    pub fn end(self) -> NaiveDateTime {
        match self {
            Self::Day(day) => day
                .and_hms_micro_opt(23, 59, 59, 999_999)
                .expect("a valid time of day"),
            Self::Instant(instant) => instant,
        }
    }
}

/// `n` ASCII digits as a number.
fn digits(bytes: &[u8]) -> Result<u32, InvalidDate> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(InvalidDate);
    }
    Ok(bytes
        .iter()
        .fold(0, |n, digit| n * 10 + u32::from(digit - b'0')))
}

/// `YYYY-MM-DD`, year 1 or later.
fn parse_day(bytes: &[u8]) -> Result<NaiveDate, InvalidDate> {
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(InvalidDate);
    }
    let year = digits(&bytes[..4])?;
    let (month, day) = (digits(&bytes[5..7])?, digits(&bytes[8..10])?);
    if year == 0 {
        return Err(InvalidDate);
    }
    NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(InvalidDate)
}

/// `HH:MM[:SS[.fraction]]` and an optional offset; returns the time and the offset in seconds
/// east of UTC. Digits of the fraction past the sixth are dropped (stored timestamps keep
/// microseconds).
fn parse_time_and_offset(bytes: &[u8]) -> Result<(NaiveTime, i64), InvalidDate> {
    let offset_at = bytes
        .iter()
        .position(|b| matches!(b, b'Z' | b'+' | b'-'))
        .unwrap_or(bytes.len());
    let (time, offset) = bytes.split_at(offset_at);
    let two = |at: usize| digits(time.get(at..at + 2).ok_or(InvalidDate)?);
    let (hour, minute) = (two(0)?, two(3)?);
    if time.get(2) != Some(&b':') {
        return Err(InvalidDate);
    }
    let (mut second, mut micro) = (0, 0);
    match time.len() {
        5 => {}
        8.. if time[5] == b':' => {
            second = two(6)?;
            match time.get(8) {
                None => {}
                Some(b'.') if time.len() > 9 && time.len() <= 18 => {
                    let fraction = &time[9..time.len().min(15)];
                    digits(&time[9..])?;
                    micro = digits(fraction)? * 10u32.pow(6 - fraction.len() as u32);
                }
                Some(_) => return Err(InvalidDate),
            }
        }
        _ => return Err(InvalidDate),
    }
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micro).ok_or(InvalidDate)?;
    Ok((time, parse_offset(offset)?))
}

/// Nothing, `Z`, `±HH`, `±HHMM` or `±HH:MM`, in seconds east of UTC.
fn parse_offset(bytes: &[u8]) -> Result<i64, InvalidDate> {
    let (sign, rest) = match bytes.split_first() {
        None => return Ok(0),
        Some((b'Z', [])) => return Ok(0),
        Some((b'+', rest)) => (1, rest),
        Some((b'-', rest)) => (-1, rest),
        Some(_) => return Err(InvalidDate),
    };
    let (hours, minutes) = match rest.len() {
        2 => (digits(rest)?, 0),
        4 => (digits(&rest[..2])?, digits(&rest[2..])?),
        5 if rest[2] == b':' => (digits(&rest[..2])?, digits(&rest[3..])?),
        _ => return Err(InvalidDate),
    };
    if hours > 23 || minutes > 59 {
        return Err(InvalidDate);
    }
    Ok(sign * i64::from(hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn dates_cover_the_whole_day() {
        let parsed = QueryDate::parse("2026-01-31").unwrap();
        assert_eq!(parsed, QueryDate::Day(day(2026, 1, 31)));
        assert_eq!(parsed.start(), instant("2026-01-31T00:00:00"));
        assert_eq!(parsed.end(), instant("2026-01-31T23:59:59.999999"));
        assert_eq!(
            QueryDate::parse("0001-01-01").unwrap().start(),
            instant("0001-01-01T00:00:00")
        );
        assert_eq!(
            QueryDate::parse("9999-12-31").unwrap().end(),
            instant("9999-12-31T23:59:59.999999")
        );
    }

    #[test]
    fn datetimes_are_instants_in_utc() {
        let cases = [
            ("2011-11-04T00:05", "2011-11-04T00:05:00"),
            ("2011-11-04T00:05:23", "2011-11-04T00:05:23"),
            ("2011-11-04 00:05:23.283", "2011-11-04T00:05:23.283"),
            ("2011-01-01T22:00:00.0", "2011-01-01T22:00:00"),
            ("2019-09-17T18:52:57.577851", "2019-09-17T18:52:57.577851"),
            // past microseconds: dropped, as PostgreSQL keeps no more
            (
                "2019-09-17T18:52:57.577851999",
                "2019-09-17T18:52:57.577851",
            ),
            ("2011-11-04T00:05:23Z", "2011-11-04T00:05:23"),
            ("2011-11-04T00:05:23+02:00", "2011-11-03T22:05:23"),
            ("2011-11-04T00:05:23.5-0130", "2011-11-04T01:35:23.5"),
            ("2011-11-04T23:00+01", "2011-11-04T22:00:00"),
            ("0001-01-01T00:00:00+01:00", "0000-12-31T23:00:00"),
        ];
        for (text, expected) in cases {
            let parsed = QueryDate::parse(text).unwrap_or_else(|_| panic!("{text}"));
            assert_eq!(parsed, QueryDate::Instant(instant(expected)), "{text}");
            assert_eq!(parsed.start(), parsed.end(), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let cases = [
            "",
            "tom_hanks",
            "1676468605",
            "2011-20-04",
            "2011-02-30",
            "0000-01-01",
            "2011-1-04",
            "+2011-01-04",
            "２０１１-01-04",
            "2011-01-01T24:00:00",
            "2011-01-01T23:60",
            "2011-01-01T23:59:60",
            "2011-01-01T",
            "2011-01-01T1",
            "2011-01-01T12",
            "2011-01-01T1:00",
            "2011-01-01T12:00:",
            "2011-01-01T12:00:0",
            "2011-01-01T12:00:00.",
            "2011-01-01T12:00:00.1234567890",
            "2011-01-01T12:00:00.12a",
            "2011-01-01T12:00:00,5",
            "2011-01-01x12:00:00",
            "2011-01-01T12:00:00+24:00",
            "2011-01-01T12:00:00+02:60",
            "2011-01-01T12:00:00+2",
            "2011-01-01T12:00:00Z+01",
            "2011-01-01T12:00:00 ",
            "2011-01-01 ",
            "2011-01-01\0",
            "2011-01-01T12:00:00\0",
            "2011-01-01T12:00:00+01:00\0",
        ];
        for text in cases {
            assert_eq!(QueryDate::parse(text), Err(InvalidDate), "{text:?}");
        }
    }
}
