//! Prompt processing: a matrix-matrix product over 8-row panels.
//!
//! For a batch of tokens, the rows of a quantized weight matrix are taken
//! eight at a time and unpacked into a small panel (a few KiB, never the whole
//! matrix) in which every sub-block of `SUB` weights is
//!
//! - `q`: the integer weights of the 8 rows interleaved four at a time
//!   (`q[(k / 4) * 32 + r * 4 + k % 4]` = weight `k` of row `r`), so one 32-byte
//!   load holds four consecutive weights of all eight rows;
//! - `d[r]`, `m[r]`: f32 scale and offset with `x = d * q + m` for every weight
//!   of the sub-block (Q4_0: `m = -8 d`; Q4_K: `d = d_sb * sc`, `m = -dmin * min`; ...).
//!
//! A token's quantized activations `a = da * qa` (the Q8_0/Q8_1/Q8_K rows the
//! dot kernels use, unchanged) then give all eight rows' sums at once:
//! `Σ x·a = Σ_sub (d·da) Σ q·qa + m · (da Σ qa)`, with `Σ q·qa` built from
//! `maddubs` of the panel against four activation bytes broadcast to every row,
//! and the eight results in the eight lanes of one register (no horizontal sums).
//! The panel is unpacked once and used for every token of the batch.
//!
//! `scalar` below is the readable reference of the same arithmetic (same
//! order of f32 operations, so the AVX2 path matches it bit for bit).

use super::{KernelError, Kernels};
use crate::engine::quant::iq_grids::KVALUES_IQ4NL;
use crate::engine::quant::*;

/// Batches at least this large use panels; smaller ones the tiled dots
/// (unpacking a panel costs about as much as a handful of tokens).
pub const MIN_TOKENS: usize = 16;

/// Rows per panel.
pub const PANEL_ROWS: usize = 8;

/// The integer layout of a weight type inside a panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// 0..16 in sub-blocks of 32 (Q4_0, Q4_1, Q4_K).
    U4,
    /// 0..32 in sub-blocks of 32 (Q5_0, Q5_1, Q5_K).
    U5,
    /// 0..64 in sub-blocks of 16 (Q6_K).
    U6,
    /// -128..128 in sub-blocks of 32 (Q8_0, IQ4_NL, IQ4_XS).
    S8,
}

impl Format {
    /// Weights per sub-block (one `d`, `m` pair).
    pub fn sub(self) -> usize {
        match self {
            Format::U6 => 16,
            _ => 32,
        }
    }
}

/// The panel format of `ty`, if it has one.
pub fn format_of(ty: GgmlType) -> Option<Format> {
    Some(match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4K => Format::U4,
        GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q5K => Format::U5,
        GgmlType::Q6K => Format::U6,
        GgmlType::Q8_0 | GgmlType::IQ4_NL | GgmlType::IQ4_XS => Format::S8,
        _ => return None,
    })
}

/// One panel kernel: all tokens of `a` against the 8 rows of `p`, into
/// `out[t * stride + r]` (`out` starts at the panel's first row).
pub type PanelFn = fn(p: &Panel, a: &ActView, out: &mut [f32], stride: usize);

/// Eight rows of `cols` integer weights (row-major) into the panel's
/// interleaved layout.
pub type InterleaveFn = fn(rows: &[u8], cols: usize, q: &mut [u8]);

/// 16 nibble bytes of an IQ4 block through the 16-entry value table into 32
/// bytes in element order (low nibbles first).
pub type Iq4Fn = fn(qs: &[u8; 16], out: &mut [u8]);

/// A panel-pair kernel: all tokens of `a` against the 16 rows of two
/// consecutive panels (`p0`'s rows first), into `out[t * stride + r]`, `r` in
/// `0..16`. Per row the same float operations as the scalar [`PanelFn`], so
/// the same bits.
pub type PairFn = fn(p0: &Panel, p1: &Panel, a: &ActView, out: &mut [f32], stride: usize);

/// Panel-pair kernels per format (wide registers: 16 rows per register).
#[derive(Clone, Copy)]
pub struct PairKernels {
    pub u4: PairFn,
    pub u5: PairFn,
    pub u6: PairFn,
    pub s8: PairFn,
}

impl PairKernels {
    fn get(&self, f: Format) -> PairFn {
        match f {
            Format::U4 => self.u4,
            Format::U5 => self.u5,
            Format::U6 => self.u6,
            Format::S8 => self.s8,
        }
    }
}

/// A panel kernel per format.
#[derive(Clone, Copy)]
pub struct PanelKernels {
    pub u4: PanelFn,
    pub u5: PanelFn,
    pub u6: PanelFn,
    pub s8: PanelFn,
    pub interleave: InterleaveFn,
    pub iq4: Iq4Fn,
    /// Two panels at a time, where the set has wide kernels (whole pairs of
    /// a task's panels go through them, a last odd panel through the above).
    pub pairs: Option<PairKernels>,
}

impl PanelKernels {
    pub fn scalar() -> PanelKernels {
        PanelKernels {
            u4: scalar::panel::<32, false>,
            u5: scalar::panel::<32, false>,
            u6: scalar::panel::<16, false>,
            s8: scalar::panel::<32, true>,
            interleave: scalar::interleave,
            iq4: scalar::iq4,
            pairs: None,
        }
    }

    fn get(&self, f: Format) -> PanelFn {
        match f {
            Format::U4 => self.u4,
            Format::U5 => self.u5,
            Format::U6 => self.u6,
            Format::S8 => self.s8,
        }
    }
}

/// Eight unpacked rows (see the module docs).
#[derive(Debug, Default)]
pub struct Panel {
    /// `cols * 8` integer weights, interleaved by four.
    pub q: Vec<u8>,
    /// `n_sub * 8` scales (sub-block major).
    pub d: Vec<f32>,
    /// `n_sub * 8` offsets.
    pub m: Vec<f32>,
    pub cols: usize,
    /// The eight rows' integer weights in element order (`cols * 8`), before
    /// [`PanelKernels::interleave`] puts them into `q`.
    rows: Vec<u8>,
}

impl Panel {
    fn reset(&mut self, cols: usize, sub: usize) {
        self.cols = cols;
        self.q.resize(cols * PANEL_ROWS, 0);
        self.rows.resize(cols * PANEL_ROWS, 0);
        self.d.resize(cols / sub * PANEL_ROWS, 0.0);
        self.m.resize(cols / sub * PANEL_ROWS, 0.0);
    }

    /// Sets scale and offset of sub-block `s` of row `r`.
    #[inline(always)]
    fn scale(&mut self, r: usize, s: usize, d: f32, m: f32) {
        self.d[s * PANEL_ROWS + r] = d;
        self.m[s * PANEL_ROWS + r] = m;
    }

