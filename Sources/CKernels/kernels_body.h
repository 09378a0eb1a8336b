// The kernels' bodies, included once per instruction set by kernels.c with SUFFIX and TARGET
// defined. Plain loops over contiguous rows: the compiler vectorizes them for TARGET.

#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define NAME(f) CAT(f, SUFFIX)

// V = Bᵀ d B per tile: rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3), then the same on columns.
TARGET static void NAME(wino_input)(const float *x, int C, int H, int W, int r0, int nr, int c0, int c1, float *v) {
  const int th = (H + 1) / 2, tw = (W + 1) / 2, wp = 2 * tw + 2;
  const long tb = (long)nr * tw;
  float q[4][wp], zero[W];
  for (int k = 0; k < W; k++) zero[k] = 0;
  for (int a = 0; a < 4; a++) for (int k = 0; k < wp; k++) q[a][k] = 0;  // borders stay zero
  for (int c = c0; c < c1; c++) {
    for (int row = 0; row < nr; row++) {
      const int tr = r0 + row, n = tr / th, ty = tr % th;
      const float *plane = x + ((long)n * C + c) * H * W;
      const float *rows[4];
      for (int a = 0; a < 4; a++) {
        const int y = 2 * ty - 1 + a;
        rows[a] = (y >= 0 && y < H) ? plane + (long)y * W : zero;  // rows outside the image read as zero
      }
      // Vertical combination into q (index k is input column k - 1).
      const float *restrict d0 = rows[0], *restrict d1 = rows[1], *restrict d2 = rows[2], *restrict d3 = rows[3];
      float *restrict q0 = q[0] + 1, *restrict q1 = q[1] + 1, *restrict q2 = q[2] + 1, *restrict q3 = q[3] + 1;
      for (int k = 0; k < W; k++) {
        q0[k] = d0[k] - d2[k]; q1[k] = d1[k] + d2[k]; q2[k] = d2[k] - d1[k]; q3[k] = d1[k] - d3[k];
      }
      const long base = (long)row * tw;
      for (int a = 0; a < 4; a++) {
        const float *restrict qa = q[a];
        float *restrict v0 = v + ((long)(a * 4) * C + c) * tb + base, *restrict v1 = v + ((long)(a * 4 + 1) * C + c) * tb + base;
        float *restrict v2 = v + ((long)(a * 4 + 2) * C + c) * tb + base, *restrict v3 = v + ((long)(a * 4 + 3) * C + c) * tb + base;
        for (int j = 0; j < tw; j++) {
          const float e0 = qa[2 * j], e1 = qa[2 * j + 1], e2 = qa[2 * j + 2], e3 = qa[2 * j + 3];
          v0[j] = e0 - e2; v1[j] = e1 + e2; v2[j] = e2 - e1; v3[j] = e1 - e3;
        }
      }
    }
  }
}

// y = Aᵀ m A per tile: s0 = m0 + m1 + m2, s1 = m1 - m2 - m3 on rows, then on columns.
TARGET static void NAME(wino_output)(const float *m, int K, int H, int W, int r0, int nr, int k0, int k1, float *y) {
  const int th = (H + 1) / 2, tw = (W + 1) / 2;
  const long tb = (long)nr * tw;
  float out0[2 * tw], out1[2 * tw];
  for (int k = k0; k < k1; k++) {
    for (int row = 0; row < nr; row++) {
      const int tr = r0 + row, n = tr / th, ty = tr % th;
      const long base = (long)row * tw;
      const float *mr[16];
      for (int xi = 0; xi < 16; xi++) mr[xi] = m + ((long)xi * K + k) * tb + base;
      for (int j = 0; j < tw; j++) {
        float s0[4], s1[4];
        for (int b = 0; b < 4; b++) {
          const float a0 = mr[b][j], a1 = mr[4 + b][j], a2 = mr[8 + b][j], a3 = mr[12 + b][j];
          s0[b] = a0 + a1 + a2; s1[b] = a1 - a2 - a3;
        }
        out0[2 * j] = s0[0] + s0[1] + s0[2]; out0[2 * j + 1] = s0[1] - s0[2] - s0[3];
        out1[2 * j] = s1[0] + s1[1] + s1[2]; out1[2 * j + 1] = s1[1] - s1[2] - s1[3];
      }
      float *plane = y + ((long)n * K + k) * H * W;
      const int oy = 2 * ty;
      for (int i = 0; i < W; i++) plane[(long)oy * W + i] = out0[i];
      if (oy + 1 < H) for (int i = 0; i < W; i++) plane[(long)(oy + 1) * W + i] = out1[i];
    }
  }
}

// m̄ = A ȳ Aᵀ (the adjoint of the output transform), ȳ zero outside the image.
TARGET static void NAME(wino_output_adjoint)(const float *dy, int K, int H, int W, int r0, int nr, int k0, int k1, float *mb) {
  const int th = (H + 1) / 2, tw = (W + 1) / 2, w2 = 2 * tw;
  const long tb = (long)nr * tw;
  float g0[w2], g1[w2];
  for (int k = k0; k < k1; k++) {
    for (int row = 0; row < nr; row++) {
      const int tr = r0 + row, n = tr / th, ty = tr % th;
      const float *plane = dy + ((long)n * K + k) * H * W;
      const int oy = 2 * ty;
      for (int i = 0; i < w2; i++) { g0[i] = i < W ? plane[(long)oy * W + i] : 0; g1[i] = (i < W && oy + 1 < H) ? plane[(long)(oy + 1) * W + i] : 0; }
      const long base = (long)row * tw;
      float *d[16];
      for (int xi = 0; xi < 16; xi++) d[xi] = mb + ((long)xi * K + k) * tb + base;
      for (int j = 0; j < tw; j++) {
        const float a = g0[2 * j], b = g0[2 * j + 1], c = g1[2 * j], e = g1[2 * j + 1];
        // A ȳ rows: (a, b), (a + c, b + e), (a - c, b - e), (-c, -e); each [p, q] -> [p, p + q, p - q, -q]
        const float p[4] = { a, a + c, a - c, -c }, qq[4] = { b, b + e, b - e, -e };
        for (int i = 0; i < 4; i++) {
          d[i * 4][j] = p[i]; d[i * 4 + 1][j] = p[i] + qq[i]; d[i * 4 + 2][j] = p[i] - qq[i]; d[i * 4 + 3][j] = -qq[i];
        }
      }
    }
  }
}

