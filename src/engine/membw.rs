//! The machine's read bandwidth: how fast `threads` threads stream through a
//! buffer much larger than the last-level cache. Decode reads every weight
//! once per token, so this bandwidth over the bytes read per token is the
//! ceiling of its tokens per second.

use std::time::Instant;

/// Bytes of the buffer [`read_gbps`] streams by default: four times the
/// last-level cache this CPU reports (sysfs), at least 256 MiB and at most
/// 2 GiB (1 GiB when no cache size is found).
pub fn probe_bytes() -> usize {
    const MIB: usize = 1 << 20;
    let llc = llc_bytes();
    match llc {
        Some(b) => b.saturating_mul(4).clamp(256 * MIB, 2048 * MIB),
        None => 1024 * MIB,
    }
}

/// The largest cache size sysfs lists for cpu0, in bytes.
pub fn llc_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| {
        let s = std::fs::read_to_string(e.ok()?.path().join("size")).ok()?;
        parse_size(s.trim())
    })
    .max()
}

/// "300M", "4096K", "32768" (bytes) as bytes.
fn parse_size(s: &str) -> Option<usize> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1usize << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<usize>().ok()?.checked_mul(mult)
}

/// One measurement of [`read_gbps`].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Bandwidth {
    /// Best of the passes, in 10^9 bytes per second.
    pub gbps: f64,
    pub bytes: usize,
    pub threads: usize,
}

/// Streams a buffer of `bytes` (rounded down to whole 64-byte lines, at least
/// one per thread) with `threads` threads, each summing its own contiguous
/// share, `passes` times after one warm-up pass that also faults the pages
/// in; returns the best pass (as STREAM does).
pub fn read_gbps(bytes: usize, threads: usize, passes: usize) -> Bandwidth {
    let threads = threads.max(1);
    let words = (bytes / 64).max(threads) * 8;
    let mut buf = vec![0u64; words];
    let share = words.div_ceil(threads).next_multiple_of(8);
    // Distinct values so no page is shared zero memory.
    std::thread::scope(|s| {
        for (i, c) in buf.chunks_mut(share).enumerate() {
            s.spawn(move || {
                for (j, w) in c.iter_mut().enumerate() {
                    *w = (i * share + j) as u64;
                }
            });
        }
    });
    let mut best = 0.0f64;
    let mut sink = 0u64;
    for pass in 0..passes.max(1) + 1 {
        let t0 = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = buf
                .chunks(share)
                .map(|c| s.spawn(move || sum_words(c)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        let dt = t0.elapsed().as_secs_f64();
        sink = sums.iter().fold(sink, |a, b| a.wrapping_add(*b));
        if pass > 0 && dt > 0.0 {
            best = best.max((words * 8) as f64 / dt / 1e9);
        }
    }
    std::hint::black_box(sink);
    Bandwidth {
        gbps: best,
        bytes: words * 8,
        threads,
    }
}

/// Sum of the words, eight independent lanes (vectorizes; one read of each).
fn sum_words(c: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut it = c.chunks_exact(8);
    for w in &mut it {
        for (a, w) in acc.iter_mut().zip(w) {
            *a = a.wrapping_add(*w);
        }
    }
    let rest = it.remainder().iter().fold(0u64, |a, w| a.wrapping_add(*w));
    acc.iter().fold(rest, |a, b| a.wrapping_add(*b))
}

/// Decode against the bandwidth ceiling.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Roofline {
    /// Weight bytes decode read per second, 10^9 bytes per second.
    pub gbps: f64,
    /// Tokens per second if every token's weights came at the measured
    /// bandwidth and nothing else took time.
    pub ceiling_tok_s: f64,
    /// `tok_s / ceiling_tok_s` in percent.
    pub pct_of_ceiling: f64,
}

/// `tok_s` decoding `bytes_per_token` weight bytes each against a measured
/// bandwidth of `stream_gbps`; `None` when any of them is not positive.
pub fn roofline(tok_s: f64, bytes_per_token: usize, stream_gbps: f64) -> Option<Roofline> {
    let b = bytes_per_token as f64;
    if !(tok_s > 0.0 && b > 0.0 && stream_gbps > 0.0) {
        return None;
    }
    let ceiling_tok_s = stream_gbps * 1e9 / b;
    Some(Roofline {
        gbps: tok_s * b / 1e9,
        ceiling_tok_s,
        pct_of_ceiling: 100.0 * tok_s / ceiling_tok_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("300M"), Some(300 << 20));
        assert_eq!(parse_size("48K"), Some(48 << 10));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("x12K"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    #[test]
    fn probe_size_is_bounded() {
        let b = probe_bytes();
        assert!((256 << 20..=2048 << 20).contains(&b), "{b}");
    }

    #[test]
    fn a_small_buffer_measures_a_positive_bandwidth() {
        let bw = read_gbps(1 << 20, 2, 2);
        assert_eq!(bw.threads, 2);
        assert_eq!(bw.bytes, 1 << 20);
        assert!(bw.gbps.is_finite() && bw.gbps > 0.0, "{bw:?}");
        // Odd sizes: whole lines, at least one per thread.
        let bw = read_gbps(100, 3, 1);
        assert_eq!(bw.bytes, 3 * 64);
    }

    #[test]
    fn roofline_divides_bandwidth_by_bytes() {
        let r = roofline(200.0, 100_000_000, 40.0).unwrap();
        assert!((r.gbps - 20.0).abs() < 1e-9, "{r:?}");
        assert!((r.ceiling_tok_s - 400.0).abs() < 1e-9, "{r:?}");
        assert!((r.pct_of_ceiling - 50.0).abs() < 1e-9, "{r:?}");
        assert_eq!(roofline(0.0, 1, 1.0), None);
        assert_eq!(roofline(1.0, 0, 1.0), None);
        assert_eq!(roofline(1.0, 1, f64::NAN), None);
    }

    #[test]
    fn words_sum_with_a_remainder() {
        let v: Vec<u64> = (1..=13).collect();
        assert_eq!(sum_words(&v), 91);
    }
}