    /// Unpacks row `r` (whole blocks of `ty`) into the panel.
    fn unpack(
        &mut self,
        ty: GgmlType,
        r: usize,
        row: &[u8],
        iq4: Iq4Fn,
    ) -> Result<(), KernelError> {
        let base = r * self.cols;
        match ty {
            GgmlType::Q4_0 => {
                for (i, b) in cast_blocks::<BlockQ4_0>(row)?.iter().enumerate() {
                    let d = f16_at(b.d);
                    self.scale(r, i, d, -8.0 * d);
                    self.nibbles(r, i * 32, &b.qs, |_, q| q);
                }
            }
            GgmlType::Q4_1 => {
                for (i, b) in cast_blocks::<BlockQ4_1>(row)?.iter().enumerate() {
                    self.scale(r, i, f16_at(b.d), f16_at(b.m));
                    self.nibbles(r, i * 32, &b.qs, |_, q| q);
                }
            }
            GgmlType::Q5_0 => {
                for (i, b) in cast_blocks::<BlockQ5_0>(row)?.iter().enumerate() {
                    let d = f16_at(b.d);
                    self.scale(r, i, d, -16.0 * d);
                    let qh = u32::from_le_bytes(b.qh);
                    self.nibbles(r, i * 32, &b.qs, |e, q| q | ((qh >> e) as u8 & 1) << 4);
                }
            }
            GgmlType::Q5_1 => {
                for (i, b) in cast_blocks::<BlockQ5_1>(row)?.iter().enumerate() {
                    self.scale(r, i, f16_at(b.d), f16_at(b.m));
                    let qh = u32::from_le_bytes(b.qh);
                    self.nibbles(r, i * 32, &b.qs, |e, q| q | ((qh >> e) as u8 & 1) << 4);
                }
            }
            GgmlType::Q8_0 => {
                for (i, b) in cast_blocks::<BlockQ8_0>(row)?.iter().enumerate() {
                    self.scale(r, i, f16_at(b.d), 0.0);
                    let k = r * self.cols + i * 32;
                    self.rows[k..k + 32].copy_from_slice(bytemuck_i8(&b.qs));
                }
            }
            GgmlType::IQ4_NL => {
                for (i, b) in cast_blocks::<BlockIQ4NL>(row)?.iter().enumerate() {
                    self.scale(r, i, f16_at(b.d), 0.0);
                    iq4(&b.qs, &mut self.rows[base + i * 32..]);
                }
            }
            GgmlType::IQ4_XS => {
                for (i, b) in cast_blocks::<BlockIQ4XS>(row)?.iter().enumerate() {
                    let d = f16_at(b.d);
                    for g in 0..8 {
                        let dl = d * (iq4xs_scale(b, g) - 32) as f32;
                        self.scale(r, i * 8 + g, dl, 0.0);
                        let qs: &[u8; 16] = b.qs[16 * g..16 * g + 16].try_into().expect("16");
                        iq4(qs, &mut self.rows[base + i * 256 + g * 32..]);
                    }
                }
            }
            GgmlType::Q4K | GgmlType::Q5K => {
                let five = ty == GgmlType::Q5K;
                let ts = ty.type_size();
                for (i, b) in row.chunks_exact(ts).enumerate() {
                    // Q4_K: d, dmin, scales[12], qs[128]; Q5_K adds qh[32] before qs.
                    let d = f16_at([b[0], b[1]]);
                    let dmin = f16_at([b[2], b[3]]);
                    let scales: &[u8; K_SCALE_SIZE] =
                        b[4..4 + K_SCALE_SIZE].try_into().expect("12");
                    let (qh, qs) = if five {
                        (&b[16..48], &b[48..176])
                    } else {
                        (&b[16..16], &b[16..144])
                    };
                    for g in 0..8 {
                        let (sc, mn) = scale_min_k4(g, scales);
                        self.scale(r, i * 8 + g, d * sc as f32, -(dmin * mn as f32));
                        // Whole 32-byte slices (the loops vectorize).
                        let src: &[u8; 32] = qs[32 * (g / 2)..][..32].try_into().expect("32");
                        let k = base + i * 256 + g * 32;
                        let dst: &mut [u8; 32] =
                            (&mut self.rows[k..k + 32]).try_into().expect("32");
                        let shift = 4 * (g % 2) as u32;
                        for (q, b) in dst.iter_mut().zip(src) {
                            *q = (b >> shift) & 0xF;
                        }
                        if five {
                            let qh: &[u8; 32] = qh.try_into().expect("32");
                            for (q, h) in dst.iter_mut().zip(qh) {
                                *q |= ((h >> g) & 1) << 4;
                            }
                        }
                    }
                }
            }
            GgmlType::Q6K => {
                for (i, b) in cast_blocks::<BlockQ6K>(row)?.iter().enumerate() {
                    let d = f16_at(b.d);
                    for s in 0..16 {
                        let ds = d * b.scales[s] as f32;
                        self.scale(r, i * 16 + s, ds, -32.0 * ds);
                    }
                    // Halves n of 128; quarters k of 32 inside a half:
                    // element 128n + 32k + l.
                    for n in 0..2 {
                        let qh: &[u8; 32] = b.qh[32 * n..][..32].try_into().expect("32");
                        for k in 0..4 {
                            let ql: &[u8; 32] =
                                b.ql[64 * n + 32 * (k % 2)..][..32].try_into().expect("32");
                            let o = base + i * 256 + 128 * n + 32 * k;
                            let dst: &mut [u8; 32] =
                                (&mut self.rows[o..o + 32]).try_into().expect("32");
                            let shift = if k < 2 { 0 } else { 4 };
                            for ((q, l), h) in dst.iter_mut().zip(ql).zip(qh) {
                                *q = ((l >> shift) & 0xF) | (((h >> (2 * k)) & 3) << 4);
                            }
                        }
                    }
                }
            }
            ty => return Err(KernelError::Unsupported { ty, what: "panel" }),
        }
        Ok(())
    }

    /// 16 nibble bytes of a 32-weight block at `k0`: low nibbles are weights
    /// 0..16, high nibbles 16..32; `f(e, nibble)` gives the stored value.
    #[inline(always)]
    fn nibbles(&mut self, r: usize, k0: usize, qs: &[u8; 16], f: impl Fn(usize, u8) -> u8) {
        let k = r * self.cols + k0;
        let (lo, hi) = self.rows[k..k + 32].split_at_mut(16);
        for (j, &b) in qs.iter().enumerate() {
            lo[j] = f(j, b & 0xF);
            hi[j] = f(j + 16, b >> 4);
        }
    }
}