// Winograd F(4x4, 3x3) (Lavin & Gray 2015): 6x6 input tiles at stride 4, 36 products per
// tile for 16 outputs. Bᵀ (rows of the input transform), applied to 6 values e0..e5:
//   4e0 - 5e2 + e4,  -4e1 - 4e2 + e3 + e4,  4e1 - 4e2 - e3 + e4,
//   -2e1 - e2 + 2e3 + e4,  2e1 - e2 - 2e3 + e4,  4e1 - 5e3 + e5
#define WINO4_BT(o0, o1, o2, o3, o4, o5, e0, e1, e2, e3, e4, e5) \
  do { const float c_ = (e4) - (e2), t_ = (e3) - (e1), a_ = (e4) - 4 * (e2), b_ = (e3) - 4 * (e1); \
       o0 = 4 * ((e0) - (e2)) + c_; o1 = a_ + b_; o2 = a_ - b_; o3 = c_ + 2 * t_; o4 = c_ - 2 * t_; o5 = ((e5) - (e3)) - 4 * t_; } while (0)
// Aᵀ rows on 6 values: m0+m1+m2+m3+m4, m1-m2+2m3-2m4, m1+m2+4m3+4m4, m1-m2+8m3-8m4+m5
#define WINO4_AT(o0, o1, o2, o3, m0, m1, m2, m3, m4, m5) \
  do { const float s12_ = (m1) + (m2), d12_ = (m1) - (m2), s34_ = (m3) + (m4), d34_ = (m3) - (m4); \
       o0 = (m0) + s12_ + s34_; o1 = d12_ + 2 * d34_; o2 = s12_ + 4 * s34_; o3 = d12_ + 8 * d34_ + (m5); } while (0)
// A (the adjoint of Aᵀ) on 4 values: p0, p0+p1+p2+p3, p0-p1+p2-p3, p0+2p1+4p2+8p3, p0-2p1+4p2-8p3, p3
#define WINO4_A(o0, o1, o2, o3, o4, o5, p0, p1, p2, p3) \
  do { const float s02_ = (p0) + (p2), s13_ = (p1) + (p3), q02_ = (p0) + 4 * (p2), q13_ = (p1) + 4 * (p3); \
       o0 = (p0); o1 = s02_ + s13_; o2 = s02_ - s13_; o3 = q02_ + 2 * q13_; o4 = q02_ - 2 * q13_; o5 = (p3); } while (0)

#ifndef WINO4_CHUNK
#define WINO4_CHUNK 128
// The tiles t .. t+cnt-1 of a block (0-based, t < nr * tw, at most `left` of them) that share one
// tile row: image n, tile row ty, tile columns tx0 .. tx0+cnt-1, of which the first `whole` lie
// wholly inside the image's width W. Walking a chunk segment by segment replaces a division per
// tile with one per row, and lets the copies run along rows.
typedef struct { int n, ty, tx0, cnt, whole; } wino4_segment;
static inline wino4_segment wino4_segment_at(long t, int left, int r0, int th, int tw, int W) {
  const int tr = r0 + (int)(t / tw), tx0 = (int)(t % tw);
  int cnt = tw - tx0;
  if (cnt > left) cnt = left;
  return (wino4_segment){ tr / th, tr % th, tx0, cnt, 4 * (tx0 + cnt) <= W ? cnt : cnt - 1 };
}
// One patch row of a tile that crosses the image's left or right border: columns col0 ... col0+5
// of `row` (W wide), zero outside it, into e0[q] ... e5[q].
static inline void wino4_edge_tile(const float *row, int W, int col0, int q, float *e0, float *e1, float *e2,
                                   float *e3, float *e4, float *e5) {
  float *const e[6] = { e0, e1, e2, e3, e4, e5 };
  for (int b = 0; b < 6; b++) e[b][q] = col0 + b >= 0 && col0 + b < W ? row[col0 + b] : 0;
}
#endif

