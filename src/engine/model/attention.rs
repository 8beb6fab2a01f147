//! Grouped-query causal attention over a KV cache (Ainslie et al. 2023):
//! `out_h = softmax(scale * q_h K_g^T + causal mask) V_g` with `g = h / (n_head / n_head_kv)`.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::engine::kernels;

#[cfg(target_arch = "x86_64")]
#[path = "attention_avx512.rs"]
mod avx512;

/// The attention and SwiGLU code of a kernel set, chosen by the same
/// `BYLINE_KERNELS` selection as the matrix kernels so that comparing sets
/// compares all of their arithmetic: `scalar` (and the NEON sets) run the
/// portable loops, `avx2-*` the eight-lane path, `avx512-*` the sixteen-lane,
/// kv-group-wide one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    /// Portable Rust (what the compiler vectorizes of it).
    Portable,
    /// AVX2 + FMA.
    Avx2,
    /// AVX-512F (+ AVX2 + FMA).
    Avx512,
}

impl Simd {
    /// The path for the kernel set named `set` (a [`kernels::kernel_set`]
    /// name), if this CPU has it, else the portable one.
    pub fn for_set(set: &str) -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if set.starts_with("avx512") && avx512::available() {
                return Simd::Avx512;
            }
            if set.starts_with("avx2") && simd::available() {
                return Simd::Avx2;
            }
        }
        let _ = set;
        Simd::Portable
    }

    /// The path of the kernel set in use.
    pub fn current() -> Simd {
        static S: OnceLock<Simd> = OnceLock::new();
        *S.get_or_init(|| Simd::for_set(kernels::kernel_set()))
    }

    /// Every path this CPU runs, portable first (tests).
    pub fn available() -> Vec<Simd> {
        let mut v = vec![Simd::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if simd::available() {
                v.push(Simd::Avx2);
            }
            if avx512::available() {
                v.push(Simd::Avx512);
            }
        }
        v
    }
}

/// Keys and values of every past position, per layer, position-major:
/// `k[layer]` is (n_pos, n_head_kv * head_dim_k), grown as tokens arrive up to `n_ctx`.
#[derive(Debug, Clone)]
pub struct KvCache {
    n_ctx: usize,
    k_width: usize,
    v_width: usize,
    len: usize,
    k: Vec<Vec<f32>>, // per layer: (len, n_head_kv * head_dim_k)
    v: Vec<Vec<f32>>, // per layer: (len, n_head_kv * head_dim_v)
    /// Per layer, the keys block-transposed ([`transpose_keys`]) for the
    /// AVX-512 path, built on first use and extended as positions arrive.
    kt: Vec<Vec<f32>>,
    /// Positions of `k` already in `kt`, per layer.
    kt_len: Vec<usize>,
}

impl KvCache {
    /// An empty cache for `n_layer` layers holding at most `n_ctx` positions.
    pub fn new(n_layer: usize, n_ctx: usize, k_width: usize, v_width: usize) -> KvCache {
        KvCache {
            n_ctx,
            k_width,
            v_width,
            len: 0,
            k: vec![Vec::new(); n_layer],
            v: vec![Vec::new(); n_layer],
            kt: vec![Vec::new(); n_layer],
            kt_len: vec![0; n_layer],
        }
    }

    /// Positions stored so far (the next token's position).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum positions.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Forgets positions from `n` on (keeps the allocation).
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
        for t in &mut self.kt_len {
            *t = (*t).min(self.len);
        }
        for (k, v) in self.k.iter_mut().zip(&mut self.v) {
            k.truncate(self.len * self.k_width);
            v.truncate(self.len * self.v_width);
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Bytes held (for reporting).
    pub fn bytes(&self) -> usize {
        self.k
            .iter()
            .chain(&self.v)
            .chain(&self.kt)
            .map(|x| x.capacity() * 4)
            .sum()
    }

    /// Appends `n_tokens` rows of k and v for `layer` at position `len`.
    /// Call for every layer, then [`KvCache::advance`].
    pub(crate) fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        debug_assert_eq!(self.k[layer].len(), self.len * self.k_width);
        self.k[layer].extend_from_slice(k);
        self.v[layer].extend_from_slice(v);
    }

    /// Marks `n` appended positions as stored.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// All keys and values of `layer`, including rows appended this step.
    pub(crate) fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        (&self.k[layer], &self.v[layer])
    }

    /// Keys of `layer` block-transposed (every row appended so far,
    /// including this step's), and its values.
    pub(crate) fn layer_transposed(&mut self, layer: usize) -> (&[f32], &[f32]) {
        let n = self.k[layer].len().checked_div(self.k_width).unwrap_or(0);
        let from = self.kt_len[layer].min(n);
        transpose_keys_into(&self.k[layer], self.k_width, from, n, &mut self.kt[layer]);
        self.kt_len[layer] = n;
        (&self.kt[layer], &self.v[layer])
    }
}