/// A batch's activations prepared for panels: the quantized values of every
/// token contiguous, and per sub-block the scale `da` and `da * Σ qa`.
#[derive(Debug, Default)]
pub struct Prepared {
    qa: Vec<i8>,
    d32: Vec<f32>,
    s32: Vec<f32>,
    d16: Vec<f32>,
    s16: Vec<f32>,
    /// Per sub-block of 32: the exact integer `Σ qa` (wide signed kernels).
    i32s: Vec<i32>,
    /// The same batch in blocks of [`TILE`] tokens for the panel-pair
    /// kernels ([`Prepared::tile8`]; empty until then): quants interleaved by
    /// four bytes, `qt[(b * cols / 4 + g) * 32 + j * 4 + e] = qa[(8b + j) * cols + 4g + e]`,
    /// so the eight tokens' four activation bytes of one group are 32
    /// contiguous bytes (one base pointer for every broadcast); missing
    /// tokens of the last block are zero.
    qt: Vec<i8>,
    /// Per block and sub-block of 32: the eight tokens' `d`, then their `s`.
    t32: Vec<f32>,
    /// The same for sub-blocks of 16 (Q8_K batches only).
    t16: Vec<f32>,
    /// Per block and sub-block of 32: the eight tokens' `-128 Σ qa` (the
    /// signed kernels' starting integer).
    n32: Vec<i32>,
    cols: usize,
    nt: usize,
}

/// Tokens per block of the tiled activations.
pub const TILE: usize = 8;

/// The view of [`Prepared`] one format uses.
pub struct ActView<'a> {
    /// `nt * cols` quantized values.
    pub qa: &'a [i8],
    /// `nt * n_sub` scales.
    pub d: &'a [f32],
    /// `nt * n_sub` scaled sums.
    pub s: &'a [f32],
    /// `nt * cols / 32` exact integer sums `Σ qa` per 32 values (empty in
    /// the view for sub-blocks of 16).
    pub isum: &'a [i32],
    /// The tiled copy ([`Prepared::tile8`]): quants, per block and
    /// sub-block the eight `d` then eight `s`, and (sub-blocks of 32) the
    /// eight `-128 Σ qa`. All empty when the batch was not tiled.
    pub qt: &'a [i8],
    pub tds: &'a [f32],
    pub tneg: &'a [i32],
    pub cols: usize,
    pub nt: usize,
}

impl ActView<'_> {
    /// Whether the tiled copy is there (the panel-pair kernels need it).
    pub fn tiled(&self) -> bool {
        let (blocks, n_sub) = (self.nt.div_ceil(TILE), self.d.len() / self.nt.max(1));
        self.nt > 0
            && self.qt.len() == blocks * self.cols * TILE
            && self.tds.len() == blocks * n_sub * 2 * TILE
    }
}

impl Prepared {
    fn reset(&mut self, cols: usize, nt: usize, sixteen: bool) {
        self.cols = cols;
        self.nt = nt;
        self.qt.clear();
        self.t32.clear();
        self.t16.clear();
        self.n32.clear();
        self.qa.resize(cols * nt, 0);
        self.d32.resize(cols / 32 * nt, 0.0);
        self.s32.resize(cols / 32 * nt, 0.0);
        self.i32s.resize(cols / 32 * nt, 0);
        let n16 = if sixteen { cols / 16 * nt } else { 0 };
        self.d16.resize(n16, 0.0);
        self.s16.resize(n16, 0.0);
    }

    /// From Q8_0 rows (`nt * cols / 32` blocks).
    pub fn from_q8_0(&mut self, y: &[BlockQ8_0], cols: usize, nt: usize) {
        self.reset(cols, nt, false);
        for (i, b) in y.iter().enumerate() {
            self.qa[i * 32..i * 32 + 32].copy_from_slice(&b.qs);
            let d = f16_at(b.d);
            let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
            self.d32[i] = d;
            self.s32[i] = d * sum as f32;
            self.i32s[i] = sum;
        }
    }

    /// From Q8_1 rows: the stored `s` is the sum term.
    pub fn from_q8_1(&mut self, y: &[BlockQ8_1], cols: usize, nt: usize) {
        self.reset(cols, nt, false);
        for (i, b) in y.iter().enumerate() {
            self.qa[i * 32..i * 32 + 32].copy_from_slice(&b.qs);
            self.d32[i] = f16_at(b.d);
            self.s32[i] = f16_at(b.s);
            self.i32s[i] = b.qs.iter().map(|&q| q as i32).sum();
        }
    }

    /// From Q8_K rows: one scale per 256, sums per 16 from `bsums`.
    pub fn from_q8k(&mut self, y: &[BlockQ8K], cols: usize, nt: usize) {
        self.reset(cols, nt, true);
        for (i, b) in y.iter().enumerate() {
            self.qa[i * 256..i * 256 + 256].copy_from_slice(&b.qs);
            for j in 0..16 {
                self.d16[i * 16 + j] = b.d;
                self.s16[i * 16 + j] = b.d * b.bsums[j] as f32;
            }
            for j in 0..8 {
                self.d32[i * 8 + j] = b.d;
                let sum = b.bsums[2 * j] as i32 + b.bsums[2 * j + 1] as i32;
                self.s32[i * 8 + j] = b.d * sum as f32;
                self.i32s[i * 8 + j] = sum;
            }
        }
    }

    /// Adds the tiled copy the panel-pair kernels read (after a `from_*`):
    /// one pass over the batch, in parallel over blocks of [`TILE`] tokens.
    pub fn tile8(&mut self) {
        use rayon::prelude::*;
        let (cols, nt) = (self.cols, self.nt);
        let blocks = nt.div_ceil(TILE);
        let g4 = cols / 4;
        self.qt.clear();
        self.qt.resize(blocks * cols * TILE, 0);
        let qa = &self.qa;
        let tile = |(b, out): (usize, &mut [i8])| {
            for j in 0..TILE.min(nt - b * TILE) {
                let row = &qa[(b * TILE + j) * cols..][..cols];
                for (g, q) in row.chunks_exact(4).enumerate() {
                    out[g * 32 + j * 4..g * 32 + j * 4 + 4].copy_from_slice(q);
                }
            }
        };
        if blocks > 1 && cols * nt >= 1 << 16 {
            self.qt.par_chunks_mut(g4 * 32).enumerate().for_each(tile);
        } else {
            self.qt.chunks_mut(g4 * 32).enumerate().for_each(tile);
        }
        let spread = |d: &[f32], s: &[f32], n_sub: usize, out: &mut Vec<f32>| {
            out.resize(blocks * n_sub * 2 * TILE, 0.0);
            for t in 0..nt {
                let (b, j) = (t / TILE, t % TILE);
                for k in 0..n_sub {
                    let o = (b * n_sub + k) * 2 * TILE + j;
                    out[o] = d[t * n_sub + k];
                    out[o + TILE] = s[t * n_sub + k];
                }
            }
        };
        spread(&self.d32, &self.s32, cols / 32, &mut self.t32);
        if !self.d16.is_empty() {
            spread(&self.d16, &self.s16, cols / 16, &mut self.t16);
        }
        let n32 = cols / 32;
        self.n32.resize(blocks * n32 * TILE, 0);
        for t in 0..nt {
            let (b, j) = (t / TILE, t % TILE);
            for k in 0..n32 {
                self.n32[(b * n32 + k) * TILE + j] = -128 * self.i32s[t * n32 + k];
            }
        }
    }