// V = Bᵀ d B for chunks of WINO4_CHUNK tiles: each tile's 6x6 patch gathered tile-minor
// (d[a*6+b][tile]), then the vertical and horizontal halves as unit-stride loops over tiles.
TARGET static void NAME(wino4_input)(const float *x, int C, int H, int W, int r0, int nr, int c0, int c1, float *v) {
  const int th = (H + 3) / 4, tw = (W + 3) / 4;
  const long tb = (long)nr * tw;
  float d[36][WINO4_CHUNK + 1], u[36][WINO4_CHUNK];   // d: one slot more for the row loop's extra tile
  for (int c = c0; c < c1; c++) {
    for (long j0 = 0; j0 < tb; j0 += WINO4_CHUNK) {
      const int len = (int)(tb - j0 < WINO4_CHUNK ? tb - j0 : WINO4_CHUNK);
      for (int j0s = 0; j0s < len;) {   // one tile row segment at a time
        const wino4_segment seg = wino4_segment_at(j0 + j0s, len - j0s, r0, th, tw, W);
        const float *plane = x + ((long)seg.n * C + c) * H * W;
        // Tile q's patch row reads columns xs + 4q ... xs + 4q + 5, zero outside the image. No
        // padded copies: a zero-padded copy of every patch row cost a memset and a memcpy call
        // each, 13 million calls in one pggan64 step. Rows inside the plane take the whole
        // segment in one vectorized loop; the others take tiles [qa, qb) (inside the width) from
        // the row and the edge tiles one by one; rows above or below the image are zeros.
        const int y0 = 4 * seg.ty - 1, xs = 4 * seg.tx0 - 1;
        int qa = xs < 0 ? 1 : 0, qb = W - 6 - xs < 0 ? 0 : (W - 6 - xs) / 4 + 1;
        if (qa > seg.cnt) qa = seg.cnt;
        if (qb > seg.cnt) qb = seg.cnt;
        if (qb < qa) qb = qa;
        for (int a = 0; a < 6; a++) {
          const int iy = y0 + a;
          float *restrict e0 = d[a * 6] + j0s, *restrict e1 = d[a * 6 + 1] + j0s, *restrict e2 = d[a * 6 + 2] + j0s;
          float *restrict e3 = d[a * 6 + 3] + j0s, *restrict e4 = d[a * 6 + 4] + j0s, *restrict e5 = d[a * 6 + 5] + j0s;
          if (iy < 0 || iy >= H) {
            for (int q = 0; q < seg.cnt; q++) e0[q] = e1[q] = e2[q] = e3[q] = e4[q] = e5[q] = 0;
            continue;
          }
          const float *row = plane + (long)iy * W;
          if (c + 1 < c1)   // the next channel's same rows, read when this channel's chunks are done
            for (long k = xs < 0 ? 0 : xs; k < xs + 4L * seg.cnt + 2 && k < W; k += 16)
              __builtin_prefetch(row + (long)H * W + k);
          if (W % 4 == 0 && iy > 0 && iy < H - 1) {
            // A row inside the plane, its tiles exactly covering it: the segment straight from the
            // row in one vectorized loop over cnt + 1 tiles reading columns 4q ... 4q+3 (a stride-4
            // group with no gaps, which needs no scalar tail), those of tile q also being columns
            // 4 and 5 of tile q-1. The reads past the row's ends (column -1, W ... W+2) fall in the
            // neighbouring rows, inside the plane; the two border columns are zeroed after.
            const float *t = row + xs;
            e0[0] = t[0]; e1[0] = t[1]; e2[0] = t[2]; e3[0] = t[3];
            for (int q = 1; q <= seg.cnt; q++) {
              e0[q] = t[4 * q]; e1[q] = t[4 * q + 1]; e2[q] = t[4 * q + 2]; e3[q] = t[4 * q + 3];
              e4[q - 1] = t[4 * q]; e5[q - 1] = t[4 * q + 1];
            }
            if (xs < 0) e0[0] = 0;
            if (xs + 4 * seg.cnt + 1 >= W) e5[seg.cnt - 1] = 0;
            continue;
          }
          const float *inside = row + xs + 4 * qa;   // tile qa's first column, >= 0
          for (int q = qa; q < qb; q++) {
            const float *t = inside + 4 * (q - qa);
            e0[q] = t[0]; e1[q] = t[1]; e2[q] = t[2]; e3[q] = t[3]; e4[q] = t[4]; e5[q] = t[5];
          }
          for (int q = 0; q < qa; q++) wino4_edge_tile(row, W, xs + 4 * q, q, e0, e1, e2, e3, e4, e5);
          for (int q = qb; q < seg.cnt; q++) wino4_edge_tile(row, W, xs + 4 * q, q, e0, e1, e2, e3, e4, e5);
        }
        j0s += seg.cnt;
      }
      for (int b = 0; b < 6; b++) {   // Bᵀ d: column b of the patch
        const float *restrict e0 = d[b], *restrict e1 = d[6 + b], *restrict e2 = d[12 + b];
        const float *restrict e3 = d[18 + b], *restrict e4 = d[24 + b], *restrict e5 = d[30 + b];
        float *restrict o0 = u[b], *restrict o1 = u[6 + b], *restrict o2 = u[12 + b];
        float *restrict o3 = u[18 + b], *restrict o4 = u[24 + b], *restrict o5 = u[30 + b];
        for (int j = 0; j < len; j++) WINO4_BT(o0[j], o1[j], o2[j], o3[j], o4[j], o5[j], e0[j], e1[j], e2[j], e3[j], e4[j], e5[j]);
      }
      for (int a = 0; a < 6; a++) {   // (Bᵀ d) B: row a
        const float *restrict e0 = u[a * 6], *restrict e1 = u[a * 6 + 1], *restrict e2 = u[a * 6 + 2];
        const float *restrict e3 = u[a * 6 + 3], *restrict e4 = u[a * 6 + 4], *restrict e5 = u[a * 6 + 5];
        float *restrict o[6];
        for (int b = 0; b < 6; b++) o[b] = v + ((long)(a * 6 + b) * C + c) * tb + j0;
        float *restrict o0 = o[0], *restrict o1 = o[1], *restrict o2 = o[2], *restrict o3 = o[3], *restrict o4 = o[4], *restrict o5 = o[5];
        for (int j = 0; j < len; j++) WINO4_BT(o0[j], o1[j], o2[j], o3[j], o4[j], o5[j], e0[j], e1[j], e2[j], e3[j], e4[j], e5[j]);
      }
    }
  }
}

// Y = Aᵀ M A per tile, in chunks of tiles, scattered into the image (clipped).
TARGET static void NAME(wino4_output)(const float *m, int K, int H, int W, int r0, int nr, int k0, int k1, float *y) {
  const int th = (H + 3) / 4, tw = (W + 3) / 4;
  const long tb = (long)nr * tw;
  float s[24][WINO4_CHUNK], out[16][WINO4_CHUNK];   // Aᵀ M (row r, column b at r*6+b); Y (r*4+c)
  for (int k = k0; k < k1; k++) {
    for (long j0 = 0; j0 < tb; j0 += WINO4_CHUNK) {
      const int len = (int)(tb - j0 < WINO4_CHUNK ? tb - j0 : WINO4_CHUNK);
      for (int b = 0; b < 6; b++) {
        const float *restrict a0 = m + ((long)(b) * K + k) * tb + j0, *restrict a1 = m + ((long)(6 + b) * K + k) * tb + j0;
        const float *restrict a2 = m + ((long)(12 + b) * K + k) * tb + j0, *restrict a3 = m + ((long)(18 + b) * K + k) * tb + j0;
        const float *restrict a4 = m + ((long)(24 + b) * K + k) * tb + j0, *restrict a5 = m + ((long)(30 + b) * K + k) * tb + j0;
        float *restrict s0 = s[b], *restrict s1 = s[6 + b], *restrict s2 = s[12 + b], *restrict s3 = s[18 + b];
        for (int j = 0; j < len; j++) WINO4_AT(s0[j], s1[j], s2[j], s3[j], a0[j], a1[j], a2[j], a3[j], a4[j], a5[j]);
      }
      for (int r = 0; r < 4; r++) {
        const float *restrict e0 = s[r * 6], *restrict e1 = s[r * 6 + 1], *restrict e2 = s[r * 6 + 2];
        const float *restrict e3 = s[r * 6 + 3], *restrict e4 = s[r * 6 + 4], *restrict e5 = s[r * 6 + 5];
        float *restrict u0 = out[r * 4], *restrict u1 = out[r * 4 + 1], *restrict u2 = out[r * 4 + 2], *restrict u3 = out[r * 4 + 3];
        for (int j = 0; j < len; j++) WINO4_AT(u0[j], u1[j], u2[j], u3[j], e0[j], e1[j], e2[j], e3[j], e4[j], e5[j]);
      }
      for (int j = 0; j < len;) {   // y[4ty+r][4tx+c] = out[r*4+c][tile], clipped to the image
        const wino4_segment seg = wino4_segment_at(j0 + j, len - j, r0, th, tw, W);
        for (int r = 0; r < 4 && 4 * seg.ty + r < H; r++) {
          float *row = y + ((long)seg.n * K + k) * H * W + (long)(4 * seg.ty + r) * W + 4 * seg.tx0;
          const float *restrict e0 = out[r * 4] + j, *restrict e1 = out[r * 4 + 1] + j;
          const float *restrict e2 = out[r * 4 + 2] + j, *restrict e3 = out[r * 4 + 3] + j;
          for (int q = 0; q < seg.whole; q++) {
            row[4 * q] = e0[q]; row[4 * q + 1] = e1[q]; row[4 * q + 2] = e2[q]; row[4 * q + 3] = e3[q];
          }
          for (int q = seg.whole; q < seg.cnt; q++)
            for (int c = 0; c < 4 && 4 * (seg.tx0 + q) + c < W; c++) row[4 * q + c] = out[r * 4 + c][j + q];
        }
        j += seg.cnt;
      }
    }
  }
}

