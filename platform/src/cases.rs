//! The follow-up queue's rules, apart from the database: what a case is (one
//! device's hits in one community within a local day), what each outcome means, and
//! the figures territorial management is judged by.

/// A day in ms.
pub const DAY_MS: i64 = 86_400_000;

/// The local day (`YYYY-MM-DD`) of `ms` at `offset_minutes` east of UTC.
pub fn day_of(ms: i64, offset_minutes: i32) -> String {
    let local = ms + i64::from(offset_minutes) * 60_000;
    let (y, m, d) = fanzha::wallclock::civil_from_days(local.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix ms of a local time `YYYY-MM-DDTHH:MM` (an HTML `datetime-local` value; seconds
/// may follow) at `offset_minutes` east of UTC.
pub fn parse_local(s: &str, offset_minutes: i32) -> Option<i64> {
    let (date, time) = s.trim().split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min) = (t.next()??, t.next()??);
    let sec = t.next().flatten().unwrap_or(0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 59 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let local = days * DAY_MS + (h * 3600 + min * 60 + sec) * 1000;
    let ms = local - i64::from(offset_minutes) * 60_000;
    // A date that does not exist (2026-02-30) comes back as another day: refused.
    (day_of(ms, offset_minutes) == date).then_some(ms)
}

/// What a worker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 电话联系: reached by phone.
    Phone,
    /// 上门走访: visited.
    Visited,
    /// 劝阻成功: dissuaded.
    Dissuaded,
    /// 已被骗: already paid; call 110 / 96110.
    Paid,
    /// 误报: a false positive.
    FalsePositive,
    /// 无法联系: could not be reached.
    Unreachable,
}

impl Outcome {
    /// Every outcome, in the form's order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Phone,
        Outcome::Visited,
        Outcome::Dissuaded,
        Outcome::Paid,
        Outcome::FalsePositive,
        Outcome::Unreachable,
    ];

    /// The stored word.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Phone => "phone",
            Outcome::Visited => "visited",
            Outcome::Dissuaded => "dissuaded",
            Outcome::Paid => "paid",
            Outcome::FalsePositive => "false_positive",
            Outcome::Unreachable => "unreachable",
        }
    }

    /// From the stored word.
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.word() == s)
    }

    /// The label people read.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Phone => "电话联系 Phoned",
            Outcome::Visited => "上门走访 Visited",
            Outcome::Dissuaded => "劝阻成功 Dissuaded",
            Outcome::Paid => "已被骗 Already paid",
            Outcome::FalsePositive => "误报 False positive",
            Outcome::Unreachable => "无法联系 Unreachable",
        }
    }

    /// The worker spoke with the resident (the figure's "first contact").
    pub fn is_contact(self) -> bool {
        matches!(
            self,
            Outcome::Phone | Outcome::Visited | Outcome::Dissuaded | Outcome::Paid
        )
    }

    /// It closes the case whatever the worker ticks: nothing is left to do.
    pub fn always_closes(self) -> bool {
        matches!(
            self,
            Outcome::Dissuaded | Outcome::Paid | Outcome::FalsePositive
        )
    }
}

/// The figures of one community (or street, or the district) over a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Cases in the period.
    pub cases: u64,
    /// Of them, open now.
    pub open: u64,
    /// Median ms from the first hit to the first contact, over the contacted cases.
    pub median_contact_ms: Option<i64>,
    /// Cases closed within 24 h of their first hit, over the cases that are closed or
    /// had their 24 h.
    pub closed_24h: Option<f64>,
}

/// One case's times, as the figures need them.
#[derive(Debug, Clone, Copy)]
pub struct CaseTimes {
    /// First hit.
    pub first_ms: i64,
    /// First contact, if any.
    pub first_contact_ms: Option<i64>,
    /// First close, if any.
    pub first_closed_ms: Option<i64>,
    /// Open now.
    pub open: bool,
}

