# gemm family (prefill matrix product, kernels/gemm.comp): one portable float32 kernel and one
# cooperative-matrix kernel (KHR, subgroup scope) and one NV cooperative_matrix2 kernel (workgroup scope)
# per weight type; WTYPE is the ggml type number.
foreach(t f32:0 f16:1 q4_0:2 q8_0:8 q4_k:12 q5_k:13 q6_k:14 bf16:30)
  string(REPLACE ":" ";" tv ${t})
  list(GET tv 0 tname)
  list(GET tv 1 tnum)
  vkllm_add_kernel(gemm_${tname} SOURCE gemm.comp DEFINES WTYPE=${tnum} COOPMAT=0)
  vkllm_add_kernel(gemm_cm_${tname} SOURCE gemm.comp DEFINES WTYPE=${tnum} COOPMAT=1 REQUIRES coopmat)
  vkllm_add_kernel(gemm_cm2_${tname} SOURCE gemm.comp DEFINES WTYPE=${tnum} COOPMAT=2 REQUIRES coopmat2)
endforeach()
# cooperative_matrix2 with W by decode-function tensor loads straight from the GGUF blocks (no W
# staging; needs bufferDeviceAddress at run time). F16 W takes the plain tensor load.
foreach(t f32:0 f16:1 q4_0:2 q8_0:8 q4_k:12 q5_k:13 q6_k:14 bf16:30)
  string(REPLACE ":" ";" tv ${t})
  list(GET tv 0 tname)
  list(GET tv 1 tnum)
  vkllm_add_kernel(gemm_cm2d_${tname} SOURCE gemm.comp DEFINES WTYPE=${tnum} COOPMAT=2 WDECODE=1 REQUIRES coopmat2)
endforeach()