// M̄ = A Ȳ Aᵀ (the adjoint of the output transform), Ȳ zero outside the image.
TARGET static void NAME(wino4_output_adjoint)(const float *dy, int K, int H, int W, int r0, int nr, int k0, int k1, float *mb) {
  const int th = (H + 3) / 4, tw = (W + 3) / 4;
  const long tb = (long)nr * tw;
  float g[16][WINO4_CHUNK], t[24][WINO4_CHUNK];   // Ȳ (r*4+c); A Ȳ (row i, column c at i*4+c)
  for (int k = k0; k < k1; k++) {
    for (long j0 = 0; j0 < tb; j0 += WINO4_CHUNK) {
      const int len = (int)(tb - j0 < WINO4_CHUNK ? tb - j0 : WINO4_CHUNK);
      for (int j = 0; j < len;) {   // g[r*4+c][tile] = dy[4ty+r][4tx+c], zero outside the image
        const wino4_segment seg = wino4_segment_at(j0 + j, len - j, r0, th, tw, W);
        for (int r = 0; r < 4; r++) {
          const int oy = 4 * seg.ty + r;
          float *restrict p0 = g[r * 4] + j, *restrict p1 = g[r * 4 + 1] + j;
          float *restrict p2 = g[r * 4 + 2] + j, *restrict p3 = g[r * 4 + 3] + j;
          if (oy >= H) {
            for (int q = 0; q < seg.cnt; q++) p0[q] = p1[q] = p2[q] = p3[q] = 0;
            continue;
          }
          const float *row = dy + ((long)seg.n * K + k) * H * W + (long)oy * W + 4 * seg.tx0;
          if (k + 1 < k1)   // the next channel's same rows (as wino4_input)
            for (long i = 0; i < 4L * seg.cnt && 4L * seg.tx0 + i < W; i += 16) __builtin_prefetch(row + (long)H * W + i);
          for (int q = 0; q < seg.whole; q++) {
            p0[q] = row[4 * q]; p1[q] = row[4 * q + 1]; p2[q] = row[4 * q + 2]; p3[q] = row[4 * q + 3];
          }
          for (int q = seg.whole; q < seg.cnt; q++)
            for (int c = 0; c < 4; c++) g[r * 4 + c][j + q] = 4 * (seg.tx0 + q) + c < W ? row[4 * q + c] : 0;
        }
        j += seg.cnt;
      }
      for (int c = 0; c < 4; c++) {
        const float *restrict p0 = g[c], *restrict p1 = g[4 + c], *restrict p2 = g[8 + c], *restrict p3 = g[12 + c];
        float *restrict t0 = t[c], *restrict t1 = t[4 + c], *restrict t2 = t[8 + c], *restrict t3 = t[12 + c];
        float *restrict t4 = t[16 + c], *restrict t5 = t[20 + c];
        for (int j = 0; j < len; j++) WINO4_A(t0[j], t1[j], t2[j], t3[j], t4[j], t5[j], p0[j], p1[j], p2[j], p3[j]);
      }
      for (int i = 0; i < 6; i++) {
        const float *restrict p0 = t[i * 4], *restrict p1 = t[i * 4 + 1], *restrict p2 = t[i * 4 + 2], *restrict p3 = t[i * 4 + 3];
        float *restrict d0 = mb + ((long)(i * 6) * K + k) * tb + j0, *restrict d1 = mb + ((long)(i * 6 + 1) * K + k) * tb + j0;
        float *restrict d2 = mb + ((long)(i * 6 + 2) * K + k) * tb + j0, *restrict d3 = mb + ((long)(i * 6 + 3) * K + k) * tb + j0;
        float *restrict d4 = mb + ((long)(i * 6 + 4) * K + k) * tb + j0, *restrict d5 = mb + ((long)(i * 6 + 5) * K + k) * tb + j0;
        for (int j = 0; j < len; j++) WINO4_A(d0[j], d1[j], d2[j], d3[j], d4[j], d5[j], p0[j], p1[j], p2[j], p3[j]);
      }
    }
  }
}

// Direct 3x3 convolution: for each output plane, 9·C shifted multiply-adds of input rows.
TARGET static void NAME(conv3x3_direct)(const float *x, const float *w, int N, int C, int K, int H, int W, int flip, long p0, long p1, float *y) {
  const long plane = (long)H * W;
  for (long nk = p0; nk < p1; nk++) {
    const int n = (int)(nk / K), k = (int)(nk % K);
    float *out = y + nk * plane;
    for (long p = 0; p < plane; p++) out[p] = 0;
    for (int c = 0; c < C; c++) {
      const float *in = x + ((long)n * C + c) * plane;
      float wt[9];
      for (int t = 0; t < 9; t++) wt[t] = flip ? w[((long)c * K + k) * 9 + (8 - t)] : w[((long)k * C + c) * 9 + t];
      for (int i = 0; i < 3; i++) {
        for (int h = 0; h < H; h++) {
          const int ih = h + i - 1;
          if (ih < 0 || ih >= H) continue;
          const float *src = in + (long)ih * W;
          float *dst = out + (long)h * W;
          const float a = wt[i * 3], b = wt[i * 3 + 1], cc = wt[i * 3 + 2];
          // column j reads j-1, j, j+1 (zero outside)
          if (W == 1) { dst[0] += b * src[0]; continue; }
          dst[0] += b * src[0] + cc * src[1];
          for (int jj = 1; jj < W - 1; jj++) dst[jj] += a * src[jj - 1] + b * src[jj] + cc * src[jj + 1];
          dst[W - 1] += a * src[W - 2] + b * src[W - 1];
        }
      }
    }
  }
}

