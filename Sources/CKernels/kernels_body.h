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

#undef NAME
#undef CAT
#undef CAT2
