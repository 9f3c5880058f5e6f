//! Percentiles, and start lag and missed slots from the target's arrival times.
//!
//! Each monitor `n` has an ideal grid `origin + k * interval`, where `origin` is when it was
//! activated (the `updated_at`, or `created_at`, the API returned; the service checks a
//! monitor at once and then every interval). An arrival's lag is its distance from the
//! nearest grid point at or before it. A grid point inside the window that no arrival falls
//! into (between it and the next point) is a missed slot. [`own_grid`] gives the grid the
//! scheduler actually kept, for the lag without the delay before a monitor's first slot.

use std::collections::{HashMap, HashSet};

/// p50, p99 and max of a sample, in the sample's unit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Nearest-rank percentiles; all zero for an empty sample.
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
            values[index - 1]
        };
        Self {
            count: values.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: values[values.len() - 1],
        }
    }
}

/// What the arrivals inside the window show.
#[derive(Debug, Clone, Copy, Default)]
pub struct LagReport {
    /// Arrivals inside the window.
    pub arrivals: usize,
    /// Grid points inside the window.
    pub expected_slots: u64,
    /// Grid points inside the window no arrival served.
    pub missed_slots: u64,
    /// Lag of the arrivals inside the window, in milliseconds.
    pub lag_ms: Summary,
}

/// Analyses `arrivals` (monitor number, unix micros) against each monitor's grid.
/// `origins_us[n - 1]` is monitor `n`'s origin; the window is `[start_us, end_us)`.
pub fn analyse(
    arrivals: &[(u32, i64)],
    origins_us: &[i64],
    interval_us: i64,
    start_us: i64,
    end_us: i64,
) -> LagReport {
    let origin = |n: u32| -> Option<i64> {
        let index = usize::try_from(n).ok()?.checked_sub(1)?;
        origins_us.get(index).copied()
    };
    let mut hit: HashMap<u32, HashSet<i64>> = HashMap::new();
    let mut lags = Vec::new();
    for &(n, at) in arrivals {
        let Some(t0) = origin(n) else { continue };
        let since = (at - t0).max(0);
        hit.entry(n).or_default().insert(since / interval_us);
        if (start_us..end_us).contains(&at) {
            lags.push((since % interval_us) as f64 / 1000.0);
        }
    }
    let mut expected_slots = 0;
    let mut missed_slots = 0;
    for (index, &t0) in origins_us.iter().enumerate() {
        let n = index as u32 + 1;
        // Grid points g = t0 + k * interval with start <= g < end, k >= 0.
        let first = div_ceil(start_us - t0, interval_us).max(0);
        let last = div_ceil(end_us - t0, interval_us) - 1;
        let slots = hit.get(&n);
        for k in first..=last {
            expected_slots += 1;
            if !slots.is_some_and(|s| s.contains(&k)) {
                missed_slots += 1;
            }
        }
    }
    LagReport {
        arrivals: lags.len(),
        expected_slots,
        missed_slots,
        lag_ms: Summary::of(lags),
    }
}

/// Each monitor's own grid: its origin moved on by the smallest offset any of its arrivals
/// after the first had from the original grid. A check is never early, so this is where the
/// scheduler put the monitor's slots; lag against it is the scheduling jitter, without a
/// constant delay between activation and the slots. The first arrival is left out because
/// a late first check does not move the grid.
pub fn own_grid(arrivals: &[(u32, i64)], origins_us: &[i64], interval_us: i64) -> Vec<i64> {
    // Per monitor: its first arrival (time, offset) and the smallest offset of the others.
    let mut first: Vec<Option<(i64, i64)>> = vec![None; origins_us.len()];
    let mut later: Vec<Option<i64>> = vec![None; origins_us.len()];
    for &(n, at) in arrivals {
        let Some(index) = usize::try_from(n).ok().and_then(|n| n.checked_sub(1)) else {
            continue;
        };
        let Some(&t0) = origins_us.get(index) else {
            continue;
        };
        let offset = (at - t0).max(0) % interval_us;
        let pushed_out = match first[index] {
            None => {
                first[index] = Some((at, offset));
                None
            }
            Some((first_at, first_offset)) if at < first_at => {
                first[index] = Some((at, offset));
                Some(first_offset)
            }
            Some(_) => Some(offset),
        };
        if let Some(offset) = pushed_out {
            later[index] = Some(later[index].map_or(offset, |o: i64| o.min(offset)));
        }
    }
    origins_us
        .iter()
        .zip(first.iter().zip(later))
        .map(|(t0, (first, later))| t0 + later.or(first.map(|(_, o)| o)).unwrap_or(0))
        .collect()
}

/// How long after its origin each monitor was first checked, in milliseconds (monitors
/// never checked are left out).
pub fn first_check_delays(arrivals: &[(u32, i64)], origins_us: &[i64]) -> Summary {
    let mut first: Vec<Option<i64>> = vec![None; origins_us.len()];
    for &(n, at) in arrivals {
        if let Some(slot) = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| first.get_mut(i))
        {
            *slot = Some(slot.map_or(at, |f: i64| f.min(at)));
        }
    }
    Summary::of(
        first
            .iter()
            .zip(origins_us)
            .filter_map(|(f, t0)| f.map(|f| (f - t0).max(0) as f64 / 1000.0))
            .collect(),
    )
}

/// The longest time, in milliseconds, without any arrival at the target between the first
/// arrival and the last.
pub fn longest_pause_ms(arrivals: &[(u32, i64)]) -> f64 {
    let mut times: Vec<i64> = arrivals.iter().map(|&(_, at)| at).collect();
    times.sort_unstable();
    times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as f64 / 1000.0
}

fn div_ceil(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = Summary::of((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p99, s.max), (50.0, 99.0, 100.0));
        assert_eq!(Summary::of(vec![]).count, 0);
    }

    #[test]
    fn lag_and_missed_slots_follow_the_grid() {
        // Monitor 1 from t=0 every 1000us; window [2000, 5000) holds grid points 2000..4000.
        let arrivals = [(1, 0), (1, 1010), (1, 2005), (1, 4100)];
        let report = analyse(&arrivals, &[0], 1000, 2000, 5000);
        assert_eq!(report.arrivals, 2);
        assert_eq!(report.expected_slots, 3);
        assert_eq!(report.missed_slots, 1); // the slot at 3000
        assert!((report.lag_ms.max - 0.1).abs() < 1e-9);
        assert_eq!(own_grid(&arrivals, &[0], 1000), vec![5]);
        assert_eq!(own_grid(&[(1, 30), (1, 1050)], &[0], 1000), vec![50]);
        // A late first check does not move the grid.
        assert_eq!(
            own_grid(&[(1, 1600), (1, 2100), (1, 3100)], &[0], 1000),
            vec![100]
        );
        assert_eq!(own_grid(&[(1, 700)], &[0], 1000), vec![700]);
        assert_eq!(longest_pause_ms(&[(1, 0), (2, 5000), (1, 3000)]), 3.0);
        let first = first_check_delays(&[(1, 1600), (1, 2100)], &[0]);
        assert_eq!(first.max, 1.6);
    }
}