TARGET static void NAME(conv3x3_direct_weight)(const float *x, const float *dy, int N, int C, int K, int H, int W, long p0, long p1, float *dw) {
  const long plane = (long)H * W;
  for (long kc = p0; kc < p1; kc++) {
    const int k = (int)(kc / C), c = (int)(kc % C);
    double acc[9] = { 0 };
    for (int n = 0; n < N; n++) {
      const float *g = dy + ((long)n * K + k) * plane, *in = x + ((long)n * C + c) * plane;
      for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
          // 8 lanes of partial sums (a fixed order the compiler can keep in one vector register)
          float lane[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
          const int h0 = i == 0 ? 1 : 0, h1 = i == 2 ? H - 1 : H;
          const int w0 = j == 0 ? 1 : 0, w1 = j == 2 ? W - 1 : W, len = w1 - w0;
          for (int h = h0; h < h1; h++) {
            const float *gr = g + (long)h * W + w0, *xr = in + (long)(h + i - 1) * W + (j - 1) + w0;
            int t = 0;
            for (; t + 8 <= len; t += 8)
              for (int l = 0; l < 8; l++) lane[l] += gr[t + l] * xr[t + l];
            for (; t < len; t++) lane[t & 7] += gr[t] * xr[t];
          }
          double s = 0;
          for (int l = 0; l < 8; l++) s += lane[l];
          acc[i * 3 + j] += s;
        }
      }
    }
    for (int t = 0; t < 9; t++) dw[kc * 9 + t] = (float)acc[t];
  }
}


// U = G g Gᵀ for the kernel pairs oi in [p0, p1) of a 3x3 kernel w (outer x inner pairs, oi =
// o * inner + i): u[(a*6+b) * plane + oi], in float64 as Winograd4's rows of G (see
// Winograd4.swift). flip reads w (K, C) as the input gradient's kernel: pair (o, i) is
// w[i][o] rotated by 180°. Blocks of 16 pairs, lanes across pairs, so each of the 36 planes
// is written 16 floats at a time (streamed past the caches with `stream`, when those 64 bytes
// are a whole aligned line); no contraction into FMAs, so the bits are the scalar ones.
#ifndef WINO4_G
#define WINO4_G(t0, t1, t2, t3, t4, t5, a, b, c) \
  do { const double ac_ = (a) + (c), even_ = (a) * (1.0 / 24) + (c) * (1.0 / 6), b12_ = (b) * (1.0 / 12); \
       t0 = (a) * 0.25; t1 = (ac_ + (b)) * (-1.0 / 6); t2 = ((b) - ac_) * (1.0 / 6); t3 = even_ + b12_; t4 = even_ - b12_; \
       t5 = (c); } while (0)
#endif
TARGET static void NAME(wino4_weights)(const float *w, int K, int C, int flip, int stream, long p0, long p1, float *u) {
#pragma clang fp contract(off)
  const long outer = flip ? C : K, inner = flip ? K : C, plane = outer * inner;
  enum { B = 16 };
  for (long base = p0; base < p1; base += B) {
    const int n = p1 - base < B ? (int)(p1 - base) : B;
    double g[9][B], t[6][3][B];
    for (int j = 0; j < n; j++) {
      const long oi = base + j, o = oi / inner, i = oi % inner;
      const float *src = flip ? w + (i * C + o) * 9 : w + (o * C + i) * 9;
      for (int e = 0; e < 9; e++) g[e][j] = flip ? src[8 - e] : src[e];
    }
    for (int j = n; j < B; j++) for (int e = 0; e < 9; e++) g[e][j] = 0;
    // t = G g: row a of G g, column l, from column l of g (rows 0, 1, 2 = g[l], g[3+l], g[6+l])
    for (int l = 0; l < 3; l++)
      for (int j = 0; j < B; j++)
        WINO4_G(t[0][l][j], t[1][l][j], t[2][l][j], t[3][l][j], t[4][l][j], t[5][l][j], g[l][j], g[3 + l][j], g[6 + l][j]);
    // U = (G g) Gᵀ: row a of U from row a of t
    for (int a = 0; a < 6; a++) {
      double r[6][B];
      for (int j = 0; j < B; j++) WINO4_G(r[0][j], r[1][j], r[2][j], r[3][j], r[4][j], r[5][j], t[a][0][j], t[a][1][j], t[a][2][j]);
      for (int b = 0; b < 6; b++) {
        float *dst = u + (a * 6 + b) * plane + base;
        if (stream && n == B && ((unsigned long)dst & 63) == 0) {   // one whole line: a vector streaming store
          float *line = __builtin_assume_aligned(dst, 64);
          for (int j = 0; j < B; j++) __builtin_nontemporal_store((float)r[b][j], line + j);
        } else {
          for (int j = 0; j < n; j++) dst[j] = (float)r[b][j];
        }
      }
    }
  }
  if (stream) LG_STORE_FENCE();
}

// dw = Gᵀ dU G for the pairs kc in [p0, p1): du[(a*6+b) * plane + kc] -> dw[kc*9 + k*3 + l],
// float64, Gᵀ's rows as Winograd4.applyGT; the adjoint of wino4_weights without flip.
#ifndef WINO4_GT
#define WINO4_GT(o0, o1, o2, u0, u1, u2, u3, u4, u5) \
  do { const double s12_ = (u1) + (u2), s34_ = (u3) + (u4); \
       o0 = (u0) * 0.25 - s12_ * (1.0 / 6) + s34_ * (1.0 / 24); o1 = ((u2) - (u1)) * (1.0 / 6) + ((u3) - (u4)) * (1.0 / 12); \
       o2 = (s34_ - s12_) * (1.0 / 6) + (u5); } while (0)
