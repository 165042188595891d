# Misc family: the rest of a transformer layer (SwiGLU, residual add, embedding lookup) and the
# sampling helpers (argmax, top-k), each a two-pass chunk/merge pair where a row is long.
vkllm_add_kernel(swiglu SOURCE swiglu.comp)
vkllm_add_kernel(add SOURCE add.comp)
vkllm_add_kernel(embed SOURCE embed.comp DEFINES U16=0)
vkllm_add_kernel(embed_u16 SOURCE embed.comp DEFINES U16=1)
vkllm_add_kernel(argmax_chunk SOURCE argmax.comp DEFINES PASS=1)
vkllm_add_kernel(argmax_merge SOURCE argmax.comp DEFINES PASS=2)
vkllm_add_kernel(topk_chunk SOURCE topk.comp DEFINES PASS=1)
vkllm_add_kernel(topk_merge SOURCE topk.comp DEFINES PASS=2)