/// Keys `k` (position-major rows of `kw` floats) in blocks of 16 positions,
/// each block `kw` columns of 16 positions: position `p`, column `c` at
/// `((p / 16) * kw + c) * 16 + p % 16`; the last block padded with zeros.
pub fn transpose_keys(k: &[f32], kw: usize) -> Vec<f32> {
    let mut kt = Vec::new();
    let n = k.len().checked_div(kw).unwrap_or(0);
    transpose_keys_into(k, kw, 0, n, &mut kt);
    kt
}

/// Writes positions `from..to` of `k` into the block-transposed `kt`,
/// growing it to whole blocks.
fn transpose_keys_into(k: &[f32], kw: usize, from: usize, to: usize, kt: &mut Vec<f32>) {
    let need = to.div_ceil(16) * 16 * kw;
    if kt.len() < need {
        kt.resize(need, 0.0);
    }
    for p in from..to {
        let base = (p / 16) * kw * 16 + p % 16;
        for (c, &x) in k[p * kw..(p + 1) * kw].iter().enumerate() {
            kt[base + c * 16] = x;
        }
    }
}

/// Shapes of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (divides n_head).
    pub n_head_kv: usize,
    /// Width of a query/key head.
    pub head_dim_k: usize,
    /// Width of a value head.
    pub head_dim_v: usize,
    /// Score scale, usually 1/sqrt(head_dim_k).
    pub scale: f32,
}

/// Causal attention for `n_tokens` queries at positions `pos0..pos0+n_tokens`.
///
/// `q` is (n_tokens, n_head * head_dim_k); `k`/`v` hold positions `0..pos0+n_tokens`
/// as (pos, n_head_kv * head_dim); `out` is (n_tokens, n_head * head_dim_v).
/// Parallel over (token, head) pairs; each writes its own output slice.
/// Runs the path of the kernel set in use ([`Simd::current`]).
pub fn attend(s: AttnShape, q: &[f32], k: &[f32], v: &[f32], pos0: usize, out: &mut [f32]) {
    attend_with(Simd::current(), s, q, k, v, pos0, out)
}

/// Whether the AVX-512 path takes this shape.
fn wide(simd: Simd, s: AttnShape) -> bool {
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 && avx512::available() {
        return s.head_dim_k.is_multiple_of(16)
            && s.head_dim_v.is_multiple_of(16)
            && s.n_head_kv > 0
            && s.n_head.is_multiple_of(s.n_head_kv);
    }
    let _ = (simd, s);
    false
}

/// [`attend`] over layer `layer` of `cache` (whose rows for this step are
/// appended): the AVX-512 path reads the cache's block-transposed keys,
/// extended by this step's rows only.
pub fn attend_cached(
    simd: Simd,
    s: AttnShape,
    q: &[f32],
    cache: &mut KvCache,
    layer: usize,
    pos0: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if wide(simd, s) {
        let (kt, v) = cache.layer_transposed(layer);
        avx512::attend(s, q, kt, v, pos0, out);
        return;
    }
    let (k, v) = cache.layer(layer);
    attend_with(simd, s, q, k, v, pos0, out)
}