#endif
TARGET static void NAME(wino4_weights_adjoint)(const float *du, long plane, long p0, long p1, float *dw) {
#pragma clang fp contract(off)
  enum { B = 16 };
  for (long base = p0; base < p1; base += B) {
    const int n = p1 - base < B ? (int)(p1 - base) : B;
    double d[36][B], t[6][3][B];
    for (int x = 0; x < 36; x++) {
      const float *src = du + x * plane + base;
      for (int j = 0; j < n; j++) d[x][j] = src[j];
      for (int j = n; j < B; j++) d[x][j] = 0;
    }
    // t = dU G: row a of dU (entries d[a*6+b]) through Gᵀ gives t[a][l]
    for (int a = 0; a < 6; a++)
      for (int j = 0; j < B; j++)
        WINO4_GT(t[a][0][j], t[a][1][j], t[a][2][j], d[a * 6][j], d[a * 6 + 1][j], d[a * 6 + 2][j], d[a * 6 + 3][j],
                 d[a * 6 + 4][j], d[a * 6 + 5][j]);
    // dw = Gᵀ t: column l of t through Gᵀ gives column l of dw (rows k)
    for (int l = 0; l < 3; l++) {
      double r[3][B];
      for (int j = 0; j < B; j++)
        WINO4_GT(r[0][j], r[1][j], r[2][j], t[0][l][j], t[1][l][j], t[2][l][j], t[3][l][j], t[4][l][j], t[5][l][j]);
      for (int j = 0; j < n; j++)
        for (int k = 0; k < 3; k++) dw[(base + j) * 9 + k * 3 + l] = (float)r[k][j];
    }
  }
}


#ifndef SOFTMAX_EXP
// e = exp(v) as Cephes' expf: Cody-Waite reduction by ln 2, a degree-6 polynomial, 2^n through
// the exponent bits; 0 below -87.34, inf above 88.72, NaN kept.
#define SOFTMAX_EXP(e, value) \
  do { const float v_ = (value); \
       const float fn_ = fminf(fmaxf(floorf(v_ * 1.44269504088896341f + 0.5f), -126.0f), 127.0f); \
       const float r_ = (v_ - fn_ * 0.693359375f) + fn_ * 2.12194440e-4f, z_ = r_ * r_; \
       float p_ = 1.9875691500e-4f; \
       p_ = p_ * r_ + 1.3981999507e-3f; p_ = p_ * r_ + 8.3334519073e-3f; p_ = p_ * r_ + 4.1665795894e-2f; \
       p_ = p_ * r_ + 1.6666665459e-1f; p_ = p_ * r_ + 5.0000001201e-1f; \
       union { int i; float f; } scale_ = { .i = ((int)fn_ + 127) << 23 }; \
       float x_ = (p_ * z_ + r_ + 1.0f) * scale_.f; \
       x_ = v_ < -87.336544f ? 0.0f : (v_ > 88.72283f ? __builtin_inff() : x_); \
       (e) = v_ == v_ ? x_ : v_; } while (0)
// The same on 16 floats at once (each lane as SOFTMAX_EXP, bit for bit).
typedef float lg_v16f __attribute__((ext_vector_type(16)));
typedef int lg_v16i __attribute__((ext_vector_type(16)));
#define LG_SELECT16(mask, yes, no) ((lg_v16f)(((lg_v16i)(yes) & (mask)) | ((lg_v16i)(no) & ~(mask))))
#define SOFTMAX_EXP16(e, value) \
  do { const lg_v16f v_ = (value); \
       const lg_v16f fn_ = __builtin_elementwise_min(__builtin_elementwise_max( \
         __builtin_elementwise_floor(v_ * 1.44269504088896341f + 0.5f), (lg_v16f)-126.0f), (lg_v16f)127.0f); \
       const lg_v16f r_ = (v_ - fn_ * 0.693359375f) + fn_ * 2.12194440e-4f, z_ = r_ * r_; \
       lg_v16f p_ = 1.9875691500e-4f; \
       p_ = p_ * r_ + 1.3981999507e-3f; p_ = p_ * r_ + 8.3334519073e-3f; p_ = p_ * r_ + 4.1665795894e-2f; \
       p_ = p_ * r_ + 1.6666665459e-1f; p_ = p_ * r_ + 5.0000001201e-1f; \
       const lg_v16f scale_ = (lg_v16f)((__builtin_convertvector(fn_, lg_v16i) + 127) << 23); \
       lg_v16f x_ = (p_ * z_ + r_ + 1.0f) * scale_; \
       x_ = LG_SELECT16(v_ > 88.72283f, (lg_v16f)__builtin_inff(), x_); \
       x_ = LG_SELECT16(v_ < -87.336544f, (lg_v16f)0.0f, x_); \
       (e) = LG_SELECT16(v_ == v_, x_, v_); } while (0)
#endif

// Softmax of rows r0..r1-1 of x (rows of n floats, contiguous; y may be x): the row's max m (0
// when not finite), e = exp(x - m) summed in 16 fixed lanes (then in double, in order, so the
// bits do not depend on how rows are split), and e scaled by 1 / sum. exp is SOFTMAX_EXP16 on
// whole groups of 16 and SOFTMAX_EXP on the tail, the same bits lane for lane (about 1 ulp).
TARGET static void NAME(softmax_rows)(const float *x, float *y, long n, long r0, long r1) {
  for (long row = r0; row < r1; row++) {
    const float *a = x + row * n;
    float *b = y + row * n;
    float top[16];   // the max in 16 lanes (exact in any order), so the loop vectorizes
    for (int l = 0; l < 16; l++) top[l] = a[0];
    long i = 0;
    for (; i + 16 <= n; i += 16)
      for (int l = 0; l < 16; l++) top[l] = a[i + l] > top[l] ? a[i + l] : top[l];
    for (; i < n; i++) top[0] = a[i] > top[0] ? a[i] : top[0];
    float m = top[0];
    for (int l = 1; l < 16; l++) m = top[l] > m ? top[l] : m;
    if (!(m - m == 0)) m = 0;
    float lane[16] = { 0 };
    long i0 = 0;
    {   // whole groups of 16 as one vector (the lanes are SIMD lanes; the compiler leaves the scalar loop scalar)
      lg_v16f acc = { 0 };
      for (; i0 + 16 <= n; i0 += 16) {
        lg_v16f v, e;
        __builtin_memcpy(&v, a + i0, sizeof v);
        SOFTMAX_EXP16(e, v - m);
        __builtin_memcpy(b + i0, &e, sizeof e);
        acc += e;
      }
      __builtin_memcpy(lane, &acc, sizeof acc);
    }
    for (int l = 0; i0 + l < n; l++) {   // the tail, into the same lanes
      float e;
      SOFTMAX_EXP(e, a[i0 + l] - m);
      b[i0 + l] = e;
      lane[l] += e;
    }
    double s = 0;
    for (int l = 0; l < 16; l++) s += lane[l];
    const float inv = (float)(1.0 / s);
    for (long i = 0; i < n; i++) b[i] *= inv;
  }
}

