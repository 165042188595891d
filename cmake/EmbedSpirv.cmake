# cmake -DIN=x.spv -DOUT=kern_x.c -DNAME=x -P EmbedSpirv.cmake
# Writes the SPIR-V words as a word-aligned const uint32_t array (SPIR-V is little-endian words).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR rem "${n} % 8")
if(NOT rem EQUAL 0 OR n EQUAL 0)
  message(FATAL_ERROR "${IN}: size is not a whole number of 32-bit words")
endif()
string(REGEX REPLACE "(..)(..)(..)(..)" "0x\\4\\3\\2\\1u," words "${hex}")
string(REGEX REPLACE "(0x........u,0x........u,0x........u,0x........u,0x........u,0x........u,0x........u,0x........u,)" "\\1\n    " words "${words}")
file(WRITE ${OUT} "/* Generated from ${NAME}.spv by cmake/EmbedSpirv.cmake. */
#include <stddef.h>
#include <stdint.h>
const uint32_t kern_${NAME}[] = {
    ${words}
};
const size_t kern_${NAME}_size = sizeof(kern_${NAME});
")
