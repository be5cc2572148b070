#include "ops/backend.h"

#include "core/error.h"
#include "ops/cpu/cpu_backend.h"

#ifdef HLWQ_HAVE_CUDA
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/device_info.h"
#endif

namespace hlwq {

BackendKind parse_backend_kind(std::string_view name) {
  if (name == "cpu") return BackendKind::cpu;
  if (name == "cuda") return BackendKind::cuda;
  fail("unknown backend '", std::string(name), "' (cpu, cuda)");
}

const char* backend_kind_name(BackendKind kind) { return kind == BackendKind::cpu ? "cpu" : "cuda"; }

bool cuda_backend_available() {
#ifdef HLWQ_HAVE_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(BackendKind kind, int threads) {
  if (kind == BackendKind::cpu) return std::make_unique<CpuBackend>(threads);
#ifdef HLWQ_HAVE_CUDA
  check(cuda_backend_available(), "--backend cuda: no CUDA GPU is visible to this process");
  return make_cuda_backend();
#else
  fail("--backend cuda: this hlwq was built without CUDA (configure with nvcc on the PATH and -DHLWQ_CUDA=ON)");
#endif
}

}  // namespace hlwq