    /// The view for sub-blocks of `sub` (16 or 32) weights.
    pub fn view(&self, sub: usize) -> ActView<'_> {
        let (d, s, isum, tds, tneg) = if sub == 16 {
            (&self.d16, &self.s16, &[][..], &self.t16, &[][..])
        } else {
            (
                &self.d32,
                &self.s32,
                &self.i32s[..],
                &self.t32,
                &self.n32[..],
            )
        };
        ActView {
            qa: &self.qa,
            d,
            s,
            isum,
            qt: &self.qt,
            tds,
            tneg,
            cols: self.cols,
            nt: self.nt,
        }
    }
}

/// `out[t * rows + r]` for the rows in `wdata` (a multiple of 8 whole rows of
/// `ty`) against every token of `act`.
pub fn rows(
    k: &Kernels,
    ty: GgmlType,
    wdata: &[u8],
    act: &ActView,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let f = format_of(ty).ok_or(KernelError::Unsupported { ty, what: "panel" })?;
    let (cols, nt) = (act.cols, act.nt);
    let rows = out.len() / nt;
    let rb = cols / ty.block_size() * ty.type_size();
    if !rows.is_multiple_of(PANEL_ROWS) || wdata.len() != rows * rb {
        return Err(KernelError::Length {
            what: "panel rows",
            len: wdata.len(),
            expected: rows.next_multiple_of(PANEL_ROWS) * rb,
        });
    }
    let kernel = k.panel.get(f);
    let fill = |panel: &mut Panel, p: usize| -> Result<(), KernelError> {
        let w = &wdata[p * PANEL_ROWS * rb..(p + 1) * PANEL_ROWS * rb];
        for (r, row) in w.chunks_exact(rb).enumerate() {
            panel.unpack(ty, r, row, k.panel.iq4)?;
        }
        (k.panel.interleave)(&panel.rows, cols, &mut panel.q);
        Ok(())
    };
    let n_panels = rows / PANEL_ROWS;
    let mut panel = Panel::default();
    panel.reset(cols, f.sub());
    let mut p = 0;
    if let Some(pairs) = k.panel.pairs.filter(|_| n_panels >= 2 && act.tiled()) {
        let pair = pairs.get(f);
        let mut second = Panel::default();
        second.reset(cols, f.sub());
        while p + 2 <= n_panels {
            fill(&mut panel, p)?;
            fill(&mut second, p + 1)?;
            pair(&panel, &second, act, &mut out[p * PANEL_ROWS..], rows);
            p += 2;
        }
    }
    while p < n_panels {
        fill(&mut panel, p)?;
        kernel(&panel, act, &mut out[p * PANEL_ROWS..], rows);
        p += 1;
    }
    Ok(())
}

/// i8 weights as the panel's bytes.
fn bytemuck_i8(q: &[i8; 32]) -> &[u8; 32] {
    // SAFETY: i8 and u8 have the same size, alignment and no invalid values.
    unsafe { &*(q as *const [i8; 32]).cast::<[u8; 32]>() }
}

pub mod scalar {
    //! The reference panel kernel.
    use super::*;

    /// `out[j] = table[qs[j] & 15]`, `out[16 + j] = table[qs[j] >> 4]`.
    pub fn iq4(qs: &[u8; 16], out: &mut [u8]) {
        for (j, &b) in qs.iter().enumerate() {
            out[j] = KVALUES_IQ4NL[(b & 0xF) as usize] as u8;
            out[16 + j] = KVALUES_IQ4NL[(b >> 4) as usize] as u8;
        }
    }

    /// `q[(k / 4) * 32 + r * 4 + k % 4] = rows[r * cols + k]`.
    pub fn interleave(rows: &[u8], cols: usize, q: &mut [u8]) {
        interleave_from(rows, cols, q, 0);
    }

    /// [`interleave`] for the 4-byte groups `g0..cols / 4` only.
    pub fn interleave_from(rows: &[u8], cols: usize, q: &mut [u8], g0: usize) {
        for g in g0..cols / 4 {
            for r in 0..PANEL_ROWS {
                let src = r * cols + g * 4;
                q[g * 32 + r * 4..g * 32 + r * 4 + 4].copy_from_slice(&rows[src..src + 4]);
            }
        }
    }

