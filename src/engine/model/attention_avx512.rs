//! The AVX-512 set's attention and SwiGLU (16 lanes).
//!
//! Prompt processing is a small matrix product per key/value head: every
//! work item takes [`TOKENS`] query tokens and all query heads of one kv
//! group (so one key load feeds up to `TOKENS * group` queries), and reads
//! the keys block-transposed (16 positions side by side per key column,
//! [`super::transpose_keys`]), so a score is one FMA chain over the key
//! width with no horizontal reduction. Each score, weight and output lane is
//! rounded by an order that depends only on its own query and position, never
//! on how rows and positions are blocked, so one prompt call, several calls
//! and single-token steps give the same bits.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::{AttnShape, EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO};
use crate::engine::kernels;

/// Query tokens per work item.
const TOKENS: usize = 4;

/// Whether AVX-512F, AVX2 and FMA are present (detected once).
pub fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    })
}

/// Causal attention as [`super::attend`], keys given block-transposed in
/// `kt` (at least `(pos0 + n_tokens).div_ceil(16) * 16 * kw` floats).
///
/// Panics unless [`available`], both head widths are multiples of 16 and
/// the slices hold the rows the shape asks for.
pub(super) fn attend(s: AttnShape, q: &[f32], kt: &[f32], v: &[f32], pos0: usize, out: &mut [f32]) {
    assert!(available());
    let (dk, dv, nkv) = (s.head_dim_k, s.head_dim_v, s.n_head_kv);
    assert!(dk.is_multiple_of(16) && dv.is_multiple_of(16) && nkv > 0);
    assert!(s.n_head.is_multiple_of(nkv));
    let group = s.n_head / nkv;
    let n_tokens = q.len() / (s.n_head * dk);
    let n_all = pos0 + n_tokens;
    assert!(q.len() == n_tokens * s.n_head * dk);
    assert!(out.len() == n_tokens * s.n_head * dv);
    assert!(kt.len() >= n_all.div_ceil(16) * 16 * nkv * dk);
    assert!(v.len() >= n_all * nkv * dv);
    let n_blocks = n_tokens.div_ceil(TOKENS);
    // Item (token block, kv group) owns that group's output of its tokens.
    let mut items: Vec<Vec<&mut [f32]>> = (0..n_blocks * nkv)
        .map(|_| Vec::with_capacity(TOKENS))
        .collect();
    for (idx, o) in out.chunks_exact_mut(group * dv).enumerate() {
        let (t, g) = (idx / nkv, idx % nkv);
        items[(t / TOKENS) * nkv + g].push(o);
    }
    let run = |scores: &mut Vec<f32>, i: usize, outs: &mut Vec<&mut [f32]>| {
        let (tb, g) = (i / nkv, i % nkv);
        // SAFETY: AVX-512F/AVX2/FMA present, widths multiples of 16, and q,
        // kt, v hold every row up to n_all (all asserted above).
        unsafe { block(s, q, kt, v, pos0, tb * TOKENS, g, outs, scores) }
    };
    let work = n_tokens * s.n_head * n_all * dk;
    if work < 1 << 16 || rayon::current_num_threads() == 1 {
        let mut scores = Vec::new();
        for (i, it) in items.iter_mut().enumerate() {
            run(&mut scores, i, it);
        }
        return;
    }
    let pooled = n_tokens == 1
        && kernels::pool::for_each_mut(&mut items, &|i, it| run(&mut Vec::new(), i, it));
    if !pooled {
        items
            .par_iter_mut()
            .enumerate()
            .for_each_init(Vec::new, |sc, (i, it)| run(sc, i, it));
    }
}

