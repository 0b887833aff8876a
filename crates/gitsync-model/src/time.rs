//! Instants as the wire and the store see them.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. AWS clients want epoch seconds with a fraction; a store wants
/// an integer; milliseconds serve both without loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Epoch seconds with millisecond fraction, the wire form of AWS timestamps.
    pub fn epoch_seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn plus_millis(self, millis: i64) -> Self {
        Timestamp(self.0.saturating_add(millis))
    }
}

impl Timestamp {
    /// `2026-11-22T02:00:02Z`, for people.
    pub fn utc_string(self) -> String {
        let secs = self.0.div_euclid(1000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

impl Timestamp {
    /// Reads `YYYY-MM-DDTHH:MM:SS[.fff]Z` (RFC 3339 in UTC), as [`Timestamp::utc_string`] writes it.
    pub fn parse_utc(text: &str) -> Option<Timestamp> {
        let text = text.strip_suffix('Z').or_else(|| text.strip_suffix('z'))?;
        let (date, time) = text.split_once(['T', 't'])?;
        let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
        let (y, m, d) = (date.next()??, date.next()??, date.next()??);
        let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
        let mut clock = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
        let (hh, mm, ss) = (clock.next()??, clock.next()??, clock.next()??);
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
            return None;
        }
        let millis = match fraction {
            "" => 0,
            f if f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
                format!("{f:0<3}")[..3].parse::<i64>().ok()?
            }
            _ => return None,
        };
        let days = days_from_civil(y, m, d);
        if civil_from_days(days) != (y, m, d) {
            return None;
        }
        let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
        Some(Timestamp(secs.checked_mul(1000)?.checked_add(millis)?))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01, proleptic Gregorian (Howard Hinnant's
/// algorithm, exact for every representable day).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes() {
        for t in [0, 1_700_000_000_000, 951_782_400_000, 4_102_444_800_000] {
            assert_eq!(
                Timestamp::parse_utc(&Timestamp(t).utc_string()),
                Some(Timestamp(t))
            );
        }
        assert_eq!(
            Timestamp::parse_utc("2023-11-14T22:13:20.123Z"),
            Some(Timestamp(1_700_000_000_123))
        );
        for bad in [
            "2023-11-14T22:13:20",
            "2023-02-30T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "yesterday",
            "2023-11-14T25:00:00Z",
            "",
        ] {
            assert_eq!(Timestamp::parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_utc() {
        assert_eq!(Timestamp(0).utc_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp(1_700_000_000_123).utc_string(),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).utc_string(),
            "2000-02-29T00:00:00Z"
        );
    }
}
