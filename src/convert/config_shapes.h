// Cross-checks the shapes of a model folder's weights against the sizes its config.json states,
// so that a folder whose tensors contradict its config fails before anything is written.
#pragma once

#include "io/model_folder.h"

namespace hlwq {

// Checks the sizes config.json gives (hidden_size, intermediate_size, vocab_size; under
// "text_config" for multimodal configs) against the tensors of the usual decoder names
// (embed_tokens, lm_head, the attention and MLP projections, the norms): each size must be a
// positive integer below 2^31 where present, and the dimension of a tensor that carries it must
// equal it. Throws hlwq::Error naming the tensor and its file. Sizes a config lacks, and tensors
// of other names, and the tensors of quantized folders are not checked.
void check_shapes_against_config(const ModelFolder& folder);

}  // namespace hlwq