    /// `SUB` weights per sub-block; `SIGNED`: the panel holds i8 (else u8).
    pub fn panel<const SUB: usize, const SIGNED: bool>(
        p: &Panel,
        a: &ActView,
        out: &mut [f32],
        stride: usize,
    ) {
        let (cols, nt) = (a.cols, a.nt);
        let n_sub = cols / SUB;
        for t in 0..nt {
            let qa = &a.qa[t * cols..(t + 1) * cols];
            let mut acc = [0.0f32; PANEL_ROWS];
            for s in 0..n_sub {
                let (da, sa) = (a.d[t * n_sub + s], a.s[t * n_sub + s]);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let mut isum = 0i32;
                    for k in s * SUB..(s + 1) * SUB {
                        let q = p.q[(k / 4) * 32 + r * 4 + k % 4];
                        let q = if SIGNED { q as i8 as i32 } else { q as i32 };
                        isum += q * qa[k] as i32;
                    }
                    let (d, m) = (p.d[s * PANEL_ROWS + r], p.m[s * PANEL_ROWS + r]);
                    *acc = (d * da).mul_add(isum as f32, *acc);
                    *acc = m.mul_add(sa, *acc);
                }
            }
            out[t * stride..t * stride + PANEL_ROWS].copy_from_slice(&acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    //! AVX2+FMA panel kernels: four tokens at a time, eight rows per register.
    use std::arch::x86_64::*;

    use super::*;
    use crate::engine::kernels::iq_x86_64::{lookup_nibbles, table16};

    /// The AVX2 set. Only called after detecting avx2 and fma.
    pub(in crate::engine::kernels) fn kernels() -> PanelKernels {
        PanelKernels {
            u4: panel_u4,
            u5: panel_u5,
            u6: panel_u6,
            s8: panel_s8,
            interleave,
            iq4,
            pairs: None,
        }
    }

    fn iq4(qs: &[u8; 16], out: &mut [u8]) {
        // SAFETY: installed only in the avx2 kernel set, after detection of
        // avx2, fma and f16c.
        unsafe { iq4_imp(qs, out) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn iq4_imp(qs: &[u8; 16], out: &mut [u8]) {
        let out = &mut out[..32];
        // SAFETY: 16 readable bytes in `qs`, 16 table entries; `out` is 32
        // writable bytes.
        unsafe {
            let v = lookup_nibbles(qs, table16(&KVALUES_IQ4NL));
            _mm256_storeu_si256(out.as_mut_ptr().cast(), v);
        }
    }

    fn interleave(rows: &[u8], cols: usize, q: &mut [u8]) {
        // SAFETY: installed only in the avx2 kernel set (see below).
        unsafe { interleave_imp(rows, cols, q) }
    }

    /// Eight rows' 4-byte groups transposed 8 x 8 at a time: input vector r
    /// holds groups g..g+8 of row r; output vector g holds group g of rows 0..8.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn interleave_imp(rows: &[u8], cols: usize, q: &mut [u8]) {
        assert!(rows.len() >= cols * PANEL_ROWS && q.len() >= cols * PANEL_ROWS);
        let mut k = 0;
        while k + 32 <= cols {
            // SAFETY: row r's bytes k..k+32 lie inside `rows` (asserted).
            let v: [__m256i; 8] = std::array::from_fn(|r| unsafe {
                _mm256_loadu_si256(rows.as_ptr().add(r * cols + k).cast())
            });
            let o = crate::engine::kernels::x86_64::transpose8(v.map(|v| _mm256_castsi256_ps(v)))
                .map(|o| _mm256_castps_si256(o));
            for (g, o) in o.iter().enumerate() {
                // SAFETY: group k/4 + g < cols/4; 32 bytes each (asserted).
                unsafe { _mm256_storeu_si256(q.as_mut_ptr().add((k / 4 + g) * 32).cast(), *o) };
            }
            k += 32;
        }
        scalar::interleave_from(rows, cols, q, k / 4);
    }

    // SAFETY (all four): installed only in the avx2 kernel set, after
    // detection of avx2 and fma; the implementation checks every length.
    fn panel_u4(p: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { panel_imp::<32, 8, false>(p, a, out, stride) }
    }
    fn panel_u5(p: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { panel_imp::<32, 4, false>(p, a, out, stride) }
    }
    fn panel_u6(p: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { panel_imp::<16, 2, false>(p, a, out, stride) }
    }
    fn panel_s8(p: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { panel_imp::<32, 1, true>(p, a, out, stride) }
    }

    /// `PAIRS`: how many `maddubs` results may be added in i16 without
    /// overflow (u4: 8 × 2·15·127 < 2^15; u5: 4; u6: 2; s8: 1).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn panel_imp<const SUB: usize, const PAIRS: usize, const SIGNED: bool>(
        p: &Panel,
        a: &ActView,
        out: &mut [f32],
        stride: usize,
    ) {
        let (cols, nt) = (a.cols, a.nt);
        let n_sub = cols / SUB;
        assert!(p.q.len() >= cols * PANEL_ROWS && p.d.len() >= n_sub * PANEL_ROWS);
        assert!(p.m.len() >= n_sub * PANEL_ROWS && stride >= PANEL_ROWS);
        assert!(nt == 0 || out.len() >= (nt - 1) * stride + PANEL_ROWS);
        assert!(a.qa.len() >= nt * cols && a.d.len() >= nt * n_sub && a.s.len() >= nt * n_sub);
        let mut t = 0;
        while t + 4 <= nt {
            // SAFETY: lengths asserted above; tokens t..t+4 < nt.
            let acc = unsafe { tokens::<SUB, PAIRS, SIGNED, 4>(p, a, t) };
            store(&acc, t, stride, out);
            t += 4;
        }
        while t < nt {
            // SAFETY: as above.
            let acc = unsafe { tokens::<SUB, PAIRS, SIGNED, 1>(p, a, t) };
            store(&acc, t, stride, out);
            t += 1;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn store<const NT: usize>(acc: &[__m256; NT], t: usize, stride: usize, out: &mut [f32]) {
        for (j, v) in acc.iter().enumerate() {
            let o = &mut out[(t + j) * stride..(t + j) * stride + PANEL_ROWS];
            // SAFETY: `o` is 8 writable floats.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr(), *v) };
        }
    }

    /// Tokens `t0..t0+NT` against the panel: lane r of result j is row r, token t0+j.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tokens<const SUB: usize, const PAIRS: usize, const SIGNED: bool, const NT: usize>(
        p: &Panel,
        a: &ActView,
        t0: usize,
    ) -> [__m256; NT] {
        let (cols, n_sub) = (a.cols, a.cols / SUB);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); NT];
        let qp = p.q.as_ptr();
        let ap = a.qa.as_ptr();
        for s in 0..n_sub {
            let mut isum = [_mm256_setzero_si256(); NT];
            let mut part = [_mm256_setzero_si256(); NT];
            for g in 0..SUB / 4 {
                let k = s * SUB + g * 4;
                // SAFETY (loads): k + 4 <= cols; panel holds cols * 8 bytes, the
                // activations nt * cols (asserted by the caller).
                let w = unsafe { _mm256_loadu_si256(qp.add(k * 8).cast()) };
                let wu = if SIGNED { _mm256_sign_epi8(w, w) } else { w };
                for j in 0..NT {
                    let x = unsafe {
                        std::ptr::read_unaligned(ap.add((t0 + j) * cols + k).cast::<i32>())
                    };
                    let mut av = _mm256_set1_epi32(x);
                    if SIGNED {
                        av = _mm256_sign_epi8(av, w);
                    }
                    let prod = _mm256_maddubs_epi16(wu, av);
                    part[j] = _mm256_add_epi16(part[j], prod);
                    if g % PAIRS == PAIRS - 1 {
                        isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(part[j], ones));
                        part[j] = _mm256_setzero_si256();
                    }
                }
            }
            // SAFETY: s < n_sub; 8 scales and offsets per sub-block.
            let (dv, mv) = unsafe {
                (
                    _mm256_loadu_ps(p.d.as_ptr().add(s * PANEL_ROWS)),
                    _mm256_loadu_ps(p.m.as_ptr().add(s * PANEL_ROWS)),
                )
            };
            for j in 0..NT {
                let i = (t0 + j) * n_sub + s;
                let (da, sa) = (a.d[i], a.s[i]);
                let f = _mm256_cvtepi32_ps(isum[j]);
                acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(dv, _mm256_set1_ps(da)), f, acc[j]);
                acc[j] = _mm256_fmadd_ps(mv, _mm256_set1_ps(sa), acc[j]);
            }
        }
        acc
    }
}

/// Length checks shared by the panel-pair kernels (once per call; the
/// token loops then read without bounds checks).
#[cfg(target_arch = "x86_64")]
fn check_pair(
    p0: &Panel,
    p1: &Panel,
    a: &ActView,
    sub: usize,
    signed: bool,
    out: &[f32],
    stride: usize,
) {
    let (cols, nt) = (a.cols, a.nt);
    let n_sub = cols / sub;
    for p in [p0, p1] {
        assert!(p.q.len() >= cols * PANEL_ROWS && p.d.len() >= n_sub * PANEL_ROWS);
        assert!(p.m.len() >= n_sub * PANEL_ROWS);
    }
    assert!(stride >= 2 * PANEL_ROWS);
    assert!(nt == 0 || out.len() >= (nt - 1) * stride + 2 * PANEL_ROWS);
    assert!(a.tiled() && a.tds.len() == nt.div_ceil(TILE) * n_sub * 2 * TILE);
    assert!(a.qt.len() == nt.div_ceil(TILE) * cols * TILE);
    assert!(!signed || (sub == 32 && a.tneg.len() == nt.div_ceil(TILE) * n_sub * TILE));
}

