// The GPU's memory-read bandwidth as hlwq's own kernels reach it: a streaming sum over a buffer far
// larger than L2 (16-byte loads, several in flight per thread), the denominator of the decode
// roofline that `hlwq bench --backend cuda` reports.
#pragma once

namespace hlwq::cuda {

// Best of several timed reads of a 4 GiB buffer (1 GiB when the GPU has less than 16 GiB free), in
// bytes per second.
double measure_read_bandwidth();

}  // namespace hlwq::cuda
