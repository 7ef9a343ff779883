# cmake -DIN=file -DOUT=file.c -DSYM=name -P EmbedFile.cmake
# Writes OUT defining `const char SYM[]` (the bytes of IN plus a NUL) and `const size_t SYM_len`.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from ${IN} by cmake/EmbedFile.cmake; do not edit. */\n"
  "#include <stddef.h>\n"
  "extern const char ${SYM}[];\n"
  "extern const size_t ${SYM}_len;\n"
  "const char ${SYM}[] = {\n    ${bytes}0x00\n};\n"
  "const size_t ${SYM}_len = ${len};\n")
