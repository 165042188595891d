# Mat-vec family (decode): one module per weight type from kernels/matvec.comp; rows per subgroup,
# rows per workgroup, vector count, residual and the float vector path are specialization constants.
foreach(t F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K)
  string(TOLOWER ${t} lt)
  vkllm_add_kernel(matvec_${lt} SOURCE matvec.comp DEFINES ${t}=1)
endforeach()
# 8-bit activation mat-vec (kernels/matvec_q8.comp): x quantized per 32 in the prologue (optionally
# after RMSNorm or SwiGLU), integer dot products; needs GL_EXT_integer_dot_product.
foreach(t Q8_0 Q4_0 Q4_K Q5_K Q6_K)
  string(TOLOWER ${t} lt)
  vkllm_add_kernel(matvec_q8_${lt} SOURCE matvec_q8.comp DEFINES ${t}=1 REQUIRES intdot)
endforeach()
# The same with x pre-quantized once per layer input (XG=1: codes and scales from the global buffer
# that kernels/quant_q8.comp writes; no shared x, no prologue).
foreach(t Q8_0 Q4_0 Q4_K Q5_K Q6_K)
  string(TOLOWER ${t} lt)
  vkllm_add_kernel(matvec_q8x_${lt} SOURCE matvec_q8.comp DEFINES ${t}=1 XG=1 REQUIRES intdot)
endforeach()
vkllm_add_kernel(quant_q8 SOURCE quant_q8.comp)
# The QKV projection with RoPE and the KV-cache append in its epilogue (ROPE=1, one vector; decode).
foreach(t Q8_0 Q4_0 Q4_K Q5_K Q6_K)
  string(TOLOWER ${t} lt)
  vkllm_add_kernel(matvec_q8x_rope_${lt} SOURCE matvec_q8.comp DEFINES ${t}=1 XG=1 ROPE=1 REQUIRES intdot)
endforeach()
