// An XLA FFI handler for float32 matmuls through a CBLAS library loaded at run time (Intel
// MKL's libmkl_rt): the experiment of experiments/bench_blas_ffi.py, not part of jaxgeo.
//
//   c [M, N] = op(a) op(b), every buffer row-major 2-D, op(x) = x^T when its flag is set.
//
// Built by bench_blas_ffi.py with g++ against jaxlib's FFI headers (jax.ffi.include_dir()).
#include <dlfcn.h>

#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// CBLAS's sgemm with 32-bit sizes (LP64, MKL's libmkl_rt) or 64-bit ones (ILP64, e.g. the
// OpenBLAS in numpy's wheels, `scipy_cblas_sgemm64_`).
template <typename Int>
using Sgemm = void (*)(int layout, int trans_a, int trans_b, Int m, Int n, Int k, float alpha,
                       const float* a, Int lda, const float* b, Int ldb, float beta, float* c,
                       Int ldc);
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
Sgemm<int> g_sgemm = nullptr;
Sgemm<int64_t> g_sgemm64 = nullptr;

template <typename Int>
void Call(Sgemm<Int> sgemm, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          const float* a, int64_t lda, const float* b, int64_t ldb, float* c) {
  sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans,
        static_cast<Int>(m), static_cast<Int>(n), static_cast<Int>(k), 1.0f, a,
        static_cast<Int>(lda), b, static_cast<Int>(ldb), 0.0f, c, static_cast<Int>(n));
}

ffi::Error Matmul(ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b,
                  ffi::ResultBuffer<ffi::F32> c, bool trans_a, bool trans_b) {
  if (g_sgemm == nullptr && g_sgemm64 == nullptr) {
    return ffi::Error::Internal("jaxgeo_sgemm: no BLAS library loaded");
  }
  auto ad = a.dimensions();
  auto bd = b.dimensions();
  if (ad.size() != 2 || bd.size() != 2) {
    return ffi::Error::InvalidArgument("jaxgeo_sgemm: operands must be 2-D");
  }
  const int64_t m = trans_a ? ad[1] : ad[0], k = trans_a ? ad[0] : ad[1];
  const int64_t kb = trans_b ? bd[1] : bd[0], n = trans_b ? bd[0] : bd[1];
  if (k != kb) {
    return ffi::Error::InvalidArgument("jaxgeo_sgemm: contracting sizes differ");
  }
  if (m == 0 || n == 0) return ffi::Error::Success();
  if (k == 0) {  // an empty sum (BLAS refuses leading dimensions of 0)
    for (int64_t i = 0; i < m * n; ++i) c->typed_data()[i] = 0.0f;
    return ffi::Error::Success();
  }
  if (g_sgemm64 != nullptr) {
    Call(g_sgemm64, trans_a, trans_b, m, n, k, a.typed_data(), ad[1], b.typed_data(), bd[1],
         c->typed_data());
  } else {
    Call(g_sgemm, trans_a, trans_b, m, n, k, a.typed_data(), ad[1], b.typed_data(), bd[1],
         c->typed_data());
  }
  return ffi::Error::Success();
}

}  // namespace

// Loads `path` and uses its `symbol` (a CBLAS sgemm; `ilp64`: with 64-bit sizes).
// Returns 0 when done, 1 when the library did not load, 2 when it lacks the symbol.
extern "C" int jaxgeo_blas_load(const char* path, const char* symbol, int ilp64) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr) return 1;
  void* sgemm = dlsym(handle, symbol);
  if (sgemm == nullptr) return 2;
  g_sgemm = ilp64 ? nullptr : reinterpret_cast<Sgemm<int>>(sgemm);
  g_sgemm64 = ilp64 ? reinterpret_cast<Sgemm<int64_t>>(sgemm) : nullptr;
  return 0;
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxgeoSgemm, Matmul,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<bool>("trans_a")
                                  .Attr<bool>("trans_b"));