/// The figures from the cases' times, at `now_ms`.
pub fn figures(cases: &[CaseTimes], now_ms: i64) -> Figures {
    let mut waits: Vec<i64> = cases
        .iter()
        .filter_map(|c| c.first_contact_ms.map(|t| (t - c.first_ms).max(0)))
        .collect();
    waits.sort_unstable();
    let median_contact_ms = match waits.len() {
        0 => None,
        n if n % 2 == 1 => Some(waits[n / 2]),
        n => Some((waits[n / 2 - 1] + waits[n / 2]) / 2),
    };
    // A case still open within its first 24 h is not yet late: it counts neither way.
    let due: Vec<&CaseTimes> = cases
        .iter()
        .filter(|c| c.first_closed_ms.is_some() || now_ms - c.first_ms >= DAY_MS)
        .collect();
    let in_time = due
        .iter()
        .filter(|c| c.first_closed_ms.is_some_and(|t| t - c.first_ms <= DAY_MS))
        .count();
    Figures {
        cases: cases.len() as u64,
        open: cases.iter().filter(|c| c.open).count() as u64,
        median_contact_ms,
        closed_24h: (!due.is_empty()).then(|| in_time as f64 / due.len() as f64),
    }
}

/// "3 h 20 min", "2 d 4 h", "45 min" for a wait.
pub fn wait_text(ms: i64) -> String {
    let min = ms / 60_000;
    match min {
        m if m < 60 => format!("{m} 分钟"),
        m if m < 24 * 60 => format!("{} 小时 {} 分", m / 60, m % 60),
        m => format!("{} 天 {} 小时", m / (24 * 60), (m / 60) % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_local() {
        // 2026-11-28T08:00:00Z is 16:00 in Beijing, the same day.
        assert_eq!(day_of(1_795_852_800_000, 480), "2026-11-28");
        // 2026-11-28T20:00:00Z is already the 29th in Beijing.
        assert_eq!(day_of(1_795_896_000_000, 480), "2026-11-29");
        assert_eq!(day_of(1_795_896_000_000, 0), "2026-11-28");
        assert_eq!(day_of(0, 0), "1970-01-01");
        assert_eq!(day_of(951_782_400_000, 0), "2000-02-29");
    }

    #[test]
    fn local_times_parse() {
        // 2026-11-28 16:00 in Beijing is 08:00 UTC.
        assert_eq!(
            parse_local("2026-11-28T16:00", 480),
            Some(1_795_852_800_000)
        );
        assert_eq!(
            parse_local("2026-11-28T16:00:30", 480),
            Some(1_795_852_830_000)
        );
        assert_eq!(
            parse_local("2026-11-29T00:30", 480).map(|ms| day_of(ms, 480)),
            Some("2026-11-29".into())
        );
        assert_eq!(parse_local("2026-02-30T10:00", 480), None);
        assert_eq!(parse_local("2026-11-28 16:00", 480), None);
        assert_eq!(parse_local("yesterday", 480), None);
    }

    #[test]
    fn outcomes_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.word()), Some(o));
        }
        assert_eq!(Outcome::parse("nope"), None);
        assert!(Outcome::Dissuaded.is_contact() && Outcome::Dissuaded.always_closes());
        assert!(!Outcome::Unreachable.is_contact() && !Outcome::Unreachable.always_closes());
    }

    #[test]
    fn figures_follow_their_definitions() {
        let h = 3_600_000;
        let now = 10 * DAY_MS;
        let c = |first: i64, contact: Option<i64>, closed: Option<i64>, open: bool| CaseTimes {
            first_ms: first,
            first_contact_ms: contact,
            first_closed_ms: closed,
            open,
        };
        let cases = [
            c(0, Some(h), Some(2 * h), false),         // closed in 2 h
            c(0, Some(3 * h), Some(30 * h), false),    // closed late
            c(0, None, None, true),                    // overdue, open
            c(now - h, None, None, true),              // not yet due
            c(now - 2 * h, Some(now - h), None, true), // contacted, open
        ];
        let f = figures(&cases, now);
        assert_eq!(f.cases, 5);
        assert_eq!(f.open, 3);
        assert_eq!(f.median_contact_ms, Some(h)); // waits 1 h, 3 h, 1 h
        assert_eq!(f.closed_24h, Some(1.0 / 3.0)); // due: the first three
        assert_eq!(figures(&[], now), Figures::default());
    }
}
