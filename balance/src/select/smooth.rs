//! Smooth weighted round robin (nginx's algorithm), precomputed into a schedule so that picking
//! is one atomic increment: weights 5,1,1 give `a a b a c a a` rather than `a a a a a b c`.

/// The interleaved schedule of positions for these weights (weights scaled so the schedule has
/// at most `max_len` entries; every positive weight keeps at least one slot).
pub fn schedule(weights: &[u32], max_len: usize) -> Vec<u32> {
    let total: u64 = weights.iter().map(|&w| w as u64).sum();
    if total == 0 {
        return Vec::new();
    }
    let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd) as u64;
    let mut w: Vec<i64> = weights.iter().map(|&x| (x as u64 / g) as i64).collect();
    let sum: i64 = w.iter().sum();
    if sum as usize > max_len {
        let scale = max_len as f64 / sum as f64;
        for x in w.iter_mut().filter(|x| **x > 0) {
            *x = ((*x as f64 * scale).round() as i64).max(1);
        }
    }
    let sum: i64 = w.iter().sum();
    let mut cur = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(sum as usize);
    for _ in 0..sum {
        let mut best = 0;
        for i in 0..w.len() {
            cur[i] += w[i];
            if cur[i] > cur[best] {
                best = i;
            }
        }
        cur[best] -= sum;
        out.push(best as u32);
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_example() {
        assert_eq!(schedule(&[5, 1, 1], 100), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(schedule(&[2, 2], 100), vec![0, 1]);
        assert_eq!(schedule(&[0, 3], 100), vec![1]);
        assert!(schedule(&[0, 0], 100).is_empty());
    }

    #[test]
    fn long_schedules_are_scaled() {
        let s = schedule(&[100_000, 1], 1000);
        assert!(s.len() <= 1001);
        assert!(s.contains(&1));
    }
}
