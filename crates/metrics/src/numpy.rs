//! The few numpy behaviours the reference scripts' numbers depend on, reproduced exactly so that
//! published metric values can be matched to the last digit.

/// `np.round(x, decimals)`: scale, round half to even, unscale.
pub fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round_ties_even() / scale
}

/// `np.sum` of a float64 array (numpy's pairwise summation with its 8-way unrolled blocks).
pub fn sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        values.iter().fold(0.0, |acc, v| acc + v) // numpy starts from -0.0; identical for finite sums
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&values[..8]);
        let mut i = 8;
        while i + 8 <= n {
            for k in 0..8 {
                r[k] += values[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &values[i..] {
            res += v;
        }
        res
    } else {
        let half = (n / 2) - (n / 2) % 8;
        sum(&values[..half]) + sum(&values[half..])
    }
}

/// `np.nansum`: NaN counts as 0.
pub fn nansum(values: &[f64]) -> f64 {
    sum(&values.iter().map(|v| if v.is_nan() { 0.0 } else { *v }).collect::<Vec<_>>())
}

/// `np.mean` (NaN propagates).
pub fn mean(values: &[f64]) -> f64 {
    sum(values) / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_to_even_on_the_scaled_value() {
        assert_eq!(round(0.125, 2), 0.12);
        assert_eq!(round(0.135, 2), 0.14);
        assert_eq!(round(-8.602495368015042, 2), -8.6);
        assert_eq!(round(0.123456789, 5), 0.12346);
    }

    #[test]
    fn pairwise_sum_matches_a_sequential_sum_on_exact_values() {
        let v: Vec<f64> = (0..300).map(|i| i as f64).collect();
        assert_eq!(sum(&v), 44850.0);
        assert_eq!(nansum(&[1.0, f64::NAN, 2.0]), 3.0);
        assert!(mean(&[1.0, f64::NAN]).is_nan());
    }
}