/// The queries of tokens `t0..t0 + outs.len()` in kv group `g`: row `m`
/// is token `t0 + m / group`, head `g * group + m % group`.
///
/// # Safety
/// As [`attend`] asserts.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn block(
    s: AttnShape,
    q: &[f32],
    kt: &[f32],
    v: &[f32],
    pos0: usize,
    t0: usize,
    g: usize,
    outs: &mut [&mut [f32]],
    scores: &mut Vec<f32>,
) {
    let (dk, dv, nkv) = (s.head_dim_k, s.head_dim_v, s.n_head_kv);
    let group = s.n_head / nkv;
    let (qd, kw, vw) = (s.n_head * dk, nkv * dk, nkv * dv);
    let rows = outs.len() * group;
    let width = (pos0 + t0 + outs.len()).div_ceil(16) * 16;
    // Every score read below is written first (scores up to each row
    // block's last position, softmax zeros the rest of its row), so the
    // buffer only grows, never cleared: zeroing it cost as much as the softmax.
    if scores.len() < rows * width {
        scores.resize(rows * width, 0.0);
    }
    let n_pos = |m: usize| pos0 + t0 + m / group + 1;
    let qrow = |m: usize| {
        // SAFETY: token t0 + m / group < n_tokens, head < n_head.
        unsafe {
            q.as_ptr()
                .add((t0 + m / group) * qd + (g * group + m % group) * dk)
        }
    };
    let sp = scores.as_mut_ptr();
    // SAFETY: g < nkv, so the group's columns start inside every kt block.
    let ktg = unsafe { kt.as_ptr().add(g * dk * 16) };
    // SAFETY (all calls below): rows m..m + R < rows, each with `width`
    // floats of scores; kt and v hold n_pos(m + R - 1) positions.
    let mut m = 0;
    while m + 12 <= rows {
        let qp = std::array::from_fn(|r| qrow(m + r));
        let dst = std::array::from_fn(|r| unsafe { sp.add((m + r) * width) });
        unsafe { scores_rows::<12>(qp, dst, n_pos(m + 11).div_ceil(16), ktg, kw, dk, s.scale) };
        m += 12;
    }
    while m + 6 <= rows {
        let qp = std::array::from_fn(|r| qrow(m + r));
        let dst = std::array::from_fn(|r| unsafe { sp.add((m + r) * width) });
        unsafe { scores_rows::<6>(qp, dst, n_pos(m + 5).div_ceil(16), ktg, kw, dk, s.scale) };
        m += 6;
    }
    // A decoding step of a three-head group (the default model's) is one call.
    while m + 3 <= rows {
        let qp = std::array::from_fn(|r| qrow(m + r));
        let dst = std::array::from_fn(|r| unsafe { sp.add((m + r) * width) });
        unsafe { scores_rows::<3>(qp, dst, n_pos(m + 2).div_ceil(16), ktg, kw, dk, s.scale) };
        m += 3;
    }
    while m < rows {
        let dst = [unsafe { sp.add(m * width) }];
        unsafe { scores_rows::<1>([qrow(m)], dst, n_pos(m).div_ceil(16), ktg, kw, dk, s.scale) };
        m += 1;
    }
    for (m, row) in scores[..rows * width].chunks_exact_mut(width).enumerate() {
        softmax_row(row, n_pos(m));
    }
    let sp = scores.as_ptr();
    // SAFETY: g < nkv.
    let vg = unsafe { v.as_ptr().add(g * dv) };
    let mut dst: Vec<*mut f32> = Vec::with_capacity(rows);
    for o in outs.iter_mut() {
        for h in 0..group {
            dst.push(o[h * dv..].as_mut_ptr());
        }
    }
    let mut m = 0;
    while m + 6 <= rows {
        let w = std::array::from_fn(|r| unsafe { sp.add((m + r) * width) });
        let d = std::array::from_fn(|r| dst[m + r]);
        unsafe { values_rows::<6>(w, d, n_pos(m + 5), vg, vw, dv) };
        m += 6;
    }
    while m + 3 <= rows {
        let w = std::array::from_fn(|r| unsafe { sp.add((m + r) * width) });
        let d = std::array::from_fn(|r| dst[m + r]);
        unsafe { values_rows::<3>(w, d, n_pos(m + 2), vg, vw, dv) };
        m += 3;
    }
    while m < rows {
        let w = [unsafe { sp.add(m * width) }];
        unsafe { values_rows::<1>(w, [dst[m]], n_pos(m), vg, vw, dv) };
        m += 1;
    }
}

/// Scores of `R` query rows against key blocks `0..n_blocks`:
/// `dst[r][p] = scale * fma-chain over d of q[r][d] * k[p][d]`.
///
/// # Safety
/// AVX-512F and FMA; `q[r]` holds `dk` floats, `dst[r]` `16 * n_blocks`;
/// `ktg` points at the group's first column of block 0 of a block-transposed
/// key array holding `n_blocks` blocks of `kw` columns.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn scores_rows<const R: usize>(
    q: [*const f32; R],
    dst: [*mut f32; R],
    n_blocks: usize,
    ktg: *const f32,
    kw: usize,
    dk: usize,
    scale: f32,
) {
    let vscale = _mm512_set1_ps(scale);
    for b in 0..n_blocks {
        // SAFETY: block b < n_blocks; columns d < dk of the group.
        unsafe {
            let kb = ktg.add(b * kw * 16);
            let mut acc = [_mm512_setzero_ps(); R];
            for d in 0..dk {
                let kv = _mm512_loadu_ps(kb.add(d * 16));
                for r in 0..R {
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(*q[r].add(d)), kv, acc[r]);
                }
            }
            for r in 0..R {
                _mm512_storeu_ps(dst[r].add(b * 16), _mm512_mul_ps(acc[r], vscale));
            }
        }
    }
}

