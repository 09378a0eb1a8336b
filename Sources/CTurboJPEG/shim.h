// libjpeg-turbo's TurboJPEG API: errors come back as return codes (no longjmp to catch), so
// Swift calls it directly.
#ifndef LUAGAN_TURBOJPEG_SHIM_H
#define LUAGAN_TURBOJPEG_SHIM_H
#include <turbojpeg.h>
#endif
