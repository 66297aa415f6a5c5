# cmake -DDIR=server/page -DOUT=server_page.c -P server/embed.cmake
# Writes OUT: every file of DIR as a byte array, and the table server_assets[] of
# server/server_internal.h ({name, bytes, size}, ending with a NULL name). Run by the
# build (CMakeLists.txt), so the page is edited as the plain files it is.
file(GLOB names RELATIVE ${DIR} ${DIR}/*)
list(SORT names)
set(arrays "")
set(table "")
set(i 0)
foreach(name ${names})
  file(READ ${DIR}/${name} hex HEX)
  string(LENGTH "${hex}" hex_len)
  math(EXPR size "${hex_len} / 2")
  # 0x.., for each byte, 16 to a line
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
  # one byte more than the file (a NUL) so an empty file is still a valid array
  string(APPEND arrays "/* ${name} */\nstatic const unsigned char asset_${i}[] = {\n${bytes}0};\n\n")
  string(APPEND table "    {\"${name}\", asset_${i}, ${size}},\n")
  math(EXPR i "${i} + 1")
endforeach()
file(WRITE ${OUT}
  "/* Generated from server/page/ by server/embed.cmake at build time: do not edit. */\n"
  "#include \"server/server_internal.h\"\n\n"
  "${arrays}"
  "const server_asset_t server_assets[] = {\n${table}    {NULL, NULL, 0},\n};\n")
