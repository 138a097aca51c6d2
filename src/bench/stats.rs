//! The bench's statistics: a few lines, where a statistics crate would bring more than it gives.

use serde::Serialize;

/// Median, minimum and maximum of a set of timings (seconds) or ratios.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
}

impl Stats {
    /// `None` for an empty set or one holding NaN.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || samples.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            median: median_sorted(&sorted),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            samples: samples.to_vec(),
        })
    }
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// Per-round ratios `ours[i] / theirs[i]` of interleaved runs.
pub fn paired_ratios(ours: &[f64], theirs: &[f64]) -> Vec<f64> {
    ours.iter().zip(theirs).filter(|(_, t)| **t > 0.0).map(|(o, t)| o / t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).expect("stats");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Stats::of(&[4.0, 1.0, 3.0, 2.0]).expect("stats");
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(s.samples, vec![4.0, 1.0, 3.0, 2.0], "the samples stay in run order");
    }

    #[test]
    fn empty_or_nan_sets_have_no_statistics() {
        assert!(Stats::of(&[]).is_none());
        assert!(Stats::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn paired_ratios_pair_rounds_and_skip_zero_times() {
        assert_eq!(paired_ratios(&[2.0, 3.0, 1.0], &[1.0, 0.0, 2.0]), vec![2.0, 0.5]);
    }
}