// C (M×N, ldc) = A (M×K, lda) · B (K×N, ldb), row-major float32, K at most LG_SGEMM_MAX_K,
// without packing: the small-channel Winograd path's forward products (M, K at most 64
// channels, N a few hundred tiles), whose panels stay in L1, where a BLAS's packing and its beta
// pass cost as much as the arithmetic (OpenBLAS's Haswell core: a third of the GEMM time).
// GEMM_MR x GEMM_NR tiles of C live in registers; every element sums its K products in order,
// one multiply-add each. Edge tiles run the same kernel on zero-padded copies of A's last rows
// and B's last columns (a scalar edge ran at a tenth of the speed: N = 140 took 2.5x N = 128).
TARGET static void NAME(sgemm_tile)(const float *A, long lda, const float *B, long ldb, int K, float *C, long ldc) {
  float acc[GEMM_MR][GEMM_NR];
  for (int r = 0; r < GEMM_MR; r++) for (int j = 0; j < GEMM_NR; j++) acc[r][j] = 0;
  for (int k = 0; k < K; k++) {
    const float *restrict b = B + (long)k * ldb;
    for (int r = 0; r < GEMM_MR; r++) {
      const float a = A[(long)r * lda + k];
      for (int j = 0; j < GEMM_NR; j++) acc[r][j] += a * b[j];
    }
  }
  for (int r = 0; r < GEMM_MR; r++) for (int j = 0; j < GEMM_NR; j++) C[(long)r * ldc + j] = acc[r][j];
}

TARGET static void NAME(sgemm_nn)(const float *A, long lda, const float *B, long ldb, float *C, long ldc, int M, int N, int K) {
  if (K > LG_SGEMM_MAX_K || M <= 0 || N <= 0) return;
  const int k1 = K > 0 ? K : 1, nEdge = N % GEMM_NR, nFull = N - nEdge;
  float aPad[GEMM_MR * k1], bPad[nEdge ? k1 * GEMM_NR : 1], cPad[GEMM_MR * GEMM_NR];
  if (nEdge) {  // B's last nEdge columns, zero-padded to a full tile
    for (int k = 0; k < K; k++) for (int j = 0; j < GEMM_NR; j++) bPad[k * GEMM_NR + j] = j < nEdge ? B[(long)k * ldb + nFull + j] : 0;
  }
  for (int i0 = 0; i0 < M; i0 += GEMM_MR) {
    const int mr = M - i0 < GEMM_MR ? M - i0 : GEMM_MR;
    const float *a = A + (long)i0 * lda;
    float *c = C + (long)i0 * ldc;
    long la = lda;
    if (mr < GEMM_MR) {  // A's last rows, zero-padded to a full tile
      for (int r = 0; r < GEMM_MR; r++) for (int k = 0; k < K; k++) aPad[r * k1 + k] = r < mr ? a[(long)r * lda + k] : 0;
      a = aPad; la = k1;
    }
    for (int j0 = 0; j0 < N; j0 += GEMM_NR) {
      const int nr = j0 < nFull ? GEMM_NR : nEdge;
      const float *b = j0 < nFull ? B + j0 : bPad;
      const long lb = j0 < nFull ? ldb : GEMM_NR;
      if (mr == GEMM_MR && nr == GEMM_NR) { NAME(sgemm_tile)(a, la, b, lb, K, c + j0, ldc); continue; }
      NAME(sgemm_tile)(a, la, b, lb, K, cPad, GEMM_NR);  // an edge tile: only its mr x nr corner is C's
      for (int r = 0; r < mr; r++) for (int j = 0; j < nr; j++) c[(long)r * ldc + j0 + j] = cPad[r * GEMM_NR + j];
    }
  }
}

#if defined(PACK_TRANSPOSE16) && !defined(LG_TRANSPOSE16_DEFINED)
#define LG_TRANSPOSE16_DEFINED
#include <immintrin.h>
// dst[k·ldd + j] = src[j·lds + k] for a 16x16 block: unpack pairs of rows, then pairs of pairs,
// then 128-bit lanes twice (the usual AVX-512 transpose); the packed GEMM's Bᵀ slivers, which
// a scalar loop wrote at a quarter of the rate.
__attribute__((target("avx512f"), always_inline)) static inline void lg_transpose16(const float *src, long lds, float *dst, long ldd) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 16; i += 2) { t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]); t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]); }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {   // rows 4i.. of r hold columns i, i+4, i+8, i+12 per 128-bit lane
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
  }
  for (int i = 0; i < 8; i++) {
    _mm512_storeu_ps(dst + i * ldd, _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88));
    _mm512_storeu_ps(dst + (8 + i) * ldd, _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd));
  }
}
#endif

// C tile (PACK_MR × NV vectors) = alpha · Σ_k a[k·sk + r·sr] · b[k·PACK_NR + j] + beta · C:
// PACK_MR × NV vector accumulators in registers, A read in place (row r, column k at
// a[k·sk + r·sr]: sk = 1 for A as stored, sr = 1 for its transpose), B from a packed sliver.
// Explicit vectors: the vectorizer turned the scalar form of this loop into gathers. C is not
// read when beta is 0; an edge tile (mr < PACK_MR or nr < NV vectors) goes through a buffer.
// NV = PACK_NV for whole slivers, 1 for a last sliver at most one vector wide (N = 112 with
// 32-wide slivers would otherwise compute 128 columns).
typedef float NAME(gemm_vec) __attribute__((vector_size(PACK_VEC * 4)));
#define PACKED_TILE(F, NV)                                                                                                  \
TARGET static void NAME(F)(const float *restrict a, long sk, long sr, const float *restrict b, int K,                     \
                                               float *C, long ldc, int mr, int nr, float alpha, float beta) {             \
  typedef NAME(gemm_vec) vec;                                                                                              \
  vec t[PACK_MR][NV];                                                                                                      \
  for (int r = 0; r < PACK_MR; r++) for (int v = 0; v < NV; v++) t[r][v] = (vec){ 0 };                                     \
  for (int k = 0; k < K; k++) {                                                                                            \
    vec bk[NV];                                                                                                            \
    for (int v = 0; v < NV; v++) __builtin_memcpy(&bk[v], b + (long)k * PACK_NR + v * PACK_VEC, sizeof bk[v]);            \
    for (int r = 0; r < PACK_MR; r++) {                                                                                    \
      const float x = a[k * sk + r * sr];                                                                                  \
      for (int v = 0; v < NV; v++) t[r][v] += x * bk[v];                                                                   \
    }                                                                                                                      \
  }                                                                                                                        \
  if (mr == PACK_MR && nr == NV * PACK_VEC) {                                                                              \
    for (int r = 0; r < PACK_MR; r++)                                                                                      \
      for (int v = 0; v < NV; v++) {                                                                                       \
        float *c = C + (long)r * ldc + v * PACK_VEC;                                                                       \
        vec out = alpha * t[r][v];                                                                                         \
        if (beta != 0) { vec old; __builtin_memcpy(&old, c, sizeof old); out += beta * old; }                              \
        __builtin_memcpy(c, &out, sizeof out);                                                                             \
      }                                                                                                                    \
    return;                                                                                                                \
  }                                                                                                                        \
  float acc[PACK_MR][NV * PACK_VEC];                                                                                       \
  for (int r = 0; r < PACK_MR; r++) for (int v = 0; v < NV; v++) __builtin_memcpy(acc[r] + v * PACK_VEC, &t[r][v], sizeof t[r][v]); \
  for (int r = 0; r < mr; r++) {                                                                                           \
    float *restrict cr = C + (long)r * ldc;                                                                                \
    if (beta == 0) for (int j = 0; j < nr; j++) cr[j] = alpha * acc[r][j];                                                 \
    else for (int j = 0; j < nr; j++) cr[j] = alpha * acc[r][j] + beta * cr[j];                                            \
  }                                                                                                                        \
}
PACKED_TILE(sgemm_packed_tile1, 1)
PACKED_TILE(sgemm_packed_tile_nv, PACK_NV)
#undef PACKED_TILE

