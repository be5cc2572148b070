// The GPU's memory-read bandwidth as hlwq's own kernels reach it: a streaming sum over a buffer far
// larger than L2 (kernels::streaming_read_sum: 16-byte loads, four in flight per thread), the
// denominator of the decode roofline that `hlwq bench --backend cuda` reports.
#pragma once

namespace hlwq::cuda {

// Best of five timed reads (after a warm-up) of a 4 GiB buffer (1 GiB when the GPU has less than
// 16 GiB free), in bytes per second.
double measure_read_bandwidth();

}  // namespace hlwq::cuda