/// Runs `f(block, first token in block, tokens)` over a batch of `nt`
/// tokens: whole blocks of [`TILE`] as `TILE`, the last block's tokens in
/// fours and ones.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn for_tiles(nt: usize, mut f: impl FnMut(usize, usize, usize)) {
    for b in 0..nt / TILE {
        f(b, 0, TILE);
    }
    let (b, rest) = (nt / TILE, nt % TILE);
    let mut j = 0;
    if rest >= 4 {
        f(b, 0, 4);
        j = 4;
    }
    while j < rest {
        f(b, j, 1);
        j += 1;
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    //! AVX-512 VNNI panel-pair kernels: the two panels' 16 rows in the 16
    //! lanes of one register; `vpdpbusd` multiplies four weights of every row
    //! by four activation bytes broadcast to all lanes and adds into i32 in
    //! one instruction (no i16 pairs to watch). Signed panels (Q8_0, IQ4)
    //! store `q + 128` on the fly (`q ^ 0x80`) and start each sum at
    //! `-128 Σ qa`, the exact integer prepared with the activations. The
    //! activations come tiled ([`Prepared::tile8`]): eight tokens' bytes,
    //! scales and sums behind one pointer each, so the token loop is
    //! broadcasts from fixed offsets. The integer sums are exact and the
    //! float operations per row are the scalar kernel's, in the same order
    //! (the signed formats' offset `m` is 0, and its `m * s` term, which adds
    //! exactly +0 to a sum that is never -0, is left out), so every lane
    //! equals the reference bit for bit.
    use std::arch::x86_64::*;

    use super::*;

    /// Only called after detecting avx512f, avx512bw, avx512vl, avx512vnni.
    pub(in crate::engine::kernels) fn kernels() -> PairKernels {
        PairKernels {
            u4: pair_u4,
            u5: pair_u5,
            u6: pair_u6,
            s8: pair_s8,
        }
    }

    // SAFETY (all four): installed only in the avx512 kernel set, after
    // detection of its features; the implementation checks every length.
    fn pair_u4(p0: &Panel, p1: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { pair_imp::<32, false>(p0, p1, a, out, stride) }
    }
    fn pair_u5(p0: &Panel, p1: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { pair_imp::<32, false>(p0, p1, a, out, stride) }
    }
    fn pair_u6(p0: &Panel, p1: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { pair_imp::<16, false>(p0, p1, a, out, stride) }
    }
    fn pair_s8(p0: &Panel, p1: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { pair_imp::<32, true>(p0, p1, a, out, stride) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn pair_imp<const SUB: usize, const SIGNED: bool>(
        p0: &Panel,
        p1: &Panel,
        a: &ActView,
        out: &mut [f32],
        stride: usize,
    ) {
        check_pair(p0, p1, a, SUB, SIGNED, out, stride);
        for_tiles(a.nt, |b, j0, n| {
            // SAFETY: lengths checked above; tokens b * TILE + j0 .. + n < nt.
            unsafe {
                match n {
                    TILE => store(
                        &tokens::<SUB, SIGNED, TILE>(p0, p1, a, b, j0),
                        b * TILE,
                        stride,
                        out,
                    ),
                    4 => store(
                        &tokens::<SUB, SIGNED, 4>(p0, p1, a, b, j0),
                        b * TILE + j0,
                        stride,
                        out,
                    ),
                    _ => store(
                        &tokens::<SUB, SIGNED, 1>(p0, p1, a, b, j0),
                        b * TILE + j0,
                        stride,
                        out,
                    ),
                }
            }
        });
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    fn store<const N: usize>(acc: &[__m512; N], t: usize, stride: usize, out: &mut [f32]) {
        for (j, v) in acc.iter().enumerate() {
            let o = &mut out[(t + j) * stride..(t + j) * stride + 2 * PANEL_ROWS];
            // SAFETY: `o` is 16 writable floats.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *v) };
        }
    }

    /// Eight floats of each panel as one register (`a` in lanes 0..8).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn two(a: *const f32, b: *const f32) -> __m512 {
        // SAFETY: the caller passes 8 readable floats at each pointer.
        let (a, b) = unsafe { (_mm256_loadu_ps(a), _mm256_loadu_ps(b)) };
        _mm512_castpd_ps(_mm512_insertf64x4(
            _mm512_castps_pd(_mm512_castps256_ps512(a)),
            _mm256_castps_pd(b),
            1,
        ))
    }

    /// Tokens `j0..j0+N` of tile block `blk` against the pair: lane r of
    /// result j is row r (panel `p0` rows 0..8, `p1` rows 8..16).
    ///
    /// # Safety
    /// The features; the lengths [`check_pair`] checks; `j0 + N <= TILE`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    unsafe fn tokens<const SUB: usize, const SIGNED: bool, const N: usize>(
        p0: &Panel,
        p1: &Panel,
        a: &ActView,
        blk: usize,
        j0: usize,
    ) -> [__m512; N] {
        let (cols, n_sub) = (a.cols, a.cols / SUB);
        let flip = _mm512_set1_epi8(-128);
        let mut acc = [_mm512_setzero_ps(); N];
        let (q0, q1) = (p0.q.as_ptr(), p1.q.as_ptr());
        // SAFETY (all pointer arithmetic and reads below): block `blk` has
        // cols * TILE quants, n_sub * 2 * TILE scales and n_sub * TILE sums
        // (checked by the caller); k + 4 <= cols; s < n_sub.
        unsafe {
            let qb = a.qt.as_ptr().add(blk * cols * TILE + j0 * 4);
            let db = a.tds.as_ptr().add(blk * n_sub * 2 * TILE + j0);
            let nb = if SIGNED {
                a.tneg.as_ptr().add(blk * n_sub * TILE + j0)
            } else {
                std::ptr::null()
            };
            for s in 0..n_sub {
                let mut isum = [_mm512_setzero_si512(); N];
                if SIGNED {
                    for (j, isum) in isum.iter_mut().enumerate() {
                        *isum = _mm512_set1_epi32(*nb.add(s * TILE + j));
                    }
                }
                for g in 0..SUB / 4 {
                    let k = s * SUB + g * 4;
                    let w = _mm512_inserti64x4(
                        _mm512_castsi256_si512(_mm256_loadu_si256(q0.add(k * 8).cast())),
                        _mm256_loadu_si256(q1.add(k * 8).cast()),
                        1,
                    );
                    let w = if SIGNED { _mm512_xor_si512(w, flip) } else { w };
                    let x = qb.add(k * 8);
                    for (j, isum) in isum.iter_mut().enumerate() {
                        let x = std::ptr::read_unaligned(x.add(j * 4).cast::<i32>());
                        *isum = _mm512_dpbusd_epi32(*isum, w, _mm512_set1_epi32(x));
                    }
                }
                let o = s * PANEL_ROWS;
                let dv = two(p0.d.as_ptr().add(o), p1.d.as_ptr().add(o));
                let mv = two(p0.m.as_ptr().add(o), p1.m.as_ptr().add(o));
                let ds = db.add(s * 2 * TILE);
                for (j, (acc, isum)) in acc.iter_mut().zip(isum).enumerate() {
                    let f = _mm512_cvtepi32_ps(isum);
                    *acc = _mm512_fmadd_ps(_mm512_mul_ps(dv, _mm512_set1_ps(*ds.add(j))), f, *acc);
                    if !SIGNED {
                        *acc = _mm512_fmadd_ps(mv, _mm512_set1_ps(*ds.add(TILE + j)), *acc);
                    }
                }
            }
        }
        acc
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avxvnni {
    //! AVX-VNNI panel-pair kernels (256-bit `vpdpbusd`, VEX-encoded, for
    //! AVX2-width CPUs that have it): the arithmetic of [`super::avx512`]
    //! with the pair's 16 rows in two 256-bit registers, four tokens per
    //! pass (sixteen registers hold the sums, weights and broadcast).
    //! Bit for bit the scalar reference, for the same reasons.
    use std::arch::x86_64::*;

    use super::*;

    /// Only called after detecting avx2, fma and avxvnni.
    pub(in crate::engine::kernels) fn kernels() -> PairKernels {
        PairKernels {
            u4: pair_u4,
            u5: pair_u5,
            u6: pair_u6,
            s8: pair_s8,
        }
    }

    // SAFETY (all four): installed only in the AVX-VNNI kernel set, after
    // detection of its features; the implementation checks every length.
    fn pair_u4(p0: &Panel, p1: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { pair_imp::<32, false>(p0, p1, a, out, stride) }
    }
    fn pair_u5(p0: &Panel, p1: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { pair_imp::<32, false>(p0, p1, a, out, stride) }
    }
    fn pair_u6(p0: &Panel, p1: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { pair_imp::<16, false>(p0, p1, a, out, stride) }
    }
    fn pair_s8(p0: &Panel, p1: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
        unsafe { pair_imp::<32, true>(p0, p1, a, out, stride) }
    }

    #[target_feature(enable = "avx2,fma,avxvnni")]
    unsafe fn pair_imp<const SUB: usize, const SIGNED: bool>(
        p0: &Panel,
        p1: &Panel,
        a: &ActView,
        out: &mut [f32],
        stride: usize,
    ) {
        check_pair(p0, p1, a, SUB, SIGNED, out, stride);
        for_tiles(a.nt, |b, j0, n| {
            // SAFETY: lengths checked above; tokens b * TILE + j0 .. + n < nt.
            unsafe {
                if n == TILE {
                    let r = tokens::<SUB, SIGNED, 4>(p0, p1, a, b, 0);
                    store(&r, b * TILE, stride, out);
                    let r = tokens::<SUB, SIGNED, 4>(p0, p1, a, b, 4);
                    store(&r, b * TILE + 4, stride, out);
                } else if n == 4 {
                    let r = tokens::<SUB, SIGNED, 4>(p0, p1, a, b, j0);
                    store(&r, b * TILE + j0, stride, out);
                } else {
                    let r = tokens::<SUB, SIGNED, 1>(p0, p1, a, b, j0);
                    store(&r, b * TILE + j0, stride, out);
                }
            }
        });
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,avxvnni")]
    fn store<const N: usize>(acc: &[[__m256; 2]; N], t: usize, stride: usize, out: &mut [f32]) {
        for (j, v) in acc.iter().enumerate() {
            let o = &mut out[(t + j) * stride..(t + j) * stride + 2 * PANEL_ROWS];
            // SAFETY: `o` is 16 writable floats.
            unsafe {
                _mm256_storeu_ps(o.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(o.as_mut_ptr().add(PANEL_ROWS), v[1]);
            }
        }
    }

    /// As [`super::avx512`]'s: lane r of `result[j][h]` is row r of panel
    /// `h`, token j0 + j of block `blk`.
    ///
    /// # Safety
    /// The features; the lengths [`check_pair`] checks; `j0 + N <= TILE`.
    #[inline]
    #[target_feature(enable = "avx2,fma,avxvnni")]
    unsafe fn tokens<const SUB: usize, const SIGNED: bool, const N: usize>(
        p0: &Panel,
        p1: &Panel,
        a: &ActView,
        blk: usize,
        j0: usize,
    ) -> [[__m256; 2]; N] {
        let (cols, n_sub) = (a.cols, a.cols / SUB);
        let flip = _mm256_set1_epi8(-128);
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        let (q0, q1) = (p0.q.as_ptr(), p1.q.as_ptr());
        // SAFETY: as in the AVX-512 kernel.
        unsafe {
            let qb = a.qt.as_ptr().add(blk * cols * TILE + j0 * 4);
            let db = a.tds.as_ptr().add(blk * n_sub * 2 * TILE + j0);
            let nb = if SIGNED {
                a.tneg.as_ptr().add(blk * n_sub * TILE + j0)
            } else {
                std::ptr::null()
            };
            for s in 0..n_sub {
                let mut isum = [[_mm256_setzero_si256(); 2]; N];
                if SIGNED {
                    for (j, isum) in isum.iter_mut().enumerate() {
                        let c = _mm256_set1_epi32(*nb.add(s * TILE + j));
                        *isum = [c, c];
                    }
                }
                for g in 0..SUB / 4 {
                    let k = s * SUB + g * 4;
                    let mut w0 = _mm256_loadu_si256(q0.add(k * 8).cast());
                    let mut w1 = _mm256_loadu_si256(q1.add(k * 8).cast());
                    if SIGNED {
                        w0 = _mm256_xor_si256(w0, flip);
                        w1 = _mm256_xor_si256(w1, flip);
                    }
                    let x = qb.add(k * 8);
                    for (j, isum) in isum.iter_mut().enumerate() {
                        let x =
                            _mm256_set1_epi32(std::ptr::read_unaligned(x.add(j * 4).cast::<i32>()));
                        isum[0] = _mm256_dpbusd_avx_epi32(isum[0], w0, x);
                        isum[1] = _mm256_dpbusd_avx_epi32(isum[1], w1, x);
                    }
                }
                let o = s * PANEL_ROWS;
                let dv = [
                    _mm256_loadu_ps(p0.d.as_ptr().add(o)),
                    _mm256_loadu_ps(p1.d.as_ptr().add(o)),
                ];
                let mv = [
                    _mm256_loadu_ps(p0.m.as_ptr().add(o)),
                    _mm256_loadu_ps(p1.m.as_ptr().add(o)),
                ];
                let ds = db.add(s * 2 * TILE);
                for (j, (acc, isum)) in acc.iter_mut().zip(isum).enumerate() {
                    let da = _mm256_set1_ps(*ds.add(j));
                    let sa = _mm256_set1_ps(*ds.add(TILE + j));
                    for h in 0..2 {
                        let f = _mm256_cvtepi32_ps(isum[h]);
                        acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(dv[h], da), f, acc[h]);
                        if !SIGNED {
                            acc[h] = _mm256_fmadd_ps(mv[h], sa, acc[h]);
                        }
                    }
                }
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Rng;
    use super::super::{QMatrix, Scratch, dequantize_row, matmul_many_with};
    use super::*;

    /// Random blocks with finite scales (the shared generator covers the
    /// K- and legacy quants; the IQ4 types get their f16 `d` set here).
    fn random_data(ty: GgmlType, n: usize, rng: &mut Rng) -> Vec<u8> {
        let mut out = super::super::tests::random_data(ty, n, rng);
        if matches!(ty, GgmlType::IQ4_NL | GgmlType::IQ4_XS) {
            for b in out.chunks_exact_mut(ty.type_size()) {
                b[0..2].copy_from_slice(&f16_bytes(rng.f32() * 0.02));
            }
        }
        out
    }

    const TYPES: [GgmlType; 10] = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
    ];

    /// Every set's interleave and IQ4 table lookup give the reference bytes
    /// (widths with and without a tail of fewer than 32 columns).
    #[test]
    fn unpack_helpers_equal_the_scalar_ones() {
        let mut rng = Rng::new(77);
        for cols in [32, 36, 544] {
            let rows: Vec<u8> = (0..cols * PANEL_ROWS).map(|_| rng.next() as u8).collect();
            let mut want = vec![0u8; cols * PANEL_ROWS];
            scalar::interleave(&rows, cols, &mut want);
            for set in Kernels::available() {
                let mut got = vec![0u8; cols * PANEL_ROWS];
                (set.panel.interleave)(&rows, cols, &mut got);
                assert_eq!(got, want, "{} interleave, {cols} columns", set.name);
            }
        }
        let qs: [u8; 16] = std::array::from_fn(|_| rng.next() as u8);
        let mut want = [0u8; 32];
        scalar::iq4(&qs, &mut want);
        for set in Kernels::available() {
            let mut got = [0u8; 32];
            (set.panel.iq4)(&qs, &mut got);
            assert_eq!(got, want, "{} iq4", set.name);
        }
    }

    /// The panel path (a batch of `MIN_TOKENS` or more) against the
    /// per-row dot kernels (the same product one token at a time), for every
    /// kernel set, with row counts that leave a tail of rows outside panels.
    #[test]
    fn panels_agree_with_the_dot_kernels() {
        let cols = 512;
        let rows = 37;
        let nt = MIN_TOKENS + 3;
        for (i, ty) in TYPES.into_iter().enumerate() {
            let mut rng = Rng::new(900 + i as u64);
            let data = random_data(ty, rows * cols, &mut rng);
            let x: Vec<f32> = (0..nt * cols).map(|_| rng.f32() * 4.0).collect();
            let w = QMatrix {
                ty,
                rows,
                cols,
                data: &data,
            };
            let mut wf = vec![0f32; rows * cols];
            dequantize_row(ty, &data, &mut wf).unwrap();
            for set in Kernels::available() {
                let mut batch = vec![0f32; rows * nt];
                let mut scratch = Scratch::default();
                matmul_many_with(&set, &[w], &x, nt, &mut [&mut batch], &mut scratch).unwrap();
                for t in 0..nt {
                    let mut one = vec![0f32; rows];
                    let xt = &x[t * cols..(t + 1) * cols];
                    matmul_many_with(&set, &[w], xt, 1, &mut [&mut one], &mut scratch).unwrap();
                    for r in 0..rows {
                        let (got, want) = (batch[t * rows + r], one[r]);
                        // f32 rounding in another order: a few ulps of the
                        // sum of magnitudes.
                        let mag: f32 = wf[r * cols..(r + 1) * cols]
                            .iter()
                            .zip(xt)
                            .map(|(w, x)| (w * x).abs())
                            .sum();
                        let tol = 1e-5 * mag + 1e-6;
                        assert!(
                            (got - want).abs() <= tol,
                            "{ty} {} row {r} token {t}: panel {got} dot {want}",
                            set.name
                        );
                    }
                }
            }
        }
    }

    /// Every available panel kernel gives the scalar reference's bits: three
    /// panels, so sets with panel-pair kernels run one pair and one single.
    #[test]
    fn panel_kernels_equal_the_scalar_reference() {
        let cols = 512;
        let n_rows = 3 * PANEL_ROWS;
        for (i, ty) in TYPES.into_iter().enumerate() {
            let mut rng = Rng::new(950 + i as u64);
            let f = format_of(ty).unwrap();
            let data = random_data(ty, n_rows * cols, &mut rng);
            let nt = 15; // groups of eight and four, three single tokens
            let x: Vec<f32> = (0..nt * cols).map(|_| rng.f32() * 4.0).collect();
            let mut prep = Prepared::default();
            let per = cols / 32;
            match super::super::act_kind(ty).unwrap() {
                super::super::ActKind::Q8_0 => {
                    let mut q = vec![BlockQ8_0::zeroed(); per * nt];
                    for (x, q) in x.chunks(cols).zip(q.chunks_mut(per)) {
                        super::super::scalar::quantize_row_q8_0(x, q);
                    }
                    prep.from_q8_0(&q, cols, nt);
                }
                super::super::ActKind::Q8_1 => {
                    let mut q = vec![BlockQ8_1::zeroed(); per * nt];
                    for (x, q) in x.chunks(cols).zip(q.chunks_mut(per)) {
                        super::super::scalar::quantize_row_q8_1(x, q);
                    }
                    prep.from_q8_1(&q, cols, nt);
                }
                _ => {
                    let per = cols / 256;
                    let mut q = vec![BlockQ8K::zeroed(); per * nt];
                    for (x, q) in x.chunks(cols).zip(q.chunks_mut(per)) {
                        super::super::scalar::quantize_row_q8_k(x, q);
                    }
                    prep.from_q8k(&q, cols, nt);
                }
            }
            let view = prep.view(f.sub());
            let mut want = vec![0f32; n_rows * nt];
            rows(&Kernels::scalar(), ty, &data, &view, &mut want).unwrap();
            assert!(want.iter().any(|v| *v != 0.0), "{ty}");
            for set in Kernels::available() {
                let mut got = vec![0f32; n_rows * nt];
                rows(&set, ty, &data, &view, &mut got).unwrap();
                assert_eq!(got, want, "{ty} {}", set.name);
            }
            // Tiled (what the panel-pair kernels read): the same bits.
            prep.tile8();
            let view = prep.view(f.sub());
            assert!(view.tiled(), "{ty}");
            for set in Kernels::available() {
                let mut got = vec![0f32; n_rows * nt];
                rows(&set, ty, &data, &view, &mut got).unwrap();
                assert_eq!(got, want, "{ty} {} (tiled)", set.name);
            }
        }
    }

    #[test]
    fn rows_refuses_a_partial_panel() {
        let cols = 64;
        let data = vec![0u8; 5 * cols / 32 * GgmlType::Q8_0.type_size()];
        let mut prep = Prepared::default();
        prep.from_q8_0(&[BlockQ8_0::zeroed(); 2 * 2], cols, 2);
        let mut out = vec![0f32; 5 * 2];
        let e = rows(
            &Kernels::scalar(),
            GgmlType::Q8_0,
            &data,
            &prep.view(32),
            &mut out,
        );
        assert!(matches!(e, Err(KernelError::Length { .. })), "{e:?}");
    }
}
