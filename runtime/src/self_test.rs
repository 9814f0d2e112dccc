//! The comparisons behind a generated `Model::self_test()` (`include_model!(.., self_test =
//! true)`): the device's result against the one the host computed at build time.

/// True when every `got[i]` is within `rel * max(1, max |want|)` of `want[i]` (and the
/// lengths agree). A NaN in `got` never matches.
///
/// ```
/// use microarena::self_test::matches_f32;
/// assert!(matches_f32(&[1.0, 2.0], &[1.0, 2.000001], 1e-5));
/// assert!(!matches_f32(&[1.0, 2.1], &[1.0, 2.0], 1e-5));
/// assert!(!matches_f32(&[f32::NAN], &[0.0], 1e-5));
/// ```
pub fn matches_f32(got: &[f32], want: &[f32], rel: f32) -> bool {
    let scale = want.iter().fold(1.0f32, |m, w| m.max(w.abs()));
    let tolerance = rel * scale;
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| g == w || (g - w).abs() <= tolerance)
}

/// True when `got` equals `want` element by element: int8 results are exact.
///
/// ```
/// use microarena::self_test::matches_i8;
/// assert!(matches_i8(&[1, -2], &[1, -2]));
/// assert!(!matches_i8(&[1, -2], &[1, -3]));
/// ```
pub fn matches_i8(got: &[i8], want: &[i8]) -> bool {
    got == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_scales_with_the_largest_magnitude() {
        assert!(matches_f32(&[100.0, 0.0], &[100.0, 0.0005], 1e-5));
        assert!(!matches_f32(&[100.0, 0.0], &[100.0, 0.002], 1e-5));
        assert!(!matches_f32(&[1.0], &[1.0, 2.0], 1e-5));
        assert!(matches_f32(&[f32::INFINITY], &[f32::INFINITY], 1e-5));
        assert!(!matches_f32(&[f32::INFINITY], &[1.0], 1e-5));
    }
}