// C = alpha·op(A)·op(B) + beta·C for any float32 GEMM, row-major (op(A): M×K, op(B): K×N),
// blocked the way GotoBLAS and BLIS block (Goto & van de Geijn 2008, "Anatomy of
// high-performance matrix multiplication"): for each PACK_NC columns and PACK_KC of K, B's
// panel is copied into slivers of PACK_NR columns, k-major, each of which stays in L1 while
// the PACK_MC rows of A above it pass over it (A is read in place: a sliver's rows are
// contiguous runs, or its columns are, and the block stays in L2). Edge rows of A and edge
// columns of B are zero-padded copies, so every tile runs the same kernel. Every element sums
// its products in k order within a K block and adds the blocks in order: the same bits for any
// thread count. bp: PACK_KC·PACK_NC floats (PACK_NC a multiple of PACK_NR).
TARGET static void NAME(sgemm_packed)(int transA, int transB, int M, int N, int K, float alpha, const float *A, long lda,
                                      const float *B, long ldb, float beta, float *C, long ldc, float *bp) {
  const long sk = transA ? lda : 1, sr = transA ? 1 : lda;   // op(A)[i][k] = A[i·sr + k·sk]
  for (int jc = 0; jc < N; jc += PACK_NC) {
    const int nc = N - jc < PACK_NC ? N - jc : PACK_NC;
    for (int pc = 0; pc < K; pc += PACK_KC) {
      const int kc = K - pc < PACK_KC ? K - pc : PACK_KC;
      const float betaHere = pc == 0 ? beta : 1;
      for (int j0 = 0; j0 < nc; j0 += PACK_NR) {   // op(B)[pc + k][jc + j0 + j] -> bp[j0·kc + k·NR + j]
        float *restrict sliver = bp + (long)j0 * kc;
        const int nr = nc - j0 < PACK_NR ? nc - j0 : PACK_NR;
        if (!transB) {
          for (int k = 0; k < kc; k++) {
            const float *restrict src = B + (long)(pc + k) * ldb + jc + j0;
            float *restrict dst = sliver + (long)k * PACK_NR;
            if (nr == PACK_NR) { for (int j = 0; j < PACK_NR; j++) dst[j] = src[j]; }
            else { for (int j = 0; j < PACK_NR; j++) dst[j] = j < nr ? src[j] : 0; }
          }
          continue;
        }
        // a transpose: 16 values of k at a time from each row of B (B: N×K), so every row's
        // cache line is read once and the sliver's rows are written whole
        for (int k0 = 0; k0 < kc; k0 += 16) {
          const int kn = kc - k0 < 16 ? kc - k0 : 16;
#ifdef PACK_TRANSPOSE16
          if (kn == 16 && nr == PACK_NR) {   // whole 16x16 blocks in registers
            for (int jb = 0; jb < PACK_NR; jb += 16)
              lg_transpose16(B + (long)(jc + j0 + jb) * ldb + pc + k0, ldb, sliver + (long)k0 * PACK_NR + jb, PACK_NR);
            continue;
          }
#endif
          for (int j = 0; j < PACK_NR; j++) {
            const float *restrict src = B + (long)(jc + j0 + j) * ldb + pc + k0;
#pragma clang loop vectorize(disable)
            for (int k = 0; k < kn; k++) sliver[(long)(k0 + k) * PACK_NR + j] = j < nr ? src[k] : 0;
          }
        }
      }
      for (int ic = 0; ic < M; ic += PACK_MC) {
        const int mc = M - ic < PACK_MC ? M - ic : PACK_MC, edge = mc % PACK_MR, edgeRow = ic + mc - edge;
        float aPad[PACK_MR * PACK_KC];
        if (edge) {   // A's last rows, zero-padded, once per block: aPad[r·kc + k]
          const float *a = A + edgeRow * sr + pc * sk;
          for (int r = 0; r < PACK_MR; r++)
            for (int k = 0; k < kc; k++) aPad[r * kc + k] = r < edge ? a[r * sr + k * sk] : 0;
        }
        for (int j0 = 0; j0 < nc; j0 += PACK_NR) {
          const int nr = nc - j0 < PACK_NR ? nc - j0 : PACK_NR;
          for (int i0 = ic; i0 < ic + mc; i0 += PACK_MR) {
            const int mr = ic + mc - i0 < PACK_MR ? ic + mc - i0 : PACK_MR;
            const float *a = mr < PACK_MR ? aPad : A + i0 * sr + pc * sk;
            const long ask = mr < PACK_MR ? 1 : sk, asr = mr < PACK_MR ? kc : sr;
            float *c = C + (long)i0 * ldc + jc + j0;
            if (nr <= PACK_VEC) NAME(sgemm_packed_tile1)(a, ask, asr, bp + (long)j0 * kc, kc, c, ldc, mr, nr, alpha, betaHere);
            else NAME(sgemm_packed_tile_nv)(a, ask, asr, bp + (long)j0 * kc, kc, c, ldc, mr, nr, alpha, betaHere);
          }
        }
      }
    }
  }
}

#undef NAME
#undef CAT
#undef CAT2
