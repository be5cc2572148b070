// Ctrl-C handling: the signal only sets a flag; long loops call throw_if_interrupted() between
// tensors so that the normal error path (and StagedDirectory's cleanup) runs.
#pragma once

namespace hlwq {

void install_interrupt_handler();
bool interrupt_requested();
void throw_if_interrupted();  // throws hlwq::Error("interrupted")

}  // namespace hlwq