/// [`attend`] on the path `simd` (one the CPU has: see [`Simd::available`]).
pub fn attend_with(
    simd: Simd,
    s: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    pos0: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if wide(simd, s) {
        let kt = transpose_keys(k, s.n_head_kv * s.head_dim_k);
        avx512::attend(s, q, &kt, v, pos0, out);
        return;
    }
    let n_tokens = q.len() / (s.n_head * s.head_dim_k);
    let kw = s.n_head_kv * s.head_dim_k;
    let vw = s.n_head_kv * s.head_dim_v;
    debug_assert_eq!(out.len(), n_tokens * s.n_head * s.head_dim_v);
    debug_assert!(k.len() >= (pos0 + n_tokens) * kw);
    let group = s.n_head / s.n_head_kv;
    #[cfg(target_arch = "x86_64")]
    let fast = simd != Simd::Portable
        && simd::available()
        && s.head_dim_k.is_multiple_of(8)
        && s.head_dim_v.is_multiple_of(8);
    let one = |scores: &mut Vec<f32>, idx: usize, o: &mut [f32]| {
        let (t, h) = (idx / s.n_head, idx % s.n_head);
        let g = h / group;
        let n_pos = pos0 + t + 1;
        let qh = &q[t * s.n_head * s.head_dim_k + h * s.head_dim_k..][..s.head_dim_k];
        #[cfg(target_arch = "x86_64")]
        if fast {
            let kh = Head {
                rows: k,
                stride: kw,
                off: g * s.head_dim_k,
            };
            let vh = Head {
                rows: v,
                stride: vw,
                off: g * s.head_dim_v,
            };
            // SAFETY: AVX2 and FMA are present (`simd::available`), both head
            // widths are multiples of 8, and k/v hold n_pos rows (asserted above).
            unsafe { simd::head(qh, kh, vh, n_pos, s.scale, scores, o) };
            return;
        }
        scores.clear();
        let mut max = f32::NEG_INFINITY;
        for p in 0..n_pos {
            let kh = &k[p * kw + g * s.head_dim_k..][..s.head_dim_k];
            let x = dot(qh, kh) * s.scale;
            max = max.max(x);
            scores.push(x);
        }
        let mut sum = 0.0f64;
        for x in scores.iter_mut() {
            *x = softmax_exp(*x - max);
            sum += *x as f64;
        }
        let inv = (1.0 / sum) as f32;
        o.fill(0.0);
        for (p, &w) in scores.iter().enumerate() {
            let vh = &v[p * vw + g * s.head_dim_v..][..s.head_dim_v];
            axpy(w * inv, vh, o);
        }
    };
    // Work is about n_tokens * n_head * positions * head_dim; below a few
    // hundred thousand flops rayon's fork/join costs more than it saves.
    let work = n_tokens * s.n_head * (pos0 + n_tokens) * s.head_dim_k;
    if work < 1 << 16 || rayon::current_num_threads() == 1 {
        let mut scores = Vec::with_capacity(pos0 + n_tokens);
        for (idx, o) in out.chunks_exact_mut(s.head_dim_v).enumerate() {
            one(&mut scores, idx, o);
        }
    } else {
        let mut heads: Vec<&mut [f32]> = out.chunks_exact_mut(s.head_dim_v).collect();
        // Decoding runs on the spinning pool with the matrix products.
        let pooled = n_tokens == 1
            && kernels::pool::for_each_mut(&mut heads, &|idx, o| {
                one(&mut Vec::with_capacity(pos0 + 1), idx, o)
            });
        if !pooled {
            heads.into_par_iter().enumerate().for_each_init(
                || Vec::with_capacity(pos0 + n_tokens),
                |scores, (idx, o)| one(scores, idx, o),
            );
        }
    }
}

/// One head's slice of position-major rows: row `p` is
/// `rows[p * stride + off..][..width]`.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Head<'a> {
    rows: &'a [f32],
    stride: usize,
    off: usize,
}

/// Dot product: AVX2+FMA when the CPU has it (checked once), else portable.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: the CPU supports AVX2 and FMA (checked by `simd::available`).
        return unsafe { simd::dot(a, b) };
    }
    dot_portable(a, b)
}

/// `y += a * x`: AVX2+FMA when available, else portable.
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: the CPU supports AVX2 and FMA (checked by `simd::available`).
        return unsafe { simd::axpy(a, x, y) };
    }
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `e^x` for softmax weights (`x <= 0` after subtracting the maximum, where
/// it is within 2 ulp of the correctly rounded value): Cephes' `expf` range
/// reduction (`x = n ln 2 + r`, `|r| <= ln 2 / 2`) and degree-7 polynomial,
/// then `2^n` through the exponent bits. Inputs below -87.33 give
/// `e^-87.33` (1.2e-38, the smallest normal float) instead of a
/// subnormal or 0. The AVX2 path (`simd::exp8`) runs the same operations
/// (fused multiply-adds where `mul_add` is written), so both give the same
/// bits; libm's `expf` call per score was a tenth of a prompt's time.
#[inline]
pub fn softmax_exp(x: f32) -> f32 {
    let x = x.clamp(EXP_LO, EXP_HI);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r);
    let z = r * r;
    let mut p = EXP_P[0];
    for c in &EXP_P[1..] {
        p = p.mul_add(r, *c);
    }
    let y = p.mul_add(z, r) + 1.0;
    y * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// `gate = silu(gate) * up = gate / (1 + e^-gate) * up` on the path of the
/// kernel set in use, with [`softmax_exp`]'s exponential (every path gives
/// the same bits; see [`swiglu_with`]).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    swiglu_with(Simd::current(), gate, up)
}

/// [`swiglu`] on the path `simd`: 16 or 8 lanes at a time, the tail (and
/// the portable path) element by element; the lanes run the same
/// operations, so each element's bits do not depend on the path.
pub fn swiglu_with(simd: Simd, gate: &mut [f32], up: &[f32]) {
    debug_assert_eq!(gate.len(), up.len());
    #[cfg(target_arch = "x86_64")]
    match simd {
        Simd::Avx512 if avx512::available() => return avx512::swiglu(gate, up),
        Simd::Avx2 | Simd::Avx512 if simd::available() => {
            // SAFETY: AVX2 and FMA are present (checked).
            return unsafe { simd::swiglu(gate, up) };
        }
        _ => {}
    }
    let _ = simd;
    swiglu_portable(gate, up)
}

fn swiglu_portable(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + softmax_exp(-*g)) * u;
    }
}

const EXP_LO: f32 = -87.336_54;
const EXP_HI: f32 = 88.376_26;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes `expf` coefficients, highest degree first.
const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    5.000_000_1e-1,
];

