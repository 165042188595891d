# Attention family: RoPE + KV-cache append, decode (flash-decoding split + merge), prefill.
vkllm_add_kernel(kv_write_neox SOURCE kv_write.comp DEFINES NEOX=1 FP64=1)
vkllm_add_kernel(kv_write_norm SOURCE kv_write.comp DEFINES NEOX=0 FP64=1)
vkllm_add_kernel(kv_write_neox_f32 SOURCE kv_write.comp DEFINES NEOX=1 FP64=0)
vkllm_add_kernel(kv_write_norm_f32 SOURCE kv_write.comp DEFINES NEOX=0 FP64=0)
vkllm_add_kernel(attn_decode SOURCE attn_decode.comp DEFINES MERGE=0)
vkllm_add_kernel(attn_decode_merge SOURCE attn_decode.comp DEFINES MERGE=1)
vkllm_add_kernel(attn_decode_1p SOURCE attn_decode.comp DEFINES MERGE=0 ONEPASS=1)
vkllm_add_kernel(attn_prefill SOURCE attn_prefill.comp)
vkllm_add_kernel(attn_prefill_cm SOURCE attn_prefill_cm.comp DEFINES CM_EMU=0 REQUIRES coopmat)
vkllm_add_kernel(attn_prefill_cm2 SOURCE attn_prefill_cm2.comp REQUIRES coopmat2)
# the same kernel with its matrix operations emulated: tests of its indexing on any device
vkllm_add_kernel(attn_prefill_cmemu SOURCE attn_prefill_cm.comp DEFINES CM_EMU=1)