/// Softmax of the first `n` scores of `row` in place (weights, already
/// divided by their sum); the rest of the row becomes 0. The sum is kept
/// in f64, lane `p % 16` of two 8-lane accumulators, then reduced.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
fn softmax_row(row: &mut [f32], n: usize) {
    assert!(n >= 1 && n.div_ceil(16) * 16 <= row.len());
    let p = row.as_mut_ptr();
    let (full, rem) = (n / 16, n % 16);
    let mask: __mmask16 = (1u32 << rem).wrapping_sub(1) as u16;
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut vmax = ninf;
    // SAFETY (this function's loads and stores): blocks below n.div_ceil(16)
    // lie inside `row` (asserted).
    for b in 0..full {
        vmax = _mm512_max_ps(vmax, unsafe { _mm512_loadu_ps(p.add(16 * b)) });
    }
    if rem > 0 {
        vmax = _mm512_max_ps(vmax, unsafe {
            _mm512_mask_loadu_ps(ninf, mask, p.add(16 * full))
        });
    }
    let vm = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    let nb = n.div_ceil(16);
    let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
    for b in 0..nb {
        let x = unsafe { _mm512_loadu_ps(p.add(16 * b)) };
        let mut e = exp16(_mm512_sub_ps(x, vm));
        if b == full {
            e = _mm512_maskz_mov_ps(mask, e);
        }
        unsafe { _mm512_storeu_ps(p.add(16 * b), e) };
        let e_hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e)));
        lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        hi = _mm512_add_pd(hi, _mm512_cvtps_pd(e_hi));
    }
    let sum = _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
    let inv = _mm512_set1_ps((1.0 / sum) as f32);
    for b in 0..nb {
        unsafe {
            _mm512_storeu_ps(
                p.add(16 * b),
                _mm512_mul_ps(_mm512_loadu_ps(p.add(16 * b)), inv),
            )
        };
    }
    row[nb * 16..].fill(0.0);
}

/// `dst[r] = sum over p < n of w[r][p] * v[p]` (the group's value columns),
/// one FMA chain per output lane in position order; 64 lanes at a time.
///
/// # Safety
/// AVX-512F and FMA; `w[r]` holds `n` floats, `dst[r]` `dv`; `vg` points
/// at the group's first value column of `n` rows of stride `vw`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn values_rows<const R: usize>(
    w: [*const f32; R],
    dst: [*mut f32; R],
    n: usize,
    vg: *const f32,
    vw: usize,
    dv: usize,
) {
    let mut c = 0;
    // SAFETY (whole body): rows p < n, columns c + 64 <= dv or c + 16 <= dv.
    unsafe {
        while c + 64 <= dv {
            let mut acc = [[_mm512_setzero_ps(); 4]; R];
            for p in 0..n {
                let vp = vg.add(p * vw + c);
                let x = [
                    _mm512_loadu_ps(vp),
                    _mm512_loadu_ps(vp.add(16)),
                    _mm512_loadu_ps(vp.add(32)),
                    _mm512_loadu_ps(vp.add(48)),
                ];
                for r in 0..R {
                    let wv = _mm512_set1_ps(*w[r].add(p));
                    for i in 0..4 {
                        acc[r][i] = _mm512_fmadd_ps(wv, x[i], acc[r][i]);
                    }
                }
            }
            for r in 0..R {
                for i in 0..4 {
                    _mm512_storeu_ps(dst[r].add(c + 16 * i), acc[r][i]);
                }
            }
            c += 64;
        }
        while c + 16 <= dv {
            let mut acc = [_mm512_setzero_ps(); R];
            for p in 0..n {
                let x = _mm512_loadu_ps(vg.add(p * vw + c));
                for r in 0..R {
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(*w[r].add(p)), x, acc[r]);
                }
            }
            for r in 0..R {
                _mm512_storeu_ps(dst[r].add(c), acc[r]);
            }
            c += 16;
        }
    }
}

/// [`super::softmax_exp`] of sixteen lanes, operation for operation.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(EXP_LO)),
        _mm512_set1_ps(EXP_HI),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x);
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
    let z = _mm512_mul_ps(r, r);
    let mut p = _mm512_set1_ps(EXP_P[0]);
    for c in &EXP_P[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
    }
    let y = _mm512_add_ps(_mm512_fmadd_ps(p, z, r), _mm512_set1_ps(1.0));
    let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    _mm512_mul_ps(y, _mm512_castsi512_ps(e))
}

/// `gate = gate / (1 + e^-gate) * up`, sixteen lanes at a time with
/// [`exp16`]; the tail by the portable formula, which rounds the same.
///
/// Panics unless [`available`].
pub(super) fn swiglu(gate: &mut [f32], up: &[f32]) {
    assert!(available());
    // SAFETY: AVX-512F, AVX2 and FMA are present (asserted).
    unsafe { swiglu_imp(gate, up) }
}

#[target_feature(enable = "avx512f,avx2,fma")]
fn swiglu_imp(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let n16 = n - n % 16;
    let (pg, pu) = (gate.as_mut_ptr(), up.as_ptr());
    let one = _mm512_set1_ps(1.0);
    let mut i = 0;
    while i < n16 {
        // SAFETY: i + 16 <= n for both slices.
        unsafe {
            let g = _mm512_loadu_ps(pg.add(i));
            let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
            let y = _mm512_mul_ps(
                _mm512_div_ps(g, _mm512_add_ps(one, e)),
                _mm512_loadu_ps(pu.add(i)),
            );
            _mm512_storeu_ps(pg.add(i), y);
        }
        i += 16;
    }
    super::swiglu_portable(&mut gate[n16..n], &up[n16..n]);
}
