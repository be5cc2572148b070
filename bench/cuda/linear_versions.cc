// Checks and times the GPU linear kernels on Llama-3-8B layer shapes: for each shape and format,
// the decode product (GEMV) is checked once against the CPU's linear_forward_reference, then timed
// with CUDA events (warm-up, median of many calls, cycling through enough copies of the weight that
// L2 cannot serve them), and compared with the card's streaming read bandwidth measured in the same
// process by our own read kernel. Each call is timed twice: alone (events around one call, so the
// host's launch latency of its kernels is inside) and as one of many calls replayed back to back
// from a CUDA graph (what a decode step's graph pays for it). Prefill at 512 tokens (dequantized panel + cuBLAS BF16) is timed
// beside a plain cuBLAS BF16 GEMM of the same shape. Prints a table at the end.
//
//   linear_versions [--quick | --only TEXT]   (--quick: the two smallest shapes only; --only: the
//   shapes whose name holds TEXT, e.g. `--only gate` to profile one shape under Nsight Compute)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/device_linear.h"
#include "ops/cuda/linear_kernels.h"
#include "ops/linear_weight.h"
#include "ops/linear_weight_builders.h"

namespace hlwq {
namespace {

using cuda::check_cuda;

struct Shape {
  const char* name;
  int64_t rows, columns;
};

struct Row {
  std::string shape, format, kernel;
  int64_t batch = 0;
  double bytes = 0, microseconds = 0, gb_per_s = 0, fraction = 0, check_error = -1;
  double graph_microseconds = -1;  // per call, replayed from a CUDA graph; -1 where not measured
};

// Uniform values in [-scale, scale) from a 64-bit LCG: a 525M-value matrix in about a second.
std::vector<float> random_matrix(int64_t count, uint64_t seed, float scale, ThreadPool& pool) {
  std::vector<float> values(static_cast<size_t>(count));
  pool.parallel_for(values.size(), [&](size_t begin, size_t end) {
    uint64_t state = seed * 0x9e3779b97f4a7c15ull + begin * 0xbf58476d1ce4e5b9ull + 1;
    for (size_t i = begin; i < end; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      values[i] = scale * (static_cast<float>(state >> 40) / 8388608.0f - 1.0f);
    }
  });
  return values;
}

class Timer {
 public:
  Timer() {
    check_cuda(cudaEventCreate(&start_), "cudaEventCreate");
    check_cuda(cudaEventCreate(&stop_), "cudaEventCreate");
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  // Median over `repeats` timed calls of action(i), after `warmup` untimed ones, in microseconds.
  template <class Action>
  double median_us(int warmup, int repeats, Action&& action) {
    for (int i = 0; i < warmup; ++i) action(i);
    std::vector<double> times;
    for (int i = 0; i < repeats; ++i) {
      check_cuda(cudaEventRecord(start_, nullptr), "cudaEventRecord");
      action(warmup + i);
      check_cuda(cudaEventRecord(stop_, nullptr), "cudaEventRecord");
      check_cuda(cudaEventSynchronize(stop_), "cudaEventSynchronize");
      float ms = 0;
      check_cuda(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
      times.push_back(ms * 1000.0);
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }

  // Median GPU time of one call when `calls` calls action(i, stream) are recorded in one CUDA graph
  // and the graph is replayed `replays` times, in microseconds per call; -1 (with a line saying why)
  // when the calls cannot be captured.
  template <class Action>
  double graph_us(int calls, int replays, Action&& action) {
    cudaStream_t stream = nullptr;
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    double result = -1;
    try {
      check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
      action(0, stream);  // sizes the workspace, so nothing is allocated while capturing
      check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
      check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
      try {
        for (int i = 0; i < calls; ++i) action(i, stream);
      } catch (...) {
        cudaStreamEndCapture(stream, &graph);
        throw;
      }
      check_cuda(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
      check_cuda(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
      check_cuda(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");  // warm-up
      std::vector<double> times;
      for (int r = 0; r < replays; ++r) {
        check_cuda(cudaEventRecord(start_, stream), "cudaEventRecord");
        check_cuda(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");
        check_cuda(cudaEventRecord(stop_, stream), "cudaEventRecord");
        check_cuda(cudaEventSynchronize(stop_), "cudaEventSynchronize");
        float ms = 0;
        check_cuda(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
        times.push_back(ms * 1000.0 / calls);
      }
      std::sort(times.begin(), times.end());
      result = times[times.size() / 2];
    } catch (const Error& error) {
      std::printf("graph timing failed: %s\n", error.what());
      cudaGetLastError();
    }
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (stream != nullptr) cudaStreamDestroy(stream);
    return result;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

double measure_read_bandwidth(Timer& timer) {
  const size_t bytes = size_t{4} << 30;
  cuda::DeviceBytes buffer(bytes);
  check_cuda(cudaMemset(buffer.data(), 0, bytes), "cudaMemset");
  cuda::DeviceBytes sum(sizeof(float));
  const double us = timer.median_us(3, 15, [&](int) {
    cuda::kernels::streaming_read_sum(buffer.as<float>(), bytes / 4, sum.as<float>(), nullptr);
  });
  return bytes / (us * 1e-6) / 1e9;
}

double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, largest = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
    largest = std::max(largest, std::fabs(static_cast<double>(b[i])));
  }
  return largest > 0 ? worst / largest : worst;
}

LinearWeight make_weight(const std::string& format, const std::vector<float>& values, const Shape& shape,
                         ThreadPool& pool) {
  if (format == "HLWQ Q4 d128" || format == "HLWQ Q5 d128") {
    HlwqParams params;
    params.bits = format == "HLWQ Q4 d128" ? 4 : 5;
    params.block = 128;
    params.sign_seed = 42u;
    return make_hlwq_linear_weight(std::make_shared<const HlwqCodec>(params, shape.columns), values, shape.rows, pool);
  }
  if (format == "MLX 4-bit g64") {
    return make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::BF16, values, shape.rows, shape.columns);
  }
  if (format == "CT INT4 g128") {
    return make_int4_linear_weight(Int4Params{128}, DType::BF16, values, shape.rows, shape.columns);
  }
  return make_dense_linear_weight(DType::BF16, values, shape.rows, shape.columns);
}

int run(bool quick, const std::string& only) {
  int device = 0;
  cudaDeviceProp properties{};
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties");
  std::printf("device: %s, %d SMs, L2 %.0f MB\n", properties.name, properties.multiProcessorCount,
              properties.l2CacheSize / 1e6);
  Timer timer;
  const double read_bandwidth = measure_read_bandwidth(timer);
  std::printf("streaming read (4 GiB sum): %.0f GB/s\n", read_bandwidth);

  ThreadPool pool(0);
  std::vector<Shape> shapes = {{"k/v 1024x4096", 1024, 4096},
                               {"q/o 4096x4096", 4096, 4096},
                               {"gate/up 14336x4096", 14336, 4096},
                               {"down 4096x14336", 4096, 14336},
                               {"lm_head 128256x4096", 128256, 4096}};
  if (quick) shapes.resize(2);
  if (!only.empty()) {
    std::erase_if(shapes, [&](const Shape& shape) { return std::string(shape.name).find(only) == std::string::npos; });
    if (shapes.empty()) fail("linear_versions: no shape named like '", only, "'");
  }
  const std::vector<std::string> formats = {"HLWQ Q4 d128", "HLWQ Q5 d128", "MLX 4-bit g64", "CT INT4 g128", "BF16"};
  const int64_t prefill_tokens = 512;
  std::vector<Row> rows;
  std::vector<Row> prefill_rows;
  cublasHandle_t cublas = nullptr;
  if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS) fail("cublasCreate failed");

  for (const Shape& shape : shapes) {
    const std::vector<float> values = random_matrix(shape.rows * shape.columns, shape.rows, 0.02f, pool);
    const std::vector<float> x_host = random_matrix(prefill_tokens * shape.columns, 7, 1.0f, pool);
    cuda::DeviceBuffer x(x_host.size());
    x.upload(x_host.data(), x_host.size());
    cuda::DeviceBuffer y(static_cast<size_t>(prefill_tokens * shape.rows));
    cuda::LinearWorkspace workspace;

    for (const std::string& format : formats) {
      const LinearWeight host = make_weight(format, values, shape, pool);
      cuda::DeviceLinear first(host);
      const double bytes = static_cast<double>(first.device_bytes());
      // Enough copies that the cycle is >= 4x L2 (each call reads its weight from HBM).
      const int copies = static_cast<int>(std::clamp(std::ceil(4.0 * properties.l2CacheSize / bytes), 1.0, 64.0));
      std::vector<cuda::DeviceLinear> weights;
      weights.push_back(std::move(first));
      for (int i = 1; i < copies; ++i) weights.emplace_back(host);

      for (const int64_t batch : {int64_t{1}, int64_t{4}, int64_t{16}}) {
        const bool four_bit = format == "HLWQ Q4 d128" || format == "MLX 4-bit g64" || format == "CT INT4 g128";
        if (batch > 1 && !four_bit && format != "BF16") continue;
        // Every decode kernel version where they differ: HLWQ's version 2 up to batch 4, every
        // format's version 3 at batch 1, the 4-bit formats' version 4.
        using cuda::kernels::GemvVersion;
        const bool hlwq = format.starts_with("HLWQ");
        // (Version 1 is named, not best_measured, since best_measured picks version 4 at batches 2-16.)
        std::vector<GemvVersion> versions = {GemvVersion::best_measured};
        if (hlwq || four_bit || batch == 1) versions = {GemvVersion::wide_units};
        if (hlwq && batch <= 4) versions.insert(versions.begin(), GemvVersion::coalesced_words);
        if (batch == 1) versions.push_back(GemvVersion::column_stationary);
        if (four_bit) versions.push_back(GemvVersion::tensor_core_pairs);
        for (const GemvVersion version : versions) {
          workspace.set_gemv_version(version);
          const char* kernel = versions.size() == 1                       ? "GEMV"
                               : version == GemvVersion::coalesced_words   ? "GEMV v2"
                               : version == GemvVersion::column_stationary ? "GEMV v3"
                               : version == GemvVersion::tensor_core_pairs ? "GEMV v4"
                                                                           : "GEMV v1";
          Row row{shape.name, format, kernel, batch, bytes};
          // Check once against the CPU reference (batch 1 on every shape; batch 4/16 on the small ones).
          if (batch == 1 || shape.rows * shape.columns <= 4096 * 4096) {
            std::vector<float> expected(static_cast<size_t>(batch * shape.rows)), got(expected.size());
            linear_forward_reference(host, std::span<const float>(x_host).first(batch * shape.columns), batch,
                                     expected);
            check_cuda(cudaMemset(y.data(), 0xff, y.size() * 4), "cudaMemset");
            cuda::linear_forward(weights[0], x.data(), batch, y.data(), workspace, nullptr);
            y.download(got.data(), got.size());
            row.check_error = relative_error(got, expected);
          }
          const int repeats = bytes > 1e8 ? 30 : 200;
          row.microseconds = timer.median_us(10, repeats, [&](int i) {
            cuda::linear_forward(weights[i % copies], x.data(), batch, y.data(), workspace, nullptr);
          });
          row.gb_per_s = bytes / (row.microseconds * 1e-6) / 1e9;
          row.fraction = row.gb_per_s / read_bandwidth;
          // At least 8 calls a graph, and every copy of the weight once.
          row.graph_microseconds = timer.graph_us(std::max(copies, 8), bytes > 1e8 ? 10 : 30, [&](int i, cudaStream_t s) {
            cuda::linear_forward(weights[i % copies], x.data(), batch, y.data(), workspace, s);
          });
          std::printf("%-20s %-14s %-8s batch %2lld  %8.1f us  %7.0f GB/s  %.2f of read  graph %8.1f us  check %.1e\n",
                      shape.name, format.c_str(), row.kernel.c_str(), static_cast<long long>(batch), row.microseconds,
                      row.gb_per_s, row.fraction, row.graph_microseconds, row.check_error);
          rows.push_back(row);
        }
        workspace.set_gemv_version(cuda::kernels::GemvVersion::best_measured);
      }

      if (format == "HLWQ Q5 d128") continue;
      // Prefill at 512 tokens, BF16 tensor cores; checked against the FP32 prefill of the same call.
      std::vector<float> exact(static_cast<size_t>(prefill_tokens * shape.rows)), fast(exact.size());
      workspace.set_prefill_precision(cuda::PrefillPrecision::fp32);
      cuda::linear_forward(weights[0], x.data(), prefill_tokens, y.data(), workspace, nullptr);
      y.download(exact.data(), exact.size());
      workspace.set_prefill_precision(cuda::PrefillPrecision::bf16_tensor_cores);
      cuda::linear_forward(weights[0], x.data(), prefill_tokens, y.data(), workspace, nullptr);
      y.download(fast.data(), fast.size());
      Row prefill{shape.name, format, "prefill BF16", prefill_tokens, bytes};
      prefill.check_error = relative_error(fast, exact);
      prefill.microseconds = timer.median_us(3, 10, [&](int i) {
        cuda::linear_forward(weights[i % copies], x.data(), prefill_tokens, y.data(), workspace, nullptr);
      });
      prefill_rows.push_back(prefill);
      workspace.set_prefill_precision(cuda::PrefillPrecision::fp32);
    }

    // cuBLAS BF16 GEMM of the same shape on BF16 operands already in memory (the baseline).
    {
      cuda::DeviceBytes weight_bf16(static_cast<uint64_t>(shape.rows * shape.columns) * 2);
      cuda::DeviceBytes x_bf16(static_cast<uint64_t>(prefill_tokens * shape.columns) * 2);
      check_cuda(cudaMemset(weight_bf16.data(), 0, weight_bf16.size()), "cudaMemset");
      cuda::kernels::floats_to_bf16(x.data(), prefill_tokens * shape.columns, x_bf16.data(), nullptr);
      const float one = 1, zero = 0;
      Row baseline{shape.name, "cuBLAS BF16 GEMM", "baseline", prefill_tokens, 0};
      baseline.microseconds = timer.median_us(3, 10, [&](int) {
        const cublasStatus_t status = cublasGemmEx(
            cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(shape.rows), static_cast<int>(prefill_tokens),
            static_cast<int>(shape.columns), &one, weight_bf16.data(), CUDA_R_16BF, static_cast<int>(shape.columns),
            x_bf16.data(), CUDA_R_16BF, static_cast<int>(shape.columns), &zero, y.data(), CUDA_R_32F,
            static_cast<int>(shape.rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (status != CUBLAS_STATUS_SUCCESS) fail("cublasGemmEx: ", cublasGetStatusString(status));
      });
      for (Row& prefill : prefill_rows) {
        if (prefill.shape == shape.name) prefill.fraction = baseline.microseconds / prefill.microseconds;
      }
      prefill_rows.push_back(baseline);
    }
    check_cuda(cudaDeviceSynchronize(), "synchronize");
  }
  cublasDestroy(cublas);

  std::printf("\n== decode GEMV (%s, read roofline %.0f GB/s) ==\n", properties.name, read_bandwidth);
  std::printf(
      "| shape | format | kernel | batch | weight MB | us | GB/s | of read | graph us | of read, graph | check |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& row : rows) {
    const double graph_fraction =
        row.graph_microseconds > 0 ? row.bytes / (row.graph_microseconds * 1e-6) / 1e9 / read_bandwidth : -1;
    std::printf("| %s | %s | %s | %lld | %.2f | %.1f | %.0f | %.2f | %.1f | %.2f | %.1e |\n", row.shape.c_str(),
                row.format.c_str(), row.kernel.c_str(), static_cast<long long>(row.batch), row.bytes / 1e6,
                row.microseconds, row.gb_per_s, row.fraction, row.graph_microseconds, graph_fraction, row.check_error);
  }
  std::printf("\n== prefill, %lld tokens (%s) ==\n", static_cast<long long>(prefill_tokens), properties.name);
  std::printf("| shape | path | us | TFLOP/s | of cuBLAS BF16 | BF16 vs FP32 prefill |\n|---|---|---|---|---|---|\n");
  for (const Row& row : prefill_rows) {
    int64_t shape_rows = 0, shape_columns = 0;
    for (const Shape& shape : shapes) {
      if (row.shape == shape.name) shape_rows = shape.rows, shape_columns = shape.columns;
    }
    const double tflops = 2.0 * shape_rows * shape_columns * prefill_tokens / (row.microseconds * 1e-6) / 1e12;
    std::printf("| %s | %s | %.1f | %.0f | %.2f | %.1e |\n", row.shape.c_str(), row.format.c_str(), row.microseconds,
                tflops, row.kernel == "baseline" ? 1.0 : row.fraction, row.check_error);
  }
  return 0;
}

}  // namespace
}  // namespace hlwq

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const std::string only = argc > 2 && std::strcmp(argv[1], "--only") == 0 ? argv[2] : "";
  try {
    return hlwq::run(quick, only);
  } catch (const hlwq::Error& error) {
    std::fprintf(stderr, "linear_versions: %s\n", error.what());
    return 1;
  }
}
