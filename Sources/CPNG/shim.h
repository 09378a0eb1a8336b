// libpng, wrapped in two C functions (read a file, encode to memory) so that libpng's error
// longjmp lands in a C frame that called setjmp (never across Swift): each returns 0 on success
// or -1 with a message in err.
#ifndef LUAGAN_PNG_SHIM_H
#define LUAGAN_PNG_SHIM_H

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char *msg; size_t cap; } lg_png_err;

static inline void lg_png_error_fn(png_structp png, png_const_charp msg) {
  lg_png_err *e = (lg_png_err *)png_get_error_ptr(png);
  if (e && e->msg) snprintf(e->msg, e->cap, "%s", msg);
  png_longjmp(png, 1);
}
static inline void lg_png_warning_fn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

/// Reads a PNG held in memory (buf, len bytes; `name` for messages): gray (1), gray+alpha (2),
/// RGB (3) or RGBA (4) channels, interleaved, rows top to bottom. Palettes expand to RGB(A),
/// low bit depths to 8 bits; 16-bit samples stay 16-bit (*sample_bytes = 2, native byte order),
/// others are 8-bit (*sample_bytes = 1). *data is malloc'ed; the caller frees it.
/// Before any pixel memory is allocated, the declared size is checked against `max_pixels` and
/// against what the file can hold: deflate expands at most 1032:1, so a file of n bytes holds
/// at most 1032·n bytes of (filtered) rows. A 400 KB file declaring 20000x20000 is refused.
static inline int lg_png_read_mem(const unsigned char *buf, size_t len, const char *name, int *width, int *height,
                                  int *channels, int *sample_bytes, unsigned char **data,
                                  unsigned long long max_pixels, char *err, size_t errcap) {
  lg_png_err e = { err, errcap };
  *data = NULL;
  if (len < 8 || png_sig_cmp(buf, 0, 8) != 0) {
    snprintf(err, errcap, "'%s' is not a PNG file (bad signature)", name);
    return -1;
  }
  FILE *fp = fmemopen((void *)buf, len, "rb");
  if (!fp) { snprintf(err, errcap, "cannot read '%s'", name); return -1; }
  fseek(fp, 8, SEEK_SET);
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &e, lg_png_error_fn, lg_png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) { fclose(fp); snprintf(err, errcap, "libpng could not start"); return -1; }
  unsigned char *volatile buffer = NULL;
  png_bytep *volatile rows = NULL;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    free(buffer);
    free(rows);
    return -1;
  }
  png_init_io(png, fp);
  png_set_sig_bytes(png, 8);
  png_set_user_limits(png, 1 << 16, 1 << 16);
  png_set_chunk_malloc_max(png, 8 << 20);  /* ancillary chunks (text, ICC) are bounded too */
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  {
    unsigned long long pixels = (unsigned long long)w * h;
    unsigned long long raw_min = (pixels * png_get_bit_depth(png, info) * png_get_channels(png, info) + 7) / 8;
    if (pixels > max_pixels) {
      snprintf(err, errcap, "'%s' is %ux%u = %llu pixels, more than the limit of %llu (option maxPixels)", name, w, h, pixels, max_pixels);
      png_longjmp(png, 1);
    }
    if (raw_min > (unsigned long long)len * 1032ULL + 65536) {
      snprintf(err, errcap, "'%s' declares %ux%u pixels, more than its %zu bytes can hold (a corrupt file or a decompression bomb)",
               name, w, h, len);
      png_longjmp(png, 1);
    }
  }
  int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  int bytes = depth == 16 ? 2 : 1;
  if (depth == 16) png_set_swap(png);     /* PNG stores big-endian; hand the caller native order */
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int ch = png_get_channels(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  if (rowbytes != (size_t)w * ch * bytes) { snprintf(err, errcap, "unsupported PNG layout in '%s'", name); png_longjmp(png, 1); }
  buffer = (unsigned char *)malloc(rowbytes * h);
  rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
  if (!buffer || !rows) { snprintf(err, errcap, "out of memory reading '%s'", name); png_longjmp(png, 1); }
  for (png_uint_32 y = 0; y < h; y++) rows[y] = buffer + y * rowbytes;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &info, NULL);
  fclose(fp);
  free(rows);
  *width = (int)w; *height = (int)h; *channels = ch; *sample_bytes = bytes; *data = buffer;
  return 0;
}

typedef struct { unsigned char *data; size_t size, cap; } lg_png_buffer;

static inline void lg_png_append(png_structp png, png_bytep bytes, png_size_t n) {
  lg_png_buffer *b = (lg_png_buffer *)png_get_io_ptr(png);
  if (n > b->cap - b->size) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->size < n) {
      if (cap > ((size_t)-1) / 2) png_error(png, "a PNG too large for memory");
      cap *= 2;
    }
    unsigned char *p = (unsigned char *)realloc(b->data, cap);
    if (!p) png_error(png, "out of memory encoding a PNG");
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->size, bytes, n);
  b->size += n;
}
static inline void lg_png_flush(png_structp png) { (void)png; }

/// Encodes 8-bit interleaved samples (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA), rows top to bottom,
/// as the bytes of a PNG file in memory: *out is malloc'ed (the caller frees it), *out_size its
/// length. Files are written from these bytes by the caller (image.save, plot.lines), and
/// TensorBoard image summaries carry them as they are.
static inline int lg_png_encode(int width, int height, int channels, const unsigned char *data,
                                unsigned char **out, size_t *out_size, char *err, size_t errcap) {
  lg_png_err e = { err, errcap };
  *out = NULL;
  *out_size = 0;
  int color = channels == 1 ? PNG_COLOR_TYPE_GRAY : channels == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA
            : channels == 3 ? PNG_COLOR_TYPE_RGB : channels == 4 ? PNG_COLOR_TYPE_RGBA : -1;
  if (color < 0 || width <= 0 || height <= 0) {
    snprintf(err, errcap, "cannot write a %dx%d image of %d channels", width, height, channels);
    return -1;
  }
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e, lg_png_error_fn, lg_png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) { png_destroy_write_struct(&png, &info); snprintf(err, errcap, "libpng could not start"); return -1; }
  /* On the heap, filled by libpng through its io pointer: freed whole after a longjmp too. */
  lg_png_buffer *volatile buf = (lg_png_buffer *)calloc(1, sizeof(lg_png_buffer));
  png_bytep *volatile rows = NULL;
  if (!buf) { png_destroy_write_struct(&png, &info); snprintf(err, errcap, "out of memory encoding a PNG"); return -1; }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(buf->data);
    free(buf);
    free(rows);
    return -1;
  }
  png_set_write_fn(png, buf, lg_png_append, lg_png_flush);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
  if (!rows) { snprintf(err, errcap, "out of memory encoding a PNG"); png_longjmp(png, 1); }
  for (int y = 0; y < height; y++) rows[y] = (png_bytep)(data + (size_t)y * width * channels);
  png_write_image(png, rows);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(rows);
  *out = buf->data;
  *out_size = buf->size;
  free(buf);
  return 0;
}

#endif
