// Open MPI (Debian's libopenmpi-dev) for luagan's data parallelism. MPI's handles
// (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are C macros over global symbols that Swift cannot
// import, so these inline functions name them. Every call returns MPI's error code: the
// communicator is switched to MPI_ERRORS_RETURN at start-up, so an error comes back as a code
// (turned into a Lua error) instead of aborting the process from inside MPI.
#ifndef LUAGAN_OPENMPI_SHIM_H
#define LUAGAN_OPENMPI_SHIM_H
#include <mpi.h>
#include <stddef.h>

static inline int lg_mpi_init(void) {
  int provided = 0;
  int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS) return rc;
  return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
static inline int lg_mpi_initialized(void) { int flag = 0; MPI_Initialized(&flag); return flag; }
static inline int lg_mpi_finalized(void) { int flag = 0; MPI_Finalized(&flag); return flag; }
static inline int lg_mpi_finalize(void) { return MPI_Finalize(); }
static inline int lg_mpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
static inline int lg_mpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }
static inline int lg_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static inline void lg_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

// In place: every rank ends with the sum over ranks (float32 or float64).
static inline int lg_mpi_allreduce_sum_f32(float *buffer, int count) {
  return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static inline int lg_mpi_allreduce_sum_f64(double *buffer, int count) {
  return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static inline int lg_mpi_allreduce_max_f64(double *buffer, int count) {
  return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}
static inline int lg_mpi_allreduce_min_f64(double *buffer, int count) {
  return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
}
// Non-blocking (MPI-3): the sum starts now and completes in lg_mpi_test / lg_mpi_wait; the
// buffer must stay untouched until then.
static inline int lg_mpi_iallreduce_sum_f32(float *buffer, int count, MPI_Request *request) {
  return MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, request);
}
static inline int lg_mpi_iallreduce_sum_f64(double *buffer, int count, MPI_Request *request) {
  return MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, request);
}
// Whether the request has completed (then it is freed); lets MPI advance it meanwhile.
static inline int lg_mpi_test(MPI_Request *request, int *done) {
  return MPI_Test(request, done, MPI_STATUS_IGNORE);
}
static inline int lg_mpi_wait(MPI_Request *request) { return MPI_Wait(request, MPI_STATUS_IGNORE); }
static inline MPI_Request lg_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline int lg_mpi_bcast(void *buffer, int bytes, int root) {
  return MPI_Bcast(buffer, bytes, MPI_BYTE, root, MPI_COMM_WORLD);
}
// Every rank's `bytes` bytes, in rank order, into `out` (size * bytes).
static inline int lg_mpi_allgather(const void *in, void *out, int bytes) {
  return MPI_Allgather(in, bytes, MPI_BYTE, out, bytes, MPI_BYTE, MPI_COMM_WORLD);
}
static inline int lg_mpi_error_string(int code, char *out, int capacity) {
  int length = 0;
  if (capacity < MPI_MAX_ERROR_STRING) return MPI_ERR_ARG;
  return MPI_Error_string(code, out, &length);
}
static inline int lg_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
#endif
