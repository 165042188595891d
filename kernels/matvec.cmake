# Mat-vec family (decode): one module per weight type from kernels/matvec.comp; rows per subgroup,
# rows per workgroup, vector count, residual and the float vector path are specialization constants.
foreach(t F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K)
  string(TOLOWER ${t} lt)
  vkllm_add_kernel(matvec_${lt} SOURCE matvec.comp DEFINES ${t}=1)
endforeach()