/// Eight independent accumulators so the compiler can vectorize it.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let n = a.len() - a.len() % 8;
    let mut tail = 0.0;
    for i in n..a.len() {
        tail += a[i] * b[i];
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
}

/// AVX2+FMA versions of the two attention loops (head widths are multiples of 8
/// in every supported model; a scalar tail handles the rest).
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    /// Whether AVX2 and FMA are present (detected once).
    #[inline]
    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `a` and `b` have the same length.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let n8 = n - n % 8;
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n8 {
            // SAFETY: i + 16 <= n, so both 8-lane loads are in bounds.
            unsafe {
                acc0 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                    acc1,
                );
            }
            i += 16;
        }
        if i < n8 {
            // SAFETY: i + 8 <= n8 <= n.
            unsafe {
                acc0 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            }
        }
        let acc = _mm256_add_ps(acc0, acc1);
        let hi = _mm256_extractf128_ps(acc, 1);
        let lo = _mm256_castps256_ps128(acc);
        let s = _mm_add_ps(hi, lo);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        let mut sum = _mm_cvtss_f32(s);
        for j in n8..n {
            sum += a[j] * b[j];
        }
        sum
    }

    /// Eight dots of `q` with rows `p..p+8` of `k`, lane j for row p + j,
    /// each rounded exactly as [`dot`] rounds it: FMA chains over the 8-lane
    /// chunks at 0, 16, 32.. and at 8, 24, 40.., their sum, then lanes
    /// ((0+4)+(2+6))+((1+5)+(3+7)) (so batched and cached steps, and the
    /// single-dot remainder, give the same scores as before).
    ///
    /// # Safety
    /// AVX2 and FMA; `q.len()` is a multiple of 8 and rows p..p+8 of `k`
    /// are in bounds.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot8(q: &[f32], k: super::Head, p: usize) -> __m256 {
        let dk = q.len();
        let (pq, pk) = (q.as_ptr(), k.rows.as_ptr());
        let chain = |start: usize| {
            let mut acc = [_mm256_setzero_ps(); 8];
            let mut c = start;
            while c + 8 <= dk {
                // SAFETY: c + 8 <= dk; rows p..p+8 in bounds (caller).
                unsafe {
                    let qv = _mm256_loadu_ps(pq.add(c));
                    for (j, a) in acc.iter_mut().enumerate() {
                        let kr = pk.add((p + j) * k.stride + k.off + c);
                        *a = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kr), *a);
                    }
                }
                c += 16;
            }
            acc
        };
        let even = chain(0);
        let odd = chain(8);
        let mut sum = [_mm256_setzero_ps(); 8];
        for ((s, e), o) in sum.iter_mut().zip(even).zip(odd) {
            *s = _mm256_add_ps(e, o);
        }
        let t = crate::engine::kernels::x86_64::transpose8(sum);
        _mm256_add_ps(
            _mm256_add_ps(_mm256_add_ps(t[0], t[4]), _mm256_add_ps(t[2], t[6])),
            _mm256_add_ps(_mm256_add_ps(t[1], t[5]), _mm256_add_ps(t[3], t[7])),
        )
    }

    /// One query head against `n_pos` cached positions: scores eight keys
    /// at a time (one transposed reduction per eight dots), softmax, then
    /// the weighted sum of values with the output held in registers. Every
    /// value is rounded as the per-position loop over [`dot`] and [`axpy`] rounds it.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `q.len()` and `o.len()` are
    /// multiples of 8; `k` and `v` hold `n_pos` rows of those widths.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn head(
        q: &[f32],
        k: super::Head,
        v: super::Head,
        n_pos: usize,
        scale: f32,
        scores: &mut Vec<f32>,
        o: &mut [f32],
    ) {
        let (dk, dv) = (q.len(), o.len());
        debug_assert!(dk % 8 == 0 && dv % 8 == 0);
        assert!(n_pos == 0 || k.rows.len() >= (n_pos - 1) * k.stride + k.off + dk);
        assert!(n_pos == 0 || v.rows.len() >= (n_pos - 1) * v.stride + v.off + dv);
        scores.clear();
        scores.resize(n_pos, 0.0);
        let pv = v.rows.as_ptr();
        let ps = scores.as_mut_ptr();
        let vscale = _mm256_set1_ps(scale);
        let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut p = 0;
        while p + 8 <= n_pos {
            // SAFETY: rows p..p+8 < n_pos are in bounds (asserted).
            let d = unsafe { dot8(q, k, p) };
            let x = _mm256_mul_ps(d, vscale);
            vmax = _mm256_max_ps(vmax, x);
            // SAFETY: p + 8 <= n_pos = scores.len().
            unsafe { _mm256_storeu_ps(ps.add(p), x) };
            p += 8;
        }
        let mut m = [0.0f32; 8];
        // SAFETY: m holds 8 floats.
        unsafe { _mm256_storeu_ps(m.as_mut_ptr(), vmax) };
        let mut max = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for (p, sc) in scores.iter_mut().enumerate().skip(p) {
            let kr = &k.rows[p * k.stride + k.off..][..dk];
            // SAFETY: AVX2 and FMA are present (this function's contract).
            let x = unsafe { dot(q, kr) } * scale;
            max = max.max(x);
            *sc = x;
        }
        let vm = _mm256_set1_ps(max);
        let mut p = 0;
        while p + 8 <= n_pos {
            // SAFETY: p + 8 <= n_pos = scores.len().
            unsafe {
                let x = _mm256_sub_ps(_mm256_loadu_ps(ps.add(p)), vm);
                _mm256_storeu_ps(ps.add(p), exp8(x));
            }
            p += 8;
        }
        for x in scores.iter_mut().skip(p) {
            *x = super::softmax_exp(*x - max);
        }
        let mut sum = 0.0f64;
        for x in scores.iter() {
            sum += *x as f64;
        }
        let inv = (1.0 / sum) as f32;
        for x in scores.iter_mut() {
            *x *= inv;
        }
        // Weighted sum of values, 32 output lanes at a time kept in registers.
        let po = o.as_mut_ptr();
        let mut c = 0;
        while c + 32 <= dv {
            let mut acc = [_mm256_setzero_ps(); 4];
            for (p, &w) in scores.iter().enumerate() {
                let w = _mm256_set1_ps(w);
                for (i, a) in acc.iter_mut().enumerate() {
                    // SAFETY: row p < n_pos, lanes c + 8 i + 8 <= dv (asserted).
                    let x = unsafe { _mm256_loadu_ps(pv.add(p * v.stride + v.off + c + 8 * i)) };
                    *a = _mm256_fmadd_ps(w, x, *a);
                }
            }
            for (i, a) in acc.iter().enumerate() {
                // SAFETY: c + 8 i + 8 <= dv = o.len().
                unsafe { _mm256_storeu_ps(po.add(c + 8 * i), *a) };
            }
            c += 32;
        }
        while c < dv {
            let mut a = _mm256_setzero_ps();
            for (p, &w) in scores.iter().enumerate() {
                // SAFETY: as above, c + 8 <= dv.
                let x = unsafe { _mm256_loadu_ps(pv.add(p * v.stride + v.off + c)) };
                a = _mm256_fmadd_ps(_mm256_set1_ps(w), x, a);
            }
            // SAFETY: c + 8 <= dv = o.len().
            unsafe { _mm256_storeu_ps(po.add(c), a) };
            c += 8;
        }
    }

    /// [`super::softmax_exp`] of eight lanes, operation for operation.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(super::EXP_LO)),
            _mm256_set1_ps(super::EXP_HI),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-super::LN2_HI), x);
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-super::LN2_LO), r);
        let z = _mm256_mul_ps(r, r);
        let mut p = _mm256_set1_ps(super::EXP_P[0]);
        for c in &super::EXP_P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
        }
        let y = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0));
        let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(e))
    }

    /// [`super::swiglu_portable`] eight lanes at a time with [`exp8`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
        let n = gate.len().min(up.len());
        let n8 = n - n % 8;
        let (pg, pu) = (gate.as_mut_ptr(), up.as_ptr());
        let one = _mm256_set1_ps(1.0);
        let mut i = 0;
        while i < n8 {
            // SAFETY: i + 8 <= n for both slices.
            unsafe {
                let g = _mm256_loadu_ps(pg.add(i));
                let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
                let y = _mm256_mul_ps(
                    _mm256_div_ps(g, _mm256_add_ps(one, e)),
                    _mm256_loadu_ps(pu.add(i)),
                );
                _mm256_storeu_ps(pg.add(i), y);
            }
            i += 8;
        }
        super::swiglu_portable(&mut gate[n8..n], &up[n8..n]);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `x` and `y` have the same length.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let n8 = n - n % 8;
        let va = _mm256_set1_ps(a);
        let (px, py) = (x.as_ptr(), y.as_mut_ptr());
        let mut i = 0;
        while i < n8 {
            // SAFETY: i + 8 <= n for both slices.
            unsafe {
                let r = _mm256_fmadd_ps(va, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i)));
                _mm256_storeu_ps(py.add(i), r);
            }
            i += 8;
        }
        for j in n8..n {
            y[j] += a * x[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward reference: full score matrix, causal mask, softmax, weighted sum.
    fn naive(s: AttnShape, q: &[f32], k: &[f32], v: &[f32], pos0: usize) -> Vec<f32> {
        let n_tokens = q.len() / (s.n_head * s.head_dim_k);
        let mut out = vec![0.0; n_tokens * s.n_head * s.head_dim_v];
        for t in 0..n_tokens {
            for h in 0..s.n_head {
                let g = h * s.n_head_kv / s.n_head;
                let qh = &q[(t * s.n_head + h) * s.head_dim_k..][..s.head_dim_k];
                let sc: Vec<f32> = (0..=pos0 + t)
                    .map(|p| {
                        let kh = &k[(p * s.n_head_kv + g) * s.head_dim_k..][..s.head_dim_k];
                        qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f32>() * s.scale
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = sc.iter().map(|x| (x - m).exp()).collect();
                let z: f32 = e.iter().sum();
                for (p, w) in e.iter().enumerate() {
                    for d in 0..s.head_dim_v {
                        out[(t * s.n_head + h) * s.head_dim_v + d] +=
                            w / z * v[(p * s.n_head_kv + g) * s.head_dim_v + d];
                    }
                }
            }
        }
        out
    }

    fn seq(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn grouped_query_attention_matches_the_naive_formula() {
        let s = AttnShape {
            n_head: 6,
            n_head_kv: 2,
            head_dim_k: 16,
            head_dim_v: 16,
            scale: 0.25,
        };
        let (pos0, n_tokens) = (5, 7);
        let n_pos = pos0 + n_tokens;
        let q = seq(n_tokens * 6 * 16, 1);
        let k = seq(n_pos * 2 * 16, 2);
        let v = seq(n_pos * 2 * 16, 3);
        let want = naive(s, &q, &k, &v, pos0);
        for simd in Simd::available() {
            let mut out = vec![0.0; n_tokens * 6 * 16];
            attend_with(simd, s, &q, &k, &v, pos0, &mut out);
            for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-5, "{simd:?} at {i}: {a} vs {b}");
            }
        }
        // The parallel path (large enough work) agrees with the serial one.
        let (pos0, n_tokens) = (200, 40);
        let n_pos = pos0 + n_tokens;
        let q = seq(n_tokens * 6 * 16, 4);
        let k = seq(n_pos * 2 * 16, 5);
        let v = seq(n_pos * 2 * 16, 6);
        let want = naive(s, &q, &k, &v, pos0);
        for simd in Simd::available() {
            let mut out = vec![0.0; n_tokens * 6 * 16];
            attend_with(simd, s, &q, &k, &v, pos0, &mut out);
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "{simd:?}");
            }
        }
    }

    /// Head widths that take the sixteen-lane path (multiples of 16, values
    /// wider than 64 lanes and not a multiple of 64), the eight-keys-at-a-time
    /// path (multiples of 8, values wider than 32 lanes and not a multiple of
    /// 32) and the portable one (12), with position counts around the blocks
    /// of eight and sixteen, on every kernel set's path; and kv groups of 1,
    /// 2, 3 (the default model's 9 heads over 3) and 7 query heads, so the
    /// sixteen-lane path's row blocks (12, 6, 3, 1 for scores; 6, 3, 1 for
    /// values) all run.
    #[test]
    fn every_head_width_matches_the_naive_formula() {
        let shapes = [
            (4, 2, 64, 64),
            (4, 2, 128, 128),
            (4, 2, 24, 40),
            (4, 2, 8, 8),
            (4, 2, 12, 12),
            (4, 2, 16, 80),
            (4, 2, 48, 16),
            (9, 3, 64, 64),
            (3, 3, 32, 32),
            (14, 2, 64, 64),
        ];
        for (n_head, n_head_kv, dk, dv) in shapes {
            for (pos0, n_tokens) in [(0, 1), (0, 9), (7, 1), (15, 3), (30, 17), (16, 5)] {
                let s = AttnShape {
                    n_head,
                    n_head_kv,
                    head_dim_k: dk,
                    head_dim_v: dv,
                    scale: 1.0 / (dk as f32).sqrt(),
                };
                let n_pos = pos0 + n_tokens;
                let q = seq(n_tokens * n_head * dk, 21);
                let k = seq(n_pos * n_head_kv * dk, 22);
                let v = seq(n_pos * n_head_kv * dv, 23);
                let want = naive(s, &q, &k, &v, pos0);
                for simd in Simd::available() {
                    let mut out = vec![0.0; n_tokens * n_head * dv];
                    attend_with(simd, s, &q, &k, &v, pos0, &mut out);
                    for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() < 1e-5,
                            "{simd:?} heads {n_head}/{n_head_kv} dk {dk} dv {dv} pos0 {pos0} \
                             n {n_tokens} at {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    /// `BYLINE_KERNELS` picks the attention path with the matrix kernels:
    /// the scalar set runs the portable loops (it ran AVX2's before), the
    /// AVX2 sets AVX2's, the AVX-512 set its own where the CPU has them.
    #[test]
    fn the_kernel_set_chooses_the_attention_path() {
        assert_eq!(Simd::for_set("scalar"), Simd::Portable);
        assert_eq!(Simd::for_set("neon-dotprod"), Simd::Portable);
        let have = Simd::available();
        let avx2 = if have.contains(&Simd::Avx2) {
            Simd::Avx2
        } else {
            Simd::Portable
        };
        assert_eq!(Simd::for_set("avx2-fma"), avx2);
        assert_eq!(Simd::for_set("avx2-vnni"), avx2);
        let avx512 = if have.contains(&Simd::Avx512) {
            Simd::Avx512
        } else {
            Simd::Portable
        };
        assert_eq!(Simd::for_set("avx512-vnni"), avx512);
        assert_eq!(Simd::current(), Simd::for_set(kernels::kernel_set()));
    }

    /// On every path, a prompt attended in one call, in uneven chunks and
    /// one token at a time over the cache gives the same bits (every score
    /// and output lane is rounded the same whatever the blocking), also
    /// after the cache is truncated and refilled with other rows.
    #[test]
    fn one_call_chunks_and_single_steps_give_the_same_bits_on_every_path() {
        for (n_head, n_head_kv, dk, dv) in [(9, 3, 64, 64), (4, 2, 16, 80), (4, 2, 24, 40)] {
            let s = AttnShape {
                n_head,
                n_head_kv,
                head_dim_k: dk,
                head_dim_v: dv,
                scale: 1.0 / (dk as f32).sqrt(),
            };
            let (kw, vw, qd, od) = (n_head_kv * dk, n_head_kv * dv, n_head * dk, n_head * dv);
            let n = 45;
            let q = seq(n * qd, 41);
            let k = seq(n * kw, 42);
            let v = seq(n * vw, 43);
            for simd in Simd::available() {
                let run = |chunks: &[usize], cache: &mut KvCache| {
                    let mut out = vec![0.0; n * od];
                    let mut t = cache.len();
                    for &c in chunks {
                        cache.append(0, &k[t * kw..(t + c) * kw], &v[t * vw..(t + c) * vw]);
                        let o = &mut out[t * od..(t + c) * od];
                        attend_cached(simd, s, &q[t * qd..(t + c) * qd], cache, 0, t, o);
                        cache.advance(c);
                        t += c;
                    }
                    out
                };
                let mut whole = vec![0.0; n * od];
                attend_with(simd, s, &q, &k, &v, 0, &mut whole);
                let mut cache = KvCache::new(1, 64, kw, vw);
                assert_eq!(run(&[n], &mut cache), whole, "{simd:?} one call");
                let mut cache = KvCache::new(1, 64, kw, vw);
                assert_eq!(
                    run(&[5, 1, 17, 3, 19], &mut cache),
                    whole,
                    "{simd:?} chunks"
                );
                let mut cache = KvCache::new(1, 64, kw, vw);
                assert_eq!(run(&[1; 45], &mut cache), whole, "{simd:?} steps");
                // Refill after a truncation: positions 20.. get other keys
                // first, then the right ones again.
                let other = seq(n * kw, 99);
                let mut cache = KvCache::new(1, 64, kw, vw);
                cache.append(0, &other, &v);
                let mut scratch = vec![0.0; n * od];
                attend_cached(simd, s, &q, &mut cache, 0, 0, &mut scratch);
                cache.advance(n);
                cache.truncate(20);
                cache.truncate(0);
                assert_eq!(run(&[20, 25], &mut cache), whole, "{simd:?} refilled");
            }
        }
    }

    #[test]
    fn block_transposed_keys_put_each_position_in_its_lane() {
        let k = seq(37 * 6, 7);
        let kt = transpose_keys(&k, 6);
        assert_eq!(kt.len(), 48 * 6);
        for p in 0..37 {
            for c in 0..6 {
                assert_eq!(kt[((p / 16) * 6 + c) * 16 + p % 16], k[p * 6 + c]);
            }
        }
        assert!(
            kt[((36 / 16) * 6) * 16 + 5..]
                .iter()
                .step_by(16)
                .all(|&x| x == 0.0)
        );
    }

    /// SwiGLU on every path gives the portable loop's bits (sixteen, eight
    /// and one lane run the same operations) and agrees with libm's `expf`
    /// formula, over lengths around the lane counts and large magnitudes.
    #[test]
    fn swiglu_gives_the_same_bits_on_every_path() {
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 33, 100] {
            let mut g0: Vec<f32> = seq(n, 51).iter().map(|x| x * 30.0).collect();
            if n > 3 {
                g0[1] = 95.0;
                g0[2] = -95.0;
                g0[3] = 0.0;
            }
            let u = seq(n, 52);
            let mut want = g0.clone();
            swiglu_with(Simd::Portable, &mut want, &u);
            for (i, (&x, &y)) in g0.iter().zip(&u).enumerate() {
                let libm = x / (1.0 + (-x).exp()) * y;
                assert!((want[i] - libm).abs() <= 1e-6 * libm.abs().max(1.0), "{x}");
            }
            for simd in Simd::available() {
                let mut got = g0.clone();
                swiglu_with(simd, &mut got, &u);
                assert_eq!(got, want, "{simd:?} n {n}");
            }
        }
    }

    /// The per-position loop over `dot` and `axpy` (the engine before the
    /// eight-keys-at-a-time path): the fast path must equal it bit for bit,
    /// so batched and cached steps and earlier references are unchanged.
    fn per_position(s: AttnShape, q: &[f32], k: &[f32], v: &[f32], pos0: usize) -> Vec<f32> {
        let n_tokens = q.len() / (s.n_head * s.head_dim_k);
        let (kw, vw) = (s.n_head_kv * s.head_dim_k, s.n_head_kv * s.head_dim_v);
        let mut out = vec![0.0; n_tokens * s.n_head * s.head_dim_v];
        for (idx, o) in out.chunks_exact_mut(s.head_dim_v).enumerate() {
            let (t, h) = (idx / s.n_head, idx % s.n_head);
            let g = h / (s.n_head / s.n_head_kv);
            let qh = &q[(t * s.n_head + h) * s.head_dim_k..][..s.head_dim_k];
            let sc: Vec<f32> = (0..=pos0 + t)
                .map(|p| dot(qh, &k[p * kw + g * s.head_dim_k..][..s.head_dim_k]) * s.scale)
                .collect();
            let max = sc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = sc.iter().map(|x| softmax_exp(x - max)).collect();
            let inv = (1.0 / e.iter().map(|&x| x as f64).sum::<f64>()) as f32;
            for (p, &w) in e.iter().enumerate() {
                axpy(w * inv, &v[p * vw + g * s.head_dim_v..][..s.head_dim_v], o);
            }
        }
        out
    }

    /// The softmax exponential against f64's, relative error in ulps, over
    /// the range softmax feeds it (and a little above 0).
    #[test]
    fn softmax_exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 1.0 {
            let got = softmax_exp(x) as f64;
            let want = (x as f64).exp();
            let ulp = (want as f32).abs() as f64 * f32::EPSILON as f64;
            worst = worst.max((got - want).abs() / ulp);
            x += 0.000_731;
        }
        assert!(worst <= 2.0, "worst {worst} ulp");
        assert_eq!(softmax_exp(0.0), 1.0);
        assert_eq!(softmax_exp(-1000.0), softmax_exp(-87.336_54));
    }

    #[test]
    fn the_fast_path_rounds_exactly_like_the_per_position_loop() {
        for (dk, dv) in [(64, 64), (128, 128), (24, 40), (16, 16)] {
            let s = AttnShape {
                n_head: 6,
                n_head_kv: 3,
                head_dim_k: dk,
                head_dim_v: dv,
                scale: 1.0 / (dk as f32).sqrt(),
            };
            let (pos0, n_tokens) = (13, 30);
            let n_pos = pos0 + n_tokens;
            let q = seq(n_tokens * 6 * dk, 31);
            let k = seq(n_pos * 3 * dk, 32);
            let v = seq(n_pos * 3 * dv, 33);
            if !Simd::available().contains(&Simd::Avx2) {
                return;
            }
            let mut out = vec![0.0; n_tokens * 6 * dv];
            attend_with(Simd::Avx2, s, &q, &k, &v, pos0, &mut out);
            assert_eq!(out, per_position(s, &q, &k, &v, pos0), "dk {dk} dv {dv}");
        }
    }

    #[test]
    fn the_first_position_attends_only_to_itself() {
        let s = AttnShape {
            n_head: 2,
            n_head_kv: 1,
            head_dim_k: 4,
            head_dim_v: 4,
            scale: 0.5,
        };
        let q = seq(8, 9);
        let k = seq(4, 10);
        let v = [1.0, -2.0, 3.0, 0.5];
        let mut out = vec![0.0; 8];
        attend(s, &q, &k, &v, 0, &mut out);
        assert_eq!(&out[..4], &v);
        assert_eq!(&out[4..], &v);
    }

    #[test]
    fn simd_dot_and_axpy_agree_with_the_portable_loops() {
        for n in [1, 7, 8, 15, 16, 17, 64, 100, 128] {
            let a = seq(n, 11);
            let b = seq(n, 12);
            let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - want).abs() < 1e-4, "n={n}");
            assert!((dot_portable(&a, &b) - want).abs() < 1e-4, "n={n}");
            let mut y = b.clone();
            axpy(0.5, &a, &mut y);
            for i in 0..n {
                assert!((y[i] - (b[i] + 0.5 * a[i])).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn kv_cache_truncates_to_a_prefix() {
        let mut c = KvCache::new(2, 16, 4, 4);
        for layer in 0..2 {
            c.append(layer, &[1.0; 12], &[2.0; 12]);
        }
        c.advance(3);
        assert_eq!(c.len(), 3);
        c.truncate(1);
        assert_eq!(c.len(), 1);
        assert_eq!(c.layer(1).0.len(), 4);
        c.clear();
        assert!(c.is_empty());
    }
}
