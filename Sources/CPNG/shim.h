// libpng, wrapped in two C functions so that libpng's error longjmp lands in a C frame that
// called setjmp (never across Swift): each returns 0 on success or -1 with a message in err.
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

/// Reads a PNG as 8-bit samples: gray (1), gray+alpha (2), RGB (3) or RGBA (4) channels,
/// interleaved, rows top to bottom. Palettes expand to RGB(A), 16-bit samples are reduced to
/// 8 bits, low bit depths expanded. *data is malloc'ed; the caller frees it.
/// Before any pixel memory is allocated, the declared size is checked against `max_pixels` and
/// against what the file can hold: deflate expands at most 1032:1, so a file of n bytes holds
/// at most 1032·n bytes of (filtered) rows. A 400 KB file declaring 20000x20000 is refused.
static inline int lg_png_read(const char *path, int *width, int *height, int *channels, unsigned char **data,
                              unsigned long long max_pixels, char *err, size_t errcap) {
  lg_png_err e = { err, errcap };
  *data = NULL;
  FILE *fp = fopen(path, "rb");
  if (!fp) { snprintf(err, errcap, "cannot open '%s'", path); return -1; }
  unsigned char sig[8];
  if (fread(sig, 1, 8, fp) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
    fclose(fp);
    snprintf(err, errcap, "'%s' is not a PNG file (bad signature)", path);
    return -1;
  }
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
    long here = ftell(fp);
    unsigned long long file_bytes = 0;
    if (fseek(fp, 0, SEEK_END) == 0) { long end = ftell(fp); file_bytes = end > 0 ? (unsigned long long)end : 0; }
    fseek(fp, here, SEEK_SET);
    unsigned long long pixels = (unsigned long long)w * h;
    unsigned long long raw_min = (pixels * png_get_bit_depth(png, info) * png_get_channels(png, info) + 7) / 8;
    if (pixels > max_pixels) {
      snprintf(err, errcap, "'%s' is %ux%u = %llu pixels, more than the limit of %llu (option maxPixels)", path, w, h, pixels, max_pixels);
      png_longjmp(png, 1);
    }
    if (raw_min > file_bytes * 1032ULL + 65536) {
      snprintf(err, errcap, "'%s' declares %ux%u pixels, more than its %llu bytes can hold (a corrupt file or a decompression bomb)", path, w, h, file_bytes);
      png_longjmp(png, 1);
    }
  }
  int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int ch = png_get_channels(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  if (rowbytes != (size_t)w * ch) { snprintf(err, errcap, "unsupported PNG layout in '%s'", path); png_longjmp(png, 1); }
  buffer = (unsigned char *)malloc(rowbytes * h);
  rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
  if (!buffer || !rows) { snprintf(err, errcap, "out of memory reading '%s'", path); png_longjmp(png, 1); }
  for (png_uint_32 y = 0; y < h; y++) rows[y] = buffer + y * rowbytes;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &info, NULL);
  fclose(fp);
  free(rows);
  *width = (int)w; *height = (int)h; *channels = ch; *data = buffer;
  return 0;
}

/// Writes 8-bit interleaved samples (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as a PNG.
static inline int lg_png_write(const char *path, int width, int height, int channels, const unsigned char *data,
                               char *err, size_t errcap) {
  lg_png_err e = { err, errcap };
  int color = channels == 1 ? PNG_COLOR_TYPE_GRAY : channels == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA
            : channels == 3 ? PNG_COLOR_TYPE_RGB : channels == 4 ? PNG_COLOR_TYPE_RGBA : -1;
  if (color < 0 || width <= 0 || height <= 0) { snprintf(err, errcap, "cannot write a %dx%d image of %d channels", width, height, channels); return -1; }
  FILE *fp = fopen(path, "wb");
  if (!fp) { snprintf(err, errcap, "cannot write '%s'", path); return -1; }
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e, lg_png_error_fn, lg_png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) { fclose(fp); snprintf(err, errcap, "libpng could not start"); return -1; }
  png_bytep *volatile rows = NULL;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(fp);
    free(rows);
    return -1;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
  if (!rows) { snprintf(err, errcap, "out of memory writing '%s'", path); png_longjmp(png, 1); }
  for (int y = 0; y < height; y++) rows[y] = (png_bytep)(data + (size_t)y * width * channels);
  png_write_image(png, rows);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(rows);
  if (fflush(fp) != 0 || fclose(fp) != 0) { snprintf(err, errcap, "error writing '%s'", path); return -1; }
  return 0;
}

#endif
